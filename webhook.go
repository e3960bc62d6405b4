package tally

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhooks follow the Standard Webhooks convention
// (https://www.standardwebhooks.com/): every delivery carries a stable id,
// the time of the attempt and a signature over both and the exact body.
const (
	// HeaderWebhookID is the delivery's id, the same on every retry: a
	// receiver that has seen it may skip the delivery.
	HeaderWebhookID = "webhook-id"
	// HeaderWebhookTimestamp is the attempt's time in Unix seconds.
	HeaderWebhookTimestamp = "webhook-timestamp"
	// HeaderWebhookSignature is a space-separated list of "v1,<base64>"
	// signatures (several while a secret is rotated).
	HeaderWebhookSignature = "webhook-signature"
)

// webhookSecretPrefix starts every webhook secret; the rest is the key in
// standard base64.
const webhookSecretPrefix = "whsec_"

// NewWebhookSecret returns a new random webhook secret: "whsec_" and 32
// random bytes in standard base64.
func NewWebhookSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// NewWebhookID returns a new delivery id: "msg_" and 16 random bytes in
// hex.
func NewWebhookID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "msg_" + hex.EncodeToString(b)
}

// webhookKey returns the HMAC key of a secret: the base64 after "whsec_"
// decoded. A secret without the prefix or that does not decode is used as
// its bytes, so that any secret still signs.
func webhookKey(secret string) []byte {
	if s, ok := strings.CutPrefix(secret, webhookSecretPrefix); ok {
		if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) > 0 {
			return k
		}
	}
	return []byte(secret)
}

// SignWebhook returns the webhook-signature value of one delivery attempt:
// "v1," and the standard base64 of HMAC-SHA256 under the secret's key of
// id + "." + timestamp (Unix seconds) + "." + body.
func SignWebhook(secret, id string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(webhookMAC(webhookKey(secret), id, timestamp, body))
}

func webhookMAC(key []byte, id string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of VerifyWebhook.
var (
	ErrWebhookHeaders   = errors.New("webhook: missing or malformed webhook-id, webhook-timestamp or webhook-signature")
	ErrWebhookTimestamp = errors.New("webhook: timestamp outside the tolerance")
	ErrWebhookSignature = errors.New("webhook: no matching signature")
)

// VerifyWebhook checks a received delivery: the webhook-timestamp must be
// within tolerance of now (either way; tolerance <= 0 means 5 minutes), and
// one of the v1 signatures of webhook-signature must match the body under
// secret, compared in constant time. It returns nil or one of
// ErrWebhookHeaders, ErrWebhookTimestamp, ErrWebhookSignature.
func VerifyWebhook(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id := header.Get(HeaderWebhookID)
	ts, err := strconv.ParseInt(header.Get(HeaderWebhookTimestamp), 10, 64)
	sigs := header.Values(HeaderWebhookSignature)
	if id == "" || err != nil || len(sigs) == 0 {
		return ErrWebhookHeaders
	}
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrWebhookTimestamp
	}
	want := webhookMAC(webhookKey(secret), id, ts, body)
	for _, v := range sigs {
		for _, sig := range strings.Fields(v) {
			b64, ok := strings.CutPrefix(sig, "v1,")
			if !ok {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrWebhookSignature
}

// WebhookStatus is where a delivery stands.
type WebhookStatus string

// The statuses of a delivery.
const (
	// WebhookPending: not delivered yet; due at NextAttemptAt.
	WebhookPending WebhookStatus = "pending"
	// WebhookDelivered: a 2xx answer was received.
	WebhookDelivered WebhookStatus = "delivered"
	// WebhookFailed: given up after the last attempt.
	WebhookFailed WebhookStatus = "failed"
)

// WebhookDelivery is one webhook in the outbox: one per tenant, event
// type, metric, threshold and period, however many instances saw the
// crossing. Its WebhookID is sent on every attempt.
type WebhookDelivery struct {
	ID             int64         `json:"-"`
	TenantID       int64         `json:"-"`
	WebhookID      string        `json:"id"`
	EventType      string        `json:"event_type"`
	Metric         string        `json:"metric"`
	Threshold      int           `json:"threshold"`
	PeriodStart    time.Time     `json:"period_start"`
	Payload        []byte        `json:"-"`
	Status         WebhookStatus `json:"status"`
	Attempts       int           `json:"attempts"`
	LastStatusCode int           `json:"last_status_code,omitempty"`
	LastError      string        `json:"last_error,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	NextAttemptAt  time.Time     `json:"next_attempt_at"`
	DeliveredAt    *time.Time    `json:"delivered_at,omitempty"`
}

// WebhookAttempt is the outcome of one delivery attempt.
type WebhookAttempt struct {
	// Status is WebhookDelivered, WebhookFailed (no more attempts) or
	// WebhookPending (retried at NextAttemptAt).
	Status        WebhookStatus
	StatusCode    int    // the receiver's answer; 0 when none came
	Error         string // why it failed, never the URL; "" when delivered
	At            time.Time
	NextAttemptAt time.Time // for WebhookPending
}

// WebhookFilter selects a page of a tenant's deliveries, newest first.
type WebhookFilter struct {
	Cursor *Cursor
	Limit  int
}

// WebhookKey is the keyset position of a delivery in its list.
func WebhookKey(d *WebhookDelivery) Cursor { return Cursor{At: d.CreatedAt, ID: d.ID} }

package client

import (
	"net/http"
	"time"

	"github.com/tallyhq/tally"
)

// Errors of VerifyWebhook, to tell with errors.Is why a delivery was refused.
var (
	// ErrWebhookHeaders: webhook-id, webhook-timestamp or
	// webhook-signature is missing or malformed.
	ErrWebhookHeaders = tally.ErrWebhookHeaders
	// ErrWebhookTimestamp: webhook-timestamp is further from now than the
	// tolerance (a replay, or a clock far off).
	ErrWebhookTimestamp = tally.ErrWebhookTimestamp
	// ErrWebhookSignature: no v1 signature matches the body.
	ErrWebhookSignature = tally.ErrWebhookSignature
)

// VerifyWebhook checks a quota webhook tally sent, per the Standard
// Webhooks convention: one of the "v1,<base64>" signatures in
// webhook-signature (several may be given, space-separated) must be the
// HMAC-SHA256, under the tenant's webhook secret ("whsec_…"), of
// webhook-id + "." + webhook-timestamp + "." + body, compared in constant
// time; and webhook-timestamp must be within tolerance of the local clock
// (tolerance <= 0: 5 minutes). Pass the raw body, exactly as received.
// Deliveries are retried with the same webhook-id: a receiver that has
// already handled an id should answer 2xx and skip it.
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err := client.VerifyWebhook(secret, r.Header, body, 5*time.Minute); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
func VerifyWebhook(secret string, header http.Header, body []byte, tolerance time.Duration) error {
	return tally.VerifyWebhook(secret, header, body, tolerance, time.Now())
}

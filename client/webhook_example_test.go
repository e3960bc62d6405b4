package client_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// verifyPlain is docs/WEBHOOKS.md's plain HMAC check, with the standard
// library only: what a receiver without the SDK does.
func verifyPlain(secret string, h http.Header, body []byte, tolerance time.Duration) bool {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > tolerance {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, ok := strings.CutPrefix(sig, "v1,"); ok && hmac.Equal([]byte(v), []byte(want)) {
			return true
		}
	}
	return false
}

// Example_plainHMAC verifies a delivery signed as tally's dispatcher signs
// it, without the SDK.
func Example_plainHMAC() {
	secret := tally.NewWebhookSecret()
	body := []byte(`{"type":"quota.threshold","timestamp":"2026-03-08T12:00:00Z","data":{"tenant":"acme"}}`)
	id, ts := tally.NewWebhookID(), time.Now().Unix()
	h := http.Header{}
	h.Set(tally.HeaderWebhookID, id)
	h.Set(tally.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(tally.HeaderWebhookSignature, tally.SignWebhook(secret, id, ts, body))

	fmt.Println("signed:", verifyPlain(secret, h, body, 5*time.Minute))
	fmt.Println("body changed:", verifyPlain(secret, h, append(body, ' '), 5*time.Minute))
	fmt.Println("other secret:", verifyPlain(tally.NewWebhookSecret(), h, body, 5*time.Minute))
	h.Set(tally.HeaderWebhookTimestamp, strconv.FormatInt(ts-600, 10))
	fmt.Println("replayed later:", verifyPlain(secret, h, body, 5*time.Minute))
	// Output:
	// signed: true
	// body changed: false
	// other secret: false
	// replayed later: false
}

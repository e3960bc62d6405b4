package client_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
)

// TestVerifyWebhook signs as tally's sender does and checks what the SDK
// accepts and refuses.
func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	secret := tally.NewWebhookSecret()
	body := []byte(`{"type":"quota.threshold","metric":"builds_daily"}`)
	signed := func(at time.Time, sigs ...string) http.Header {
		h := http.Header{}
		h.Set("Webhook-Id", "msg_1")
		h.Set("Webhook-Timestamp", strconv.FormatInt(at.Unix(), 10))
		if sigs == nil {
			sigs = []string{tally.SignWebhook(secret, "msg_1", at.Unix(), body)}
		}
		for _, s := range sigs {
			h.Add("Webhook-Signature", s)
		}
		return h
	}
	now := time.Now()
	if err := client.VerifyWebhook(secret, signed(now), body, time.Minute); err != nil {
		t.Errorf("a fresh, signed delivery: %v", err)
	}
	rotated := "v1,bm90IGEgc2lnbmF0dXJl " + tally.SignWebhook(secret, "msg_1", now.Unix(), body)
	if err := client.VerifyWebhook(secret, signed(now, rotated), body, time.Minute); err != nil {
		t.Errorf("several signatures, one right: %v", err)
	}
	if err := client.VerifyWebhook(secret, signed(now.Add(-10*time.Minute)), body, time.Minute); !errors.Is(err, client.ErrWebhookTimestamp) {
		t.Errorf("a replayed delivery: %v, want ErrWebhookTimestamp", err)
	}
	if err := client.VerifyWebhook(tally.NewWebhookSecret(), signed(now), body, time.Minute); !errors.Is(err, client.ErrWebhookSignature) {
		t.Errorf("another secret: %v, want ErrWebhookSignature", err)
	}
	if err := client.VerifyWebhook(secret, signed(now), append(body, ' '), time.Minute); !errors.Is(err, client.ErrWebhookSignature) {
		t.Errorf("a changed body: %v, want ErrWebhookSignature", err)
	}
	if err := client.VerifyWebhook(secret, http.Header{}, body, time.Minute); !errors.Is(err, client.ErrWebhookHeaders) {
		t.Errorf("no headers: %v, want ErrWebhookHeaders", err)
	}
}

package tally_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// The test vector the Standard Webhooks reference libraries check
// (standard-webhooks/standard-webhooks, libraries/*: "test_sign").
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignWebhookVector(t *testing.T) {
	t.Parallel()
	if got := tally.SignWebhook(vectorSecret, vectorID, vectorTS, []byte(vectorBody)); got != vectorSig {
		t.Errorf("SignWebhook = %s, want %s", got, vectorSig)
	}
}

// TestSignWebhookIndependent recomputes the signature by the spec's words
// for a secret made by NewWebhookSecret.
func TestSignWebhookIndependent(t *testing.T) {
	t.Parallel()
	secret := tally.NewWebhookSecret()
	b64, ok := strings.CutPrefix(secret, "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(key) != 32 {
		t.Fatalf("secret %q: not whsec_ + base64 of 32 bytes", secret)
	}
	body := []byte(`{"type":"quota.threshold"}`)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("msg_1.1700000000." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := tally.SignWebhook(secret, "msg_1", 1700000000, body); got != want {
		t.Errorf("SignWebhook = %s, want %s", got, want)
	}
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	now := time.Unix(vectorTS, 0)
	headers := func(id, ts string, sigs ...string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		for _, s := range sigs {
			h.Add("webhook-signature", s)
		}
		return h
	}
	ts := strconv.Itoa(vectorTS)
	other := "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	for _, tc := range []struct {
		name   string
		h      http.Header
		body   string
		now    time.Time
		secret string
		want   error
	}{
		{"valid", headers(vectorID, ts, vectorSig), vectorBody, now, vectorSecret, nil},
		{"one of several in one header", headers(vectorID, ts, other+" v2,xyz "+vectorSig), vectorBody, now, vectorSecret, nil},
		{"one of several headers", headers(vectorID, ts, other, vectorSig), vectorBody, now, vectorSecret, nil},
		{"within tolerance", headers(vectorID, ts, vectorSig), vectorBody, now.Add(4 * time.Minute), vectorSecret, nil},
		{"too old", headers(vectorID, ts, vectorSig), vectorBody, now.Add(6 * time.Minute), vectorSecret, tally.ErrWebhookTimestamp},
		{"too new", headers(vectorID, ts, vectorSig), vectorBody, now.Add(-6 * time.Minute), vectorSecret, tally.ErrWebhookTimestamp},
		{"body changed", headers(vectorID, ts, vectorSig), `{"test": 2432232315}`, now, vectorSecret, tally.ErrWebhookSignature},
		{"id changed", headers("msg_other", ts, vectorSig), vectorBody, now, vectorSecret, tally.ErrWebhookSignature},
		{"wrong secret", headers(vectorID, ts, vectorSig), vectorBody, now, tally.NewWebhookSecret(), tally.ErrWebhookSignature},
		{"other version", headers(vectorID, ts, "v1a,"+strings.TrimPrefix(vectorSig, "v1,")), vectorBody, now, vectorSecret, tally.ErrWebhookSignature},
		{"no id", headers("", ts, vectorSig), vectorBody, now, vectorSecret, tally.ErrWebhookHeaders},
		{"bad timestamp", headers(vectorID, "soon", vectorSig), vectorBody, now, vectorSecret, tally.ErrWebhookHeaders},
		{"no signature", headers(vectorID, ts), vectorBody, now, vectorSecret, tally.ErrWebhookHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tally.VerifyWebhook(tc.secret, tc.h, []byte(tc.body), 5*time.Minute, tc.now); !errors.Is(err, tc.want) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tc.want)
			}
		})
	}
}

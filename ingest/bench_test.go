package ingest

import (
	"strings"
	"testing"
)

// BenchmarkDecode1000 decodes a full batch of typical events.
func BenchmarkDecode1000(b *testing.B) {
	ev := `{"event":"business.order.completed","user_id":"user-123","timestamp":"2026-01-15T11:59:00Z","value":42.5,"props":{"plan":"pro","items":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"password":"x","ref":"newsletter"}}`
	body := []byte(`{"batch":[` + strings.TrimSuffix(strings.Repeat(ev+",", 1000), ",") + `]}`)
	v := NewValidator(Config{})
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := v.Decode(body, testTenant, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedactRule compares, in one run, the word rule of secret keys
// (secretKey) with the substring rule it replaced (the baseline), over
// typical props keys: the ratio of their ns/op is what the word rule costs
// per key.
func BenchmarkRedactRule(b *testing.B) {
	keys := []string{"plan", "items", "sku", "qty", "password", "ref", "prompt_tokens", "completion_tokens",
		"model", "userAgent", "content_type", "bytes", "duration_ms", "apiToken", "X-Request-ID", "status"}
	substrings := []string{"password", "passwd", "secret", "token", "api_key", "apikey"}
	b.Run("substrings-baseline", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				lk := strings.ToLower(k)
				for _, s := range substrings {
					if strings.Contains(lk, s) {
						break
					}
				}
			}
		}
	})
	b.Run("words", func(b *testing.B) {
		for b.Loop() {
			for _, k := range keys {
				secretKey(k)
			}
		}
	})
}

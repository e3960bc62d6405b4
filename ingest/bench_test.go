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

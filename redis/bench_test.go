package redis_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// BenchmarkConsume compares one quota consume on Redis (a round trip and a
// Lua script) with the in-memory counters, from 8 goroutines per CPU on one
// counter: the contended case of a busy tenant, with enough requests in
// flight that Redis's throughput, not one round trip's latency, is
// measured. The limit is never reached.
func BenchmarkConsume(b *testing.B) {
	day := time.Now()
	run := func(b *testing.B, c tally.Counters) {
		ctx := b.Context()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := c.Consume(ctx, 1, day, "api_requests_daily", 1, 1<<50); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("memory", func(b *testing.B) { run(b, usage.NewMemoryCounters()) })
	b.Run("redis", func(b *testing.B) {
		c, _, _ := newCounters(b)
		run(b, c)
	})
}

// Package metrics holds what tally's Prometheus metrics share: a limiter that
// bounds label cardinality.
package metrics

import "sync"

// Other is the label value that stands for every value past the limit.
const Other = "other"

// Limiter bounds the number of distinct values one label takes: the first
// Max distinct values pass, later new ones become "other". Safe for
// concurrent use.
type Limiter struct {
	max  int
	mu   sync.RWMutex
	seen map[string]struct{}
}

// NewLimiter returns a limiter that lets max distinct values through
// (max <= 0 means 100).
func NewLimiter(max int) *Limiter {
	if max <= 0 {
		max = 100
	}
	return &Limiter{max: max, seen: map[string]struct{}{}}
}

// Value returns v while v is among the first Max distinct values, else Other.
func (l *Limiter) Value(v string) string {
	l.mu.RLock()
	_, ok := l.seen[v]
	l.mu.RUnlock()
	if ok {
		return v
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[v]; ok {
		return v
	}
	if len(l.seen) >= l.max {
		return Other
	}
	l.seen[v] = struct{}{}
	return v
}

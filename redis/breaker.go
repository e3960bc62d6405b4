package redis

import (
	"errors"
	"sync"
	"time"
)

// ErrOpen is the error of a call the circuit breaker refused without
// trying: Redis failed several times in a row and the breaker waits for
// its cool-down before letting one probe call through.
var ErrOpen = errors.New("redis: circuit open after repeated failures; retry later")

// breaker is a small circuit breaker: after threshold failures in a row it
// opens and refuses every call for cooldown; then it lets one call through
// (half-open) and closes when that call succeeds, or opens again. While it
// is open a call costs nothing, so that a stalled or resetting Redis does
// not add its timeout to every request.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	failures int       // consecutive failures
	openedAt time.Time // zero while closed
	probing  bool      // a half-open probe is in flight
}

// allow reports whether a call may go to Redis; a caller allowed must
// report the outcome with done.
func (b *breaker) allow() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openedAt.IsZero() {
		return nil
	}
	if b.probing || b.now().Sub(b.openedAt) < b.cooldown {
		return ErrOpen
	}
	b.probing = true
	return nil
}

// done records the outcome of an allowed call.
func (b *breaker) done(failed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	wasProbe := b.probing
	b.probing = false
	if !failed {
		b.failures = 0
		b.openedAt = time.Time{}
		return
	}
	b.failures++
	if wasProbe || b.failures >= b.threshold {
		b.openedAt = b.now()
	}
}

// open reports whether the breaker refuses calls now.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openedAt.IsZero()
}

// Package dedupe lets one occurrence of a repeated thing through per time
// window: the audit entries of refused credentials and denied requests,
// which an attacker could otherwise repeat to flood the audit log.
package dedupe

import (
	"sync"
	"time"
)

// Window lets a key through at most once per window, per process. It
// remembers at most Max keys at once: when that many were let through
// within the window, new keys are held back too, so that keys that never
// repeat (an attacker varying them) cannot flood what it guards either.
// The zero value is not usable; use New.
type Window struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[string]time.Time // key → when it was let through
}

// New returns a Window of the given length (at least a second) remembering
// at most limit keys (at least 1).
func New(window time.Duration, limit int) *Window {
	return &Window{window: max(window, time.Second), max: max(limit, 1), seen: map[string]time.Time{}}
}

// Allow reports whether key goes through at time now: true unless it went
// through less than a window ago, or the window already holds the maximum
// of keys.
func (w *Window) Allow(key string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.seen[key]; ok && now.Sub(at) < w.window {
		return false
	}
	if len(w.seen) >= w.max {
		for k, at := range w.seen {
			if now.Sub(at) >= w.window {
				delete(w.seen, k)
			}
		}
		if len(w.seen) >= w.max {
			return false
		}
	}
	w.seen[key] = now
	return true
}

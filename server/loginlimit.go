package server

import (
	"sync"
	"time"
)

// loginLimiter slows password guessing: after maxFailures failed logins
// for one email within window, further attempts for it are refused (429)
// until the oldest failure leaves the window, without checking the
// password. It keys by email whether or not the account exists, so it
// reveals nothing. Process-local: each instance counts its own attempts.
type loginLimiter struct {
	maxFailures int
	window      time.Duration

	mu       sync.Mutex
	failures map[string][]time.Time
}

// maxTrackedEmails bounds the limiter's memory; past it, the oldest
// records are dropped first.
const maxTrackedEmails = 100_000

func newLoginLimiter(maxFailures int, window time.Duration) *loginLimiter {
	return &loginLimiter{maxFailures: maxFailures, window: window, failures: map[string][]time.Time{}}
}

// recent returns email's failures still in the window at now.
func (l *loginLimiter) recent(email string, now time.Time) []time.Time {
	f := l.failures[email]
	for len(f) > 0 && now.Sub(f[0]) >= l.window {
		f = f[1:]
	}
	if len(f) == 0 {
		delete(l.failures, email)
		return nil
	}
	l.failures[email] = f
	return f
}

// wait returns how long email must wait before its next attempt (0: it
// may try now).
func (l *loginLimiter) wait(email string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.recent(email, now)
	if len(f) < l.maxFailures {
		return 0
	}
	return l.window - now.Sub(f[len(f)-l.maxFailures])
}

// failed records a failed attempt.
func (l *loginLimiter) failed(email string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) >= maxTrackedEmails {
		for k := range l.failures {
			l.recent(k, now) // drops records that left the window
		}
		for k := range l.failures {
			if len(l.failures) < maxTrackedEmails*9/10 {
				break
			}
			delete(l.failures, k)
		}
	}
	l.failures[email] = append(l.recent(email, now), now)
}

// succeeded forgets email's failures.
func (l *loginLimiter) succeeded(email string) {
	l.mu.Lock()
	delete(l.failures, email)
	l.mu.Unlock()
}

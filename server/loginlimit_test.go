package server

import (
	"testing"
	"time"
)

func TestLoginLimiter(t *testing.T) {
	t.Parallel()
	l := newLoginLimiter(3, time.Minute)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		if w := l.wait("a@x", t0.Add(time.Duration(i)*time.Second)); w != 0 {
			t.Fatalf("attempt %d must wait %s before the limit", i, w)
		}
		l.failed("a@x", t0.Add(time.Duration(i)*time.Second))
	}
	if w := l.wait("a@x", t0.Add(10*time.Second)); w != 50*time.Second {
		t.Fatalf("after 3 failures: wait %s, want 50s (until the first leaves the window)", w)
	}
	if w := l.wait("b@x", t0.Add(10*time.Second)); w != 0 {
		t.Fatalf("another email waits %s", w)
	}
	if w := l.wait("a@x", t0.Add(time.Minute)); w != 0 {
		t.Fatalf("after the window: wait %s", w)
	}
	l.failed("c@x", t0)
	l.succeeded("c@x")
	if len(l.failures["c@x"]) != 0 {
		t.Fatal("a success did not clear the failures")
	}
}

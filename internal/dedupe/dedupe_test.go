package dedupe

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	w := New(time.Minute, 2)
	steps := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", 30 * time.Second, false}, // within the window
		{"b", 30 * time.Second, true},
		{"c", 40 * time.Second, false}, // the window is full
		{"a", time.Minute, true},       // a's window is over
		{"c", 95 * time.Second, true},  // b's is over: room again
		{"c", 100 * time.Second, false},
	}
	for i, s := range steps {
		if got := w.Allow(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: Allow(%q, +%v) = %v, want %v", i, s.key, s.at, got, s.want)
		}
	}
}

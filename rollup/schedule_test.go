package rollup

import (
	"testing"
	"time"
)

func TestNextRun(t *testing.T) {
	t.Parallel()
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		now     time.Time
		dailyAt time.Duration
		want    time.Time
		jobs    jobs
	}{
		{at(1, 10, 0), 10 * time.Minute, at(1, 10, 5), jobHourly},
		{at(1, 10, 5), 10 * time.Minute, at(1, 11, 5), jobHourly}, // strictly after
		{at(1, 10, 5).Add(-time.Nanosecond), 10 * time.Minute, at(1, 10, 5), jobHourly},
		{at(1, 23, 30), 10 * time.Minute, at(2, 0, 5), jobHourly},
		{at(2, 0, 5), 10 * time.Minute, at(2, 0, 10), jobDaily},
		{at(2, 0, 7), 10 * time.Minute, at(2, 0, 10), jobDaily},
		{at(2, 0, 10), 10 * time.Minute, at(2, 1, 5), jobHourly},
		{at(1, 23, 30), 5 * time.Minute, at(2, 0, 5), jobHourly | jobDaily},
		{at(1, 2, 5), 150 * time.Minute, at(1, 2, 30), jobDaily},
		{at(1, 2, 30), 150 * time.Minute, at(1, 3, 5), jobHourly},
		{at(31, 23, 59), 10 * time.Minute, time.Date(2026, 4, 1, 0, 5, 0, 0, time.UTC), jobHourly},
		// Another zone, same instant: the schedule stays UTC.
		{at(1, 23, 30).In(time.FixedZone("X", 5*3600+1800)), 10 * time.Minute, at(2, 0, 5), jobHourly},
	} {
		got, jobs := nextRun(tc.now, tc.dailyAt)
		if !got.Equal(tc.want) || jobs != tc.jobs {
			t.Errorf("nextRun(%v, %v) = %v, %b; want %v, %b", tc.now, tc.dailyAt, got, jobs, tc.want, tc.jobs)
		}
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	h := func(hh, mm int) time.Time { return time.Date(2026, 3, 1, hh, mm, 0, 0, time.UTC) }
	// From 01:20 to 06:40 with a bucket boundary at 03:30.
	l := newLayout(h(1, 20), h(6, 40), []time.Time{h(3, 30), h(0, 0), h(9, 0)})
	if !l.hours.from.Equal(h(2, 0)) || !l.hours.to.Equal(h(6, 0)) {
		t.Errorf("hours %v..%v", l.hours.from, l.hours.to)
	}
	want := []span{{h(1, 20), h(2, 0)}, {h(3, 0), h(3, 30)}, {h(3, 30), h(4, 0)}, {h(6, 0), h(6, 40)}}
	if len(l.pieces) != len(want) {
		t.Fatalf("pieces %v", l.pieces)
	}
	for i := range want {
		if !l.pieces[i].from.Equal(want[i].from) || !l.pieces[i].to.Equal(want[i].to) {
			t.Errorf("piece %d = %v, want %v", i, l.pieces[i], want[i])
		}
	}
	if l.whole(h(3, 0)) || !l.whole(h(2, 0)) || !l.whole(h(4, 0)) {
		t.Error("03:00 must be split, 02:00 and 04:00 whole")
	}
	// Within one hour: only a piece.
	l = newLayout(h(1, 10), h(1, 50), nil)
	if l.hours.from.Before(l.hours.to) || len(l.pieces) != 1 {
		t.Errorf("within an hour: %+v", l)
	}
}

package ingest

import (
	"context"

	"github.com/tallyhq/tally"
)

// SubmitReserved is Submit for events whose usage the caller has already
// reserved (a quota consume): it skips the meter's Admit and settles with
// r, so the usage is counted once.
func (p *Pipeline) SubmitReserved(ctx context.Context, events []tally.Event, r *tally.Reservation) (*Result, error) {
	q := *p
	if p.meter != nil {
		q.meter = reserved{Meter: p.meter, r: r}
	}
	return q.Submit(ctx, events)
}

// reserved is a meter whose admission already happened.
type reserved struct {
	tally.Meter
	r *tally.Reservation
}

func (m reserved) Admit(context.Context, []tally.Event) ([]error, *tally.Reservation) {
	return nil, m.r
}

package ingest

import (
	"context"

	"github.com/tallyhq/tally"
)

// Pipeline takes decoded events through the quota gate into the writer:
// Meter.Admit, Writer.Write, Meter.Settle, and the event counter.
type Pipeline struct {
	w     *Writer
	meter tally.Meter
	m     *Metrics
}

// NewPipeline returns a Pipeline that writes through w, gates by meter
// (nil: no quotas) and counts inserted events in m (nil: no metrics).
func NewPipeline(w *Writer, meter tally.Meter, m *Metrics) *Pipeline {
	return &Pipeline{w: w, meter: meter, m: m}
}

// Result is the outcome of a submitted request, the body of a 202.
type Result struct {
	// Accepted counts the events stored by this request.
	Accepted int `json:"accepted"`
	// Duplicates counts the events whose event_id was already stored.
	Duplicates int `json:"duplicates"`
	// Rejected lists the events refused by validation or by a quota,
	// sorted by index; never nil.
	Rejected []Rejection `json:"rejected"`
	// RateLimited counts the Rejected events refused by an enforced
	// quota: when it equals the request's event count, the caller answers
	// 429.
	RateLimited int `json:"-"`
	// Batch says the request was the batch form, for naming the fields at
	// fault (batch[i]); false for one event or a Submit.
	Batch bool `json:"-"`
}

// Submit stores events, already valid (decoded or prepared by a
// Validator). It asks the meter to admit them; each event it refuses
// becomes a Rejection at its index in events.
// It writes the admitted ones in one Writer.Write, then settles the meter
// (releasing what duplicates reserved) and counts
// sbh_analytics_events_total for the inserted ones. It sets ID on the
// inserted events.
//
// When the meter cannot admit an event because its quota counters are
// unavailable (an EUnavailable error from Admit), nothing is written and
// Submit returns that error.
// When the write fails it returns that error (ErrQueueFull and
// ErrShuttingDown are EUnavailable: answer 503 with Retry-After) after
// settling the meter with no event inserted, so that every reservation is
// released. Settling does not depend on ctx staying alive.
func (p *Pipeline) Submit(ctx context.Context, events []tally.Event) (*Result, error) {
	res := &Result{Rejected: []Rejection{}}

	var (
		errs []error
		resv *tally.Reservation
	)
	if p.meter != nil && len(events) > 0 {
		errs, resv = p.meter.Admit(ctx, events)
	}
	for _, err := range errs {
		if tally.ErrorCodeOf(err) == tally.EUnavailable {
			// The quota gate could not decide (its counters are down):
			// nothing of the request is written, and the caller answers
			// 503 with Retry-After so that the client retries it whole.
			p.settle(ctx, events, nil, resv)
			return nil, err
		}
	}
	admitted := make([]tally.Event, 0, len(events))
	pos := make([]int, 0, len(events)) // position in events of each admitted one
	for i := range events {
		if i < len(errs) && errs[i] != nil {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Error: tally.ErrorMessageOf(errs[i])})
			if tally.ErrorCodeOf(errs[i]) == tally.ERateLimited {
				res.RateLimited++
			}
			continue
		}
		admitted = append(admitted, events[i])
		pos = append(pos, i)
	}

	var inserted []bool // per event of events
	if len(admitted) > 0 {
		ins, err := p.w.Write(ctx, admitted)
		if err != nil {
			p.settle(ctx, events, nil, resv)
			return nil, err
		}
		inserted = make([]bool, len(events))
		for j, i := range pos {
			inserted[i] = ins[j]
			if ins[j] {
				events[i].ID = admitted[j].ID
				res.Accepted++
			} else {
				res.Duplicates++
			}
		}
	} else {
		inserted = make([]bool, len(events))
	}
	p.settle(ctx, events, inserted, resv)
	p.m.countInserted(ctx, events, inserted)
	return res, nil
}

func (p *Pipeline) settle(ctx context.Context, events []tally.Event, inserted []bool, r *tally.Reservation) {
	if p.meter != nil && len(events) > 0 {
		p.meter.Settle(context.WithoutCancel(ctx), events, inserted, r)
	}
}

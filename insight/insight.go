// Package insight answers funnel and retention queries: it scans the
// tenant's events of the query's range from the log (a bounded scan by
// id, tally.TailStore) and computes the answer in Go with the domain's
// rules (tally.ComputeFunnel, tally.ComputeRetention), identically on
// every backend. An anonymous id linked to a user (tally.LinkStore) counts
// as that user, for the events stored before the link too.
package insight

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/tallyhq/tally"
)

// Config tunes a Service. The zero value is the documented default.
type Config struct {
	// MaxEvents is the most events one query scans (default
	// tally.MaxInsightEvents); past it the query is ETooMany (422).
	MaxEvents int64
	// Timeout bounds one query (default 10s; then EUnavailable, 503).
	Timeout time.Duration
}

// Service answers funnel and retention queries.
type Service struct {
	store tally.EventStore
	links tally.LinkStore // nil: no links
	cfg   Config
}

// New returns a Service reading store, and resolving identity links
// through it when it is also a tally.LinkStore.
func New(cfg Config, store tally.EventStore) *Service {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = tally.MaxInsightEvents
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	links, _ := store.(tally.LinkStore)
	return &Service{store: store, links: links, cfg: cfg}
}

// Funnel validates q and answers it for tenantID.
func (s *Service) Funnel(ctx context.Context, tenantID int64, q tally.FunnelQuery) (*tally.FunnelResult, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	to := q.To.Add(time.Duration(q.WindowSeconds) * time.Second)
	names := make([]string, len(q.Steps))
	for i := range q.Steps {
		names[i] = q.Steps[i].Event
	}
	events, err := s.scan(ctx, tenantID, q.From, to, names, q.NeedsProps())
	if err != nil {
		return nil, err
	}
	res, err := tally.ComputeFunnel(&q, events)
	if err != nil {
		return nil, err
	}
	res.Scanned = int64(len(events))
	return res, nil
}

// Retention validates q and answers it for tenantID.
func (s *Service) Retention(ctx context.Context, tenantID int64, q tally.RetentionQuery) (*tally.RetentionResult, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	events, err := s.scan(ctx, tenantID, q.From, q.To, []string{q.StartEvent, q.ReturnEvent}, false)
	if err != nil {
		return nil, err
	}
	res := tally.ComputeRetention(&q, events)
	res.Scanned = int64(len(events))
	return res, nil
}

// resolve replaces each linked anonymous user id of events by its user's.
func (s *Service) resolve(ctx context.Context, tenantID int64, events []tally.InsightEvent) error {
	if s.links == nil || len(events) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var ids []string
	for i := range events {
		if u := events[i].UserID; !seen[u] {
			seen[u] = true
			ids = append(ids, u)
		}
	}
	to := make(map[string]string)
	for chunk := range slices.Chunk(ids, 1000) {
		m, err := s.links.ResolveIdentities(ctx, tenantID, chunk)
		if err != nil {
			return err
		}
		maps.Copy(to, m)
	}
	if len(to) == 0 {
		return nil
	}
	for i := range events {
		if u, ok := to[events[i].UserID]; ok {
			events[i].UserID = u
		}
	}
	return nil
}

// scan reads the tenant's events of users (user_id set) with timestamps
// in [from, to] that one of names (event names or prefix* patterns)
// selects, bounded by MaxEvents (counted over the names' events) and
// Timeout, their props decoded only when the query reads them (props).
// It streams each name's events once, oldest first, through the export
// path, on the log's (tenant, event, ts) index for an exact name; an event
// two patterns select is kept once.
func (s *Service) scan(ctx context.Context, tenantID int64, from, to time.Time, names []string, props bool) ([]tally.InsightEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tooMany := tally.Errorf(tally.ETooMany, "the range holds more than %d events; choose a shorter range", s.cfg.MaxEvents)
	var out []tally.InsightEvent
	var read int64
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		budget := max(s.cfg.MaxEvents-read, 1)
		err := s.store.ExportEvents(ctx, tenantID, tally.EventFilter{From: from, To: to, Name: name}, int(min(budget, math.MaxInt32)),
			func(info tally.ExportInfo) error {
				if info.Truncated {
					return tooMany
				}
				return nil
			},
			func(e *tally.Event) error {
				if read++; read > s.cfg.MaxEvents {
					return tooMany
				}
				if e.UserID != "" {
					if !props {
						e.Props = nil
					}
					out = append(out, tally.NewInsightEvent(e))
				}
				return nil
			})
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, tally.Errorf(tally.EUnavailable, "the query took longer than %s; choose a shorter range", s.cfg.Timeout)
			}
			return nil, err
		}
	}
	if len(names) > 1 {
		slices.SortFunc(out, func(a, b tally.InsightEvent) int { return cmp.Compare(a.ID, b.ID) })
		out = slices.CompactFunc(out, func(a, b tally.InsightEvent) bool { return a.ID == b.ID })
	}
	return out, s.resolve(ctx, tenantID, out)
}

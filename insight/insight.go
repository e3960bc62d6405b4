// Package insight answers funnel and retention queries: it scans the
// tenant's events of the query's range from the log (a bounded scan by
// id, tally.TailStore) and computes the answer in Go with the domain's
// rules (tally.ComputeFunnel, tally.ComputeRetention), identically on
// every backend. An anonymous id linked to a user (tally.LinkStore) counts
// as that user, for the events stored before the link too.
//
// A store that is a tally.InsightScanner (ClickHouse) selects and marks
// the steps' events itself and sends only user, time, id and step mask
// (props where a filter or the breakdown reads them): the same
// computation (tally.ComputeFunnelMarked, tally.ComputeRetentionMarked)
// then runs over those, with the user_id and props filters applied here
// after the links are resolved.
package insight

import (
	"cmp"
	"context"
	"encoding/json"
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
	// Export computes from exported events even when the store is a
	// tally.InsightScanner: the reference path, for benches and tests.
	Export bool
}

// Service answers funnel and retention queries.
type Service struct {
	store   tally.EventStore
	scanner tally.InsightScanner // nil: export the events
	links   tally.LinkStore      // nil: no links
	cfg     Config
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
	scanner, _ := store.(tally.InsightScanner)
	if cfg.Export {
		scanner = nil
	}
	return &Service{store: store, scanner: scanner, links: links, cfg: cfg}
}

// Funnel validates q and answers it for tenantID.
func (s *Service) Funnel(ctx context.Context, tenantID int64, q tally.FunnelQuery) (*tally.FunnelResult, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if s.scanner != nil {
		events, scanned, err := s.scanMarked(ctx, tenantID, q.InsightScan(s.cfg.MaxEvents), q.Breakdown != "")
		if err != nil {
			return nil, err
		}
		res, err := tally.ComputeFunnelMarked(&q, events)
		if err != nil {
			return nil, err
		}
		res.Scanned = scanned
		return res, nil
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
	if s.scanner != nil {
		events, scanned, err := s.scanMarked(ctx, tenantID, q.InsightScan(s.cfg.MaxEvents), false)
		if err != nil {
			return nil, err
		}
		res := tally.ComputeRetentionMarked(&q, events)
		res.Scanned = scanned
		return res, nil
	}
	events, err := s.scan(ctx, tenantID, q.From, q.To, []string{q.StartEvent, q.ReturnEvent}, false)
	if err != nil {
		return nil, err
	}
	res := tally.ComputeRetention(&q, events)
	res.Scanned = int64(len(events))
	return res, nil
}

// resolve replaces each linked anonymous user id of events by its user's
// and returns the user ids it gave (nil when none).
func (s *Service) resolve(ctx context.Context, tenantID int64, events []tally.InsightEvent) (map[string]bool, error) {
	if s.links == nil || len(events) == 0 {
		return nil, nil
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
			return nil, err
		}
		maps.Copy(to, m)
	}
	if len(to) == 0 {
		return nil, nil
	}
	merged := map[string]bool{}
	for i := range events {
		if u, ok := to[events[i].UserID]; ok {
			events[i].UserID = u
			merged[u] = true
		}
	}
	return merged, nil
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
	tooMany := tally.TooManyInsightEvents(s.cfg.MaxEvents)
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
			return nil, s.timedOut(ctx, err)
		}
	}
	if len(names) > 1 {
		slices.SortFunc(out, func(a, b tally.InsightEvent) int { return cmp.Compare(a.ID, b.ID) })
		out = slices.CompactFunc(out, func(a, b tally.InsightEvent) bool { return a.ID == b.ID })
	}
	_, err := s.resolve(ctx, tenantID, out)
	return out, err
}

// timedOut is err, or EUnavailable when the query ran past Timeout.
func (s *Service) timedOut(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return tally.Errorf(tally.EUnavailable, "the query took longer than %s; choose a shorter range", s.cfg.Timeout)
	}
	return err
}

// scanMarked reads the events of sc through the store's InsightScanner,
// within Timeout, and returns them with resolved user ids, marked with
// the steps they are occurrences of (the user_id and props filters
// applied here, after the links), and the count of events scanned.
// Props are decoded only for the events of a step that filters on them
// or of the first step when breakdown, and kept only for the latter.
func (s *Service) scanMarked(ctx context.Context, tenantID int64, sc tally.InsightScan, breakdown bool) ([]tally.InsightEvent, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	// In chunks of fixed size, copied once into one slice at the end:
	// the count is known only then, and growing one slice by doubling
	// copied and cleared several times the answer.
	const chunk = 1 << 14
	var chunks [][]tally.InsightEvent
	n := 0
	scanned, err := s.scanner.ScanInsight(ctx, tenantID, sc, func(r *tally.InsightRow) error {
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == chunk {
			chunks = append(chunks, make([]tally.InsightEvent, 0, chunk))
		}
		c := &chunks[len(chunks)-1]
		*c = append(*c, tally.InsightEvent{ID: r.ID, UserID: r.UserID, At: r.At, Steps: r.Steps})
		if r.Props != nil {
			_ = json.Unmarshal(r.Props, &(*c)[len(*c)-1].Props)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, 0, s.timedOut(ctx, err)
	}
	out := make([]tally.InsightEvent, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	merged, err := s.resolve(ctx, tenantID, out)
	if err != nil {
		return nil, 0, err
	}
	if len(merged) > 0 {
		// A user's events and those of the anonymous ids linked to them
		// were apart: group them again.
		var moved []tally.InsightEvent
		kept := out[:0]
		for _, e := range out {
			if merged[e.UserID] {
				moved = append(moved, e)
			} else {
				kept = append(kept, e)
			}
		}
		tally.SortInsightEvents(moved)
		out = append(kept, moved...)
	}
	var rest uint32 // steps with filters left to check
	for k := range sc.Steps {
		if len(sc.Steps[k].Filter) > 0 {
			rest |= 1 << k
		}
	}
	kept := out[:0]
	for _, e := range out {
		if e.Steps&rest != 0 {
			for k := range sc.Steps {
				if e.Steps&(1<<k) != 0 && !sc.Steps[k].MatchesUserAndProps(&e) {
					e.Steps &^= 1 << k
				}
			}
		}
		if !breakdown || e.Steps&1 == 0 {
			e.Props = nil
		}
		if e.Steps != 0 {
			kept = append(kept, e)
		}
	}
	return kept, scanned, nil
}

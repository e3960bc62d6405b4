package clickhouse

import (
	"context"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

// MigrateEvents copies a tenant's history from PostgreSQL's own events
// table (where the PostgreSQL tier kept it) into ClickHouse, each event
// with its id, and records their keys, so that cursors, public event ids
// and dedup carry over. Rollups are not touched: they are on PostgreSQL
// already and match the copied events.
//
// It is resumable: it starts after the largest copied id found in
// ClickHouse (ids given on this tier are above every PostgreSQL one, see
// postgres.AdvanceEventKeyIDs), and each insert holds one month's events
// (one partition, so one part: all or nothing). An event whose key this
// tier stored first (a retry that arrived before the copy) is left out.
// progress, when not nil, gets the count copied so far after each batch.
func (s *Store) MigrateEvents(ctx context.Context, tenantID int64, batch int, progress func(copied int64)) (int64, error) {
	batch = max(1, min(batch, 100_000))
	pgMax, err := s.DB.LastEventID(ctx) // PostgreSQL's own events table
	if err != nil {
		return 0, err
	}
	var after int64
	err = s.on(tenantID).query(ctx, "SELECT max(id) FROM events WHERE tenant_id = "+strconv.FormatInt(tenantID, 10)+
		" AND id <= "+strconv.FormatInt(pgMax, 10), false, func(r *rowReader) error {
		after = r.int64()
		return nil
	})
	if err != nil {
		return 0, err
	}
	var copied int64
	for {
		evs, err := s.DB.TailEvents(ctx, tenantID, tally.EventFilter{}, after, batch)
		if err != nil {
			return copied, err
		}
		if len(evs) == 0 {
			return copied, nil
		}
		// One month per insert: cut where the month changes.
		for len(evs) > 0 {
			n := 1
			m := monthOf(evs[0].Timestamp)
			for n < len(evs) && monthOf(evs[n].Timestamp) == m {
				n++
			}
			if err := s.copyEvents(ctx, evs[:n]); err != nil {
				return copied, err
			}
			copied += int64(n)
			after = evs[n-1].ID
			evs = evs[n:]
		}
		if progress != nil {
			progress(copied)
		}
	}
}

func monthOf(t time.Time) int {
	t = t.UTC()
	return t.Year()*12 + int(t.Month())
}

// copyEvents records the keys of events of one month and writes those
// whose key is theirs to ClickHouse, but for those already there (a
// resumed copy).
func (s *Store) copyEvents(ctx context.Context, events []tally.Event) error {
	mine, err := s.DB.MigratedKeys(ctx, events)
	if err != nil {
		return err
	}
	var idx []int
	for i, ok := range mine {
		if ok {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	present, err := s.storedIDs(ctx, events, idx, true)
	if err != nil {
		return err
	}
	w := s.newRows()
	for _, i := range idx {
		if !present[events[i].ID] {
			w.add(&events[i])
		}
	}
	return s.insertRows(ctx, w)
}

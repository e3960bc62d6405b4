package postgres

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// holeGrace is how long a gap in the event ids is watched before the
// transactions then running decide it: a transaction that took an id but
// had no transaction id yet (a few microseconds) has one by then.
const holeGrace = 250 * time.Millisecond

// TailHorizon tells the live tail how far it may read the log in id order
// without skipping an event (live.Horizon). Instances insert concurrently:
// an event id taken by a transaction that commits after one with a higher
// id is a gap, for a while, in what a reader sees. The horizon stops at
// the first gap until it cannot fill any more: every transaction running
// holeGrace after the gap was first seen has ended (the snapshot's xmin
// passed them). Gaps that never fill (a duplicate's id, a rolled-back
// batch) so cost a reader a short wait, never an event.
type TailHorizon struct {
	db *DB

	mu      sync.Mutex
	settled int64 // every id <= settled is committed or never will be; -1: not read yet
	hole    *hole // the first gap above settled, when watched
}

// hole is a gap in the ids starting at from.
type hole struct {
	from    int64
	seen    time.Time
	checked bool   // the running transactions were noted, holeGrace after seen
	xipMax  uint64 // the newest of them (0: none)
}

// TailHorizon returns the horizon of this database's event log.
func (db *DB) TailHorizon() *TailHorizon { return &TailHorizon{db: db, settled: -1} }

// Settled returns an id up to which every event is committed or never
// will be, so a reader may read every id up to it in order, and whether a
// gap holds it back (the caller reads again shortly). The first call
// starts from the largest id stored: a transaction already open then is
// not waited for.
func (h *TailHorizon) Settled(ctx context.Context) (settled int64, waiting bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.settled < 0 {
		if err := h.db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&h.settled); err != nil {
			return 0, false, wrap(err, "event")
		}
	}
	// One statement, so the ids and the snapshot are one view.
	var xmin string
	var xip []string
	var ids []int64
	err = h.db.pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text,
		ARRAY(SELECT pg_snapshot_xip(pg_current_snapshot())::text),
		ARRAY(SELECT id FROM events WHERE id > $1 ORDER BY id LIMIT 10000)`, h.settled).Scan(&xmin, &xip, &ids)
	if err != nil {
		return 0, false, wrap(err, "event")
	}
	now := time.Now()
	oldest, _ := strconv.ParseUint(xmin, 10, 64)
	for _, id := range ids {
		if id == h.settled+1 {
			h.settled, h.hole = id, nil
			continue
		}
		// ids h.settled+1 … id-1 are missing.
		if h.hole == nil || h.hole.from != h.settled+1 {
			h.hole = &hole{from: h.settled + 1, seen: now}
		}
		if !h.decided(now, oldest, xip) {
			return h.settled, true, nil
		}
		h.settled, h.hole = id, nil
	}
	return h.settled, false, nil
}

// decided reports whether h.hole can no longer fill.
func (h *TailHorizon) decided(now time.Time, xmin uint64, xip []string) bool {
	g := h.hole
	if now.Sub(g.seen) < holeGrace {
		return false
	}
	if !g.checked {
		g.checked = true
		for _, x := range xip {
			if v, err := strconv.ParseUint(x, 10, 64); err == nil && v > g.xipMax {
				g.xipMax = v
			}
		}
		return g.xipMax == 0
	}
	return xmin > g.xipMax
}

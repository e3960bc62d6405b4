package clickhouse

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"

	"github.com/tallyhq/tally"
)

// ScanInsight implements tally.InsightScanner. ClickHouse selects the
// events (tenant and time range on the ordering key, the steps' names),
// marks each with its steps in SQL and groups them by user: one row per
// user with the user's marked events as (ts, id, steps) tuples (and the
// props of the events of the steps that read them), so that ids and
// timestamps cross the HTTP interface in arrays, without the user id per
// event. Neither users nor events are sorted in ClickHouse (a sort of
// the range's rows by user cost more than the rest of the query): each
// user's few events sort here. The bound counts as the export path
// does (each name's events, anonymous ones too) and ClickHouse never
// groups more than it: with names that no event matches two of (exact
// names), a LIMIT just past it in the query; otherwise a count over the
// same selection first.
func (s *Store) ScanInsight(ctx context.Context, tenantID int64, q tally.InsightScan, fn func(*tally.InsightRow) error) (int64, error) {
	names := make([]string, 0, len(q.Steps))
	for _, st := range q.Steps {
		names = append(names, st.Event)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	c := []string{"tenant_id = " + strconv.FormatInt(tenantID, 10), "ts >= " + micros(q.From), "ts <= " + micros(q.To)}
	counts := make([]string, len(names))
	selects := make([]string, len(names))
	for i, n := range names {
		sel := append(nameRange(n), notOwn(n, "")...)
		if len(sel) == 0 {
			sel = []string{"1"}
		}
		selects[i] = "(" + strings.Join(sel, " AND ") + ")"
		counts[i] = "countIf(" + selects[i] + ")"
	}
	selected := "(" + strings.Join(selects, " OR ") + ")"
	c = append(c, selected)
	ch := s.on(tenantID)
	bound := max(q.MaxEvents, 0)
	// When no event can match two of the names, the bound is on the rows
	// the query selects: a LIMIT past it stops the read, and one query
	// answers. Otherwise a count first adds up each name's events.
	disjoint := disjointPatterns(names)
	if !disjoint {
		var total uint64
		err := ch.query(ctx, "SELECT toUInt64("+strings.Join(counts, " + ")+") FROM events"+and(c), false,
			func(r *rowReader) error {
				total = r.uint64()
				return nil
			})
		if err != nil {
			return 0, err
		}
		if total > uint64(bound) {
			return 0, tally.TooManyInsightEvents(q.MaxEvents)
		}
		if total == 0 {
			return 0, nil
		}
	}
	// One row per user: the count of the user's selected events and the
	// marked ones as (ts, id, steps[, props]) tuples. Neither the users nor
	// their events are sorted in ClickHouse: a user's handful of events
	// sort here, and the computation needs the users only grouped.
	tuple, cols := "ts, id, m", "user_id, ts, id, "
	if q.PropsOf != 0 {
		tuple += ", if(bitAnd(m, " + strconv.FormatUint(uint64(q.PropsOf), 10) + ") != 0, props, '')"
		cols += "props, "
	}
	inner := "SELECT " + cols + stepMask(q.Steps) + " AS m FROM events"
	if disjoint {
		inner += and(c) + " LIMIT " + strconv.FormatInt(bound+1, 10) // the anonymous events count too
	} else {
		inner += and(append(c, "user_id != ''"))
	}
	sql := "SELECT user_id, count(), groupArrayIf((" + tuple + "), m != 0 AND user_id != '') FROM (" + inner + ") GROUP BY user_id"
	var total, scanned int64
	var rows []tally.InsightRow
	var propsBuf, scratch []byte
	var propsEnd []int
	err := ch.query(ctx, sql, true, func(r *rowReader) error {
		user := r.string()
		n := int64(r.uint64())
		if total += n; user != "" {
			scanned += n
		}
		marked, err := binary.ReadUvarint(r.r)
		if err != nil {
			r.err = unexpected(err)
			return nil
		}
		rows, propsBuf, propsEnd = rows[:0], propsBuf[:0], propsEnd[:0]
		for range marked {
			rows = append(rows, tally.InsightRow{UserID: user, At: fromMicros(r.int64()), ID: r.int64(), Steps: uint32(r.uint64())})
			if q.PropsOf != 0 {
				// The user's props go into one buffer, sliced below.
				scratch = r.bytes(scratch)
				propsBuf = append(propsBuf, scratch...)
				propsEnd = append(propsEnd, len(propsBuf))
			}
		}
		if r.err != nil {
			return nil // query reports it
		}
		for i, end := range propsEnd {
			if rows[i].Steps&q.PropsOf != 0 {
				lo := 0
				if i > 0 {
					lo = propsEnd[i-1]
				}
				rows[i].Props = propsBuf[lo:end:end]
			}
		}
		slices.SortFunc(rows, func(a, b tally.InsightRow) int {
			if c := a.At.Compare(b.At); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && total > bound {
		return 0, tally.TooManyInsightEvents(q.MaxEvents)
	}
	return scanned, err
}

// disjointPatterns reports whether no event name matches two of the
// sorted, distinct patterns (names, or prefixes ending in *).
func disjointPatterns(patterns []string) bool {
	for i, a := range patterns {
		pa, wa := strings.CutSuffix(a, "*")
		for _, b := range patterns[i+1:] {
			pb, wb := strings.CutSuffix(b, "*")
			if wa && strings.HasPrefix(pb, pa) || wb && strings.HasPrefix(pa, pb) {
				return false
			}
		}
	}
	return true
}

// stepMask is the UInt64 with bit i set when the row's event name
// matches steps[i]'s pattern (tally.MatchName, own events too) and its
// source filter, if any.
func stepMask(steps []tally.FunnelStep) string {
	bits := make([]string, len(steps))
	for i, st := range steps {
		var c []string
		if p, ok := strings.CutSuffix(st.Event, "*"); !ok {
			c = append(c, "event = "+quote(p))
		} else if p != "" {
			c = append(c, "substring(event, 1, "+strconv.Itoa(len(p))+") = "+quote(p))
		}
		if src, ok := st.Filter["source"]; ok {
			c = append(c, "source = "+quote(src))
		}
		cond := "1"
		if len(c) > 0 {
			cond = strings.Join(c, " AND ")
		}
		bits[i] = "toUInt64(" + cond + ") * " + strconv.FormatUint(1<<i, 10)
	}
	return "toUInt64(" + strings.Join(bits, " + ") + ")"
}

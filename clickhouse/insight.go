package clickhouse

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/tallyhq/tally"
)

// ScanInsight implements tally.InsightScanner. ClickHouse selects the
// events (tenant and time range on the ordering key, the steps' names),
// marks each with its steps in SQL, sorts them by (user, ts, id) and
// sends four columns per event (and the props of the events of the steps
// that filter on them): the funnel or retention is then one pass in Go.
// A count over the same selection first checks the bound and gives the
// scanned figure, as the export path counts them.
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
	var total, scanned uint64
	err := ch.query(ctx, "SELECT toUInt64("+strings.Join(counts, " + ")+"), countIf(user_id != '') FROM events"+and(c), false,
		func(r *rowReader) error {
			total, scanned = r.uint64(), r.uint64()
			return nil
		})
	if err != nil {
		return 0, err
	}
	if total > uint64(max(q.MaxEvents, 0)) {
		return 0, tally.TooManyInsightEvents(q.MaxEvents)
	}
	if scanned == 0 {
		return 0, nil
	}
	sql := "SELECT user_id, ts, id, " + stepMask(q.Steps) + " AS m"
	if q.PropsOf != 0 {
		sql += ", if(bitAnd(m, " + strconv.FormatUint(uint64(q.PropsOf), 10) + ") != 0, props, '')"
	}
	sql += " FROM events" + and(append(c, "user_id != ''", "m != 0")) + " ORDER BY user_id, ts, id"
	var row tally.InsightRow
	var user, props []byte
	err = ch.query(ctx, sql, true, func(r *rowReader) error {
		user = r.bytes(user)
		ts, id, m := r.int64(), r.int64(), r.uint64()
		row.Props = nil
		if q.PropsOf != 0 {
			props = r.bytes(props)
			if uint32(m)&q.PropsOf != 0 {
				row.Props = props
			}
		}
		if r.err != nil {
			return nil // query reports it
		}
		if string(user) != row.UserID {
			row.UserID = string(user)
		}
		row.At, row.ID, row.Steps = fromMicros(ts), id, uint32(m)
		return fn(&row)
	})
	return int64(scanned), err
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

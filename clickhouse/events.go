package clickhouse

import (
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/postgres"
)

// where renders the conditions of f (not its cursor) for tenantID.
func where(tenantID int64, f tally.EventFilter) []string {
	c := []string{"tenant_id = " + strconv.FormatInt(tenantID, 10)}
	if !f.From.IsZero() {
		c = append(c, "ts >= "+micros(f.From))
	}
	if !f.To.IsZero() {
		c = append(c, "ts <= "+micros(f.To))
	}
	if f.Name != "" {
		c = append(c, nameRange(f.Name)...)
	}
	if f.UserID != "" {
		c = append(c, "user_id = "+quote(f.UserID))
	}
	if f.Source != "" {
		c = append(c, "source = "+quote(f.Source))
	}
	return append(c, notOwn(f.Name, f.Source)...)
}

// nameRange is the condition of the events whose name the pattern p
// (a name or a prefix*) matches, on the range of names it spans; none
// for every name.
func nameRange(p string) []string {
	lo, hi, prefix := tally.EventPrefixRange(p)
	switch {
	case !prefix:
		return []string{"event = " + quote(lo)}
	case lo != "":
		return []string{"event >= " + quote(lo), "event < " + quote(hi)}
	}
	return nil
}

// notOwn is the condition that leaves tally's own events out of a
// selection by name pattern p and source (tally.ExcludesOwn), or none.
func notOwn(p, source string) []string {
	if !tally.ExcludesOwn(p, source) {
		return nil
	}
	lo, hi := tally.OwnEventRange()
	return []string{"(event < " + quote(lo) + " OR event >= " + quote(hi) + ")"}
}

func and(conds []string) string { return " WHERE " + strings.Join(conds, " AND ") }

// keyBefore and keyAfter are (ts, id) < / > c, written out: row
// comparison of tuples is not in every version.
func keyBefore(c tally.Cursor) string {
	at, id := micros(c.At), strconv.FormatInt(c.ID, 10)
	return "(ts < " + at + " OR (ts = " + at + " AND id < " + id + "))"
}

func keyAfter(c tally.Cursor) string {
	at, id := micros(c.At), strconv.FormatInt(c.ID, 10)
	return "(ts > " + at + " OR (ts = " + at + " AND id > " + id + "))"
}

// eventIDCol and receivedCol read an event's id and receive time from
// the columns that hold them (see eventsTable).
const (
	eventIDCol  = "if(event_uuid = toFixedString('', 16), event_id, UUIDNumToString(event_uuid))"
	receivedCol = "ts + received_after"
)

const eventCols = "id, " + eventIDCol + ", event, user_id, source, ts, " + receivedCol + ", value, props"

// scanEvent reads a row of eventCols into e, reusing e's Props.
func scanEvent(r *rowReader, e *tally.Event) {
	e.ID = r.int64()
	e.EventID = r.string()
	e.Name = r.string()
	e.UserID = r.string()
	e.Source = r.string()
	e.Timestamp = fromMicros(r.int64())
	e.ReceivedAt = fromMicros(r.int64())
	e.Value = r.float64()
	e.Props = r.bytes(e.Props)
}

func badLimit(field string) error {
	return tally.Invalid("invalid limit", tally.FieldError{Field: field, Message: "must be at least 1"})
}

// InsertEvents implements tally.EventStore. The keys are reserved on
// PostgreSQL (one transaction, which also gives the ids and marks the
// hours dirty), the new events go to ClickHouse in one INSERT (one part per
// month the batch touches), and the keys are confirmed (marking the hours
// again, for a rollup that read in between). An event whose key a dead
// writer left leased is looked up in ClickHouse first and only written
// when absent. A failure after the reservation leaves the leases to run
// out: a retry of the same events answers 503 until then, and then finds
// out whether they were stored.
func (s *Store) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	inserted := make([]bool, len(events))
	if len(events) == 0 {
		return inserted, nil
	}
	if err := s.sweep(ctx); err != nil {
		return nil, err
	}
	states, batch, err := s.reserve(ctx, events)
	if err != nil {
		return nil, err
	}
	var retaken []int
	for i, st := range states {
		if st == postgres.KeyRetaken {
			retaken = append(retaken, i)
		}
	}
	stored := map[int64]bool{}
	if len(retaken) > 0 {
		if stored, err = s.storedIDs(ctx, events, retaken, false); err != nil {
			return nil, err
		}
	}
	w := s.newRows()
	var confirm []tally.Event
	for i, st := range states {
		e := &events[i]
		switch {
		case st == postgres.KeyDuplicate:
			continue
		case st == postgres.KeyRetaken && stored[e.ID]:
			confirm = append(confirm, *e) // its first writer stored it
			continue
		}
		inserted[i] = true
		confirm = append(confirm, *e)
		w.add(e)
	}
	if err := s.insertRows(ctx, w); err != nil {
		return nil, err
	}
	if len(confirm) > 0 {
		if err := s.DB.ConfirmEventKeys(ctx, batch, confirm); err != nil {
			return nil, err
		}
	}
	return inserted, nil
}

// reserve reserves the events' keys, waiting while another writer stores
// an event of the same key (as a unique index makes a second inserter
// wait), up to the statement timeout.
func (s *Store) reserve(ctx context.Context, events []tally.Event) ([]postgres.KeyState, int64, error) {
	deadline := time.Now().Add(s.ch.timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		states, batch, err := s.DB.ReserveEventKeys(ctx, events, s.now().Add(s.lease))
		if !errors.Is(err, postgres.ErrKeyBusy) || time.Now().After(deadline) {
			return states, batch, err
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}

const insertCols = "tenant_id, ts, id, event_uuid, event_id, event, user_id, source, received_after, value, props, metric"

// appendEvent encodes e as a row of insertCols.
func appendEvent(w *rowWriter, e *tally.Event) {
	props := string(e.Props)
	if props == "" {
		props = "{}" // as the other stores: no props is an empty object
	}
	metric := e.CountedMetric() // an increment's metric, or the one a consume settled it for
	ts := e.Timestamp.UnixMicro()
	w.int64(e.TenantID)
	w.int64(ts)
	w.int64(e.ID)
	if u, ok := uuidBytes(e.EventID); ok {
		w.b = append(w.b, u[:]...)
		w.string("")
	} else {
		w.b = append(w.b, make([]byte, 16)...)
		w.string(e.EventID)
	}
	w.string(e.Name)
	w.string(e.UserID)
	w.string(e.Source)
	w.int64(e.ReceivedAt.UnixMicro() - ts)
	w.float64(e.Value)
	w.string(props)
	w.string(metric)
}

// uuidBytes returns the 16 bytes of id when it is a UUID as ClickHouse's
// UUIDNumToString writes it (lowercase, with dashes) and not all zeros
// (which event_uuid keeps for "see event_id"), so that it reads back as
// the same text.
func uuidBytes(id string) (u [16]byte, ok bool) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	digits := id[0:8] + id[9:13] + id[14:18] + id[19:23] + id[24:36]
	for i := range digits {
		if c := digits[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return u, false
		}
	}
	hex.Decode(u[:], []byte(digits))
	return u, u != [16]byte{}
}

// storedIDs returns which of the events at idx (ids set) the log holds.
// byTime bounds the lookup by the events' timestamps, which must then be
// the stored ones (a retry may carry another timestamp than the event it
// repeats).
func (s *Store) storedIDs(ctx context.Context, events []tally.Event, idx []int, byTime bool) (map[int64]bool, error) {
	type span struct {
		ids    []string
		lo, hi int64
	}
	byTenant := map[int64]*span{}
	for _, i := range idx {
		e := &events[i]
		ts := e.Timestamp.UnixMicro()
		sp := byTenant[e.TenantID]
		if sp == nil {
			sp = &span{lo: ts, hi: ts}
			byTenant[e.TenantID] = sp
		}
		sp.ids = append(sp.ids, strconv.FormatInt(e.ID, 10))
		sp.lo, sp.hi = min(sp.lo, ts), max(sp.hi, ts)
	}
	// The time range lets the ordering key narrow the read to the
	// events' granules.
	var ors []string
	for t, sp := range byTenant {
		within := ""
		if byTime {
			within = " AND ts >= " + strconv.FormatInt(sp.lo, 10) + " AND ts <= " + strconv.FormatInt(sp.hi, 10)
		}
		ors = append(ors, "(tenant_id = "+strconv.FormatInt(t, 10)+within+" AND id IN ("+strings.Join(sp.ids, ",")+"))")
	}
	out := map[int64]bool{}
	err := s.ch.query(ctx, "SELECT DISTINCT id FROM "+s.all+" WHERE "+strings.Join(ors, " OR "), false, func(r *rowReader) error {
		out[r.int64()] = true
		return nil
	})
	return out, err
}

// sweepEvery is how often an instance settles the keys that writers left
// leased past their lease (they died between reserving and confirming).
const sweepEvery = 10 * time.Second

// sweep settles the expired leases, at most every sweepEvery: a key whose
// event the log holds is confirmed (and its hour marked again), the others
// are dropped, so that a crash never leaves an event out of the rollups
// nor its id taken.
func (s *Store) sweep(ctx context.Context) error {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	if s.now().Sub(s.lastSweep) < sweepEvery {
		return nil
	}
	for {
		keys, err := s.DB.ExpiredEventKeys(ctx, 100)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			s.lastSweep = s.now()
			return nil
		}
		var events []tally.Event
		var keyOf [][16]byte
		var idx []int
		var batches []int64
		for _, k := range keys {
			if k.Event.ID != 0 {
				idx = append(idx, len(events))
				events = append(events, k.Event)
				keyOf = append(keyOf, k.Key)
			}
			if !slices.Contains(batches, k.Batch) {
				batches = append(batches, k.Batch)
			}
		}
		stored := map[int64]bool{}
		for lo := 0; lo < len(idx); lo += 1000 {
			got, err := s.storedIDs(ctx, events, idx[lo:min(lo+1000, len(idx))], true)
			if err != nil {
				return err
			}
			maps.Copy(stored, got)
		}
		var have []tally.Event
		var lack [][16]byte
		for i, e := range events {
			if stored[e.ID] {
				have = append(have, e)
			} else {
				lack = append(lack, keyOf[i])
			}
		}
		if err := s.DB.SettleExpiredKeys(ctx, batches, have, lack); err != nil {
			return err
		}
	}
}

// ListEvents implements tally.EventStore.
func (s *Store) ListEvents(ctx context.Context, tenantID int64, f tally.EventFilter) ([]tally.Event, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	c := where(tenantID, f)
	if f.Cursor != nil {
		c = append(c, keyBefore(*f.Cursor))
	}
	sql := "SELECT " + eventCols + " FROM events" + and(c) + " ORDER BY ts DESC, id DESC LIMIT " + strconv.Itoa(f.Limit+1)
	out := make([]tally.Event, 0, min(f.Limit+1, 64))
	err := s.on(tenantID).query(ctx, sql, false, func(r *rowReader) error {
		e := tally.Event{TenantID: tenantID}
		scanEvent(r, &e)
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	out, next := tally.Page(out, f.Limit, tally.EventKey)
	return out, next, nil
}

// ExportEvents implements tally.EventStore. ClickHouse reads each SELECT
// from one set of parts, but the probe (the keys of rows max and max+1)
// and the rows are two SELECTs: both are bounded by the tenant's largest
// id when the export starts, which stands for the snapshot. Ids are given
// when a batch's keys are reserved, so an event whose batch was still
// being written then (a few milliseconds) may show although its id is
// below the bound.
func (s *Store) ExportEvents(ctx context.Context, tenantID int64, f tally.EventFilter, max int,
	start func(tally.ExportInfo) error, row func(*tally.Event) error) error {
	if max < 1 {
		return badLimit("max")
	}
	c := where(tenantID, f)
	if f.Cursor != nil {
		c = append(c, keyAfter(*f.Cursor))
	}
	var last int64
	err := s.on(tenantID).query(ctx, "SELECT max(id) FROM events WHERE tenant_id = "+strconv.FormatInt(tenantID, 10), false,
		func(r *rowReader) error {
			last = r.int64()
			return nil
		})
	if err != nil {
		return err
	}
	c = append(c, "id <= "+strconv.FormatInt(last, 10))
	var keys []tally.Cursor
	err = s.on(tenantID).query(ctx, "SELECT ts, id FROM events"+and(c)+" ORDER BY ts, id LIMIT "+strconv.Itoa(max-1)+", 2", false,
		func(r *rowReader) error {
			keys = append(keys, tally.Cursor{At: fromMicros(r.int64()), ID: r.int64()})
			return nil
		})
	if err != nil {
		return err
	}
	var info tally.ExportInfo
	if len(keys) == 2 {
		info = tally.ExportInfo{Truncated: true, Next: &keys[0]}
		c = append(c, "NOT "+keyAfter(keys[0]))
	}
	if err := start(info); err != nil {
		return err
	}
	e := tally.Event{TenantID: tenantID}
	return s.on(tenantID).query(ctx, "SELECT "+eventCols+" FROM events"+and(c)+" ORDER BY ts, id LIMIT "+strconv.Itoa(max), true,
		func(r *rowReader) error {
			scanEvent(r, &e)
			if r.err != nil {
				return nil // query reports it
			}
			return row(&e)
		})
}

// mutationWait is the least time mutate waits for a mutation.
const mutationWait = time.Minute

// mutate runs an ALTER TABLE … DELETE on c and waits until c applied
// it: mutations are asynchronous (18.16 has no mutations_sync), so this
// polls system.mutations, for the statement timeout or mutationWait,
// whichever is longer; past it the caller gets a 503 while ClickHouse
// goes on.
func (c *client) mutate(ctx context.Context, cond string) error {
	if err := c.exec(ctx, c.database, "ALTER TABLE events DELETE WHERE "+cond); err != nil {
		return err
	}
	deadline := time.Now().Add(max(c.timeout, mutationWait))
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		var pending uint64
		err := c.query(ctx, "SELECT count() FROM system.mutations WHERE database = "+quote(c.database)+
			" AND table = 'events' AND is_done = 0", false, func(r *rowReader) error {
			pending = r.uint64()
			return nil
		})
		if err != nil || pending == 0 {
			return err
		}
		if time.Now().After(deadline) {
			u := tally.Unavailable(nil)
			u.Message = "the event store is still applying a deletion; retry later"
			return u
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// DeleteUserEvents implements tally.EventStore: it reads the hours of the
// user's events, deletes them (a mutation, which rewrites every part that
// holds the tenant's rows: heavy, see docs/SCALING.md), then on PostgreSQL
// deletes the user's identity links, marks the hours dirty and drops
// their user sets.
func (s *Store) DeleteUserEvents(ctx context.Context, tenantID int64, userID string) (int64, error) {
	cond := "tenant_id = " + strconv.FormatInt(tenantID, 10) + " AND user_id = " + quote(userID)
	var n int64
	var hours []time.Time
	err := s.ch.query(ctx, "SELECT intDiv(ts, 3600000000) AS h, count() FROM "+s.all+" WHERE "+cond+" GROUP BY h ORDER BY h", false,
		func(r *rowReader) error {
			hours = append(hours, fromMicros(r.int64()*3600000000))
			n += int64(r.uint64())
			return nil
		})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		// Marked before too: should the mutation outlast its wait (a 503),
		// the hours stay dirty while ClickHouse finishes it.
		if err := s.DB.ForgetUserHours(ctx, tenantID, userID, hours); err != nil {
			return 0, err
		}
		if err := s.mutate(ctx, cond); err != nil {
			return 0, err
		}
	}
	if err := s.DB.ForgetUserHours(ctx, tenantID, userID, hours); err != nil {
		return 0, err
	}
	return n, nil
}

// PurgeEvents implements tally.EventStore: the tenant's older events go
// from ClickHouse (a mutation), then PostgreSQL's purge drops what the
// PostgreSQL store's does (user sets, dirty marks, and the keys).
func (s *Store) PurgeEvents(ctx context.Context, tenantID int64, before time.Time) (int64, error) {
	n, err := s.purge(ctx, tenantID, before)
	if err != nil {
		return 0, err
	}
	if _, err := s.DB.PurgeEvents(ctx, tenantID, before); err != nil {
		return 0, err
	}
	return n, nil
}

// purge deletes the tenant's events before the given time from
// ClickHouse.
func (s *Store) purge(ctx context.Context, tenantID int64, before time.Time) (int64, error) {
	cond := "tenant_id = " + strconv.FormatInt(tenantID, 10) + " AND ts < " + micros(before)
	n, err := s.count(ctx, s.ch, s.all, cond)
	if err != nil || n == 0 {
		return 0, err
	}
	return n, s.mutate(ctx, cond)
}

// count counts the rows of table on c that match cond.
func (s *Store) count(ctx context.Context, c *client, table, cond string) (int64, error) {
	var n int64
	err := c.query(ctx, "SELECT count() FROM "+table+" WHERE "+cond, false, func(r *rowReader) error {
		n = int64(r.uint64())
		return nil
	})
	return n, err
}

// CountEvents implements tally.EventStore.
func (s *Store) CountEvents(ctx context.Context, tenantID int64, from, to time.Time) (int64, error) {
	return s.count(ctx, s.on(tenantID), "events", "tenant_id = "+strconv.FormatInt(tenantID, 10)+" AND ts >= "+micros(from)+" AND ts < "+micros(to))
}

// CountAllEvents implements tally.EventStore.
func (s *Store) CountAllEvents(ctx context.Context, from, to time.Time) (int64, error) {
	return s.count(ctx, s.ch, s.all, "ts >= "+micros(from)+" AND ts < "+micros(to))
}

// aggregateSQL groups a tenant's events with lo <= ts < hi into buckets
// of b microseconds from the epoch, with the sums the other stores give:
// each value clamped to ±tally.MaxValue (NaN counts 0) for the sum;
// rounded half away from zero and clamped to [0, tally.MaxAmount] for the
// rounded sum, which is capped at the largest Int64.
func aggregateSQL(tenantID int64, from, to time.Time, bucket time.Duration) string {
	// toInt64 on the constant: 18.16 types Int64 % UInt64 as Int32.
	b := "toInt64(" + strconv.FormatInt(bucket.Microseconds(), 10) + ")"
	return `SELECT (intDiv(ts, ` + b + `) - (ts % ` + b + ` < 0)) * ` + b + ` AS b, event, metric, count(),
	sum(multiIf(isNaN(value), 0., value > 1e15, 1e15, value < -1e15, -1e15, value)),
	least(sum(multiIf(isNaN(value), toUInt64(0), value >= 1099511627776, toUInt64(1099511627776),
		value > 0, toUInt64(floor(value) + (value - floor(value) >= 0.5)), toUInt64(0))), toUInt64(9223372036854775807)),
	uniqExactIf(user_id, user_id != '')
FROM events WHERE tenant_id = ` + strconv.FormatInt(tenantID, 10) + ` AND ts >= ` + micros(from) + ` AND ts < ` + micros(to) + `
GROUP BY b, event, metric ORDER BY b, event, metric`
}

// AggregateEvents implements tally.EventStore.
func (s *Store) AggregateEvents(ctx context.Context, tenantID int64, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	if bucket < time.Microsecond {
		return nil, tally.Invalid("invalid bucket", tally.FieldError{Field: "bucket", Message: "must be at least a microsecond"})
	}
	var out []tally.HourRow
	err := s.on(tenantID).query(ctx, aggregateSQL(tenantID, from, to, bucket), false, func(r *rowReader) error {
		var h tally.HourRow
		h.Start = fromMicros(r.int64())
		h.Event = r.string()
		h.Metric = r.string()
		h.Count = int64(r.uint64())
		h.Sum = r.float64()
		h.SumRounded = int64(r.uint64())
		h.Users = int64(r.uint64())
		out = append(out, h)
		return nil
	})
	return out, err
}

// BucketUsers implements tally.EventStore.
func (s *Store) BucketUsers(ctx context.Context, tenantID int64, bounds []time.Time, fn func(bucket int, user string) error) error {
	names := map[string]string{} // one string per user id
	return s.bucketUsers(ctx, tenantID, bounds, func(bucket int, user []byte) error {
		name, ok := names[string(user)]
		if !ok {
			name = string(user)
			names[name] = name
		}
		return fn(bucket, name)
	})
}

// bucketUsers is BucketUsers with the user id as bytes valid during fn.
// Evenly spaced bounds (hours, days) number buckets by division; others
// by counting the bounds a timestamp passes.
func (s *Store) bucketUsers(ctx context.Context, tenantID int64, bounds []time.Time, fn func(bucket int, user []byte) error) error {
	for i := 1; i < len(bounds); i++ {
		if !bounds[i-1].Before(bounds[i]) {
			return tally.Invalid("invalid bucket bounds", tally.FieldError{Field: "bounds", Message: "must ascend strictly"})
		}
	}
	if len(bounds) < 2 {
		return nil
	}
	lo, hi := bounds[0].UnixMicro(), bounds[len(bounds)-1].UnixMicro()
	b := bucketExpr(bounds)
	sql := "SELECT toInt64(" + b + ") AS b, user_id FROM events WHERE tenant_id = " + strconv.FormatInt(tenantID, 10) +
		" AND ts >= " + strconv.FormatInt(lo, 10) + " AND ts < " + strconv.FormatInt(hi, 10) +
		" AND user_id != '' GROUP BY b, user_id ORDER BY b"
	var user []byte
	return s.on(tenantID).query(ctx, sql, true, func(r *rowReader) error {
		bucket := r.int64()
		user = r.bytes(user)
		if r.err != nil {
			return nil
		}
		return fn(int(bucket), user)
	})
}

// bucketExpr numbers the bucket bounds[i] <= ts < bounds[i+1] of a row
// (bounds ascend strictly, at least two; rows outside them are the
// caller's to leave out): evenly spaced bounds (hours, days) by division,
// others by counting the bounds a timestamp passes.
func bucketExpr(bounds []time.Time) string {
	lo := bounds[0].UnixMicro()
	step := bounds[1].UnixMicro() - lo
	for i := 1; i < len(bounds); i++ {
		if bounds[i].UnixMicro()-bounds[i-1].UnixMicro() != step {
			us := make([]string, len(bounds))
			for i, t := range bounds {
				us[i] = strconv.FormatInt(t.UnixMicro(), 10)
			}
			return "arrayCount(x -> x <= ts, [" + strings.Join(us, ",") + "]) - 1"
		}
	}
	return "intDiv(ts - toInt64(" + strconv.FormatInt(lo, 10) + "), toInt64(" + strconv.FormatInt(step, 10) + "))"
}

// TailEvents implements tally.TailStore.
func (s *Store) TailEvents(ctx context.Context, tenantID int64, f tally.EventFilter, afterID int64, limit int) ([]tally.Event, error) {
	if limit < 1 {
		return nil, badLimit("limit")
	}
	c := append(where(tenantID, f), "id > "+strconv.FormatInt(afterID, 10))
	var out []tally.Event
	err := s.on(tenantID).query(ctx, "SELECT "+eventCols+" FROM events"+and(c)+" ORDER BY id LIMIT "+strconv.Itoa(limit), false,
		func(r *rowReader) error {
			e := tally.Event{TenantID: tenantID}
			scanEvent(r, &e)
			out = append(out, e)
			return nil
		})
	return out, err
}

// LastEventID implements tally.TailStore from the key table's id
// sequence on PostgreSQL, not from ClickHouse (whose max(id) reads the id
// column of every row): the largest id given, which is the largest
// stored but for ids of batches in flight or of duplicates (each key
// reservation draws one). A tail that starts there follows the ids
// above it, as on the other tiers.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	return s.DB.LastEventKeyID(ctx)
}

// StoredEventIDs implements tally.EventStore, from ClickHouse's log.
func (s *Store) StoredEventIDs(ctx context.Context, tenantID int64, eventIDs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(eventIDs) == 0 {
		return out, nil
	}
	// A UUID is in event_uuid, but in event_id in rows written before
	// event_uuid existed.
	var texts, uuids []string
	for _, id := range eventIDs {
		if _, ok := uuidBytes(id); ok {
			uuids = append(uuids, "UUIDStringToNum("+quote(id)+")")
		}
		texts = append(texts, quote(id))
	}
	in := []string{"event_id IN (" + strings.Join(texts, ", ") + ")"}
	if len(uuids) > 0 {
		in = append(in, "event_uuid IN ("+strings.Join(uuids, ", ")+")")
	}
	err := s.on(tenantID).query(ctx, "SELECT "+eventIDCol+" AS eid, any(metric) FROM events WHERE tenant_id = "+strconv.FormatInt(tenantID, 10)+
		" AND ("+strings.Join(in, " OR ")+") GROUP BY eid", false, func(r *rowReader) error {
		id, m := r.string(), r.string()
		if r.err == nil {
			out[id] = m
		}
		return nil
	})
	return out, err
}

// LastEventAt implements tally.AbsenceStore, from ClickHouse's log.
func (s *Store) LastEventAt(ctx context.Context, tenantID int64, pattern string, from time.Time) (time.Time, bool, error) {
	var at, n int64
	err := s.on(tenantID).query(ctx, "SELECT max(ts), count() FROM events"+and(where(tenantID, tally.EventFilter{Name: pattern, From: from})), false, func(r *rowReader) error {
		at, n = r.int64(), int64(r.uint64())
		return nil
	})
	if err != nil || n == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMicro(at).UTC(), true, nil
}

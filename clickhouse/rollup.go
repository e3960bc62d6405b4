package clickhouse

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
)

// InRollupTx implements tally.RollupStore: PostgreSQL's InRollupTx (its
// snapshot of the dirty marks and stamps is taken before fn reads, so a
// change to the log after that is seen at apply or left marked), with the
// reads of the log from ClickHouse. The writers mark an hour dirty again
// after ClickHouse has its events (ConfirmEventKeys, ForgetUserHours), so a
// rollup that read before an insert landed never clears the mark that
// insert needs.
func (s *Store) InRollupTx(ctx context.Context, tenantID int64, fn func(tx tally.RollupTx) error) error {
	return s.DB.InRollupTx(ctx, tenantID, func(tx tally.RollupTx) error {
		return fn(&rollupTx{RollupTx: tx, s: s, tenantID: tenantID})
	})
}

// rollupTx is PostgreSQL's rollup transaction reading the log from
// ClickHouse.
type rollupTx struct {
	tally.RollupTx
	s        *Store
	tenantID int64
}

func (t *rollupTx) AggregateEvents(ctx context.Context, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	return t.s.AggregateEvents(ctx, t.tenantID, from, to, bucket)
}

func (t *rollupTx) MeterEvents(ctx context.Context, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	return t.s.MeterEvents(ctx, t.tenantID, q, fn)
}

func (t *rollupTx) BucketUsers(ctx context.Context, bounds []time.Time, fn func(bucket int, user []byte) error) error {
	return t.s.bucketUsers(ctx, t.tenantID, bounds, fn)
}

// PurgeEvents runs PostgreSQL's part first: in a snapshot run it refuses
// at once (the rollup is redone under the tenant's lock), and under the
// lock its changes commit with the transaction, after ClickHouse's
// deletion here.
func (t *rollupTx) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	if _, err := t.RollupTx.PurgeEvents(ctx, before); err != nil {
		return 0, err
	}
	return t.s.purge(ctx, t.tenantID, before)
}

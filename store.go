package tally

import (
	"context"
	"time"
)

// Store is everything a storage backend provides. Each backend (sqlite,
// postgres) implements it and is held to the storetest conformance suite.
//
// Unless a method says otherwise: a missing row is an ENotFound *Error, a
// uniqueness violation an EConflict *Error, and any other failure an
// EInternal *Error whose text never reaches a client.
type Store interface {
	UserStore
	SessionStore
	TenantStore
	InvitationStore
	KeyStore
	AuditStore
	EventStore
	QuotaStore
	ReservationStore
	GrantStore
	RollupStore
	WebhookStore
	MeterStore
	MeterRollupStore
	ServerKeyStore
	EmbedStore
	TailStore

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database; call it after every writer stopped.
	Close() error
}

// UserStore keeps the people who log in to tally.
type UserStore interface {
	// CreateUser stores u with its password hash and sets u.ID and
	// u.CreatedAt. EConflict when the (normalized) email is taken.
	CreateUser(ctx context.Context, u *User, passwordHash string) error
	// UserByEmail returns the user and its password hash.
	UserByEmail(ctx context.Context, email string) (*User, string, error)
	// UserByID returns one user.
	UserByID(ctx context.Context, id int64) (*User, error)
	// SetPassword replaces a user's password hash.
	SetPassword(ctx context.Context, userID int64, passwordHash string) error
	// ListUsers lists every user by id: for operators (the CLI), never for
	// a request, which sees only its tenant's members.
	ListUsers(ctx context.Context) ([]User, error)
}

// SessionStore keeps login sessions, identified by a hash of their token.
type SessionStore interface {
	// CreateSession stores s and sets s.ID.
	CreateSession(ctx context.Context, s *Session) error
	// SessionByHash returns the unexpired, unrevoked session with that
	// token hash at time now; ENotFound otherwise.
	SessionByHash(ctx context.Context, hash []byte, now time.Time) (*Session, error)
	// RevokeSession ends the session with that token hash at once.
	RevokeSession(ctx context.Context, hash []byte) error
}

// TenantStore keeps tenants and their members.
type TenantStore interface {
	// CreateTenant stores t (setting ID and CreatedAt) and makes ownerID its
	// owner in the same transaction. EConflict when the slug is taken.
	CreateTenant(ctx context.Context, t *Tenant, ownerID int64) error
	// TenantBySlug returns the tenant with that slug.
	TenantBySlug(ctx context.Context, slug string) (*Tenant, error)
	// TenantByID returns the tenant with that id.
	TenantByID(ctx context.Context, id int64) (*Tenant, error)
	// UpdateTenant writes every settable field of t (name, allow_signup,
	// timezone, retention_days, webhook_url and secret).
	UpdateTenant(ctx context.Context, t *Tenant) error
	// AllTenants lists every tenant: for background jobs only (rollups,
	// retention, counter rebuilds), never for a request.
	AllTenants(ctx context.Context) ([]Tenant, error)

	// Memberships lists the tenants userID belongs to, by slug.
	Memberships(ctx context.Context, userID int64) ([]Membership, error)
	// MemberRole returns userID's role in tenantID; ENotFound when not a member.
	MemberRole(ctx context.Context, tenantID, userID int64) (Role, error)
	// AddMember adds userID to tenantID; EConflict when already a member.
	AddMember(ctx context.Context, tenantID, userID int64, role Role) error
	// ListMembers lists a tenant's members by join time.
	ListMembers(ctx context.Context, tenantID int64) ([]Member, error)
	// RemoveMember removes userID from tenantID; ENotFound when not a
	// member. A tenant always keeps an owner: removing its last owner is
	// the EConflict of LastOwnerError, decided in the same transaction as
	// the removal, so concurrent removals cannot leave a tenant without one.
	RemoveMember(ctx context.Context, tenantID, userID int64) error
	// SetMemberRole changes userID's role in tenantID; ENotFound when not a
	// member. Demoting the last owner is the EConflict of LastOwnerError,
	// decided in the same transaction as the change (as for RemoveMember).
	SetMemberRole(ctx context.Context, tenantID, userID int64, role Role) error
}

// InvitationStore keeps invitations to tenants. An invitation is pending
// until it is accepted, revoked or expired.
type InvitationStore interface {
	// CreateInvitation stores inv (its TokenHash, never the token) and sets
	// ID and CreatedAt.
	CreateInvitation(ctx context.Context, inv *Invitation) error
	// ListInvitations lists a tenant's invitations pending at time now,
	// newest first.
	ListInvitations(ctx context.Context, tenantID int64, now time.Time) ([]Invitation, error)
	// RevokeInvitation revokes a pending invitation of tenantID at time at;
	// ENotFound when the invitation is not the tenant's or not pending.
	RevokeInvitation(ctx context.Context, tenantID, id int64, at time.Time) error
	// AcceptInvitation, in one transaction, marks the invitation with that
	// token hash, pending at time now and addressed to email, accepted by
	// userID and makes userID a member of its tenant with its role. It
	// returns the invitation. ENotFound when no such invitation is pending
	// (unknown, used, revoked, expired or for another email alike);
	// EConflict when userID is already a member, and then the invitation
	// stays pending. A token is accepted at most once, however many accept
	// it at the same time.
	AcceptInvitation(ctx context.Context, hash []byte, email string, userID int64, now time.Time) (*Invitation, error)
}

// KeyStore keeps API keys.
type KeyStore interface {
	// CreateKey stores k (its Hash, never the secret) and sets ID and CreatedAt.
	CreateKey(ctx context.Context, k *APIKey) error
	// KeyByPrefix finds a key by its public prefix, in any tenant: this is
	// how a presented key is authenticated. Revoked and expired keys are
	// returned too; the caller checks Active.
	KeyByPrefix(ctx context.Context, prefix string) (*APIKey, error)
	// ListKeys lists a tenant's keys, newest first.
	ListKeys(ctx context.Context, tenantID int64) ([]APIKey, error)
	// RevokeKey revokes a key of tenantID at time at; ENotFound when the key
	// is not the tenant's or already revoked.
	RevokeKey(ctx context.Context, tenantID, id int64, at time.Time) error
	// TouchKey records that the key was used at time at.
	TouchKey(ctx context.Context, tenantID, id int64, at time.Time) error
	// AuthVersion returns a number that changes, for every instance that
	// shares the store, whenever what KeyByPrefix or TenantByID return may
	// have changed (a key revoked or changed but for its last use, a tenant
	// changed): a cache of both stays valid while it does not.
	AuthVersion(ctx context.Context) (int64, error)
}

// AuditStore keeps the audit log.
type AuditStore interface {
	// WriteAudit appends e, setting its ID.
	WriteAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit lists a tenant's entries newest first, and the cursor of the
	// next page (nil on the last). EInvalid when f.Limit < 1.
	ListAudit(ctx context.Context, tenantID int64, f AuditFilter) ([]AuditEntry, *Cursor, error)
}

// TailStore reads the event log in insertion order: what the live tail
// (package live) follows. Event ids grow with each insert, across tenants.
type TailStore interface {
	// TailEvents returns a tenant's events with id > afterID selected by
	// f's From, To, Name, UserID and Source (f.Limit and f.Cursor are
	// ignored), by id ascending, at most limit. EInvalid when limit < 1.
	TailEvents(ctx context.Context, tenantID int64, f EventFilter, afterID int64, limit int) ([]Event, error)
	// LastEventID returns the largest event id stored in any tenant (0 when
	// the log is empty): a tail that starts now follows the ids above it.
	LastEventID(ctx context.Context) (int64, error)
}

// EventStore keeps the event log.
type EventStore interface {
	// InsertEvents stores events of any tenants in one transaction. An event
	// whose (tenant, event_id) exists is left alone: the first stored wins.
	// It sets ID on the inserted events and reports for each whether it was
	// inserted (false: a duplicate). It also marks the hours of inserted
	// events dirty for the next rollup.
	InsertEvents(ctx context.Context, events []Event) (inserted []bool, err error)
	// StoredEventIDs returns which of eventIDs the tenant's log holds,
	// each with its metric column (the metric of a usage.increment, the
	// metric an event was settled for, else "").
	StoredEventIDs(ctx context.Context, tenantID int64, eventIDs []string) (map[string]string, error)
	// ListEvents lists a tenant's events newest first (by timestamp, then id)
	// after f.Cursor, at most f.Limit, and returns the next page's cursor
	// (nil on the last page). EInvalid when f.Limit < 1.
	ListEvents(ctx context.Context, tenantID int64, f EventFilter) ([]Event, *Cursor, error)
	// ExportEvents streams a tenant's events oldest first after f.Cursor, at
	// most max rows, from one consistent snapshot: it calls start once, with
	// whether max cuts the export short, and then row for each event (the
	// event is reused between calls).
	ExportEvents(ctx context.Context, tenantID int64, f EventFilter, max int, start func(ExportInfo) error, row func(*Event) error) error
	// DeleteUserEvents deletes every event of one end user in a tenant. It
	// marks the hours of those events dirty, drops the user sets of those
	// hours and of their days (see RollupStore.RollupUserSets) and deletes
	// the user's ordinal, so that no rollup keeps the user id.
	DeleteUserEvents(ctx context.Context, tenantID int64, userID string) (int64, error)
	// PurgeEvents deletes a tenant's events with timestamp before t. The
	// rollup rows stay (aggregates outlive the raw retention) but the user
	// sets of the hours and UTC days that start before t go: sets are kept
	// no longer than the events they come from. (The ordinals of users
	// whose events are all purged stay until DeleteUserEvents: a set
	// written later may still hold them.) So do the dirty marks of hours that
	// end by t: those hours are never rolled up again, so the rollups of a
	// dirty hour would keep what the mark says changed (a privacy
	// deletion's user, for one). The retention purge therefore purges with
	// RollupTx.PurgeEvents, after re-rolling the dirty days in the same
	// transaction (rollup.Rollup.PurgeExpired).
	PurgeEvents(ctx context.Context, tenantID int64, before time.Time) (int64, error)
	// CountEvents counts a tenant's events with from <= timestamp < to.
	CountEvents(ctx context.Context, tenantID int64, from, to time.Time) (int64, error)
	// CountAllEvents counts every tenant's events with from <= timestamp < to
	// (for readiness).
	CountAllEvents(ctx context.Context, from, to time.Time) (int64, error)
	// AggregateEvents aggregates a tenant's raw events with from <= timestamp
	// < to into rows per bucket (an hour or a day, by bucket), event name
	// and, for usage.increment, metric.
	AggregateEvents(ctx context.Context, tenantID int64, from, to time.Time, bucket time.Duration) ([]HourRow, error)
	// BucketUsers streams the distinct non-empty user ids of a tenant's
	// events in each bucket bounds[i] <= timestamp < bounds[i+1], bucket
	// after bucket, from one consistent snapshot: fn gets each (bucket
	// index, user id) pair once; the users of one bucket come in no
	// particular order. An error from fn ends the stream and is returned as
	// is; fn must not call the store. EInvalid unless bounds ascend
	// strictly; fewer than two bounds make no bucket.
	//
	// Distinct counts do not add up across buckets; this gives those of
	// every bucket, and of any union of buckets, in one read.
	BucketUsers(ctx context.Context, tenantID int64, bounds []time.Time, fn func(bucket int, user string) error) error
}

// QuotaStore keeps per-tenant quota overrides.
type QuotaStore interface {
	// SetQuota creates or replaces a tenant's quota for q.Metric.
	SetQuota(ctx context.Context, tenantID int64, q Quota) error
	// Quotas lists a tenant's overrides.
	Quotas(ctx context.Context, tenantID int64) ([]Quota, error)
	// DeleteQuota removes a tenant's override of metric (a configured
	// default applies again); ENotFound when the tenant has none.
	DeleteQuota(ctx context.Context, tenantID int64, metric string) error
}

// RollupStore keeps the hourly and daily aggregates and what needs
// rolling up. Together, the rollup rows and the dirty marks always tell the
// truth: an hour with no dirty mark has exact rollup rows (or no events),
// and its user set, when it has one, is exact.
type RollupStore interface {
	// DirtyHours lists the (tenant, hour) pairs marked by InsertEvents or
	// DeleteUserEvents with hour start before the given time.
	DirtyHours(ctx context.Context, before time.Time) ([]TenantHour, error)
	// OldestDirty returns the start of the tenant's oldest dirty hour, or
	// the zero time when none is.
	OldestDirty(ctx context.Context, tenantID int64) (time.Time, error)
	// InRollupTx runs fn in one transaction over a tenant's rollups in
	// which the tenant's log holds still: no change to it by InsertEvents,
	// DeleteUserEvents or PurgeEvents commits between fn's first read and
	// the commit, so the dirty marks fn clears are only those of changes
	// its reads saw. Both stores read from a snapshot and apply fn's
	// writes in a short transaction, so a rollup holds neither SQLite's
	// writer nor PostgreSQL's tenant lock while it reads; the writes for
	// hours changed since the snapshot are left out and their marks kept
	// (see each store's InRollupTx). fn may run more than once (a run whose
	// snapshot went stale is dropped), so it must have no effect outside tx
	// but what a rerun overwrites. It commits when fn returns nil and rolls back
	// otherwise, returning fn's error as is. tx is valid only during fn and
	// in one goroutine. The rollup package's RecomputeDay is the algorithm
	// over it.
	InRollupTx(ctx context.Context, tenantID int64, fn func(tx RollupTx) error) error
	// RollupHours reads a tenant's hourly event rows with from <= start < to.
	RollupHours(ctx context.Context, tenantID int64, from, to time.Time) ([]HourRow, error)
	// RollupDays reads a tenant's daily event rows with from <= start < to.
	RollupDays(ctx context.Context, tenantID int64, from, to time.Time) ([]HourRow, error)
	// RollupUserSets calls fn, bucket after bucket, for each of a tenant's
	// hours (bucket an hour) or UTC days (bucket 24 hours) with from <=
	// start < to that has a user set: the ordinals (see UserOrdinals) of the
	// distinct non-empty user ids of its events, as a roaring bitmap in the
	// portable format (no bytes also stand for the empty set), as
	// RollupTx.WriteHourUsers or WriteDayUsers stored it. set is reused once
	// fn returns. A bucket without a set (not rolled up since sets exist, or
	// dropped by DeleteUserEvents or PurgeEvents) is skipped: its users are
	// in the raw log (or, for a day, in its hours' sets). An error from fn
	// ends the call and is returned as is. EInternal for another bucket.
	RollupUserSets(ctx context.Context, tenantID int64, bucket time.Duration, from, to time.Time, fn func(start time.Time, set []byte) error) error
	// UserOrdinals looks up the ordinals of a tenant's user ids, which
	// rollups hand out (RollupTx.UserOrdinals): fn gets (index in users,
	// ordinal) for each id that has one, in no particular order; an id
	// without one is in no user set. An error from fn ends the call and is
	// returned as is.
	UserOrdinals(ctx context.Context, tenantID int64, users []string, fn func(i int, ordinal uint32) error) error
	// RollupMetricHours reads a tenant's hourly metric values with
	// from <= start < to.
	RollupMetricHours(ctx context.Context, tenantID int64, from, to time.Time) ([]MetricPoint, error)
	// RecordRollupRun stores the outcome of a rollup run.
	RecordRollupRun(ctx context.Context, run RollupRun) error
	// LastRollupRun returns the last successful run; nil when none was.
	LastRollupRun(ctx context.Context) (*RollupRun, error)
}

// RollupTx is what a store offers, in one transaction of InRollupTx, to
// recompute one tenant's rollups: the reads aggregate in the database
// (GROUP BY), never handing raw events over, but for meters'
// (MeterRollupTx.MeterEvents), whose partials are computed once in Go
// (MeterPartial). Writes may be sent in one
// batch later, so a write's error may come from a later call or from
// InRollupTx. Every bucket start is in UTC.
type RollupTx interface {
	MeterRollupTx
	// AggregateEvents is EventStore.AggregateEvents of the tenant within
	// the transaction.
	AggregateEvents(ctx context.Context, from, to time.Time, bucket time.Duration) ([]HourRow, error)
	// BucketUsers is EventStore.BucketUsers of the tenant within the
	// transaction, with the user id as bytes valid only during fn.
	BucketUsers(ctx context.Context, bounds []time.Time, fn func(bucket int, user []byte) error) error
	// DeleteRollups deletes the tenant's hourly and daily rows (event
	// rows, metric values, hour and day user sets) that start
	// in [from, to).
	DeleteRollups(ctx context.Context, from, to time.Time) error
	// ClearDirty deletes the tenant's dirty marks of the hours in [from, to).
	ClearDirty(ctx context.Context, from, to time.Time) error
	// WriteEventRows writes event rows of the tenant: hourly rows when
	// bucket is an hour, daily ones when it is 24 hours. The rows must be
	// new (see DeleteRollups).
	WriteEventRows(ctx context.Context, bucket time.Duration, rows []HourRow) error
	// WriteMetricRows writes metric values, hourly or daily by bucket as
	// WriteEventRows.
	WriteMetricRows(ctx context.Context, bucket time.Duration, points []MetricPoint) error
	// UserOrdinals returns the ordinals of users (distinct non-empty ids),
	// in their order, handing out the next ones of the tenant to ids without
	// one: per tenant, ordinals are small integers from 0 that are never
	// handed out twice, and an id keeps its ordinal until DeleteUserEvents
	// deletes the id's events. Concurrent rollups of one tenant never hand
	// out one ordinal to two ids (the store applies them one after the
	// other; see InRollupTx).
	UserOrdinals(ctx context.Context, users [][]byte) ([]uint32, error)
	// WriteHourUsers writes the user set of the hour starting at hour: the
	// ordinals of its distinct users as a roaring bitmap in the portable
	// format (empty, not nil, for an hour without users), as
	// RollupStore.RollupUserSets gives it back.
	WriteHourUsers(ctx context.Context, hour time.Time, set []byte) error
	// WriteDayUsers writes the user set of the UTC day starting at day, as
	// WriteHourUsers does for an hour.
	WriteDayUsers(ctx context.Context, day time.Time, set []byte) error
	// DirtyHours lists the starts of the tenant's dirty hours before the
	// given time, oldest first.
	DirtyHours(ctx context.Context, before time.Time) ([]time.Time, error)
	// PurgeEvents is EventStore.PurgeEvents of the tenant within the
	// transaction, after the writes queued before it: a caller that
	// re-rolled the dirty days before t in the same transaction purges
	// with no change to the log left out of the rollups.
	PurgeEvents(ctx context.Context, before time.Time) (int64, error)
}

// TenantHour names one hour of one tenant.
type TenantHour struct {
	TenantID int64
	Hour     time.Time
}

// MetricPoint is a metric's value in one bucket.
type MetricPoint struct {
	Start  time.Time `json:"start"`
	Metric string    `json:"-"`
	Value  int64     `json:"value"`
}

// RollupRun is the record of one rollup run.
type RollupRun struct {
	Kind       string // "hourly", "daily" or "manual"
	StartedAt  time.Time
	FinishedAt time.Time
	Days       int
	Rows       int
	Err        string
}

// ServerKeyStore keeps the server's own secret keys, shared by every
// instance on the database (the key of EventIDs).
type ServerKeyStore interface {
	// ServerKey returns the key named name, first making it (32 random
	// bytes) when there is none: concurrent first calls, on any instance,
	// all return the one key stored.
	ServerKey(ctx context.Context, name string) ([]byte, error)
}

// WebhookStore is the webhook outbox: deliveries are written when a quota
// alert fires and sent by a dispatcher, so that they survive restarts and
// are sent once among several instances.
type WebhookStore interface {
	// EnqueueWebhook stores d as pending, due at d.NextAttemptAt, and sets
	// d.ID. When a delivery of the same (tenant, event type, metric,
	// threshold, period start) exists, it stores nothing and returns
	// false: the first one wins.
	EnqueueWebhook(ctx context.Context, d *WebhookDelivery) (created bool, err error)
	// ClaimWebhooks takes up to limit pending deliveries of any tenant due
	// at now (NextAttemptAt <= now), oldest due first: it counts an
	// attempt on each and moves its NextAttemptAt to leaseUntil, so that no
	// other claim takes it meanwhile and, should the claimer stop before
	// recording the attempt, it is due again then. Concurrent claims never
	// return the same delivery. For the dispatcher only.
	ClaimWebhooks(ctx context.Context, now, leaseUntil time.Time, limit int) ([]WebhookDelivery, error)
	// RecordWebhookAttempt records the outcome of the attempt on a
	// tenant's delivery id; ENotFound when the tenant has none such.
	RecordWebhookAttempt(ctx context.Context, tenantID, id int64, a WebhookAttempt) error
	// ListWebhooks lists a tenant's deliveries newest first (by CreatedAt,
	// then id) after f.Cursor, at most f.Limit, and the next page's cursor
	// (nil on the last). Payloads are left out. EInvalid when f.Limit < 1.
	ListWebhooks(ctx context.Context, tenantID int64, f WebhookFilter) ([]WebhookDelivery, *Cursor, error)
}

// IdentityLink says that AnonymousID, an id a client used before it knew
// the user, and UserID are one person (Segment's identify and alias,
// PostHog's $identify).
type IdentityLink struct {
	AnonymousID string
	UserID      string
}

// LinkStore keeps the identity links of each tenant. It is not part of
// Store (both backends implement it; ingest asks for it by this interface).
// DeleteUserEvents of either id also deletes its links.
type LinkStore interface {
	// LinkIdentities records links of tenantID at time at. The first link
	// of an anonymous id wins: a later one is ignored, as is a link of an
	// id to itself or with an empty id.
	LinkIdentities(ctx context.Context, tenantID int64, links []IdentityLink, at time.Time) error
	// ResolveIdentities returns, for each of ids that is a linked
	// anonymous id of tenantID, its user id; other ids are absent.
	ResolveIdentities(ctx context.Context, tenantID int64, ids []string) (map[string]string, error)
}

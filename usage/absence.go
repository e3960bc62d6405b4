package usage

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/metrics"
)

// The webhook event types (and audit actions) of absence alerts.
const (
	// WebhookAbsenceType: no matching event for the alert's silence.
	WebhookAbsenceType = "absence.silent"
	// WebhookResumedType: a matching event arrived after the silence.
	WebhookResumedType = "absence.resumed"
)

// AbsenceConfig configures an Absence service. The zero value of each
// field is usable and means what its comment says.
type AbsenceConfig struct {
	// Interval is how often every alert is evaluated (default 1m).
	Interval time.Duration
	// Timeout bounds one pass over every alert (default 30s).
	Timeout time.Duration
	// Wake is called after a webhook delivery was put in the outbox (the
	// Dispatcher's Wake; nil: the dispatcher finds it at its next poll).
	Wake func()
	// LabelCap bounds the distinct tenant labels of the metric (0: the
	// metrics package's default).
	LabelCap int
	// Now tells the time (default time.Now).
	Now func() time.Time
	// Logger gets store failures (default: discarded).
	Logger *slog.Logger
}

func (c *AbsenceConfig) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// AbsenceStore is what absence alerts need of the store: the alerts, the
// webhook outbox, the audit log and the tenant for its webhook URL.
type AbsenceStore interface {
	tally.AbsenceStore
	tally.WebhookStore
	tally.AuditStore
	TenantByID(ctx context.Context, id int64) (*tally.Tenant, error)
}

// Absence manages each tenant's absence alerts ("no {event} for
// {silence}") and evaluates them: Evaluate, run every Interval by the
// runner, fires an alert once when its silence is complete and once more
// when a matching event arrives again — a Prometheus counter, an audit
// entry and, when the tenant has a webhook, a signed delivery through the
// outbox (the Dispatcher sends it). Every instance runs it; each
// transition is a conditional update of the alert's row
// (AbsenceStore.TransitionAbsenceAlert), so among instances exactly one
// audits and counts it, and its delivery is written first under a key
// every instance computes alike, so the outbox holds exactly one.
// Absence implements tally.Runner.
type Absence struct {
	cfg   AbsenceConfig
	store AbsenceStore

	tenantLabel *metrics.TenantLabels
	fired       *prometheus.CounterVec

	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started bool
}

var _ tally.Runner = (*Absence)(nil)

// NewAbsence returns an Absence over store, registering its metric with
// reg (nil: none registered). Start runs its evaluation loop.
func NewAbsence(cfg AbsenceConfig, store AbsenceStore, reg prometheus.Registerer) *Absence {
	cfg.setDefaults()
	return &Absence{
		cfg:   cfg,
		store: store,
		tenantLabel: metrics.NewTenantLabels(cfg.LabelCap, func(ctx context.Context, id int64) (string, error) {
			t, err := store.TenantByID(ctx, id)
			if err != nil {
				return "", err
			}
			return t.Slug, nil
		}),
		fired: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_absence_alerts_total",
			Help: "Absence alerts announced, per tenant and kind (silent: the silence began; resumed: events came back).",
		}, []string{"tenant", "kind"}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// List returns a tenant's absence alerts.
func (s *Absence) List(ctx context.Context, tenantID int64) ([]tally.AbsenceAlert, error) {
	return s.store.AbsenceAlerts(ctx, tenantID)
}

// Get returns one of a tenant's alerts; ENotFound when it has none such.
func (s *Absence) Get(ctx context.Context, tenantID, id int64) (*tally.AbsenceAlert, error) {
	return s.store.AbsenceAlert(ctx, tenantID, id)
}

// Create validates in and stores a new alert of the tenant, ok from now:
// its silence is counted from its creation. EInvalid (a field, or past
// tally.MaxAbsenceAlerts), EConflict when the tenant has an alert on the
// same event.
func (s *Absence) Create(ctx context.Context, tenantID int64, in tally.AbsenceAlertInput) (*tally.AbsenceAlert, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	a := &tally.AbsenceAlert{TenantID: tenantID, Event: in.Event, Silence: time.Duration(in.SilenceSeconds) * time.Second,
		Description: in.Description}
	if err := s.store.CreateAbsenceAlert(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Update replaces a tenant's alert's event, silence and description and
// starts it afresh (ok from now), returning it after and before.
// Errors as Create, and ENotFound.
func (s *Absence) Update(ctx context.Context, tenantID, id int64, in tally.AbsenceAlertInput) (updated, before *tally.AbsenceAlert, err error) {
	if err := in.Validate(); err != nil {
		return nil, nil, err
	}
	before, err = s.store.AbsenceAlert(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	a := &tally.AbsenceAlert{TenantID: tenantID, ID: id, Event: in.Event, Silence: time.Duration(in.SilenceSeconds) * time.Second,
		Description: in.Description}
	if err := s.store.UpdateAbsenceAlert(ctx, a); err != nil {
		return nil, nil, err
	}
	return a, before, nil
}

// Delete removes a tenant's alert; ENotFound when it has none such.
func (s *Absence) Delete(ctx context.Context, tenantID, id int64) error {
	return s.store.DeleteAbsenceAlert(ctx, tenantID, id)
}

// Evaluate looks at every tenant's alerts once and announces the
// transitions this instance won. It returns how many it announced; an
// alert whose store call fails is logged and skipped (the next pass
// retries it), and the last such error is returned.
func (s *Absence) Evaluate(ctx context.Context) (int, error) {
	alerts, err := s.store.AllAbsenceAlerts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var last error
	for i := range alerts {
		ok, err := s.evaluate(ctx, &alerts[i])
		if err != nil {
			s.cfg.Logger.Error("usage: absence alert", "tenant", alerts[i].TenantID, "alert", alerts[i].ID, "err", err)
			last = err
		}
		if ok {
			n++
		}
	}
	return n, last
}

// evaluate evaluates one alert and announces its transition when this
// call won it.
func (s *Absence) evaluate(ctx context.Context, a *tally.AbsenceAlert) (bool, error) {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	// Only events after the current state began can change it; an ok
	// alert looks at its silence's window first, and only when that is
	// empty (it is about to fire) for the time of the last event.
	from := a.StateSince
	if a.State != tally.AbsenceSilent {
		from = now.Add(-a.Silence)
		if a.UpdatedAt.After(from) {
			from = a.UpdatedAt
		}
	}
	last, found, err := s.store.LastEventAt(ctx, a.TenantID, a.Event, from)
	if err != nil {
		return false, err
	}
	if !found && a.State != tally.AbsenceSilent && from.After(a.UpdatedAt) {
		if last, _, err = s.store.LastEventAt(ctx, a.TenantID, a.Event, a.UpdatedAt); err != nil {
			return false, err
		}
	}
	t, change := a.Evaluate(last, now)
	if !change {
		return false, nil
	}
	seen := last
	if seen.IsZero() && a.LastSeenAt != nil {
		seen = *a.LastSeenAt
	}
	// The webhook goes into the outbox first, keyed by the state the
	// transition ends (its start, a.StateSince): every instance that
	// computed this transition enqueues the same key, so the outbox holds
	// one delivery even when the instance that wins the transition stops
	// before announcing it. Audit entry and metric follow the win.
	prev := a.StateSince
	next := *a
	next.State, next.StateSince = t.State, t.Since.UTC()
	if !seen.IsZero() {
		u := seen.UTC()
		next.LastSeenAt = &u
	}
	created := s.enqueue(ctx, &next, prev, now)
	won, err := s.store.TransitionAbsenceAlert(ctx, a, t, seen)
	if err != nil || !won {
		return false, err
	}
	s.announce(ctx, a, now)
	if created && s.cfg.Wake != nil {
		s.cfg.Wake()
	}
	return true, nil
}

// AbsencePayload is the JSON body of an absence webhook, in the Standard
// Webhooks shape of the quota alerts (WebhookPayload).
type AbsencePayload struct {
	Type      string      `json:"type"`
	Timestamp string      `json:"timestamp"`
	Data      AbsenceData `json:"data"`
}

// AbsenceData is the data of an absence.silent or absence.resumed
// webhook. Since is when the silence began (absence.silent: the last
// matching event, or the alert's creation when none came since) or when
// the events resumed (absence.resumed: the first event's time after the
// silence, at most the time of the evaluation). LastSeenAt is the latest
// matching event seen, absent when none.
type AbsenceData struct {
	Tenant         string  `json:"tenant"`
	AlertID        int64   `json:"alert_id"`
	Event          string  `json:"event"`
	SilenceSeconds int64   `json:"silence_seconds"`
	Description    string  `json:"description,omitempty"`
	State          string  `json:"state"`
	Since          string  `json:"since"`
	LastSeenAt     *string `json:"last_seen_at,omitempty"`
}

// kinds returns the metric label and the webhook type (the audit action)
// of a transition into a's state.
func kinds(a *tally.AbsenceAlert) (kind, typ string) {
	if a.State == tally.AbsenceOK {
		return "resumed", WebhookResumedType
	}
	return "silent", WebhookAbsenceType
}

// absenceData returns the webhook data of a transition into a's state.
func absenceData(a *tally.AbsenceAlert) AbsenceData {
	d := AbsenceData{AlertID: a.ID, Event: a.Event, SilenceSeconds: a.SilenceSeconds(), Description: a.Description,
		State: string(a.State), Since: a.StateSince.UTC().Format(time.RFC3339Nano)}
	if a.LastSeenAt != nil {
		v := a.LastSeenAt.UTC().Format(time.RFC3339Nano)
		d.LastSeenAt = &v
	}
	return d
}

// enqueue puts the webhook of the transition into a's state (from the
// state that began at prev) into the outbox when the tenant has a webhook
// (event type absence.silent or absence.resumed, metric the alert's
// event, threshold 0, period start prev); it reports whether this call
// created the delivery (false: none, or another instance's came first).
func (s *Absence) enqueue(ctx context.Context, a *tally.AbsenceAlert, prev, now time.Time) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertTimeout)
	defer cancel()
	log := s.cfg.Logger.With("tenant", a.TenantID, "alert", a.ID, "event", a.Event)
	t, err := s.store.TenantByID(ctx, a.TenantID)
	if err != nil {
		log.Error("usage: absence alert tenant", "err", err)
		return false
	}
	if t.WebhookURL == "" {
		return false
	}
	_, typ := kinds(a)
	data := absenceData(a)
	data.Tenant = t.Slug
	body, err := json.Marshal(AbsencePayload{Type: typ, Timestamp: now.Format(time.RFC3339), Data: data})
	if err != nil {
		log.Error("usage: encode absence webhook", "err", err)
		return false
	}
	created, err := s.store.EnqueueWebhook(ctx, &tally.WebhookDelivery{
		TenantID: a.TenantID, WebhookID: tally.NewWebhookID(), EventType: typ, Metric: a.Event,
		Threshold: 0, PeriodStart: prev.UTC(), Payload: body, CreatedAt: now, NextAttemptAt: now,
	})
	if err != nil {
		log.Error("usage: enqueue absence webhook", "err", err)
		return false
	}
	return created
}

// announce records a transition this instance won: the metric and an
// audit entry.
func (s *Absence) announce(ctx context.Context, a *tally.AbsenceAlert, now time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertTimeout)
	defer cancel()
	kind, typ := kinds(a)
	s.fired.WithLabelValues(s.tenantLabel.Value(ctx, a.TenantID), kind).Inc()
	d := absenceData(a)
	meta := map[string]any{"alert_id": a.ID, "silence_seconds": a.SilenceSeconds(), "since": d.Since}
	if d.LastSeenAt != nil {
		meta["last_seen_at"] = *d.LastSeenAt
	}
	if err := s.store.WriteAudit(ctx, &tally.AuditEntry{TenantID: a.TenantID, At: now, Actor: "system", Action: typ,
		Target: a.Event, Meta: meta}); err != nil {
		s.cfg.Logger.Error("usage: audit absence alert", "tenant", a.TenantID, "alert", a.ID, "err", err)
	}
}

// Start runs Evaluate every Interval until Stop.
func (s *Absence) Start() {
	s.started = true
	go func() {
		defer close(s.done)
		tick := time.NewTicker(s.cfg.Interval)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			go func() { // a Stop ends the pass at once
				select {
				case <-s.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			if _, err := s.Evaluate(ctx); err != nil {
				s.cfg.Logger.Error("usage: absence alerts", "err", err)
			}
			cancel()
		}
	}()
}

// Stop ends the loop, cancelling a running pass, and waits for it until
// ctx ends.
func (s *Absence) Stop(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	if !s.started {
		return nil
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

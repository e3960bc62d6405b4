package usage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// DispatcherConfig configures a Dispatcher. The zero value of each field is
// usable and means what its comment says.
type DispatcherConfig struct {
	// Timeout bounds one delivery attempt, connection to last byte
	// (default 10s).
	Timeout time.Duration
	// Backoff is the delay after the first failed attempt; it doubles
	// after each further one, up to MaxBackoff (default 30s).
	Backoff time.Duration
	// MaxBackoff caps the delay between two attempts (default 2h).
	MaxBackoff time.Duration
	// MaxAttempts is how many attempts a delivery gets before it is
	// failed (default 10).
	MaxAttempts int
	// Poll is how often the outbox is looked at for due deliveries when
	// nothing wakes the dispatcher (default 5s).
	Poll time.Duration
	// Batch is how many deliveries one claim takes, sent concurrently
	// (default 16).
	Batch int
	// HTTPClient sends the requests (default a new client; the app passes
	// usage.PublicWebhookClient).
	HTTPClient *http.Client
	// Now tells the time (default time.Now).
	Now func() time.Time
	// Logger gets failed attempts and store errors (default: discarded).
	Logger *slog.Logger
}

func (c *DispatcherConfig) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = 30 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 2 * time.Hour
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 16
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// RetryDelay is the wait after the attempt-th failed attempt (1-based):
// Backoff doubled attempt-1 times, at most MaxBackoff.
func (c DispatcherConfig) RetryDelay(attempt int) time.Duration {
	c.setDefaults()
	d := c.Backoff
	for i := 1; i < attempt && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// dispatcherStore is what the dispatcher needs of the store: the outbox,
// and the tenant for its current webhook URL and secret.
type dispatcherStore interface {
	tally.WebhookStore
	TenantByID(ctx context.Context, id int64) (*tally.Tenant, error)
}

// Dispatcher sends the webhook outbox (tally.WebhookStore): it claims due
// deliveries with a lease, POSTs each, signed per Standard Webhooks with
// the tenant's current secret, and records the attempt: delivered on a 2xx
// answer, else retried after RetryDelay until MaxAttempts, then failed.
// Deliveries are rows, so they survive restarts; the claim's lease (the
// attempt's timeout and a minute) lets another instance, or the next
// start, retry a delivery whose sender died mid-attempt. Several
// dispatchers on one database never claim the same delivery at once.
// Dispatcher implements tally.Runner.
type Dispatcher struct {
	cfg   DispatcherConfig
	store dispatcherStore

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	ctx     context.Context // ends when Stop gives up on running attempts
	cancel  context.CancelFunc
	started bool
	once    sync.Once
}

var _ tally.Runner = (*Dispatcher)(nil)

// NewDispatcher returns a Dispatcher over store's outbox; Start runs it.
func NewDispatcher(cfg DispatcherConfig, store dispatcherStore) *Dispatcher {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Dispatcher{cfg: cfg, store: store, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// Wake makes the dispatcher look at the outbox now (after an enqueue)
// instead of at its next poll. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start implements tally.Runner: it launches the dispatch loop.
func (d *Dispatcher) Start() {
	d.started = true
	go d.loop()
}

// Stop implements tally.Runner: it stops claiming and waits for the
// attempts in flight. When ctx ends first it cancels them (their leases
// end and they are retried later) and returns ctx's error.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.once.Do(func() { close(d.stop) })
	if !d.started {
		d.cancel()
		return nil
	}
	select {
	case <-d.done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel()
		<-d.done
		return ctx.Err()
	}
}

func (d *Dispatcher) loop() {
	defer close(d.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		case <-timer.C:
		}
		wait := d.cfg.Poll
		for {
			n, soonest, err := d.RunOnce(d.ctx)
			if err != nil {
				d.cfg.Logger.Error("usage: webhook outbox", "err", err)
				break
			}
			if soonest > 0 && soonest < wait {
				wait = soonest
			}
			if n < d.cfg.Batch {
				break
			}
			select {
			case <-d.stop:
				return
			default:
			}
		}
		timer.Reset(wait)
	}
}

// RunOnce claims the deliveries due now (up to Batch), sends them
// concurrently and records each attempt. It returns how many it claimed
// and the shortest retry delay it scheduled (0: none).
func (d *Dispatcher) RunOnce(ctx context.Context) (int, time.Duration, error) {
	now := d.cfg.Now()
	due, err := d.store.ClaimWebhooks(ctx, now, now.Add(d.cfg.Timeout+time.Minute), d.cfg.Batch)
	if err != nil {
		return 0, 0, err
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		soonest time.Duration
	)
	for i := range due {
		wg.Go(func() {
			if delay := d.attempt(ctx, &due[i]); delay > 0 {
				mu.Lock()
				if soonest == 0 || delay < soonest {
					soonest = delay
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(due), soonest, nil
}

// maxAttemptError bounds the error text an attempt records.
const maxAttemptError = 300

// attempt makes one attempt of a claimed delivery and records it; it
// returns the retry delay when the delivery stays pending.
func (d *Dispatcher) attempt(ctx context.Context, w *tally.WebhookDelivery) time.Duration {
	log := d.cfg.Logger.With("tenant", w.TenantID, "webhook_id", w.WebhookID, "attempt", w.Attempts)
	code, err := d.send(ctx, w)
	at := d.cfg.Now()
	a := tally.WebhookAttempt{Status: tally.WebhookDelivered, StatusCode: code, At: at}
	var delay time.Duration
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// Stopped mid-attempt: not the receiver's fault; due again at once
		// (the next start or another instance).
		a.Status, a.Error, a.NextAttemptAt = tally.WebhookPending, "interrupted by shutdown", at
	case w.Attempts >= d.cfg.MaxAttempts:
		a.Status, a.Error = tally.WebhookFailed, err.Error()
		log.Error("usage: webhook failed", "err", err)
	default:
		delay = d.cfg.RetryDelay(w.Attempts)
		a.Status, a.Error, a.NextAttemptAt = tally.WebhookPending, err.Error(), at.Add(delay)
		log.Warn("usage: webhook attempt failed", "err", err, "retry_in", delay.String())
	}
	if len(a.Error) > maxAttemptError {
		a.Error = a.Error[:maxAttemptError]
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.store.RecordWebhookAttempt(rctx, w.TenantID, w.ID, a); err != nil {
		// The lease ends and the delivery is claimed again: at least once.
		log.Error("usage: record webhook attempt", "err", err)
	}
	return delay
}

// send POSTs one delivery to the tenant's current webhook URL and returns
// the answer's status. Its errors never carry the URL (hook URLs often
// hold a token); the logs name the host.
func (d *Dispatcher) send(ctx context.Context, w *tally.WebhookDelivery) (int, error) {
	t, err := d.store.TenantByID(ctx, w.TenantID)
	if err != nil {
		return 0, errors.New("tenant unavailable")
	}
	if t.WebhookURL == "" {
		return 0, errors.New("the tenant has no webhook URL")
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.WebhookURL, bytes.NewReader(w.Payload))
	if err != nil {
		return 0, errors.New("invalid webhook URL") // the parse error quotes the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tally-webhook")
	ts := d.cfg.Now().Unix()
	req.Header.Set(tally.HeaderWebhookID, w.WebhookID)
	req.Header.Set(tally.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(tally.HeaderWebhookSignature, tally.SignWebhook(t.WebhookSecret, w.WebhookID, ts, w.Payload))
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error // it quotes the URL
		if errors.As(err, &ue) {
			err = ue.Err
		}
		d.cfg.Logger.Warn("usage: webhook request", "host", webhookHost(t.WebhookURL), "err", err)
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		d.cfg.Logger.Warn("usage: webhook answer", "host", webhookHost(t.WebhookURL), "status", resp.StatusCode)
		return resp.StatusCode, fmt.Errorf("webhook answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

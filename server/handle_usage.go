package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/usage"
)

func invalidMetric() error {
	return tally.Invalid("invalid metric", tally.FieldError{Field: "metric", Message: "must match ^[a-z0-9_]{1,64}$"})
}

// usageEvent builds the usage.increment event that records an explicit
// increment durably (deduplicated by event_id like any event).
// at is the event's time (zero: now).
func (s *Server) usageEvent(t *tally.Tenant, metric string, amount int64, eventID string, at time.Time) (*ingest.Decoded, error) {
	props, _ := json.Marshal(map[string]any{tally.UsageMetricProp: metric, "amount": amount})
	e, err := s.Validator.Prepare(tally.Event{Name: tally.EventUsageIncrement, EventID: eventID, Source: "usage",
		Timestamp: at, Value: float64(amount), Props: props}, t, s.now())
	if err != nil {
		return nil, err
	}
	return &ingest.Decoded{Events: []tally.Event{e}, Index: []int{0}}, nil
}

func (s *Server) handleUsagePost() apiHandler {
	type request struct {
		Metric  string `json:"metric"`
		Amount  *int64 `json:"amount"`
		EventID string `json:"event_id"`
	}
	type response struct {
		Metric  string `json:"metric"`
		Current int64  `json:"current"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if !tally.ValidMetric(req.Metric) {
			return invalidMetric()
		}
		amount := int64(1)
		if req.Amount != nil {
			amount = *req.Amount
		}
		if amount < 1 || amount > 1<<40 {
			return tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "must be a positive integer"})
		}
		if len(req.EventID) > 128 {
			return tally.Invalid("invalid event_id", tally.FieldError{Field: "event_id", Message: "must be at most 128 characters"})
		}
		d, err := s.usageEvent(p.Tenant, req.Metric, amount, req.EventID, time.Time{})
		if err != nil {
			return err
		}
		res, err := s.Pipeline.Submit(r.Context(), d)
		if err != nil {
			return err
		}
		if res.RateLimited > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(usage.RetryAfter(s.now()).Seconds())))
			return tally.Errorf(tally.ERateLimited, "%s", res.Rejected[0].Error)
		}
		if len(res.Rejected) > 0 {
			return tally.Invalid(res.Rejected[0].Error)
		}
		today, err := s.Usage.Today(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusAccepted, response{Metric: req.Metric, Current: today[req.Metric]})
		return nil
	}
}

func (s *Server) handleUsageGet() apiHandler {
	type response struct {
		Series any `json:"series"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		loc, err := location(q, p.Tenant)
		if err != nil {
			return err
		}
		from, to, err := parseRange(q, s.now(), loc, false)
		if err != nil {
			return err
		}
		var metrics []string
		if m := q.Get("metric"); m != "" {
			for _, name := range strings.Split(m, ",") {
				if !tally.ValidMetric(name) {
					return invalidMetric()
				}
				metrics = append(metrics, name)
			}
		}
		hourly := false
		switch q.Get("granularity") {
		case "", "day":
		case "hour":
			hourly = true
		default:
			return tally.Invalid("invalid granularity", tally.FieldError{Field: "granularity", Message: "must be day or hour"})
		}
		if buckets := to.Sub(from) / time.Hour; (hourly && buckets > 24*93) || buckets > 24*800 {
			return tally.Invalid("range too long", tally.FieldError{Field: "from", Message: "at most 93 days by hour or 800 days by day"})
		}
		start := time.Now()
		series, err := s.Reports.Usage(r.Context(), p.Tenant.ID, metrics, from, to, hourly, loc)
		s.observeQuery("usage", start)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Series: series})
		return nil
	}
}

func (s *Server) handleMetricsGet() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		loc, err := location(q, p.Tenant)
		if err != nil {
			return err
		}
		rng := q.Get("range")
		if rng == "" {
			rng = "7d"
		}
		start := time.Now()
		rep, err := s.Reports.KPIs(r.Context(), p.Tenant.ID, rng, loc, s.now())
		s.observeQuery("metrics", start)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, rep)
		return nil
	}
}

func (s *Server) handleQuotaList() apiHandler {
	type response struct {
		Quotas []tally.QuotaStatus `json:"quotas"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		qs, err := s.Usage.Statuses(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		if qs == nil {
			qs = []tally.QuotaStatus{}
		}
		encode(w, http.StatusOK, response{Quotas: qs})
		return nil
	}
}

func (s *Server) handleQuotaGet() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.Errorf(tally.ENotFound, "no quota for this metric")
		}
		st, err := s.Usage.Status(r.Context(), p.Tenant.ID, m)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, st)
		return nil
	}
}

func (s *Server) handleQuotaPut() apiHandler {
	type request struct {
		Limit    *int64 `json:"limit"`
		Enforced bool   `json:"enforced"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return invalidMetric()
		}
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if req.Limit == nil || *req.Limit < 0 {
			return tally.Invalid("invalid limit", tally.FieldError{Field: "limit", Message: "must be a non-negative integer"})
		}
		st, err := s.Usage.SetQuota(r.Context(), p.Tenant.ID, tally.Quota{Metric: m, Limit: *req.Limit, Enforced: req.Enforced})
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "quota.set", m, map[string]any{"limit": *req.Limit, "enforced": req.Enforced})
		encode(w, http.StatusOK, st)
		return nil
	}
}

// consumeResult is the consume answer: the quota with allowed. A denied
// consume is a 429 problem document carrying the same members.
type consumeResult struct {
	Type    string `json:"type,omitempty"`
	Title   string `json:"title,omitempty"`
	Status  int    `json:"status,omitempty"`
	Detail  string `json:"detail,omitempty"`
	Allowed bool   `json:"allowed"`
	tally.QuotaStatus
}

func (s *Server) handleQuotaConsume() apiHandler {
	type request struct {
		Amount *int64 `json:"amount"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return invalidMetric()
		}
		req := request{}
		if r.ContentLength != 0 {
			var err error
			if req, err = decode[request](r); err != nil {
				return err
			}
		}
		amount := int64(1)
		if req.Amount != nil {
			amount = *req.Amount
		}
		if amount < 1 || amount > 1<<40 {
			return tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "must be a positive integer"})
		}
		now := s.now()
		allowed, st, res, err := s.Usage.Consume(r.Context(), p.Tenant.ID, m, amount)
		if err != nil {
			return err
		}
		policy, limit := usage.RateLimitHeaders(st, now)
		w.Header().Set("RateLimit-Policy", policy)
		w.Header().Set("RateLimit", limit)
		if !allowed {
			w.Header().Set("Retry-After", strconv.Itoa(int(usage.RetryAfter(now).Seconds())))
			writeJSON(w, http.StatusTooManyRequests, "application/problem+json", consumeResult{
				Type: "urn:tally:problem:rate_limited", Title: "Too Many Requests", Status: http.StatusTooManyRequests,
				Detail: "quota " + m + " has no room for " + strconv.FormatInt(amount, 10), QuotaStatus: st})
			return nil
		}
		// The event lands in the quota period the amount was reserved in,
		// also when the clock passed midnight since.
		at := s.now()
		if end := st.ResetsAt.Add(-time.Microsecond); at.After(end) {
			at = end
		}
		d, err := s.usageEvent(p.Tenant, m, amount, "", at)
		if err != nil {
			return err
		}
		if _, err := s.Pipeline.SubmitReserved(r.Context(), d, res); err != nil {
			return err
		}
		encode(w, http.StatusOK, consumeResult{Allowed: true, QuotaStatus: st})
		return nil
	}
}

func (s *Server) handleRollup() apiHandler {
	type request struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req := request{}
		if r.ContentLength != 0 {
			var err error
			if req, err = decode[request](r); err != nil {
				return err
			}
		}
		today := tally.DayStart(s.now())
		from, to := today.AddDate(0, 0, -1), today
		var err error
		if req.From != "" {
			if from, err = time.Parse(time.DateOnly, req.From); err != nil {
				return tally.Invalid("invalid from", tally.FieldError{Field: "from", Message: "must be a date (YYYY-MM-DD)"})
			}
		}
		if req.To != "" {
			if to, err = time.Parse(time.DateOnly, req.To); err != nil {
				return tally.Invalid("invalid to", tally.FieldError{Field: "to", Message: "must be a date (YYYY-MM-DD)"})
			}
		}
		if from.After(to) {
			return tally.Invalid("from is after to", tally.FieldError{Field: "from", Message: "must not be after to"})
		}
		if to.Sub(from) > 92*24*time.Hour {
			return tally.Invalid("range too long", tally.FieldError{Field: "from", Message: "at most 93 days per run; use tally rollup for more"})
		}
		res, err := s.Rollup.RunDays(r.Context(), p.Tenant.ID, from, to, "manual")
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "rollup.run", "", map[string]any{"from": from.Format(time.DateOnly), "to": to.Format(time.DateOnly), "rows": res.Rows})
		encode(w, http.StatusOK, res)
		return nil
	}
}

func (s *Server) handleAudit() apiHandler {
	type response struct {
		Entries    []tally.AuditEntry `json:"entries"`
		NextCursor *string            `json:"next_cursor"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		var f tally.AuditFilter
		var err error
		if f.From, f.To, err = parseRange(q, s.now(), time.UTC, true); err != nil {
			return err
		}
		if !q.Has("from") {
			f.From = time.Time{} // the whole log unless asked otherwise
		}
		if f.Limit, err = parseLimit(q, 50, 1000); err != nil {
			return err
		}
		if f.Cursor, err = parseCursor(q); err != nil {
			return err
		}
		f.Action = q.Get("action")
		entries, next, err := s.Store.ListAudit(r.Context(), p.Tenant.ID, f)
		if err != nil {
			return err
		}
		res := response{Entries: entries}
		if next != nil {
			c := next.Encode()
			res.NextCursor = &c
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

package server

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/usage"
)

func (s *Server) handleUsagePost() apiHandler {
	type request struct {
		Metric  string `json:"metric"`
		Amount  *int64 `json:"amount"`
		EventID string `json:"event_id"`
	}
	type response struct {
		Metric  string `json:"metric"`
		Current *int64 `json:"current"` // null: stored, but its value could not be read
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		in := tally.UsageIncrement{Metric: req.Metric, Amount: 1, EventID: req.EventID}
		if req.Amount != nil {
			in.Amount = *req.Amount
		}
		current, err := s.Recorder.Increment(r.Context(), p.Tenant, in)
		if tally.ErrorCodeOf(err) == tally.ERateLimited {
			w.Header().Set("Retry-After", strconv.Itoa(int(s.quotaRetryAfter(r.Context(), p.Tenant.ID, req.Metric).Seconds())))
		}
		if err != nil {
			return err
		}
		res := response{Metric: in.Metric}
		if current != ingest.CurrentUnknown {
			res.Current = &current
		}
		encode(w, http.StatusAccepted, res)
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
					return tally.InvalidMetric()
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
			rng = tally.DefaultKPIRange.Name
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
		qs, err := s.Quotas.Statuses(r.Context(), p.Tenant.ID)
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
		return s.answerQuota(w, r, p, m)
	}
}

// answerQuota answers 200 with the status of metric's quota.
func (s *Server) answerQuota(w http.ResponseWriter, r *http.Request, p *tally.Principal, metric string) error {
	st, err := s.Quotas.Status(r.Context(), p.Tenant.ID, metric)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, st)
	return nil
}

// handleQuotaPut replaces the tenant's quota of a metric whole: limit is
// required; enforced defaults to false and period to "day" (anchor_day
// only with "billing"; thresholds to 80 and 100), whatever the previous
// override said.
func (s *Server) handleQuotaPut() apiHandler {
	type request struct {
		Limit      *int64 `json:"limit"`
		Enforced   bool   `json:"enforced"`
		Period     string `json:"period"`
		AnchorDay  int    `json:"anchor_day"`
		Thresholds []int  `json:"thresholds"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.InvalidMetric()
		}
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if req.Limit == nil || *req.Limit < 0 {
			return tally.Invalid("invalid limit", tally.FieldError{Field: "limit", Message: "must be a non-negative integer"})
		}
		q := tally.Quota{Metric: m, Limit: *req.Limit, Enforced: req.Enforced, Period: req.Period, AnchorDay: req.AnchorDay,
			Thresholds: req.Thresholds}
		st, err := s.Quotas.SetQuota(r.Context(), p.Tenant.ID, q)
		if err != nil {
			return err
		}
		meta := map[string]any{"limit": *req.Limit, "enforced": req.Enforced, "period": q.PeriodOf()}
		if q.AnchorDay != 0 {
			meta["anchor_day"] = q.AnchorDay
		}
		if len(q.Thresholds) > 0 {
			meta["thresholds"] = q.Thresholds
		}
		s.audit(r.Context(), p.Tenant.ID, p, "quota.set", m, meta)
		encode(w, http.StatusOK, st)
		return nil
	}
}

// handleQuotaDelete removes the tenant's override of a metric's quota:
// the configured default applies again (or no quota at all). It answers
// the quota now in force, or 204 when none is.
func (s *Server) handleQuotaDelete() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.Errorf(tally.ENotFound, "no quota override for this metric")
		}
		if err := s.Quotas.DeleteQuota(r.Context(), p.Tenant.ID, m); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "quota.deleted", m, nil)
		err := s.answerQuota(w, r, p, m)
		if tally.ErrorCodeOf(err) == tally.ENotFound {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return err
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
		Amount  *int64 `json:"amount"`
		EventID string `json:"event_id"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.InvalidMetric()
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
		now := s.now()
		allowed, st, err := s.Recorder.Consume(r.Context(), p.Tenant, tally.UsageIncrement{Metric: m, Amount: amount, EventID: req.EventID})
		if err != nil {
			return err
		}
		writeQuotaHeaders(w, st, now, !allowed)
		if !allowed {
			writeRefused(w, st, amount)
			return nil
		}
		encode(w, http.StatusOK, consumeResult{Allowed: true, QuotaStatus: st})
		return nil
	}
}

// reservationAnswer is a reservation with the quota's remaining allowance
// and its status after the call.
type reservationAnswer struct {
	*tally.QuotaReservation
	Remaining int64             `json:"remaining"`
	Quota     tally.QuotaStatus `json:"quota"`
}

// writeQuotaHeaders sets the RateLimit fields of st (and, when refused,
// Retry-After until the period ends).
func writeQuotaHeaders(w http.ResponseWriter, st tally.QuotaStatus, now time.Time, refused bool) {
	policy, limit := usage.RateLimitHeaders(st, now)
	w.Header().Set("RateLimit-Policy", policy)
	w.Header().Set("RateLimit", limit)
	if refused {
		w.Header().Set("Retry-After", strconv.Itoa(int(usage.RetryAfterOf(st, now).Seconds())))
	}
}

// writeRefused answers a consume or reservation the quota had no room for:
// 429, a problem document extended with allowed false and the quota.
func writeRefused(w http.ResponseWriter, st tally.QuotaStatus, amount int64) {
	writeJSON(w, http.StatusTooManyRequests, "application/problem+json", consumeResult{
		Type: "urn:tally:problem:rate_limited", Title: "Too Many Requests", Status: http.StatusTooManyRequests,
		Detail: "quota " + st.Metric + " has no room for " + strconv.FormatInt(amount, 10), QuotaStatus: st})
}

// handleReserve holds part of a quota for a while: 201 with the
// reservation (200 when the idempotency key names one made before), 429
// like a refused consume.
func (s *Server) handleReserve() apiHandler {
	type request struct {
		Amount         *int64 `json:"amount"`
		TTLSeconds     int64  `json:"ttl_seconds"`
		IdempotencyKey string `json:"idempotency_key"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.InvalidMetric()
		}
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if req.Amount == nil {
			return tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "is required"})
		}
		// Clamped into range before the conversion (which could overflow)
		// to one second past either end: ReserveInput.Validate refuses it.
		secs := min(max(req.TTLSeconds, -1), int64(tally.MaxReservationTTL/time.Second)+1)
		in := tally.ReserveInput{Metric: m, Amount: *req.Amount, TTL: time.Duration(secs) * time.Second, IdempotencyKey: req.IdempotencyKey}
		now := s.now()
		resv, st, created, err := s.Quotas.Reserve(r.Context(), p.Tenant.ID, in)
		if err != nil {
			return err
		}
		writeQuotaHeaders(w, st, now, resv == nil)
		if resv == nil {
			writeRefused(w, st, in.Amount)
			return nil
		}
		status := http.StatusCreated
		if !created {
			status = http.StatusOK
		}
		encode(w, status, reservationAnswer{QuotaReservation: resv, Remaining: st.Remaining, Quota: st})
		return nil
	}
}

// handleReservationGet answers one reservation.
func (s *Server) handleReservationGet() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		resv, err := s.Quotas.Reservation(r.Context(), p.Tenant.ID, m, r.PathValue("id"))
		if err != nil {
			return err
		}
		st, err := s.Quotas.Status(r.Context(), p.Tenant.ID, m)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, reservationAnswer{QuotaReservation: resv, Remaining: st.Remaining, Quota: st})
		return nil
	}
}

// handleReservationCommit records the used part of a reservation as
// usage and returns the rest to the quota.
func (s *Server) handleReservationCommit() apiHandler {
	type request struct {
		Amount  *int64 `json:"amount"`
		EventID string `json:"event_id"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		req := request{}
		if r.ContentLength != 0 {
			var err error
			if req, err = decode[request](r); err != nil {
				return err
			}
		}
		resv, err := s.Recorder.Commit(r.Context(), p.Tenant, m, r.PathValue("id"), req.Amount, req.EventID)
		if err != nil {
			return err
		}
		return s.answerReservation(w, r, p, resv)
	}
}

// handleReservationRelease returns a reservation whole to the quota.
func (s *Server) handleReservationRelease() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if r.ContentLength != 0 {
			if _, err := decode[struct{}](r); err != nil {
				return err
			}
		}
		resv, err := s.Quotas.Release(r.Context(), p.Tenant.ID, m, r.PathValue("id"))
		if err != nil {
			return err
		}
		return s.answerReservation(w, r, p, resv)
	}
}

// answerReservation answers 200 with resv and its quota's status now.
func (s *Server) answerReservation(w http.ResponseWriter, r *http.Request, p *tally.Principal, resv *tally.QuotaReservation) error {
	st, err := s.Quotas.Status(r.Context(), p.Tenant.ID, resv.Metric)
	if err != nil {
		return err
	}
	writeQuotaHeaders(w, st, s.now(), false)
	encode(w, http.StatusOK, reservationAnswer{QuotaReservation: resv, Remaining: st.Remaining, Quota: st})
	return nil
}

// handleGrantCreate adds one-off allowance to a quota's current period.
func (s *Server) handleGrantCreate() apiHandler {
	type request struct {
		Amount    *int64     `json:"amount"`
		Reason    string     `json:"reason"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	type response struct {
		Grant *tally.QuotaGrant `json:"grant"`
		Quota tally.QuotaStatus `json:"quota"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.InvalidMetric()
		}
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if req.Amount == nil {
			return tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "is required"})
		}
		in := tally.GrantInput{Metric: m, Amount: *req.Amount, Reason: req.Reason, ExpiresAt: req.ExpiresAt}
		g, st, err := s.Quotas.Grant(r.Context(), p.Tenant.ID, in, p.Actor())
		if err != nil {
			return err
		}
		meta := map[string]any{"grant": g.ID, "amount": g.Amount, "reason": g.Reason, "period_start": g.PeriodStart.Format(time.RFC3339)}
		if g.ExpiresAt != nil {
			meta["expires_at"] = g.ExpiresAt.Format(time.RFC3339)
		}
		s.audit(r.Context(), p.Tenant.ID, p, "quota.grant", m, meta)
		encode(w, http.StatusCreated, response{Grant: g, Quota: st})
		return nil
	}
}

// handleGrantList lists a quota's grants, newest first.
func (s *Server) handleGrantList() apiHandler {
	type response struct {
		Grants []tally.QuotaGrant `json:"grants"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m := r.PathValue("metric")
		if !tally.ValidMetric(m) {
			return tally.Errorf(tally.ENotFound, "no quota for this metric")
		}
		gs, err := s.Quotas.Grants(r.Context(), p.Tenant.ID, m)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Grants: gs})
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
		// The rollup writes the run's audit entry, by p.
		res, err := s.Rollups.RunDays(r.Context(), p.Tenant.ID, from, to, "manual", p.Actor())
		if err != nil {
			return err
		}
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
		f, err := s.parseAuditFilter(q)
		if err != nil {
			return err
		}
		if f.Limit, err = parseLimit(q, 50, 1000); err != nil {
			return err
		}
		if f.Cursor, err = parseCursor(q); err != nil {
			return err
		}
		if f.Cursor, err = storedCursor(s.auditIDs, p.Tenant.ID, f.Cursor); err != nil {
			return err
		}
		entries, next, err := s.Store.ListAudit(r.Context(), p.Tenant.ID, f)
		if err != nil {
			return err
		}
		for i := range entries {
			entries[i].ID = s.auditIDs.Public(p.Tenant.ID, entries[i].ID)
		}
		res := response{Entries: entries}
		if next != nil {
			c := publicCursor(s.auditIDs, p.Tenant.ID, next)
			res.NextCursor = &c
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

// parseAuditFilter reads the filters the audit list and its export share:
// from (default: the whole log), to, action and actor.
func (s *Server) parseAuditFilter(q url.Values) (tally.AuditFilter, error) {
	var f tally.AuditFilter
	var err error
	if f.From, f.To, err = parseRange(q, s.now(), time.UTC, true); err != nil {
		return f, err
	}
	if !q.Has("from") {
		f.From = time.Time{} // the whole log unless asked otherwise
	}
	f.Action, f.Actor = q.Get("action"), q.Get("actor")
	return f, nil
}

// handleAuditExport streams the audit log as CSV, newest first (the order
// of the list), with the list's filters, at most MaxExportRows rows;
// X-Export-Truncated says whether the cap cut it short. The export itself
// is audited.
func (s *Server) handleAuditExport() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		f, err := s.parseAuditFilter(q)
		if err != nil {
			return err
		}
		limit, err := parseLimit(q, s.cfg.MaxExportRows, s.cfg.MaxExportRows)
		if err != nil {
			return err
		}
		// Read every page before answering, so a store fault is a 503, not
		// a cut CSV; the cap bounds what is held.
		var rows []tally.AuditEntry
		truncated := false
		for {
			f.Limit = min(1000, limit-len(rows)+1)
			page, next, err := s.Store.ListAudit(r.Context(), p.Tenant.ID, f)
			if err != nil {
				return err
			}
			rows = append(rows, page...)
			if len(rows) > limit {
				rows, truncated = rows[:limit], true
				break
			}
			if next == nil {
				break
			}
			f.Cursor = next
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="audit-`+p.Tenant.Slug+`.csv"`)
		h.Set("X-Export-Row-Limit", strconv.Itoa(limit))
		h.Set("X-Export-Truncated", strconv.FormatBool(truncated))
		w.WriteHeader(http.StatusOK)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"id", "at", "actor", "action", "target", "meta"})
		for _, e := range rows {
			meta := ""
			if e.Meta != nil {
				b, _ := json.Marshal(e.Meta)
				meta = string(b)
			}
			_ = cw.Write([]string{strconv.FormatInt(s.auditIDs.Public(p.Tenant.ID, e.ID), 10), e.At.UTC().Format(time.RFC3339Nano),
				csvCell(e.Actor), csvCell(e.Action), csvCell(e.Target), csvCell(meta)})
		}
		cw.Flush()
		s.audit(r.Context(), p.Tenant.ID, p, "audit.exported", "audit.csv", map[string]any{
			"rows": len(rows), "truncated": truncated,
			"filters": map[string]any{"from": optTime(f.From), "to": optTime(f.To), "action": f.Action, "actor": f.Actor},
		})
		return nil
	}
}

// quotaRetryAfter is the Retry-After of events or increments refused by
// an enforced quota: the time until metric's period ends, or (metric "")
// until the first exceeded enforced quota's period ends; until the next
// UTC midnight when the quotas cannot be read.
func (s *Server) quotaRetryAfter(ctx context.Context, tenantID int64, metric string) time.Duration {
	now := s.now()
	if s.Quotas == nil {
		return usage.RetryAfter(now)
	}
	var sts []tally.QuotaStatus
	if metric != "" {
		st, err := s.Quotas.Status(ctx, tenantID, metric)
		if err != nil {
			return usage.RetryAfter(now)
		}
		sts = []tally.QuotaStatus{st}
	} else {
		var err error
		if sts, err = s.Quotas.Statuses(ctx, tenantID); err != nil {
			return usage.RetryAfter(now)
		}
	}
	var best time.Duration
	for _, st := range sts {
		if st.Exceeded && st.Enforced {
			if d := usage.RetryAfterOf(st, now); best == 0 || d < best {
				best = d
			}
		}
	}
	if best == 0 {
		return usage.RetryAfter(now)
	}
	return best
}

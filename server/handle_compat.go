package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/internal/secret"
)

// Ingestion in other tools' formats (Segment, PostHog, CloudEvents), so
// that their unmodified client libraries can send to tally. Each format
// is a decoder into ingest.Foreign and the answers its clients expect;
// everything else — authentication by an API key with analytics:write,
// the tenant of that key, Recorder.Foreign and so validation, dedup,
// redaction, quotas and the group commit — is shared.

// compatFormat is one foreign ingestion format.
type compatFormat struct {
	name string // the format label of sbh_compat_events_total
	// decode maps the (decompressed) body of r.
	decode func(r *http.Request, body []byte) (*ingest.Foreign, error)
	// ok answers a request whose events were all handled; rejected
	// lists per-event rejections (already logged and counted).
	ok func(s *Server, w http.ResponseWriter, r *http.Request, res *ingest.Result, count int) error
	// fail answers err in the format's error shape.
	fail func(s *Server, w http.ResponseWriter, r *http.Request, err error)
}

// compatMetrics count the events of foreign formats by outcome.
type compatMetrics struct {
	events *prometheus.CounterVec
}

func newCompatMetrics(reg prometheus.Registerer) *compatMetrics {
	m := &compatMetrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sbh_compat_events_total",
		Help: "Events received in another tool's format (segment, posthog, cloudevents), by outcome: accepted, duplicate, rejected.",
	}, []string{"format", "outcome"})}
	reg.MustRegister(m.events)
	return m
}

// handleCompat serves one foreign ingestion endpoint of format f.
func (s *Server) handleCompat(f compatFormat) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if !s.cfg.AnalyticsEnabled {
			w.Header().Set("Retry-After", "3600")
			f.fail(s, w, r, tally.Errorf(tally.EUnavailable, "analytics disabled"))
			return
		}
		body, err := s.compatBody(r)
		var fr *ingest.Foreign
		if err == nil {
			fr, err = f.decode(r, body)
		}
		if err != nil {
			f.fail(s, w, r, err)
			return
		}
		p, err := s.compatAuth(r, fr.Key)
		if err != nil {
			f.fail(s, w, r, err)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		if err := s.compatRecord(sw, r, f, p, fr); err != nil {
			f.fail(s, sw, r, err)
		}
		s.trackAPIRequest(r, p, sw.code(), time.Since(start))
	})
}

// compatRecord records fr for p and answers as f does.
func (s *Server) compatRecord(w http.ResponseWriter, r *http.Request, f compatFormat, p *tally.Principal, fr *ingest.Foreign) error {
	if !p.Key.HasScope(tally.ScopeWrite) {
		return s.denied(r, p, tally.Errorf(tally.EForbidden, "this API key lacks the %s scope", tally.ScopeWrite))
	}
	if err := s.checkPublishable(r, p.Key); err != nil {
		return s.denied(r, p, err)
	}
	res, err := s.Recorder.Foreign(r.Context(), p.Tenant, fr)
	if err != nil {
		return err
	}
	c := s.compat.events
	c.WithLabelValues(f.name, "accepted").Add(float64(res.Accepted))
	c.WithLabelValues(f.name, "duplicate").Add(float64(res.Duplicates))
	c.WithLabelValues(f.name, "rejected").Add(float64(len(res.Rejected)))
	if len(res.Rejected) > 0 {
		first := res.Rejected[0]
		s.log.WarnContext(r.Context(), "events rejected", "request_id", requestIDFrom(r.Context()), "format", f.name,
			"tenant", p.Tenant.Slug, "rejected", len(res.Rejected), "of", fr.Count(),
			"first_index", first.Index, "first_error", first.Error)
	}
	if res.Accepted+res.Duplicates == 0 && res.RateLimited > 0 && res.RateLimited == len(res.Rejected) {
		return &retryError{error: tally.Errorf(tally.ERateLimited, "every event is over an enforced quota"),
			after: s.quotaRetryAfter(r.Context(), p.Tenant.ID, "")}
	}
	return f.ok(s, w, r, res, fr.Count())
}

// compatBody reads the body, gunzipped when Content-Encoding is gzip or
// the query says compression=gzip-js (posthog-js), within MaxBodyBytes
// also once decompressed.
func (s *Server) compatBody(r *http.Request) ([]byte, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	c := r.URL.Query().Get("compression")
	if enc != "gzip" && c != "gzip-js" && c != "gzip" {
		if enc != "" && enc != "identity" {
			return nil, tally.Invalid("unsupported Content-Encoding " + strconv.Quote(enc) + "; send gzip or none")
		}
		return body, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, tally.Invalid("the body is not valid gzip")
	}
	out, err := io.ReadAll(io.LimitReader(zr, s.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, tally.Invalid("the body is not valid gzip")
	}
	if int64(len(out)) > s.cfg.MaxBodyBytes {
		return nil, tally.Errorf(tally.ETooLarge, "the decompressed body is larger than %d bytes", s.cfg.MaxBodyBytes)
	}
	return out, nil
}

// compatAuth authenticates the API key of a foreign request: HTTP Basic's
// user name (Segment's clients), a Bearer token (OpenMeter's), else the
// key the body carried. The key names the tenant.
func (s *Server) compatAuth(r *http.Request, bodyKey string) (*tally.Principal, error) {
	key := bodyKey
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		key = user
	} else if h := r.Header.Get("Authorization"); h != "" {
		if scheme, t, found := strings.Cut(h, " "); found && strings.EqualFold(scheme, "Bearer") {
			key = strings.TrimSpace(t)
		}
	}
	if _, ok := secret.ParseKey(key); !ok {
		return nil, tally.Errorf(tally.EUnauthorized, "missing or invalid API key")
	}
	k, t, err := s.Accounts.KeyAuth(r.Context(), key, remoteHost(r))
	if err != nil {
		return nil, err
	}
	return &tally.Principal{Key: k, Tenant: t}, nil
}

// Segment's HTTP tracking API.

// segmentPaths are the single-message paths (long and analytics.js's
// short form) and the message type each takes.
var segmentPaths = []struct{ long, short, typ string }{
	{"/v1/track", "/v1/t", "track"}, {"/v1/page", "/v1/p", "page"}, {"/v1/screen", "/v1/s", "screen"},
	{"/v1/identify", "/v1/i", "identify"}, {"/v1/group", "/v1/g", "group"}, {"/v1/alias", "/v1/a", "alias"},
}

// segmentFormat serves one Segment path; typ "" is /v1/batch. Success is
// 200 {"success": true}, also when some messages were rejected (logged
// and counted, as Segment does); errors are {"success": false, "message"}
// with the status of the problem.
func segmentFormat(typ string) compatFormat {
	return compatFormat{
		name: "segment",
		decode: func(_ *http.Request, body []byte) (*ingest.Foreign, error) {
			return ingest.DecodeSegment(body, typ)
		},
		ok: func(_ *Server, w http.ResponseWriter, _ *http.Request, _ *ingest.Result, _ int) error {
			encode(w, http.StatusOK, map[string]bool{"success": true})
			return nil
		},
		fail: func(s *Server, w http.ResponseWriter, r *http.Request, err error) {
			p := s.errorAnswer(w, r, err)
			encode(w, p.Status, map[string]any{"success": false, "message": p.Detail})
		},
	}
}

// PostHog's capture API.

// postHogPaths are the capture paths of PostHog's SDKs; each is served
// with and without a trailing slash.
var postHogPaths = []string{"/batch", "/capture", "/e", "/i/v0/e", "/track"}

// postHogFormat answers 200 {"status": 1}; errors have PostHog's shape,
// {"type", "code", "detail", "attr"}.
var postHogFormat = compatFormat{
	name: "posthog",
	decode: func(_ *http.Request, body []byte) (*ingest.Foreign, error) {
		return ingest.DecodePostHog(body)
	},
	ok: func(_ *Server, w http.ResponseWriter, _ *http.Request, _ *ingest.Result, _ int) error {
		encode(w, http.StatusOK, map[string]int{"status": 1})
		return nil
	},
	fail: func(s *Server, w http.ResponseWriter, r *http.Request, err error) {
		p := s.errorAnswer(w, r, err)
		typ, code := "validation_error", "invalid_payload"
		switch p.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			typ, code = "authentication_error", "invalid_api_key"
		case http.StatusRequestEntityTooLarge:
			code = "payload_too_large"
		case http.StatusTooManyRequests:
			typ, code = "rate_limited", "rate_limited"
		}
		if p.Status >= 500 {
			typ, code = "server_error", "unavailable"
		}
		encode(w, p.Status, map[string]any{"type": typ, "code": code, "detail": p.Detail, "attr": nil})
	},
}

// handlePostHogFlags answers PostHog's feature-flag calls (/decide,
// /flags), which tally does not serve, with no flags at all, so that SDKs
// carry on instead of retrying.
func (s *Server) handlePostHogFlags() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		encode(w, http.StatusOK, map[string]any{
			"featureFlags": map[string]any{}, "featureFlagPayloads": map[string]any{}, "flags": map[string]any{},
			"errorsWhileComputingFlags": false, "sessionRecording": false,
		})
	})
}

// CloudEvents, as OpenMeter's POST /api/v1/events takes them.

// cloudEventsFormat answers 204; errors are problem documents (as
// OpenMeter's). When some events of a batch break a rule the others are
// stored and the answer is a 400 naming the rejected ones: a client that
// fixes and resends the batch is deduplicated by id.
var cloudEventsFormat = compatFormat{
	name: "cloudevents",
	decode: func(r *http.Request, body []byte) (*ingest.Foreign, error) {
		mt := strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]))
		if r.Header.Get("Ce-Specversion") != "" {
			body, mt = binaryCloudEvent(r.Header, body), "application/cloudevents+json"
		}
		switch mt {
		case "application/cloudevents+json", "application/json", "":
			return ingest.DecodeCloudEvents(body, false)
		case "application/cloudevents-batch+json":
			return ingest.DecodeCloudEvents(body, true)
		}
		return nil, errUnsupportedMedia
	},
	ok: func(_ *Server, w http.ResponseWriter, _ *http.Request, res *ingest.Result, count int) error {
		if len(res.Rejected) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		fields := make([]tally.FieldError, len(res.Rejected))
		for i, rj := range res.Rejected {
			fields[i] = tally.FieldError{Field: "events[" + strconv.Itoa(rj.Index) + "]", Message: rj.Error}
		}
		return tally.Invalid(strconv.Itoa(len(res.Rejected))+" of "+strconv.Itoa(count)+
			" events were rejected; the others are stored", fields...)
	},
	fail: func(s *Server, w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, errUnsupportedMedia) {
			writeProblem(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
				"send application/cloudevents+json, application/cloudevents-batch+json or application/json")
			return
		}
		s.writeError(w, r, err)
	},
}

// errUnsupportedMedia is a CloudEvents body of another content type.
var errUnsupportedMedia = errors.New("unsupported media type")

// binaryCloudEvent turns a CloudEvent in HTTP binary mode (attributes in
// ce- headers, data in the body) into its JSON event format.
func binaryCloudEvent(h http.Header, body []byte) []byte {
	m := map[string]any{}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "ce-"); ok && len(vs) > 0 {
			m[name] = vs[0]
		}
	}
	if b := bytes.TrimSpace(body); len(b) > 0 {
		if json.Valid(b) {
			m["data"] = json.RawMessage(b)
		} else {
			m["data"] = string(b)
		}
	}
	out, _ := json.Marshal(m)
	return out
}

package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/internal/testenv"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// harnessPassword is the password of every user a harness registers.
const harnessPassword = "correct-horse-battery"

// harness is the whole tally app (real SQLite file, ingest writer, usage,
// rollups) behind an httptest server. Tests talk to it over HTTP only.
type harness struct {
	t      testing.TB
	app    *app.App
	srv    *httptest.Server
	dbPath string
	logs   *testenv.Buffer // the app's JSON log, warnings and errors
	client *http.Client
	seq    atomic.Int64 // for unique names
}

// harnessMetricsToken is the operator's METRICS_TOKEN in every harness.
const harnessMetricsToken = "operator-metrics-token-for-tests"

// harnessOption adjusts the app configuration before the app starts.
type harnessOption func(*app.Config)

func withRegistrationClosed() harnessOption {
	return func(c *app.Config) { c.Server.RegistrationOpen = false }
}

func withAnalyticsDisabled() harnessOption {
	return func(c *app.Config) { c.AnalyticsEnabled = false }
}

func withIngestQueue(n int) harnessOption {
	return func(c *app.Config) { c.IngestQueue = n }
}

func withMaxExportRows(n int) harnessOption {
	return func(c *app.Config) { c.Server.MaxExportRows = n }
}

func withSessionTTL(d time.Duration) harnessOption {
	return func(c *app.Config) { c.Server.SessionTTL = d }
}

func withLabelCap(n int) harnessOption {
	return func(c *app.Config) { c.LabelCap = n }
}

func withQuotaDefaults(m map[string]int64) harnessOption {
	return func(c *app.Config) { c.QuotaDefaults = m }
}

// newHarness starts a fresh tally on its own SQLite file; t.Cleanup stops
// the HTTP server and closes the app (draining the writer).
func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tally.db")
	logs := &testenv.Buffer{}
	a, srv := apptest.Start(t, func(cfg *app.Config) {
		cfg.SQLitePath, cfg.SQLiteSync = path, "FULL"
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg.WebhookBackoff = 10 * time.Millisecond
		cfg.Server.MetricsToken = harnessMetricsToken
		for _, o := range opts {
			o(cfg)
		}
	})
	h := &harness{t: t, app: a, srv: srv, dbPath: path, logs: logs, client: srv.Client()}
	return h
}

// apiResponse is a response read in full.
type apiResponse struct {
	Status int
	Header http.Header
	Body   []byte
	req    string // "METHOD path", for messages
}

func (r *apiResponse) String() string {
	body := bytes.TrimSpace(r.Body)
	if len(body) > 400 {
		body = append(body[:400:400], "..."...)
	}
	return fmt.Sprintf("%s -> %d %s", r.req, r.Status, body)
}

// decode unmarshals the body into v.
func (r *apiResponse) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%s: body is not the expected JSON: %v", r, err)
	}
}

// object decodes the body as a JSON object.
func (r *apiResponse) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// want fails the test unless the status is status.
func (r *apiResponse) want(t testing.TB, status int) *apiResponse {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: want status %d", r, status)
	}
	return r
}

// hdr builds request headers: a Bearer token (when not empty), an
// X-Tenant-Slug (when not empty) and further name/value pairs.
func hdr(token, slug string, kv ...string) map[string]string {
	m := map[string]string{}
	if token != "" {
		m["Authorization"] = "Bearer " + token
	}
	if slug != "" {
		m["X-Tenant-Slug"] = slug
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// do sends a request. body is nil (none), a string or []byte (sent as
// is) or anything else (sent as JSON). It checks the X-Request-ID rule
// that holds for every response.
func (h *harness) do(method, path string, body any, headers map[string]string) *apiResponse {
	h.t.Helper()
	return h.doT(h.t, method, path, body, headers)
}

// doT is do reporting to t (for subtests and goroutines: it never calls
// t.Fatal, only t.Error, when the request itself fails).
func (h *harness) doT(t testing.TB, method, path string, body any, headers map[string]string) *apiResponse {
	t.Helper()
	return h.doWith(t, h.client, method, path, body, headers)
}

// doWith is doT through client (for instance one dialling from another
// address, fromAddr).
func (h *harness) doWith(t testing.TB, client *http.Client, method, path string, body any, headers map[string]string) *apiResponse {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request body: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return &apiResponse{req: method + " " + path}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Errorf("%s %s: read body: %v", method, path, err)
	}
	r := &apiResponse{Status: res.StatusCode, Header: res.Header, Body: b, req: method + " " + path}
	if res.Header.Get("X-Request-ID") == "" {
		t.Errorf("%s: no X-Request-ID", r)
	}
	return r
}

// metrics returns the Prometheus text of the public /metrics, read with
// the operator's token.
func (h *harness) metrics() string {
	h.t.Helper()
	return string(h.do("GET", "/metrics", nil, hdr(harnessMetricsToken, "")).want(h.t, http.StatusOK).Body)
}

// noPanic fails t when the app logged a panic.
func (h *harness) noPanic(t testing.TB) {
	t.Helper()
	if l := h.logs.String(); strings.Contains(l, `"msg":"panic"`) {
		t.Errorf("the log shows a panic:\n%s", l)
	}
}

// backends runs fn once per store: SQLite, PostgreSQL on a fresh schema,
// and PostgreSQL with the event log on a fresh ClickHouse database
// (reported missing like every PostgreSQL or ClickHouse test when it is
// not there).
func backends(t *testing.T, fn func(t *testing.T, opts ...harnessOption)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, withPostgres(pgtest.FreshSchema(t)))
	})
	t.Run("clickhouse", func(t *testing.T) {
		t.Parallel()
		fn(t, withClickHouse(t))
	})
}

// withClickHouse keeps the event log on a fresh ClickHouse database, the
// rest on a fresh PostgreSQL schema.
func withClickHouse(t *testing.T) harnessOption {
	pg, events := pgtest.FreshSchema(t), chtest.FreshDatabase(t)
	return func(c *app.Config) { c.PostgresURL, c.EventsURL = pg, events }
}

// uniq returns a name unique within the harness.
func (h *harness) uniq(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, h.seq.Add(1))
}

// register registers email with harnessPassword and returns the user's id.
func (h *harness) register(email string, headers map[string]string) int64 {
	h.t.Helper()
	r := h.do("POST", "/api/auth/register", map[string]string{"email": email, "password": harnessPassword, "name": "Test " + email}, headers)
	r.want(h.t, http.StatusCreated)
	var v struct {
		User struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	r.decode(h.t, &v)
	return v.User.ID
}

// login logs email in and returns the session token.
func (h *harness) login(email string) string {
	h.t.Helper()
	r := h.do("POST", "/api/auth/login", map[string]string{"email": email, "password": harnessPassword}, nil)
	r.want(h.t, http.StatusOK)
	var v struct {
		Token string `json:"token"`
	}
	r.decode(h.t, &v)
	if v.Token == "" {
		h.t.Fatalf("%s: no token", r)
	}
	return v.Token
}

// user registers and logs in a new user; it returns the session token and
// the user id.
func (h *harness) user(email string) (token string, id int64) {
	h.t.Helper()
	id = h.register(email, nil)
	return h.login(email), id
}

// createTenant creates slug with the session token as owner.
func (h *harness) createTenant(token, slug string, allowSignup bool) {
	h.t.Helper()
	h.do("POST", "/api/tenants", map[string]any{"name": "Tenant " + slug, "slug": slug, "allow_signup": allowSignup}, hdr(token, "")).
		want(h.t, http.StatusCreated)
}

// owner is a tenant with the session of its owner.
type owner struct {
	token string
	slug  string
	email string
	id    int64
}

// h returns the headers of the owner's session in its tenant.
func (o owner) h(kv ...string) map[string]string { return hdr(o.token, o.slug, kv...) }

// newTenant registers a user "owner@<slug>.test", logs in and creates the
// tenant slug, which that user owns.
func (h *harness) newTenant(slug string) owner {
	h.t.Helper()
	email := "owner@" + slug + ".test"
	token, id := h.user(email)
	h.createTenant(token, slug, false)
	return owner{token: token, slug: slug, email: email, id: id}
}

// member registers a user and makes it a member of o's tenant with role
// (o invites, the user accepts); it returns the user's session token and id.
func (h *harness) member(o owner, role string) (string, int64) {
	h.t.Helper()
	email := h.uniq(role) + "@" + o.slug + ".test"
	token, id := h.user(email)
	h.join(o, email, role, token)
	return token, id
}

// createdInvitation is the answer of POST /api/tenants/{slug}/invitations.
type createdInvitation struct {
	Invitation struct {
		ID        int64     `json:"id"`
		Email     string    `json:"email"`
		Role      string    `json:"role"`
		InvitedBy string    `json:"invited_by"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"invitation"`
	Token string `json:"token"`
}

// invite invites email into o's tenant with role, as o, and wants a 201.
func (h *harness) invite(o owner, email, role string) createdInvitation {
	h.t.Helper()
	var inv createdInvitation
	h.do("POST", "/api/tenants/"+o.slug+"/invitations", map[string]string{"email": email, "role": role}, o.h()).
		want(h.t, http.StatusCreated).decode(h.t, &inv)
	if inv.Token == "" || inv.Invitation.ID <= 0 {
		h.t.Fatalf("invitation without token or id: %+v", inv)
	}
	return inv
}

// accept accepts the invitation token with the session token.
func (h *harness) accept(session, token string) *apiResponse {
	h.t.Helper()
	return h.do("POST", "/api/invitations/"+url.PathEscape(token)+"/accept", nil, hdr(session, ""))
}

// join makes the user of session (whose email is email) a member of o's
// tenant with role: o invites, the user accepts.
func (h *harness) join(o owner, email, role, session string) {
	h.t.Helper()
	h.accept(session, h.invite(o, email, role).Token).want(h.t, http.StatusOK)
}

// createdKey is the answer of POST /api/keys.
type createdKey struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Key       string     `json:"key"`
	Prefix    string     `json:"prefix"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// createKey creates an API key in o's tenant with the given scopes.
func (h *harness) createKey(o owner, scopes ...string) createdKey {
	h.t.Helper()
	r := h.do("POST", "/api/keys", map[string]any{"name": h.uniq("key"), "scopes": scopes}, o.h())
	r.want(h.t, http.StatusCreated)
	var k createdKey
	r.decode(h.t, &k)
	return k
}

// apiEvent is an event as GET /api/analytics/events shows it.
type apiEvent struct {
	ID         int64           `json:"id"`
	EventID    string          `json:"event_id"`
	Event      string          `json:"event"`
	UserID     string          `json:"user_id"`
	Source     string          `json:"source"`
	Timestamp  time.Time       `json:"timestamp"`
	ReceivedAt time.Time       `json:"received_at"`
	Value      float64         `json:"value"`
	Props      json.RawMessage `json:"props"`
}

// eventsPage is the answer of GET /api/analytics/events.
type eventsPage struct {
	Events     []apiEvent `json:"events"`
	NextCursor *string    `json:"next_cursor"`
}

// ingestResult is the answer of POST /api/analytics/events.
type ingestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"rejected"`
}

// send posts body to /api/analytics/events and wants a 202.
func (h *harness) send(headers map[string]string, body any) ingestResult {
	h.t.Helper()
	r := h.do("POST", "/api/analytics/events", body, headers)
	r.want(h.t, http.StatusAccepted)
	var res ingestResult
	r.decode(h.t, &res)
	return res
}

// listEvents gets one page of events with query (without the leading ?).
func (h *harness) listEvents(headers map[string]string, query string) eventsPage {
	h.t.Helper()
	r := h.do("GET", "/api/analytics/events?"+query, nil, headers)
	r.want(h.t, http.StatusOK)
	var p eventsPage
	r.decode(h.t, &p)
	return p
}

// allEvents follows next_cursor through every page of query.
// ownRequests is the number of key requests the tenant's tally.api.request
// events record: the sum of their values (requests alike that waited for
// the same drain of the auto-track buffer share an event).
func (h *harness) ownRequests(headers map[string]string) int {
	h.t.Helper()
	n := 0
	for _, e := range h.allEvents(headers, url.Values{"event": {tally.EventOwnAPIRequest}}) {
		n += int(e.Value)
	}
	return n
}

func (h *harness) allEvents(headers map[string]string, query url.Values) []apiEvent {
	h.t.Helper()
	var out []apiEvent
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	for range 1000 {
		p := h.listEvents(headers, q.Encode())
		out = append(out, p.Events...)
		if p.NextCursor == nil {
			return out
		}
		q.Set("cursor", *p.NextCursor)
	}
	h.t.Fatal("too many pages")
	return nil
}

// eventually polls cond every 20ms for up to 5s (auto-tracked events are
// written asynchronously) and fails with msg when it never holds.
func eventually(t testing.TB, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// problemDoc is an RFC 9457 problem document.
type problemDoc struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// hasField reports whether the problem names field in errors.
func (p problemDoc) hasField(field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

// leakMarkers are texts that must never reach a client: Go error strings,
// SQL and stack traces.
var leakMarkers = []string{"sql", "SQLITE", "goroutine", ".go:", "runtime.", "panic", "json: ", "strconv.", "<html"}

// assertProblem checks that r is an RFC 9457 problem document whose status
// member equals the HTTP status and that leaks no internals, and returns it.
func assertProblem(t testing.TB, r *apiResponse) problemDoc {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("%s: Content-Type %q, want application/problem+json", r, ct)
	}
	if r.Status < 400 {
		t.Errorf("%s: a problem needs an error status", r)
	}
	var p problemDoc
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("%s: problem body is not JSON: %v", r, err)
	}
	if p.Type == "" || p.Title == "" {
		t.Errorf("%s: problem lacks type or title", r)
	}
	if p.Status != r.Status {
		t.Errorf("%s: problem status %d != HTTP status %d", r, p.Status, r.Status)
	}
	lower := strings.ToLower(string(r.Body))
	for _, m := range leakMarkers {
		if strings.Contains(lower, strings.ToLower(m)) {
			t.Errorf("%s: problem body leaks %q", r, m)
		}
	}
	return p
}

// wantProblem checks that r is a problem with the given status.
func wantProblem(t testing.TB, r *apiResponse, status int) problemDoc {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: want status %d", r, status)
	}
	return assertProblem(t, r)
}

// TestHarness checks the harness itself: a fresh server answers, and a
// tenant owner, member and key can be made.
func TestHarness(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.do("GET", "/healthz", nil, nil).want(t, http.StatusOK)
	o := h.newTenant("harness")
	_, _ = h.member(o, "member")
	k := h.createKey(o, "analytics:read")
	if !strings.HasPrefix(k.Key, "tk_") {
		t.Errorf("key %q", k.Key)
	}
}

package server_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/usage"
)

// withMovableClock runs the app's clock ahead of the wall clock by what
// the returned offset holds (nanoseconds).
func withMovableClock() (harnessOption, *atomic.Int64) {
	var off atomic.Int64
	return func(c *app.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	}, &off
}

// apiAbsence is an absence alert as the API shows it.
type apiAbsence struct {
	ID             int64      `json:"id"`
	Event          string     `json:"event"`
	SilenceSeconds int64      `json:"silence_seconds"`
	Description    string     `json:"description"`
	State          string     `json:"state"`
	StateSince     time.Time  `json:"state_since"`
	LastSeenAt     *time.Time `json:"last_seen_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// TestAPIAbsenceAlerts manages absence alerts over the API (validation,
// conflicts, scopes, tenant isolation) and follows one end to end on both
// backends: builds stop, the alert fires once as a signed webhook, an
// audit entry and a metric; a build arrives and it resumes once.
func TestAPIAbsenceAlerts(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		rc := newReceiver(t)
		rc.up.Store(true)
		clockOpt, offset := withMovableClock()
		h := newHarness(t, append(opts, withPrivateWebhooks(), clockOpt)...)
		o := h.hookTenant("silent", rc)
		other := h.newTenant("other-silent")
		const path = "/api/analytics/alerts/absence"

		// Validation, as problems naming the fields.
		for _, tt := range []struct {
			body  any
			field string
		}{
			{map[string]any{"event": "", "silence_seconds": 3600}, "event"},
			{map[string]any{"event": "*", "silence_seconds": 3600}, "event"},
			{map[string]any{"event": "a b", "silence_seconds": 3600}, "event"},
			{map[string]any{"event": "builds", "silence_seconds": 10}, "silence_seconds"},
			{map[string]any{"event": "builds", "silence_seconds": 1 << 62}, "silence_seconds"},
			{map[string]any{"event": "builds", "silence_seconds": "6h"}, "silence_seconds"},
			{map[string]any{"event": "builds", "silence_seconds": 3600, "extra": 1}, "extra"},
		} {
			p := wantProblem(t, h.do("POST", path, tt.body, o.h()), http.StatusBadRequest)
			if !p.hasField(tt.field) {
				t.Errorf("POST %v: problem %+v does not name %s", tt.body, p, tt.field)
			}
		}
		wantProblem(t, h.do("POST", path, "not json", o.h()), http.StatusBadRequest)

		var a apiAbsence
		r := h.do("POST", path, map[string]any{"event": "builder.generate.completed", "silence_seconds": 60, "description": "builds stopped"}, o.h()).
			want(t, http.StatusCreated)
		r.decode(t, &a)
		if a.ID == 0 || a.Event != "builder.generate.completed" || a.SilenceSeconds != 60 || a.State != "ok" ||
			a.LastSeenAt != nil || r.Header.Get("Location") != path+"/"+strconv.FormatInt(a.ID, 10) {
			t.Fatalf("created %+v (Location %q)", a, r.Header.Get("Location"))
		}
		wantProblem(t, h.do("POST", path, map[string]any{"event": "builder.generate.completed", "silence_seconds": 120}, o.h()), http.StatusConflict)
		var prefix apiAbsence
		h.do("POST", path, map[string]any{"event": "files.*", "silence_seconds": 3600}, o.h()).want(t, http.StatusCreated).decode(t, &prefix)

		// Scopes and tenants.
		read := h.createKey(o, "analytics:read")
		var list struct {
			Alerts []apiAbsence `json:"alerts"`
		}
		h.do("GET", path, nil, hdr(read.Key, "")).want(t, http.StatusOK).decode(t, &list)
		if len(list.Alerts) != 2 || list.Alerts[0].ID != a.ID || list.Alerts[1].ID != prefix.ID {
			t.Fatalf("list %+v", list)
		}
		wantProblem(t, h.do("POST", path, map[string]any{"event": "x", "silence_seconds": 60}, hdr(read.Key, "")), http.StatusForbidden)
		wantProblem(t, h.do("DELETE", path+"/"+strconv.FormatInt(a.ID, 10), nil, hdr(read.Key, "")), http.StatusForbidden)
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			wantProblem(t, h.do(m, path+"/"+strconv.FormatInt(a.ID, 10), map[string]any{"event": "y", "silence_seconds": 60}, other.h()), http.StatusNotFound)
		}
		wantProblem(t, h.do("GET", path+"/not-a-number", nil, o.h()), http.StatusNotFound)
		h.do("GET", path, nil, other.h()).want(t, http.StatusOK).decode(t, &list)
		if len(list.Alerts) != 0 {
			t.Fatalf("another tenant sees %+v", list)
		}

		// PUT replaces; DELETE removes.
		var up apiAbsence
		h.do("PUT", path+"/"+strconv.FormatInt(prefix.ID, 10), map[string]any{"event": "files.uploaded", "silence_seconds": 7200}, o.h()).
			want(t, http.StatusOK).decode(t, &up)
		if up.Event != "files.uploaded" || up.SilenceSeconds != 7200 || up.ID != prefix.ID {
			t.Fatalf("updated %+v", up)
		}
		wantProblem(t, h.do("PUT", path+"/"+strconv.FormatInt(prefix.ID, 10), map[string]any{"event": "builder.generate.completed", "silence_seconds": 60}, o.h()), http.StatusConflict)
		h.do("DELETE", path+"/"+strconv.FormatInt(prefix.ID, 10), nil, o.h()).want(t, http.StatusNoContent)
		wantProblem(t, h.do("GET", path+"/"+strconv.FormatInt(prefix.ID, 10), nil, o.h()), http.StatusNotFound)

		// End to end: a build, then two minutes without one.
		h.builds(o, 1)
		h.builds(other, 1)
		offset.Store(int64(2 * time.Minute))
		ctx := t.Context()
		if n, err := h.app.Absence.Evaluate(ctx); err != nil || n != 1 {
			t.Fatalf("Evaluate after the silence = %d, %v; want 1", n, err)
		}
		if n, err := h.app.Absence.Evaluate(ctx); err != nil || n != 0 {
			t.Fatalf("Evaluate again = %d, %v; want 0 (fired once)", n, err)
		}
		h.do("GET", path+"/"+strconv.FormatInt(a.ID, 10), nil, o.h()).want(t, http.StatusOK).decode(t, &a)
		if a.State != "silent" || a.LastSeenAt == nil {
			t.Fatalf("after the silence %+v", a)
		}
		h.builds(o, 1) // stamped by the app's clock, after the silence began
		if n, err := h.app.Absence.Evaluate(ctx); err != nil || n != 1 {
			t.Fatalf("Evaluate after a build = %d, %v; want 1", n, err)
		}
		if n, err := h.app.Absence.Evaluate(ctx); err != nil || n != 0 {
			t.Fatalf("Evaluate again = %d, %v; want 0 (resumed once)", n, err)
		}

		var bodies []string
		eventually(t, "both absence webhooks delivered", func() bool {
			_, bodies, _ = rc.snapshot()
			return len(bodies) == 2
		})
		_, _, errs := rc.snapshot()
		if len(errs) > 0 {
			t.Fatalf("signature checks failed: %v", errs)
		}
		var types []string
		for _, b := range bodies {
			var p usage.AbsencePayload
			if err := json.Unmarshal([]byte(b), &p); err != nil {
				t.Fatal(err)
			}
			if p.Data.Tenant != "silent" || p.Data.AlertID != a.ID || p.Data.Event != "builder.generate.completed" || p.Data.SilenceSeconds != 60 {
				t.Errorf("payload %s", b)
			}
			types = append(types, p.Type)
		}
		if strings.Join(types, ",") != "absence.silent,absence.resumed" {
			t.Fatalf("webhook types %v", types)
		}
		p := h.deliveries(o.h(), "")
		if len(p.Deliveries) != 2 || p.Deliveries[0].EventType != "absence.resumed" || p.Deliveries[1].EventType != "absence.silent" ||
			p.Deliveries[1].Metric != "builder.generate.completed" {
			t.Fatalf("delivery log %+v", p.Deliveries)
		}

		var audit struct {
			Entries []struct {
				Actor  string `json:"actor"`
				Action string `json:"action"`
				Target string `json:"target"`
			} `json:"entries"`
		}
		h.do("GET", "/api/analytics/audit?limit=100", nil, o.h()).want(t, http.StatusOK).decode(t, &audit)
		actions := map[string]int{}
		for _, e := range audit.Entries {
			if strings.HasPrefix(e.Action, "absence") {
				actions[e.Actor+" "+e.Action+" "+e.Target]++
			}
		}
		for _, want := range []string{"system absence.silent builder.generate.completed", "system absence.resumed builder.generate.completed"} {
			if actions[want] != 1 {
				t.Errorf("audit %q: %d entries, want 1 (all: %v)", want, actions[want], actions)
			}
		}
		if actions["user:"+o.email+" absence_alert.created builder.generate.completed"] != 1 {
			t.Errorf("creation not audited: %v", actions)
		}
		m := h.metrics()
		for _, want := range []string{`sbh_absence_alerts_total{kind="silent",tenant="silent"} 1`, `sbh_absence_alerts_total{kind="resumed",tenant="silent"} 1`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		h.noPanic(t)
	})
}

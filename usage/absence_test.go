package usage_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/sqlite"
	"github.com/tallyhq/tally/usage"
)

// absenceStore is a store of both backends with what absence alerts need.
type absenceStore interface {
	tally.Store
	tally.AbsenceStore
}

// TestAbsenceAlerts runs three instances over one database on each
// backend: a silence fires once, its resumption fires once, however many
// instances evaluate at once, and both arrive as signed webhooks, audit
// entries and metric counts. Exact names and prefixes alike.
func TestAbsenceAlerts(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		open func(t *testing.T, now func() time.Time) []absenceStore
	}{
		{"sqlite", func(t *testing.T, now func() time.Time) []absenceStore {
			path := filepath.Join(t.TempDir(), "tally.db")
			var out []absenceStore
			for range 3 {
				db, err := sqlite.Open(context.Background(), path, sqlite.Options{Now: now})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				out = append(out, db)
			}
			return out
		}},
		{"postgres", func(t *testing.T, now func() time.Time) []absenceStore {
			url := pgtest.FreshSchema(t)
			var out []absenceStore
			for range 3 {
				db, err := postgres.Open(context.Background(), pgtest.WithParams(url, map[string]string{"pool_max_conns": "4"}), postgres.Options{Now: now})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				out = append(out, db)
			}
			return out
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			t0 := time.Now().UTC().Truncate(time.Second)
			clk := &clock{t: t0}
			stores := b.open(t, clk.Now)
			db := stores[0]

			type received struct {
				header http.Header
				body   []byte
			}
			var mu sync.Mutex
			var got []received
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, received{r.Header.Clone(), body})
				mu.Unlock()
			}))
			defer hook.Close()
			u := &tally.User{Email: "owner@example.com", Name: "Owner"}
			if err := db.CreateUser(ctx, u, "hash"); err != nil {
				t.Fatal(err)
			}
			tn := &tally.Tenant{Slug: "acme", Name: "Acme"}
			if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
				t.Fatal(err)
			}
			secret := tally.NewWebhookSecret()
			tn.WebhookURL, tn.WebhookSecret = hook.URL, secret
			if err := db.UpdateTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}

			var regs []*prometheus.Registry
			var svcs []*usage.Absence
			for _, s := range stores {
				reg := prometheus.NewRegistry()
				regs = append(regs, reg)
				svcs = append(svcs, usage.NewAbsence(usage.AbsenceConfig{Now: clk.Now}, s, reg))
			}
			exact, err := svcs[0].Create(ctx, tn.ID, tally.AbsenceAlertInput{Event: "builder.generate.completed", SilenceSeconds: 6 * 3600})
			if err != nil {
				t.Fatal(err)
			}
			prefix, err := svcs[1].Create(ctx, tn.ID, tally.AbsenceAlertInput{Event: "builder.*", SilenceSeconds: 6 * 3600, Description: "any build step"})
			if err != nil {
				t.Fatal(err)
			}
			// Another tenant's events never touch acme's alerts.
			other := &tally.Tenant{Slug: "other", Name: "Other"}
			if err := db.CreateTenant(ctx, other, u.ID); err != nil {
				t.Fatal(err)
			}

			n := 0
			insert := func(tenant int64, name string, at time.Time) {
				t.Helper()
				n++
				e := event(tenant, name, at)
				e.EventID = "abs-" + b.name + "-" + string(rune('a'+n))
				if _, err := db.InsertEvents(ctx, []tally.Event{e}); err != nil {
					t.Fatal(err)
				}
			}
			// evaluate runs every instance at once and returns the sum of
			// the transitions they announced.
			evaluate := func() int {
				t.Helper()
				var wg sync.WaitGroup
				var total atomic.Int64
				for _, s := range svcs {
					wg.Go(func() {
						k, err := s.Evaluate(ctx)
						if err != nil {
							t.Error(err)
						}
						total.Add(int64(k))
					})
				}
				wg.Wait()
				return int(total.Load())
			}
			state := func(id int64) *tally.AbsenceAlert {
				t.Helper()
				a, err := svcs[2].Get(ctx, tn.ID, id)
				if err != nil {
					t.Fatal(err)
				}
				return a
			}

			if k := evaluate(); k != 0 {
				t.Fatalf("fresh alerts: %d transitions", k)
			}
			insert(tn.ID, "builder.generate.completed", t0.Add(time.Hour))
			clk.Set(t0.Add(2 * time.Hour))
			if k := evaluate(); k != 0 {
				t.Fatalf("within the silence: %d transitions", k)
			}
			insert(other.ID, "builder.generate.completed", t0.Add(7*time.Hour))
			clk.Set(t0.Add(7*time.Hour + time.Minute)) // six hours after the last event
			if k := evaluate(); k != 2 {
				t.Fatalf("silence of both alerts: %d transitions announced by three instances, want 2", k)
			}
			for _, id := range []int64{exact.ID, prefix.ID} {
				a := state(id)
				if a.State != tally.AbsenceSilent || !a.StateSince.Equal(t0.Add(time.Hour)) || a.LastSeenAt == nil || !a.LastSeenAt.Equal(t0.Add(time.Hour)) {
					t.Fatalf("after the silence: %+v", a)
				}
			}
			clk.Set(clk.Now().Add(time.Hour))
			if k := evaluate(); k != 0 {
				t.Fatalf("the silence goes on: %d transitions, want none (fired once)", k)
			}

			// A started build resumes the prefix alert only.
			insert(tn.ID, "builder.generate.started", t0.Add(8*time.Hour+30*time.Minute))
			clk.Set(t0.Add(9 * time.Hour))
			if k := evaluate(); k != 1 {
				t.Fatalf("resumption of the prefix alert: %d transitions, want 1", k)
			}
			if a := state(prefix.ID); a.State != tally.AbsenceOK || !a.StateSince.Equal(t0.Add(8*time.Hour+30*time.Minute)) {
				t.Fatalf("prefix alert after the event: %+v", a)
			}
			if a := state(exact.ID); a.State != tally.AbsenceSilent {
				t.Fatalf("exact alert after another event: %+v", a)
			}
			if k := evaluate(); k != 0 {
				t.Fatalf("again: %d transitions, want none (resumed once)", k)
			}

			// Three instances, one announcement of each transition: the
			// metric summed over them, the audit log, the webhooks.
			var silent, resumed float64
			for _, reg := range regs {
				mfs, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				for _, mf := range mfs {
					for _, m := range mf.GetMetric() {
						for _, l := range m.GetLabel() {
							if l.GetName() == "kind" && l.GetValue() == "silent" {
								silent += m.GetCounter().GetValue()
							} else if l.GetName() == "kind" && l.GetValue() == "resumed" {
								resumed += m.GetCounter().GetValue()
							}
						}
					}
				}
			}
			if silent != 2 || resumed != 1 {
				t.Fatalf("sbh_absence_alerts_total over three instances: silent %v, resumed %v; want 2 and 1", silent, resumed)
			}
			entries, _, err := db.ListAudit(ctx, tn.ID, tally.AuditFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			actions := map[string]int{}
			for _, e := range entries {
				actions[e.Action+" "+e.Target]++
			}
			if actions["absence.silent builder.generate.completed"] != 1 || actions["absence.silent builder.*"] != 1 ||
				actions["absence.resumed builder.*"] != 1 || actions["absence.resumed builder.generate.completed"] != 0 {
				t.Fatalf("audit: %v", actions)
			}

			disp := usage.NewDispatcher(usage.DispatcherConfig{Now: clk.Now}, stores[1])
			if claimed, _, err := disp.RunOnce(ctx); err != nil || claimed != 3 {
				t.Fatalf("dispatch: %d claimed, %v; want 3", claimed, err)
			}
			mu.Lock()
			defer mu.Unlock()
			types := map[string]int{}
			for _, r := range got {
				if err := tally.VerifyWebhook(secret, r.header, r.body, 0, clk.Now()); err != nil {
					t.Fatalf("delivery %s: %v", r.body, err)
				}
				var p usage.AbsencePayload
				if err := json.Unmarshal(r.body, &p); err != nil {
					t.Fatal(err)
				}
				types[p.Type+" "+p.Data.Event]++
				if p.Data.Tenant != "acme" || p.Data.SilenceSeconds != 6*3600 || p.Data.State == "" || p.Data.LastSeenAt == nil {
					t.Fatalf("payload %s", r.body)
				}
				if p.Type == usage.WebhookAbsenceType {
					if since, _ := time.Parse(time.RFC3339Nano, p.Data.Since); !since.Equal(t0.Add(time.Hour)) || p.Data.State != "silent" {
						t.Fatalf("silence payload %s", r.body)
					}
				}
			}
			if len(got) != 3 || types["absence.silent builder.generate.completed"] != 1 || types["absence.silent builder.*"] != 1 ||
				types["absence.resumed builder.*"] != 1 {
				t.Fatalf("webhooks: %v", types)
			}
		})
	}
}

// TestAbsenceAlertValidation holds the input rules: names or prefixes,
// a silence within bounds, a short description.
func TestAbsenceAlertValidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in    tally.AbsenceAlertInput
		field string // "": valid
	}{
		{tally.AbsenceAlertInput{Event: "builder.generate.completed", SilenceSeconds: 6 * 3600}, ""},
		{tally.AbsenceAlertInput{Event: "builder.*", SilenceSeconds: 60}, ""},
		{tally.AbsenceAlertInput{Event: "", SilenceSeconds: 60}, "event"},
		{tally.AbsenceAlertInput{Event: "*", SilenceSeconds: 60}, "event"},
		{tally.AbsenceAlertInput{Event: "a b", SilenceSeconds: 60}, "event"},
		{tally.AbsenceAlertInput{Event: "a..b", SilenceSeconds: 60}, "event"},
		{tally.AbsenceAlertInput{Event: "a*b", SilenceSeconds: 60}, "event"},
		{tally.AbsenceAlertInput{Event: "a", SilenceSeconds: 59}, "silence_seconds"},
		{tally.AbsenceAlertInput{Event: "a", SilenceSeconds: 0}, "silence_seconds"},
		{tally.AbsenceAlertInput{Event: "a", SilenceSeconds: 90*86400 + 1}, "silence_seconds"},
		{tally.AbsenceAlertInput{Event: "a", SilenceSeconds: 1 << 62}, "silence_seconds"},
		{tally.AbsenceAlertInput{Event: "a", SilenceSeconds: 60, Description: string(make([]byte, 501))}, "description"},
	} {
		err := tt.in.Validate()
		var fields []string
		if e, ok := err.(*tally.Error); ok {
			for _, f := range e.Fields {
				fields = append(fields, f.Field)
			}
		}
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v: %v", tt.in, err)
		case tt.field != "" && (len(fields) != 1 || fields[0] != tt.field):
			t.Errorf("%+v: fields %v (%v), want %s", tt.in, fields, err, tt.field)
		}
	}
}

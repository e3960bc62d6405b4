package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tallyhq/tally/internal/app/apptest"
)

// lineWriter collects output and ends ctx once it holds n lines.
type lineWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Count(w.buf.String(), "\n") >= w.n {
		w.cancel()
	}
	return len(p), nil
}

// TestEventsTail: tally events tail -after ID prints, as JSON lines, the
// events after that id that match its filter, through the Go SDK against a
// running tally; without a key it is a usage error.
func TestEventsTail(t *testing.T) {
	t.Parallel()
	_, srv := apptest.Start(t, nil)
	key := apptest.Key(t, srv, "acme", "analytics:write", "analytics:read")
	post := func(name, id string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/analytics/events", strings.NewReader(`{"event":"`+name+`","event_id":"`+id+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := srv.Client().Do(req)
		if err != nil || res.StatusCode != http.StatusAccepted {
			t.Fatalf("post %s: %v %v", id, err, res)
		}
		res.Body.Close()
	}
	post("deploy.started", "d-0")
	req, _ := http.NewRequest("GET", srv.URL+"/api/analytics/events?event=deploy.started", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Events []struct {
			ID int64 `json:"id"`
		} `json:"events"`
	}
	json.NewDecoder(res.Body).Decode(&page)
	res.Body.Close()
	if len(page.Events) != 1 {
		t.Fatalf("listed %+v", page)
	}
	post("page.viewed", "p-1")
	post("deploy.finished", "d-1")
	post("deploy.finished", "d-2")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &lineWriter{n: 2, cancel: cancel}
	env := envOf(map[string]string{"TALLY_URL": srv.URL, "TALLY_API_KEY": key})
	err = run(ctx, []string{"events", "tail", "-event", "deploy.*", "-json", "-after", strconv.FormatInt(page.Events[0].ID, 10)}, env, out, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("events tail: %v", err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out.buf.String()), "\n") {
		var e struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids = append(ids, e.EventID)
	}
	if len(ids) != 2 || ids[0] != "d-1" || ids[1] != "d-2" {
		t.Fatalf("events tail printed %v, want d-1, d-2", ids)
	}

	var ce *configError
	if err := run(t.Context(), []string{"events", "tail"}, envOf(map[string]string{"TALLY_URL": srv.URL}), &bytes.Buffer{}, &bytes.Buffer{}); !errors.As(err, &ce) {
		t.Fatalf("events tail without a key: %v, want a usage error", err)
	}
}

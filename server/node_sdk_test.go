package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/testenv"
)

// TestNodeLibraries runs testdata/node/send.js, which sends through the
// unmodified @segment/analytics-node and posthog-node libraries (installed
// by npm ci in testdata/node, as .ci/run does) every event twice with the
// same id, and checks that tally stored each once, mapped.
func TestNodeLibraries(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node", "not installed", "apt-get install -y nodejs npm")
	}
	dir := filepath.Join("testdata", "node")
	for _, mod := range []string{"@segment/analytics-node", "posthog-node"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", mod)); err != nil {
			testenv.Missing(t, "the npm package "+mod, "not installed", "cd server/testdata/node && npm ci")
		}
	}
	h := newHarness(t)
	o := h.newTenant("node")
	k := h.createKey(o, "analytics:write")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "send.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TALLY_URL="+h.srv.URL, "TALLY_KEY="+k.Key)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node send.js: %v\n%s", err, out)
	}

	seg := eventsOf(t, h, o, "segment")
	for id, want := range map[string]struct{ name, user string }{
		"node-seg-track": {"Plan_Upgraded", "node-u1"}, "node-seg-page": {"page", "node-anon"}, "node-seg-identify": {"identify", "node-u1"},
	} {
		if e, ok := seg[id]; !ok || e.Event != want.name || e.UserID != want.user {
			t.Errorf("segment %s stored as %+v, want %s/%s", id, e, want.name, want.user)
		}
	}
	if p := props(t, seg["node-seg-track"]); p["plan"] != "pro" {
		t.Errorf("track props %v", p)
	}
	ph := eventsOf(t, h, o, "posthog")
	if e := ph["0b6f5a4e-8a51-4f0e-9d0c-2a4f3c1e7b01"]; e.Event != "pageview" || e.UserID != "node-d1" {
		t.Errorf("posthog pageview stored as %+v", e)
	}
	if e := ph["0b6f5a4e-8a51-4f0e-9d0c-2a4f3c1e7b02"]; e.Event != "report_exported" || e.UserID != "node-d2" {
		t.Errorf("posthog capture stored as %+v", e)
	}
	if len(seg) != 3 || len(ph) != 2 {
		t.Errorf("stored %d segment and %d posthog events, want 3 and 2 (each sent twice)", len(seg), len(ph))
	}
	if got := compatMetric(t, h, "segment", "duplicate"); got != 3 {
		t.Errorf("segment duplicates %d, want 3", got)
	}
	if got := compatMetric(t, h, "posthog", "duplicate"); got != 2 {
		t.Errorf("posthog duplicates %d, want 2", got)
	}
	h.noPanic(t)
}

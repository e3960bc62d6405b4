package server_test

import (
	"os"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/app/apptest"
	"gopkg.in/yaml.v3"
)

// TestOpenAPICoversRoutes fails when a route registered in routes.go is
// missing from api/openapi.yaml (or documented under another method).
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	a, _ := apptest.Start(t, nil)
	patterns := a.Server.Patterns()
	if len(patterns) < 30 {
		t.Fatalf("only %d routes registered; the harness is not the real server", len(patterns))
	}
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			t.Errorf("route %q has no method", p)
			continue
		}
		if strings.HasSuffix(path, "/") && path != "/" {
			continue // a static file tree, e.g. GET /ui/static/
		}
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("route %s is missing from api/openapi.yaml", p)
			continue
		}
		if _, ok := ops[strings.ToLower(method)]; !ok {
			t.Errorf("route %s: api/openapi.yaml documents %s without %s", p, path, method)
		}
	}
}

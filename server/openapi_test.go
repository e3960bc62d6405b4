package server_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/server"
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

// TestQueryParamsMatchOpenAPI holds the server's one table of query
// parameters per API route (server.QueryParams) to api/openapi.yaml: the
// same names for every route, so that what the contract lists is what the
// server takes, and nothing else.
func TestQueryParamsMatchOpenAPI(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type param struct {
		Ref  string `yaml:"$ref"`
		Name string `yaml:"name"`
		In   string `yaml:"in"`
	}
	type op struct {
		Parameters []param `yaml:"parameters"`
	}
	var doc struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]param `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	queryNames := func(ps []param) []string {
		var out []string
		for _, p := range ps {
			if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
				p = doc.Components.Parameters[name]
			}
			if p.In == "query" {
				out = append(out, p.Name)
			}
		}
		return out
	}
	table := server.QueryParams()
	a, _ := apptest.Start(t, nil)
	checked := 0
	for _, pattern := range a.Server.Patterns() {
		method, path, _ := strings.Cut(pattern, " ")
		if !strings.HasPrefix(path, "/api/") {
			continue
		}
		var common, own op
		if n, ok := doc.Paths[path]["parameters"]; ok {
			_ = n.Decode(&common.Parameters)
		}
		n, ok := doc.Paths[path][strings.ToLower(method)]
		if !ok {
			continue // TestOpenAPICoversRoutes reports it
		}
		if err := n.Decode(&own); err != nil {
			t.Fatalf("%s: %v", pattern, err)
		}
		documented := append(queryNames(common.Parameters), queryNames(own.Parameters)...)
		slices.Sort(documented)
		accepted := slices.Sorted(slices.Values(table[pattern]))
		if !slices.Equal(documented, accepted) {
			t.Errorf("%s: api/openapi.yaml documents query parameters %v, the server takes %v", pattern, documented, accepted)
		}
		delete(table, pattern)
		checked++
	}
	for pattern := range table {
		t.Errorf("server.QueryParams lists %s, which is not a route", pattern)
	}
	if checked < 25 {
		t.Errorf("only %d API routes checked", checked)
	}
}

// TestOpenAPIDocumentsRefusals checks that every operation documents the
// answers the middleware gives before any handler: 431 everywhere, 415 on
// every API route that takes a body, and 400 for a repeated X-Tenant-Slug
// on every API route that reads it.
func TestOpenAPIDocumentsRefusals(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type op struct {
		Responses map[string]yaml.Node `yaml:"responses"`
	}
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "Sent more than once, or with invalid UTF-8 or NUL: 400 naming") {
		t.Error("the X-Tenant-Slug parameter does not document the 400 for a repeated header")
	}
	n := 0
	for path, ops := range doc.Paths {
		for method, node := range ops {
			if method == "parameters" {
				continue
			}
			var o op
			if err := node.Decode(&o); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			n++
			if _, ok := o.Responses["431"]; !ok {
				t.Errorf("%s %s does not document 431", method, path)
			}
			body := method == "post" || method == "put" || method == "patch"
			if _, ok := o.Responses["415"]; body && strings.HasPrefix(path, "/api/") && !ok {
				t.Errorf("%s %s does not document 415", method, path)
			}
			if _, ok := o.Responses["400"]; strings.HasPrefix(path, "/api/") && !ok {
				t.Errorf("%s %s does not document 400 (repeated X-Tenant-Slug, unknown query parameters)", method, path)
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d operations", n)
	}
}

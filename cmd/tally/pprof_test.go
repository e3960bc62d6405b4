package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPprofOnlyWhenOn(t *testing.T) {
	t.Parallel()
	operator := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, c := range []struct {
		on   bool
		path string
		want int
	}{
		{true, "/debug/pprof/", http.StatusOK},
		{true, "/debug/pprof/heap?debug=1", http.StatusOK},
		{true, "/metrics", http.StatusTeapot}, // the operator handler still answers
		{false, "/debug/pprof/", http.StatusTeapot},
	} {
		rec := httptest.NewRecorder()
		withPprof(operator, c.on).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("PPROF=%v, GET %s: %d, want %d", c.on, c.path, rec.Code, c.want)
		}
	}
}

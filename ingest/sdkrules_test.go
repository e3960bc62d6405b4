package ingest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/ingest"
)

// TestSDKAgreesWithServer runs one table of events, each at or just past
// a limit of the event contract, through the Go SDK's check and through
// the server's decoder: both must accept the same events and reject the
// same ones naming the same field.
func TestSDKAgreesWithServer(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	nest := func(levels int) map[string]any {
		m := map[string]any{"leaf": 1}
		for range levels - 1 {
			m = map[string]any{"n": m}
		}
		return m
	}
	// sized returns props of exactly n bytes as compact JSON, with
	// characters that HTML-escaping encoders would grow.
	sized := func(n int) map[string]any {
		const frame = len(`{"k":""}`)
		return map[string]any{"k": strings.Repeat("<", 10) + strings.Repeat("x", n-frame-10)}
	}
	cases := []struct {
		name  string
		event client.Event
		field string // "" when both accept
	}{
		{"minimal", client.Event{Name: "a"}, ""},
		{"name at limit", client.Event{Name: strings.Repeat("a", tally.MaxEventNameLen)}, ""},
		{"name over limit", client.Event{Name: strings.Repeat("a", tally.MaxEventNameLen+1)}, "event"},
		{"name empty segment", client.Event{Name: "a..b"}, "event"},
		{"name trailing dot", client.Event{Name: "a."}, "event"},
		{"name bad char", client.Event{Name: "a b"}, "event"},
		{"source at limit", client.Event{Name: "a", Source: strings.Repeat("s", tally.MaxSourceLen)}, ""},
		{"source over limit", client.Event{Name: "a", Source: strings.Repeat("s", tally.MaxSourceLen+1)}, "source"},
		{"source upper case", client.Event{Name: "a", Source: "Web"}, "source"},
		{"event id at limit in multi-byte chars", client.Event{Name: "a", EventID: strings.Repeat("é", tally.MaxEventIDLen)}, ""},
		{"event id over limit", client.Event{Name: "a", EventID: strings.Repeat("é", tally.MaxEventIDLen+1)}, "event_id"},
		{"event id with NUL", client.Event{Name: "a", EventID: "a\x00b"}, "event_id"},
		{"user id at limit in multi-byte chars", client.Event{Name: "a", UserID: strings.Repeat("ü", tally.MaxUserIDLen)}, ""},
		{"user id over limit", client.Event{Name: "a", UserID: strings.Repeat("u", tally.MaxUserIDLen+1)}, "user_id"},
		{"user id with NUL", client.Event{Name: "a", UserID: "\x00"}, "user_id"},
		{"value zero", client.Event{Name: "a", Value: f(0)}, ""},
		{"value negative", client.Event{Name: "a", Value: f(-2.5)}, ""},
		{"props at depth limit", client.Event{Name: "a", Props: nest(tally.MaxPropsDepth)}, ""},
		{"props over depth limit", client.Event{Name: "a", Props: nest(tally.MaxPropsDepth + 1)}, "props"},
		{"props at size limit", client.Event{Name: "a", Props: sized(tally.MaxPropsBytes)}, ""},
		{"props over size limit", client.Event{Name: "a", Props: sized(tally.MaxPropsBytes + 1)}, "props"},
		{"usage increment", client.Event{Name: tally.EventUsageIncrement, Value: f(3), Props: map[string]any{"metric": "m"}}, ""},
	}
	v := ingest.NewValidator(ingest.Config{})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			sdkField := ""
			if err := tt.event.Validate(); err != nil {
				var ee *client.EventError
				if !errors.As(err, &ee) || !errors.Is(err, client.ErrInvalidEvent) {
					t.Fatalf("SDK error %v is not an *EventError matching ErrInvalidEvent", err)
				}
				sdkField = ee.Field
			}
			d, err := v.Decode(wire(t, tt.event), &tally.Tenant{ID: 1}, now)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			serverField := ""
			if len(d.Rejected) > 0 {
				serverField = d.Rejected[0].Field
				if strings.HasPrefix(serverField, "props") {
					serverField = "props"
				}
			}
			if sdkField != tt.field || serverField != tt.field {
				t.Errorf("SDK rejects field %q, server %q (%v); want %q", sdkField, serverField, d.Rejected, tt.field)
			}
		})
	}
}

// wire is e as the SDK puts it on the wire.
func wire(t *testing.T, e client.Event) []byte {
	t.Helper()
	m := map[string]any{"event": e.Name, "timestamp": "2026-03-01T11:59:00Z"}
	for k, v := range map[string]string{"source": e.Source, "event_id": e.EventID, "user_id": e.UserID} {
		if v != "" {
			m[k] = v
		}
	}
	if e.Value != nil {
		m["value"] = *e.Value
	}
	if e.Props != nil {
		m["props"] = e.Props
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

var (
	testNow    = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	testTenant = &tally.Tenant{ID: 7, Slug: "acme"}
)

func rfc(t time.Time) string { return t.Format(time.RFC3339Nano) }

// decodeOne decodes a single-event body and returns the event or its
// rejection.
func decodeOne(t *testing.T, v *Validator, body string) (*tally.Event, *Rejection) {
	t.Helper()
	d, err := v.Decode([]byte(body), testTenant, testNow)
	if err != nil {
		t.Fatalf("Decode(%.80q): request error %v", body, err)
	}
	if len(d.Events)+len(d.Rejected) != 1 {
		t.Fatalf("Decode(%.80q): %d events, %d rejected; want one in all", body, len(d.Events), len(d.Rejected))
	}
	if len(d.Rejected) == 1 {
		if d.Rejected[0].Index != 0 {
			t.Fatalf("rejection index %d, want 0", d.Rejected[0].Index)
		}
		return nil, &d.Rejected[0]
	}
	if len(d.Index) != 1 || d.Index[0] != 0 {
		t.Fatalf("Index = %v, want [0]", d.Index)
	}
	return &d.Events[0], nil
}

// nest returns props nested n levels deep (props itself is level 1).
func nest(n int) string {
	s := `1`
	for i := 1; i < n; i++ {
		s = `{"k":` + s + `}`
	}
	return `{"k":` + s + `}`
}

func TestDecodeEventRules(t *testing.T) {
	t.Parallel()
	x := strings.Repeat
	future := rfc(testNow.Add(time.Hour))
	tooFuture := rfc(testNow.Add(time.Hour + time.Microsecond))
	oldest := rfc(testNow.AddDate(0, 0, -tally.DefaultRetentionDays))
	tooOld := rfc(tally.DayStart(testNow).AddDate(0, 0, -tally.DefaultRetentionDays).Add(-time.Microsecond))
	props8K := `{"k":"` + x("x", tally.MaxPropsBytes-8) + `"}`
	props8K1 := `{"k":"` + x("x", tally.MaxPropsBytes-7) + `"}`

	tests := []struct {
		name  string
		body  string
		field string // "-": accepted
		msg   string // substring of the rejection
	}{
		{"minimal", `{"event":"a"}`, "-", ""},
		{"segments", `{"event":"Auth.user-1.log_in"}`, "-", ""},
		{"name 128", `{"event":"` + x("a", 128) + `"}`, "-", ""},
		{"name 128 segmented", `{"event":"` + x("ab.", 42) + `ab"}`, "-", ""},
		{"name 129", `{"event":"` + x("a", 129) + `"}`, "event", tally.MsgEventName},
		{"name missing", `{"user_id":"u"}`, "event", "event: required"},
		{"name null", `{"event":null}`, "event", "event: required"},
		{"name empty", `{"event":""}`, "event", "event: must be 1-128 chars of dot-separated [A-Za-z0-9_-] segments"},
		{"name empty segment", `{"event":"a..b"}`, "event", tally.MsgEventName},
		{"name leading dot", `{"event":".a"}`, "event", tally.MsgEventName},
		{"name trailing dot", `{"event":"a."}`, "event", tally.MsgEventName},
		{"name space", `{"event":"a b"}`, "event", tally.MsgEventName},
		{"name non-ascii", `{"event":"caf\u00e9"}`, "event", tally.MsgEventName},
		{"name NUL", `{"event":"a\u0000"}`, "event", tally.MsgEventName},
		{"name number", `{"event":5}`, "event", "event: must be a string"},

		{"source default", `{"event":"a","source":null}`, "-", ""},
		{"source 64", `{"event":"a","source":"` + x("s", 64) + `"}`, "-", ""},
		{"source charset", `{"event":"a","source":"web_app-2"}`, "-", ""},
		{"source 65", `{"event":"a","source":"` + x("s", 65) + `"}`, "source", tally.MsgSource},
		{"source empty", `{"event":"a","source":""}`, "source", tally.MsgSource},
		{"source upper", `{"event":"a","source":"API"}`, "source", "source: must be 1-64 chars of [a-z0-9_-]"},
		{"source dot", `{"event":"a","source":"a.b"}`, "source", tally.MsgSource},
		{"source number", `{"event":"a","source":1}`, "source", "source: must be a string"},

		{"timestamp 1h ahead", `{"event":"a","timestamp":"` + future + `"}`, "-", ""},
		{"timestamp at retention", `{"event":"a","timestamp":"` + oldest + `"}`, "-", ""},
		{"timestamp offset", `{"event":"a","timestamp":"2026-01-15T13:30:00+02:00"}`, "-", ""},
		{"timestamp too far ahead", `{"event":"a","timestamp":"` + tooFuture + `"}`, "timestamp", "timestamp: must not be more than 1h0m0s in the future"},
		{"timestamp past retention", `{"event":"a","timestamp":"` + tooOld + `"}`, "timestamp", "timestamp: must not be older than the retention start 2024-12-11"},
		{"timestamp zero time", `{"event":"a","timestamp":"0001-01-01T00:00:00Z"}`, "timestamp", "retention"},
		{"timestamp not rfc3339", `{"event":"a","timestamp":"2026-01-15 10:00:00"}`, "timestamp", "timestamp: must be an RFC 3339 time"},
		{"timestamp date only", `{"event":"a","timestamp":"2026-01-15"}`, "timestamp", msgTime},
		{"timestamp number", `{"event":"a","timestamp":1768478400}`, "timestamp", msgTime},

		{"event_id 128", `{"event":"a","event_id":"` + x("i", 128) + `"}`, "-", ""},
		{"event_id 128 runes", `{"event":"a","event_id":"` + x("é", 128) + `"}`, "-", ""},
		{"event_id 129", `{"event":"a","event_id":"` + x("i", 129) + `"}`, "event_id", "event_id: must be 1-128 chars"},
		{"event_id empty", `{"event":"a","event_id":""}`, "event_id", "event_id: must be 1-128 chars"},
		{"event_id NUL", `{"event":"a","event_id":"a\u0000b"}`, "event_id", "event_id: must not contain U+0000"},
		{"event_id number", `{"event":"a","event_id":12}`, "event_id", "event_id: must be a string"},

		{"user_id 256", `{"event":"a","user_id":"` + x("u", 256) + `"}`, "-", ""},
		{"user_id empty", `{"event":"a","user_id":""}`, "-", ""},
		{"user_id 257", `{"event":"a","user_id":"` + x("u", 257) + `"}`, "user_id", "user_id: must be at most 256 chars"},
		{"user_id NUL", `{"event":"a","user_id":"\u0000"}`, "user_id", "user_id: must not contain U+0000"},
		{"user_id number", `{"event":"a","user_id":42}`, "user_id", "user_id: must be a string"},

		{"value zero", `{"event":"a","value":0}`, "-", ""},
		{"value negative fraction", `{"event":"a","value":-2.5}`, "-", ""},
		{"value max", `{"event":"a","value":1e15}`, "-", ""},
		{"value negative max", `{"event":"a","value":-1e15}`, "-", ""},
		{"value above max", `{"event":"a","value":1.000000000000001e15}`, "value", tally.MsgValue},
		{"value largest double", `{"event":"a","value":1.7976931348623157e308}`, "value", tally.MsgValue},
		{"value negative largest double", `{"event":"a","value":-1.7976931348623157e308}`, "value", tally.MsgValue},
		{"value underflow", `{"event":"a","value":1e-999}`, "-", ""},
		{"value overflow", `{"event":"a","value":1e999}`, "value", "value: " + tally.MsgValue},
		{"value negative overflow", `{"event":"a","value":-1e999}`, "value", tally.MsgValue},
		{"value string", `{"event":"a","value":"1"}`, "value", tally.MsgValue},
		{"value bool", `{"event":"a","value":true}`, "value", tally.MsgValue},
		{"value object", `{"event":"a","value":{}}`, "value", tally.MsgValue},

		{"props null", `{"event":"a","props":null}`, "-", ""},
		{"props empty", `{"event":"a","props":{}}`, "-", ""},
		{"props 8 KiB", `{"event":"a","props":` + props8K + `}`, "-", ""},
		{"props 8 KiB with spaces", `{"event":"a","props": ` + strings.Replace(props8K, ":", " : ", 1) + ` }`, "-", ""},
		{"props over 8 KiB", `{"event":"a","props":` + props8K1 + `}`, "props", "props: must be at most 8192 bytes"},
		{"props over 8 KiB nested", `{"event":"a","props":{"a":[` + strings.Repeat(`"xxxxxxxxxx",`, 700) + `1]}}`, "props", tally.MsgPropsLarge},
		{"props small after redaction", `{"event":"a","props":{"password":"` + x("p", 20000) + `"}}`, "-", ""},
		{"props depth 5", `{"event":"a","props":` + nest(5) + `}`, "-", ""},
		{"props depth 6", `{"event":"a","props":` + nest(6) + `}`, "props", "props: must nest at most 5 levels"},
		{"props depth 5 arrays", `{"event":"a","props":{"a":[[[{"b":1}]]]}}`, "-", ""},
		{"props depth 6 arrays", `{"event":"a","props":{"a":[[[[[1]]]]]}}`, "props", tally.MsgPropsDeep},
		{"props depth 6 empty", `{"event":"a","props":{"a":{"b":{"c":{"d":{"e":{}}}}}}}`, "props", tally.MsgPropsDeep},
		{"props deep redacted", `{"event":"a","props":{"a":{"b":{"c":{"token":{"x":{"y":{}}}}}}}}`, "-", ""},
		{"props array", `{"event":"a","props":[1]}`, "props", "props: must be a JSON object"},
		{"props string", `{"event":"a","props":"{}"}`, "props", msgObject},
		{"props number", `{"event":"a","props":5}`, "props", msgObject},
		{"props NUL value", `{"event":"a","props":{"a":"x\u0000"}}`, "props.a", "props.a: must not contain U+0000"},
		{"props NUL key", `{"event":"a","props":{"a\u0000b":1}}`, `props.a\x00b`, "key must not contain U+0000"},
		{"props NUL in array", `{"event":"a","props":{"a":[{"b":["ok","\u0000"]}]}}`, "props.a[0].b[1]", tally.MsgNUL},
		{"props number overflow", `{"event":"a","props":{"n":1e999}}`, "props.n", "props.n: " + tally.MsgPropsNum},
		{"props number negative overflow", `{"event":"a","props":{"a":[1,-1E+400]}}`, "props.a[1]", tally.MsgPropsNum},
		{"props number max", `{"event":"a","props":{"n":1.7976931348623157e308}}`, "-", ""},
		{"props number underflow", `{"event":"a","props":{"n":1e-999}}`, "-", ""},
		{"props number overflow redacted", `{"event":"a","props":{"token":1e999}}`, "-", ""},
		{"props NUL in redacted value", `{"event":"a","props":{"secret":"\u0000"}}`, "-", ""},

		{"unknown field", `{"event":"a","foo":1}`, "foo", `unknown field "foo"`},
		{"unknown field case", `{"Event":"a"}`, "Event", `unknown field "Event"`},
		{"unknown field before event", `{"foo":null,"event":"a"}`, "foo", `unknown field "foo"`},
		{"unknown field sent_at", `{"event":"a","sent_at":"2026-01-15T12:00:00Z"}`, "sent_at", `unknown field "sent_at"`},
		{"unknown field NUL", `{"event":"a","\u0000":1}`, "\x00", `unknown field "\x00"`},
		{"duplicate field", `{"event":"a","event":"b"}`, "event", `duplicate field "event"`},

		{"utf8 name", "{\"event\":\"a\xff\"}", "event", "event: must be valid UTF-8"},
		{"utf8 user_id", "{\"event\":\"a\",\"user_id\":\"\xc3\"}", "user_id", "user_id: must be valid UTF-8"},
		{"utf8 props", "{\"event\":\"a\",\"props\":{\"a\":[\"\xed\xa0\x80\"]}}", "props", "props: must be valid UTF-8"},
		{"utf8 key", "{\"event\":\"a\",\"\xff\":1}", "", "field names must be valid UTF-8"},
	}
	v := NewValidator(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, rej := decodeOne(t, v, tt.body)
			if tt.field == "-" {
				if rej != nil {
					t.Fatalf("rejected: %s", rej.Error)
				}
				if err := checkEvent(v, ev); err != nil {
					t.Fatal(err)
				}
				return
			}
			if rej == nil {
				t.Fatalf("accepted %+v, want rejection of %s", ev, tt.field)
			}
			if rej.Field != tt.field || !strings.Contains(rej.Error, tt.msg) {
				t.Fatalf("rejection %q (field %q), want field %q and %q", rej.Error, rej.Field, tt.field, tt.msg)
			}
		})
	}
}

// checkEvent re-checks a stored event against every rule: the invariants
// FuzzDecode relies on too.
func checkEvent(v *Validator, e *tally.Event) error {
	if !tally.ValidEventName(e.Name) {
		return fmt.Errorf("bad name %q", e.Name)
	}
	if !tally.ValidSource(e.Source) {
		return fmt.Errorf("bad source %q", e.Source)
	}
	if e.EventID == "" || tally.CheckEventID(e.EventID) != "" {
		return fmt.Errorf("bad event_id %q", e.EventID)
	}
	if tally.CheckUserID(e.UserID) != "" {
		return fmt.Errorf("bad user_id %q", e.UserID)
	}
	if !tally.ValidValue(e.Value) {
		return fmt.Errorf("bad value %v", e.Value)
	}
	if e.Timestamp.Location() != time.UTC || e.ReceivedAt.Location() != time.UTC ||
		e.Timestamp.Nanosecond()%1000 != 0 || e.ReceivedAt.Nanosecond()%1000 != 0 {
		return fmt.Errorf("times not UTC microseconds: %v %v", e.Timestamp, e.ReceivedAt)
	}
	if e.Timestamp.After(e.ReceivedAt.Add(v.maxFuture)) ||
		e.Timestamp.Before(e.ReceivedAt.AddDate(0, 0, -tally.DefaultRetentionDays)) {
		return fmt.Errorf("timestamp %v out of range", e.Timestamp)
	}
	if e.TenantID != testTenant.ID {
		return fmt.Errorf("tenant %d", e.TenantID)
	}
	if len(e.Props) > tally.MaxPropsBytes {
		return fmt.Errorf("props of %d bytes", len(e.Props))
	}
	var p any
	dec := json.NewDecoder(strings.NewReader(string(e.Props)))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("props %q: %v", e.Props, err)
	}
	if _, ok := p.(map[string]any); !ok {
		return fmt.Errorf("props %q not an object", e.Props)
	}
	if err := checkProps(v, p, 1); err != nil {
		return fmt.Errorf("props %q: %v", e.Props, err)
	}
	// Stored events are a fixed point of the rules.
	again, err := v.Prepare(*e, testTenant, e.ReceivedAt)
	if err != nil {
		return fmt.Errorf("Prepare(stored event): %v", err)
	}
	again.ID = e.ID
	if !eventsEqual(again, *e) {
		return fmt.Errorf("Prepare(stored event) = %+v, want %+v", again, *e)
	}
	return nil
}

func checkProps(v *Validator, p any, depth int) error {
	switch p := p.(type) {
	case map[string]any:
		if depth > tally.MaxPropsDepth {
			return fmt.Errorf("depth %d", depth)
		}
		for k, x := range p {
			if strings.IndexByte(k, 0) >= 0 {
				return fmt.Errorf("NUL in key %q", k)
			}
			if v.Redacts(k) {
				if x != Redacted {
					return fmt.Errorf("key %q not redacted", k)
				}
				continue
			}
			if err := checkProps(v, x, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if depth > tally.MaxPropsDepth {
			return fmt.Errorf("depth %d", depth)
		}
		for _, x := range p {
			if err := checkProps(v, x, depth+1); err != nil {
				return err
			}
		}
	case string:
		if strings.IndexByte(p, 0) >= 0 {
			return fmt.Errorf("NUL in %q", p)
		}
	}
	return nil
}

func eventsEqual(a, b tally.Event) bool {
	return a.ID == b.ID && a.TenantID == b.TenantID && a.EventID == b.EventID && a.Name == b.Name &&
		a.UserID == b.UserID && a.Source == b.Source && a.Timestamp.Equal(b.Timestamp) &&
		a.ReceivedAt.Equal(b.ReceivedAt) && a.Value == b.Value && string(a.Props) == string(b.Props)
}

func TestDecodeDefaults(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})
	now := time.Date(2026, 1, 15, 14, 0, 0, 123456789, time.FixedZone("CET", 3600))
	d, err := v.Decode([]byte(` {"event":"a.b"} `), testTenant, now)
	if err != nil || len(d.Events) != 1 {
		t.Fatalf("Decode: %+v, %v", d, err)
	}
	e := d.Events[0]
	want := time.Date(2026, 1, 15, 13, 0, 0, 123456000, time.UTC)
	if e.Source != "api" || e.Value != 1 || string(e.Props) != "{}" || e.UserID != "" || e.TenantID != 7 ||
		e.ID != 0 || !e.Timestamp.Equal(want) || !e.ReceivedAt.Equal(want) || e.Timestamp.Location() != time.UTC {
		t.Fatalf("defaults: %+v", e)
	}
	if len(e.EventID) < 16 {
		t.Fatalf("assigned event_id %q is short", e.EventID)
	}
	d2, _ := v.Decode([]byte(`{"event":"a.b"}`), testTenant, now)
	if d2.Events[0].EventID == e.EventID {
		t.Fatal("two events got the same assigned event_id")
	}

	// Given fields are kept; a fractional timestamp is cut to microseconds.
	ev, rej := decodeOne(t, v, `{"event":"x","user_id":"u1","source":"web","timestamp":"2026-01-15T11:00:00.987654321+01:00",`+
		`"event_id":"e-1","value":-0.5,"props":{"b":1,"a":[true,null,"s"]}}`)
	if rej != nil {
		t.Fatal(rej.Error)
	}
	if ev.UserID != "u1" || ev.Source != "web" || ev.EventID != "e-1" || ev.Value != -0.5 ||
		!ev.Timestamp.Equal(time.Date(2026, 1, 15, 10, 0, 0, 987654000, time.UTC)) ||
		string(ev.Props) != `{"b":1,"a":[true,null,"s"]}` {
		t.Fatalf("event: %+v props %s", ev, ev.Props)
	}
}

func TestDecodePropsEncoding(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})
	tests := []struct{ in, want string }{
		{`{ "n" : 1.000000000000000000001 , "big":12345678901234567890123,"e":1E+2,"neg":-0.0 }`,
			`{"n":1.000000000000000000001,"big":12345678901234567890123,"e":1E+2,"neg":-0.0}`},
		{`{"z":1,"a":2,"m":{"y":[],"b":{}}}`, `{"z":1,"a":2,"m":{"y":[],"b":{}}}`},
		{`{"s":"<a&b>\u00e9\n\t\"\\\u0001\u2028/"}`, "{\"s\":\"<a&b>é\\n\\t\\\"\\\\\\u0001\u2028/\"}"},
		{`{"dup":1,"dup":2}`, `{"dup":1,"dup":2}`},
	}
	for _, tt := range tests {
		ev, rej := decodeOne(t, v, `{"event":"a","props":`+tt.in+`}`)
		if rej != nil {
			t.Fatalf("%s: %s", tt.in, rej.Error)
		}
		if string(ev.Props) != tt.want {
			t.Errorf("props %s\n got %s\nwant %s", tt.in, ev.Props, tt.want)
		}
		if !json.Valid(ev.Props) {
			t.Errorf("props %s: invalid JSON stored", ev.Props)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	in := `{"Password":"p","user":{"API_KEY":"k","name":"n","list":[{"token":"t"},{"ok":1,"Cookie":{"a":[1]}}]},` +
		`"deep":[[{"SSN":"1","x":"y"}]],"my_secret_thing":"s","githubToken":"x","StripeApiKey":"k","tokens":3,` +
		`"passwordHints":["a"],"authorization":null,"cvv":123,"card_number":"4242","normal":"keep","email":"a@b"}`
	v := NewValidator(Config{})
	ev, rej := decodeOne(t, v, `{"event":"a","props":`+in+`}`)
	if rej != nil {
		t.Fatal(rej.Error)
	}
	want := `{"Password":"[redacted]","user":{"API_KEY":"[redacted]","name":"n","list":[{"token":"[redacted]"},{"ok":1,"Cookie":"[redacted]"}]},` +
		`"deep":[[{"SSN":"[redacted]","x":"y"}]],"my_secret_thing":"[redacted]","githubToken":"[redacted]","StripeApiKey":"[redacted]","tokens":3,` +
		`"passwordHints":"[redacted]","authorization":"[redacted]","cvv":"[redacted]","card_number":"[redacted]","normal":"keep","email":"a@b"}`
	if string(ev.Props) != want {
		t.Fatalf("redacted props\n got %s\nwant %s", ev.Props, want)
	}

	// A configured list replaces the defaults; the contains rule stays.
	custom := NewValidator(Config{RedactKeys: []string{"EMAIL"}})
	ev, rej = decodeOne(t, custom, `{"event":"a","props":{"Email":"a@b","cvv":1,"db_password":"x","ssn":"1"}}`)
	if rej != nil {
		t.Fatal(rej.Error)
	}
	if want := `{"Email":"[redacted]","cvv":1,"db_password":"[redacted]","ssn":"1"}`; string(ev.Props) != want {
		t.Fatalf("custom redaction\n got %s\nwant %s", ev.Props, want)
	}

	for key, want := range map[string]bool{
		"password": true, "PASSWD": true, "Secret": true, "access_token": true, "Refresh_Token": true,
		"authorization": true, "api_key": true, "ApiKey": true, "x_api_key_2": true, "card_number": true,
		"cvv": true, "ssn": true, "private_key": true, "client_secret": true, "cookie": true, "csrfToken": true,
		"x-api-key": true, "X-Api-Key": true, "Set-Cookie": true, "X-Auth-Token": true, "Proxy-Authorization": true,
		"apikey": true, "refresh_token": true, "session_id": true, "jwt": true, "credentials": true,
		"session": false, "name": false, "cookies": false, "card": false, "key": false, "auth": false, "": false,
		// LLM token meters are counts, not credentials.
		"tokens": false, "prompt_tokens": false, "completion_tokens": false, "promptTokens": false,
		"token_count": false, "tokenCount": false, "max_tokens": false, "total_tokens": false, "tokenizer": false,
	} {
		if got := v.Redacts(key); got != want {
			t.Errorf("Redacts(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDecodeRetentionPerTenant(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{MaxFuture: 5 * time.Minute})
	tenant := &tally.Tenant{ID: 3, RetentionDays: 30}
	body := func(ts time.Time) []byte { return []byte(`{"event":"a","timestamp":"` + rfc(ts) + `"}`) }
	for _, tt := range []struct {
		ts time.Time
		ok bool
	}{
		// Retention counts whole UTC days: the oldest kept day starts 30
		// days before today's midnight.
		{tally.DayStart(testNow).AddDate(0, 0, -30), true},
		{tally.DayStart(testNow).AddDate(0, 0, -30).Add(-time.Microsecond), false},
		{testNow.Add(5 * time.Minute), true},
		{testNow.Add(5*time.Minute + time.Second), false},
	} {
		d, err := v.Decode(body(tt.ts), tenant, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if ok := len(d.Events) == 1; ok != tt.ok {
			t.Errorf("timestamp %v: accepted %v, want %v (%+v)", tt.ts, ok, tt.ok, d.Rejected)
		}
		if !tt.ok && (len(d.Rejected) != 1 || d.Rejected[0].Field != "timestamp") {
			t.Errorf("timestamp %v: rejection %+v", tt.ts, d.Rejected)
		}
	}
}

func TestDecodeSkewCorrection(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name, ts, sentAt string
		want             string // "" : rejected for timestamp
	}{
		// Client clock 5 minutes ahead: shift back by 5 minutes.
		{"client ahead", "2026-01-15T11:55:00Z", "2026-01-15T12:05:00Z", "2026-01-15T11:50:00Z"},
		// Client clock 1 hour behind: shift forward.
		{"client behind", "2026-01-15T10:59:00Z", "2026-01-15T11:00:00Z", "2026-01-15T11:59:00Z"},
		// Sub-second skew, kept to the microsecond.
		{"fractions", "2026-01-15T11:00:00.5Z", "2026-01-15T11:59:59.250001Z", "2026-01-15T11:00:01.249999Z"},
		// 1.5h ahead on the client's clock, but the clock is 40m fast.
		{"future fixed by skew", "2026-01-15T13:30:00Z", "2026-01-15T12:40:00Z", "2026-01-15T12:50:00Z"},
		// Fine on the client's clock, 1h50m ahead once corrected.
		{"future after skew", "2026-01-15T12:50:00Z", "2026-01-15T11:00:00Z", ""},
		{"exactly max future", "2026-01-15T14:00:00Z", "2026-01-15T13:00:00Z", "2026-01-15T13:00:00Z"},
		// No timestamp: the time received, not corrected.
		{"no timestamp", "", "2026-01-15T08:00:00Z", "2026-01-15T12:00:00Z"},
		{"offsets", "2026-01-15T12:00:00+01:00", "2026-01-15T07:00:00-05:00", "2026-01-15T11:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := `{"event":"a"}`
			if tt.ts != "" {
				ev = `{"event":"a","timestamp":"` + tt.ts + `"}`
			}
			body := `{"sent_at":"` + tt.sentAt + `","batch":[` + ev + `]}`
			d, err := v.Decode([]byte(body), testTenant, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(d.Rejected) != 1 || d.Rejected[0].Field != "timestamp" {
					t.Fatalf("want a timestamp rejection, got %+v %+v", d.Events, d.Rejected)
				}
				return
			}
			if len(d.Events) != 1 {
				t.Fatalf("rejected: %+v", d.Rejected)
			}
			if got := d.Events[0].Timestamp; !got.Equal(at(tt.want)) || got.Location() != time.UTC {
				t.Fatalf("timestamp %v, want %v", got, tt.want)
			}
			if !d.Events[0].ReceivedAt.Equal(testNow) {
				t.Fatalf("received_at %v", d.Events[0].ReceivedAt)
			}
		})
	}
}

func batchOf(n int, ev string) string {
	return `{"batch":[` + strings.TrimSuffix(strings.Repeat(ev+",", n), ",") + `]}`
}

func TestDecodeBatch(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})

	d, err := v.Decode([]byte(batchOf(tally.MaxBatchEvents, `{"event":"a"}`)), testTenant, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != tally.MaxBatchEvents || len(d.Rejected) != 0 {
		t.Fatalf("1000-event batch: %d events, %d rejected", len(d.Events), len(d.Rejected))
	}
	for i, idx := range d.Index {
		if idx != i {
			t.Fatalf("Index[%d] = %d", i, idx)
		}
	}

	// A partial batch: the bad events are rejected by position, the rest kept.
	body := `{"batch":[{"event":"ok.0"},{"event":""},5,{"event":"b","foo":1},` +
		"{\"event\":\"c\",\"props\":{\"a\":\"\xff\"}}," +
		`{"event":"ok.5","event_id":"x"},null,{"event":"ok.7","event_id":"x"},[],{"event":"a","value":1e999}],"sent_at":null}`
	d, err = v.Decode([]byte(body), testTenant, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d.Index) != "[0 5 7]" {
		t.Fatalf("Index = %v", d.Index)
	}
	for i, e := range d.Events {
		if want := fmt.Sprintf("ok.%d", d.Index[i]); e.Name != want {
			t.Errorf("event %d is %q, want %q", i, e.Name, want)
		}
	}
	wantRej := []Rejection{
		{1, "event: " + tally.MsgEventName, "event"},
		{2, "event must be a JSON object", ""},
		{3, `unknown field "foo"`, "foo"},
		{4, "props: must be valid UTF-8", "props"},
		{6, "event must be a JSON object", ""},
		{8, "event must be a JSON object", ""},
		{9, "value: " + tally.MsgValue, "value"},
	}
	if fmt.Sprint(d.Rejected) != fmt.Sprint(wantRej) {
		t.Fatalf("Rejected\n got %v\nwant %v", d.Rejected, wantRej)
	}
	out, _ := json.Marshal(d.Rejected[0])
	if string(out) != `{"index":1,"error":"event: must be 1-128 chars of dot-separated [A-Za-z0-9_-] segments"}` {
		t.Fatalf("rejection JSON %s", out)
	}

	// A batch in which nothing is valid is still decoded: the caller
	// answers 400 from the rejections.
	d, err = v.Decode([]byte(batchOf(3, `{"event":"a..b"}`)), testTenant, testNow)
	if err != nil || len(d.Events) != 0 || len(d.Rejected) != 3 {
		t.Fatalf("all rejected: %+v, %v", d, err)
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	t.Parallel()
	ok := `{"event":"a"}`
	tests := []struct {
		name  string
		body  string
		code  tally.ErrorCode
		field string
	}{
		{"empty", ``, tally.EInvalid, "body"},
		{"spaces", "  \n", tally.EInvalid, "body"},
		{"array", `[` + ok + `]`, tally.EInvalid, "body"},
		{"string", `"event"`, tally.EInvalid, "body"},
		{"number", `1`, tally.EInvalid, "body"},
		{"null", `null`, tally.EInvalid, "body"},
		{"truncated", `{"event":"a"`, tally.EInvalid, "body"},
		{"trailing", ok + ` {}`, tally.EInvalid, "body"},
		{"two objects", ok + ok, tally.EInvalid, "body"},
		{"batch object", `{"batch":` + ok + `}`, tally.EInvalid, "batch"},
		{"batch string", `{"batch":"[]"}`, tally.EInvalid, "batch"},
		{"batch null", `{"batch":null}`, tally.EInvalid, "batch"},
		{"batch number", `{"batch":3}`, tally.EInvalid, "batch"},
		{"batch empty", `{"batch":[]}`, tally.EInvalid, "batch"},
		{"batch empty with sent_at", `{"sent_at":"2026-01-15T12:00:00Z","batch":[ ]}`, tally.EInvalid, "batch"},
		{"batch too large", batchOf(tally.MaxBatchEvents+1, ok), tally.ETooLarge, "batch"},
		{"batch much too large", batchOf(5000, `1`), tally.ETooLarge, "batch"},
		{"unknown after batch", `{"batch":[` + ok + `],"foo":1}`, tally.EInvalid, "foo"},
		{"unknown before batch", `{"foo":1,"batch":[` + ok + `]}`, tally.EInvalid, "foo"},
		{"event field next to batch", `{"event":"a","batch":[` + ok + `]}`, tally.EInvalid, "event"},
		{"batch twice", `{"batch":[` + ok + `],"batch":[` + ok + `]}`, tally.EInvalid, "batch"},
		{"sent_at twice", `{"batch":[` + ok + `],"sent_at":null,"sent_at":null}`, tally.EInvalid, "sent_at"},
		{"sent_at bad", `{"batch":[` + ok + `],"sent_at":"yesterday"}`, tally.EInvalid, "sent_at"},
		{"sent_at number", `{"batch":[` + ok + `],"sent_at":1768478400}`, tally.EInvalid, "sent_at"},
		{"utf8 in sent_at", "{\"batch\":[" + ok + "],\"sent_at\":\"2026\xff\"}", tally.EInvalid, "body"},
		{"utf8 in key", "{\"batch\":[" + ok + "],\"\xfe\":1}", tally.EInvalid, "body"},
	}
	v := NewValidator(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := v.Decode([]byte(tt.body), testTenant, testNow)
			var te *tally.Error
			if !errors.As(err, &te) {
				t.Fatalf("Decode = %+v, %v; want a *tally.Error", d, err)
			}
			if te.Code != tt.code || len(te.Fields) != 1 || te.Fields[0].Field != tt.field {
				t.Fatalf("error %v %+v; want %s naming %q", te, te.Fields, tt.code, tt.field)
			}
			if d != nil {
				t.Fatal("Decoded returned with an error")
			}
		})
	}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})
	now := testNow.Add(123456789 * time.Nanosecond)
	e, err := v.Prepare(tally.Event{ID: 99, TenantID: 1, Name: "auth.user.login", UserID: "u"}, testTenant, now)
	if err != nil {
		t.Fatal(err)
	}
	wantNow := testNow.Add(123456 * time.Microsecond)
	if e.ID != 0 || e.TenantID != 7 || e.Value != 0 || e.Source != "api" || string(e.Props) != "{}" ||
		e.EventID == "" || !e.Timestamp.Equal(wantNow) || !e.ReceivedAt.Equal(wantNow) {
		t.Fatalf("Prepare defaults: %+v", e)
	}

	e, err = v.Prepare(tally.Event{Name: "files.uploaded", Source: "sdk", EventID: "up-1", Value: 2048,
		Timestamp: testNow.Add(-time.Hour).In(time.FixedZone("X", 7200)),
		Props:     json.RawMessage(` {"size": 2048, "Token":"abc", "n":[{"cvv":1}]} `)}, testTenant, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if e.EventID != "up-1" || e.Value != 2048 || e.Source != "sdk" || !e.Timestamp.Equal(testNow.Add(-time.Hour)) ||
		e.Timestamp.Location() != time.UTC || string(e.Props) != `{"size":2048,"Token":"[redacted]","n":[{"cvv":"[redacted]"}]}` {
		t.Fatalf("Prepare: %+v props %s", e, e.Props)
	}
	if e, err := v.Prepare(tally.Event{Name: "a", Props: json.RawMessage("null")}, testTenant, testNow); err != nil || string(e.Props) != "{}" {
		t.Fatalf("null props: %s, %v", e.Props, err)
	}

	tests := []struct {
		name  string
		in    tally.Event
		field string
	}{
		{"no name", tally.Event{}, "event"},
		{"bad name", tally.Event{Name: "a/b"}, "event"},
		{"bad source", tally.Event{Name: "a", Source: "Web"}, "source"},
		{"future", tally.Event{Name: "a", Timestamp: testNow.Add(2 * time.Hour)}, "timestamp"},
		{"too old", tally.Event{Name: "a", Timestamp: testNow.AddDate(-2, 0, 0)}, "timestamp"},
		{"long event_id", tally.Event{Name: "a", EventID: strings.Repeat("e", 129)}, "event_id"},
		{"NUL event_id", tally.Event{Name: "a", EventID: "\x00"}, "event_id"},
		{"utf8 event_id", tally.Event{Name: "a", EventID: "\xff"}, "event_id"},
		{"long user_id", tally.Event{Name: "a", UserID: strings.Repeat("u", 257)}, "user_id"},
		{"utf8 user_id", tally.Event{Name: "a", UserID: "a\xc0"}, "user_id"},
		{"NUL user_id", tally.Event{Name: "a", UserID: "a\x00"}, "user_id"},
		{"NaN", tally.Event{Name: "a", Value: math.NaN()}, "value"},
		{"Inf", tally.Event{Name: "a", Value: math.Inf(-1)}, "value"},
		{"props array", tally.Event{Name: "a", Props: json.RawMessage(`[]`)}, "props"},
		{"props invalid", tally.Event{Name: "a", Props: json.RawMessage(`{"a":`)}, "props"},
		{"props utf8", tally.Event{Name: "a", Props: json.RawMessage("{\"a\":\"\xff\"}")}, "props"},
		{"props NUL", tally.Event{Name: "a", Props: json.RawMessage(`{"a":{"b":"\u0000"}}`)}, "props.a.b"},
		{"props deep", tally.Event{Name: "a", Props: json.RawMessage(nest(6))}, "props"},
		{"props large", tally.Event{Name: "a", Props: json.RawMessage(`{"a":"` + strings.Repeat("x", tally.MaxPropsBytes) + `"}`)}, "props"},
	}
	for _, tt := range tests {
		_, err := v.Prepare(tt.in, testTenant, testNow)
		var te *tally.Error
		if !errors.As(err, &te) || te.Code != tally.EInvalid || len(te.Fields) != 1 || te.Fields[0].Field != tt.field {
			t.Errorf("%s: Prepare error %v, want EInvalid naming %q", tt.name, err, tt.field)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"event":"a"}`,
		`{"event":"a.b","user_id":"u","source":"web","timestamp":"2026-01-15T11:00:00Z","event_id":"e1","value":2.5,"props":{"a":[1,{"password":"x"}]}}`,
		`{"batch":[{"event":"a"},{"event":"b","props":{"token":{"x":1}}},7,null],"sent_at":"2026-01-15T12:05:00Z"}`,
		`{"batch":[{"event":"a","event_id":"x"},{"event":"a","event_id":"x"}]}`,
		`{"batch":[]}`,
		`{"batch":{}}`,
		`{"event":"a","props":{"a":{"b":{"c":{"d":{"e":1}}}}}}`,
		`{"event":"a","props":{"n":1e999,"s":"\u0000"},"value":1e999}`,
		"{\"event\":\"\xff\"}",
		`{"event":"a","foo":1,"foo":2}`,
		`{"batch":[{"event":"a"}],"sent_at":"0001-01-01T00:00:00Z"}`,
		`{"batch":[{"event":"a","timestamp":"9999-12-31T23:59:59Z"}],"sent_at":"0001-01-01T00:00:00Z"}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	v := NewValidator(Config{})
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := v.Decode(body, testTenant, testNow)
		if err != nil {
			var te *tally.Error
			if !errors.As(err, &te) || (te.Code != tally.EInvalid && te.Code != tally.ETooLarge) || len(te.Fields) == 0 {
				t.Fatalf("error %v is not a request error naming a field", err)
			}
			return
		}
		if len(d.Events) != len(d.Index) {
			t.Fatalf("%d events, %d indexes", len(d.Events), len(d.Index))
		}
		total := len(d.Events) + len(d.Rejected)
		if total < 1 || total > tally.MaxBatchEvents {
			t.Fatalf("%d events in all", total)
		}
		seen := make([]bool, total)
		mark := func(i int) {
			if i < 0 || i >= total || seen[i] {
				t.Fatalf("index %d repeated or out of range [0,%d)", i, total)
			}
			seen[i] = true
		}
		for _, i := range d.Index {
			mark(i)
		}
		for k, r := range d.Rejected {
			mark(r.Index)
			if r.Error == "" || (k > 0 && d.Rejected[k-1].Index >= r.Index) {
				t.Fatalf("rejections %+v", d.Rejected)
			}
		}
		for k := range d.Events {
			if k > 0 && d.Index[k-1] >= d.Index[k] {
				t.Fatalf("Index %v not ascending", d.Index)
			}
			if err := checkEvent(v, &d.Events[k]); err != nil {
				t.Fatalf("event %d: %v", d.Index[k], err)
			}
		}
	})
}

// FuzzProps checks the props rewriter against encoding/json: what it
// accepts means the same as the input, with secret-named keys redacted.
func FuzzProps(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,"x",{"b":null}],"Token":{"c":[]}}`,
		`{"s":"\u00e9\ud800\n\"","n":-1.5e+300,"t":true,"f":false}`,
		`{"a":{"b":{"c":{"d":{"e":[]}}}}}`, `{"dup":1,"dup":{"password":2}}`, ` { "x" : [ ] } `,
	} {
		f.Add([]byte(s))
	}
	v := NewValidator(Config{})
	decode := func(b []byte) (any, error) {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		var x any
		err := dec.Decode(&x)
		return x, err
	}
	var redact func(x any) any
	redact = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, y := range x {
				if v.Redacts(k) {
					x[k] = Redacted
				} else {
					x[k] = redact(y)
				}
			}
		case []any:
			for i, y := range x {
				x[i] = redact(y)
			}
		}
		return x
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, rerr := v.props(raw, false)
		if rerr != nil {
			return
		}
		in, err := decode(raw)
		if err != nil {
			if len(strings.Trim(string(raw), jsonSpace)) == 0 || strings.Trim(string(raw), jsonSpace) == "null" {
				return
			}
			t.Fatalf("accepted props %q that encoding/json refuses: %v", raw, err)
		}
		if in == nil {
			in = map[string]any{}
		}
		got, err := decode(out)
		if err != nil {
			t.Fatalf("wrote invalid JSON %q: %v", out, err)
		}
		if want := redact(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("props %q\nwrote %q\n got %#v\nwant %#v", raw, out, got, want)
		}
		if len(out) > tally.MaxPropsBytes {
			t.Fatalf("%d bytes", len(out))
		}
	})
}

// TestSecretKeyWords holds the always-on rule to its words: credentials by
// any spelling are secret, counts of tokens are not.
func TestSecretKeyWords(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		key   string
		words []string
		want  bool
	}{
		{"token", []string{"token"}, true},
		{"access_token", []string{"access", "token"}, true},
		{"apiToken", []string{"api", "token"}, true},
		{"APIToken", []string{"api", "token"}, true},
		{"X-Auth-Token", []string{"x", "auth", "token"}, true},
		{"githubToken", []string{"github", "token"}, true},
		{"csrftoken", []string{"csrftoken"}, true},
		{"id_token", []string{"id", "token"}, true},
		{"session.token", []string{"session", "token"}, true},
		{"tokenValue", []string{"token", "value"}, true},
		{"password", []string{"password"}, true},
		{"db_password", []string{"db", "password"}, true},
		{"dbpassword", []string{"dbpassword"}, true},
		{"passwordHints", []string{"password", "hints"}, true},
		{"PASSWD", []string{"passwd"}, true},
		{"clientSecret", []string{"client", "secret"}, true},
		{"my_secret_thing", []string{"my", "secret", "thing"}, true},
		{"STRIPE_API_KEY", []string{"stripe", "api", "key"}, true},
		{"StripeApiKey", []string{"stripe", "api", "key"}, true},
		{"APIKey", []string{"api", "key"}, true},
		{"apikey", []string{"apikey"}, true},
		{"x_api_key_2", []string{"x", "api", "key", "2"}, true},
		{"api_keys", []string{"api", "keys"}, true},
		{"tokens", []string{"tokens"}, false},
		{"prompt_tokens", []string{"prompt", "tokens"}, false},
		{"completion_tokens", []string{"completion", "tokens"}, false},
		{"completionTokens", []string{"completion", "tokens"}, false},
		{"token_count", []string{"token", "count"}, false},
		{"tokenCount", []string{"token", "count"}, false},
		{"token-type", []string{"token", "type"}, false},
		{"max_tokens", []string{"max", "tokens"}, false},
		{"usage.input_tokens", []string{"usage", "input", "tokens"}, false},
		{"tokenizer", []string{"tokenizer"}, false},
		{"api_version", []string{"api", "version"}, false},
		{"keyboard", []string{"keyboard"}, false},
		{"", nil, false},
	} {
		if got := keyWords(tt.key); !reflect.DeepEqual(got, tt.words) {
			t.Errorf("keyWords(%q) = %q, want %q", tt.key, got, tt.words)
		}
		if got := secretKey(tt.key); got != tt.want {
			t.Errorf("secretKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
	// A configured list cannot switch the rule off, and token meters
	// reach the log as numbers.
	v := NewValidator(Config{RedactKeys: []string{}})
	ev, rej := decodeOne(t, v, `{"event":"llm.completion","props":{"prompt_tokens":120,"completion_tokens":30,"apiToken":"sk-1"}}`)
	if rej != nil {
		t.Fatal(rej.Error)
	}
	if want := `{"prompt_tokens":120,"completion_tokens":30,"apiToken":"[redacted]"}`; string(ev.Props) != want {
		t.Fatalf("props = %s, want %s", ev.Props, want)
	}
}

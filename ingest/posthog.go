package ingest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

// PostHogSource is the source of events that arrive in PostHog's format.
const PostHogSource = "posthog"

// DecodePostHog maps a body of PostHog's capture API (/batch/, /capture/,
// /e/, /i/v0/e/, /track/) into tally's terms. The body is one event
// object, {"batch": [event, ...]} (with api_key and sent_at beside it), or
// an array of events (posthog-js). The key is api_key (or token) of the
// body, else the token property of the first event that has one.
//
// Mapping per event: uuid → event_id; distinct_id (top level, else in
// properties; string or number) → user_id; event → the event name
// (ForeignName: "$pageview" is pageview, "$identify" identify); timestamp
// → the timestamp, corrected by sent_at (the event's, else the body's),
// or without a timestamp now minus offset milliseconds; properties,
// without token and distinct_id, with $set and $set_once beside them →
// props. Source is "posthog".
//
// A body that is neither an object nor an array, or whose batch is not a
// non-empty array, is refused whole (EInvalid); an event that cannot be
// mapped is only rejected.
func DecodePostHog(body []byte) (*Foreign, error) {
	body = bytes.TrimSpace(body)
	f := &Foreign{}
	var elems []json.RawMessage
	var sentAt time.Time
	switch {
	case len(body) > 0 && body[0] == '[':
		var ok bool
		if elems, ok = splitArray(body); !ok {
			return nil, requestError("body", "must be valid JSON")
		}
	case len(body) > 0 && body[0] == '{':
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, requestError("body", "must be valid JSON")
		}
		key, _ := textField(top["api_key"])
		tok, _ := textField(top["token"])
		f.Key = cmp.Or(key, tok)
		if s, _ := textField(top["sent_at"]); s != "" {
			sentAt, _ = foreignTime(s)
		}
		if b, ok := top["batch"]; ok {
			if elems, ok = splitArray(b); !ok {
				return nil, requestError("batch", "must be an array of events")
			}
		} else {
			elems = []json.RawMessage{body}
		}
	default:
		return nil, requestError("body", "must be a JSON object or array")
	}
	if len(elems) == 0 {
		return nil, requestError("batch", "must hold at least one event")
	}
	for i, raw := range elems {
		decodePostHogEvent(f, i, raw, sentAt)
	}
	return f, nil
}

// decodePostHogEvent maps one event at position i.
func decodePostHogEvent(f *Foreign, i int, raw json.RawMessage, sentAt time.Time) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg == nil {
		f.reject(i, "", "event must be a JSON object")
		return
	}
	props, ok := objectField(msg["properties"])
	if !ok {
		f.reject(i, "properties", msgObject)
		return
	}
	if props == nil {
		props = map[string]json.RawMessage{}
	}
	if tok, _ := textField(props["token"]); tok != "" && f.Key == "" {
		f.Key = tok
	}
	user, ok := idText(msg["distinct_id"])
	if !ok {
		f.reject(i, "distinct_id", "must be a string or a number")
		return
	}
	if user == "" {
		if user, ok = idText(props["distinct_id"]); !ok {
			f.reject(i, "properties.distinct_id", "must be a string or a number")
			return
		}
	}
	delete(props, "token")
	delete(props, "distinct_id")
	for _, k := range []string{"$set", "$set_once"} {
		if v, ok := msg[k]; ok {
			if _, taken := props[k]; !taken {
				props[k] = v
			}
		}
	}
	ev := tally.Event{Source: PostHogSource, Value: 1, UserID: user}
	name, ok := textField(msg["event"])
	if !ok || name == "" {
		f.reject(i, "event", "required: the name of the event")
		return
	}
	ev.Name = ForeignName(name)
	switch name {
	case "$identify":
		anon, _ := idText(props["$anon_distinct_id"])
		f.link(anon, user)
	case "$create_alias":
		alias, _ := idText(props["alias"])
		f.link(alias, user)
	}
	if ev.EventID, ok = textField(msg["uuid"]); !ok {
		f.reject(i, "uuid", msgString)
		return
	}
	ev.Props = propsOf(props)

	fe := ForeignEvent{Index: i}
	if ts, _ := textField(msg["timestamp"]); ts != "" {
		t, ok := foreignTime(ts)
		if !ok {
			f.reject(i, "timestamp", msgTime)
			return
		}
		ev.Timestamp, fe.SentAt = t, sentAt
		if s, _ := textField(msg["sent_at"]); s != "" {
			if t, ok := foreignTime(s); ok {
				fe.SentAt = t
			}
		}
	} else if off := bytes.TrimSpace(msg["offset"]); len(off) > 0 && string(off) != "null" {
		ms, err := strconv.ParseInt(string(off), 10, 64)
		if err != nil || ms < 0 || ms > 100_000_000_000 {
			f.reject(i, "offset", "must be a whole number of milliseconds")
			return
		}
		// An event made offset ms before sending: any reference time
		// with SentAt that much later lands on now - offset.
		ev.Timestamp = time.Unix(0, 0).UTC()
		fe.SentAt = ev.Timestamp.Add(time.Duration(ms) * time.Millisecond)
	}
	fe.Event = ev
	f.Events = append(f.Events, fe)
}

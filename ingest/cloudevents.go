package ingest

import (
	"bytes"
	"encoding/json"

	"github.com/tallyhq/tally"
)

// CloudEventsSource is the source of events that arrive as CloudEvents.
const CloudEventsSource = "cloudevents"

// DecodeCloudEvents maps CloudEvents in the JSON event format (as
// OpenMeter's POST /api/v1/events takes them) into tally's terms: one
// event (application/cloudevents+json, or application/json) or, when
// batch is true or the body is an array, an array of events
// (application/cloudevents-batch+json).
//
// Mapping: id → event_id; type → the event name (ForeignName); subject →
// user_id; time → the timestamp; data (an object) → props, with source
// under "$source" (a data that is not an object is props.data). Source is
// "cloudevents". specversion, id, source and type are required, as the
// CloudEvents specification says; data_base64 is not accepted.
//
// A body that is not JSON, or not an array when batch is true, is refused
// whole (EInvalid); an event that breaks a rule is only rejected.
func DecodeCloudEvents(body []byte, batch bool) (*Foreign, error) {
	body = bytes.TrimSpace(body)
	var elems []json.RawMessage
	switch {
	case len(body) > 0 && body[0] == '[':
		var ok bool
		if elems, ok = splitArray(body); !ok {
			return nil, requestError("body", "must be valid JSON")
		}
	case batch:
		return nil, requestError("body", "must be a JSON array of CloudEvents")
	case len(body) > 0 && body[0] == '{' && json.Valid(body):
		elems = []json.RawMessage{body}
	default:
		return nil, requestError("body", "must be a CloudEvent as a JSON object")
	}
	if len(elems) == 0 {
		return nil, requestError("body", "must hold at least one event")
	}
	f := &Foreign{}
	for i, raw := range elems {
		decodeCloudEvent(f, i, raw)
	}
	return f, nil
}

// decodeCloudEvent maps one event at position i.
func decodeCloudEvent(f *Foreign, i int, raw json.RawMessage) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg == nil {
		f.reject(i, "", "event must be a JSON object")
		return
	}
	attrs := map[string]string{}
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time"} {
		s, ok := textField(msg[k])
		if !ok {
			f.reject(i, k, msgString)
			return
		}
		attrs[k] = s
	}
	for _, k := range []string{"specversion", "id", "source", "type"} {
		if attrs[k] == "" {
			f.reject(i, k, "required")
			return
		}
	}
	if attrs["specversion"] != "1.0" {
		f.reject(i, "specversion", `must be "1.0"`)
		return
	}
	if _, ok := msg["data_base64"]; ok {
		f.reject(i, "data_base64", "is not accepted; send data as JSON")
		return
	}
	props, ok := objectField(msg["data"])
	if !ok {
		props = map[string]json.RawMessage{"data": msg["data"]}
	} else if props == nil {
		props = map[string]json.RawMessage{}
	}
	props["$source"] = jsonText(attrs["source"])
	ev := tally.Event{Source: CloudEventsSource, Value: 1, EventID: attrs["id"], Name: ForeignName(attrs["type"]),
		UserID: attrs["subject"], Props: propsOf(props)}
	if attrs["time"] != "" {
		t, ok := foreignTime(attrs["time"])
		if !ok {
			f.reject(i, "time", msgTime)
			return
		}
		ev.Timestamp = t
	}
	f.Events = append(f.Events, ForeignEvent{Event: ev, Index: i})
}

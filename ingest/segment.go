package ingest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"time"

	"github.com/tallyhq/tally"
)

// Segment's size limits, as its HTTP tracking API documents them.
const (
	SegmentMaxMessage = 32 << 10  // bytes of one message
	SegmentMaxBatch   = 500 << 10 // bytes of one /v1/batch request
)

// SegmentSource is the source of events that arrive in Segment's format.
const SegmentSource = "segment"

// segmentTypes are Segment's message types and the tally event name of
// each (track's own name is its event field).
var segmentTypes = map[string]string{
	"track": "", "page": "page", "screen": "screen", "identify": "identify", "group": "group", "alias": "alias",
}

// SegmentType reports whether typ is a Segment message type.
func SegmentType(typ string) bool {
	_, ok := segmentTypes[typ]
	return ok
}

// DecodeSegment maps a body of Segment's HTTP tracking API into tally's
// terms. typ is the message type its path names ("track", "page", ...:
// the body is one message, its type field optional), or "" for /v1/batch
// ({"batch": [message, ...], "sentAt", "context", "writeKey"}).
//
// Mapping: messageId → event_id; userId, else anonymousId → user_id
// (string or number); track's event → the event name (ForeignName);
// page, screen, identify, group and alias → the event of that name;
// props are properties (track, page, screen) or traits (identify, group),
// with context (the message's, else the batch's) under "context",
// anonymousId under "anonymous_id" when userId is set, page's and
// screen's name and category, group's groupId as "group_id" and alias's
// previousId as "previous_id"; timestamp (else originalTimestamp) → the
// timestamp, corrected by sentAt (the message's, else the batch's).
// Source is "segment".
//
// A body that is not a JSON object, a batch that is not a non-empty array
// or one over SegmentMaxBatch is refused whole (EInvalid, ETooLarge); a
// message over SegmentMaxMessage or that cannot be mapped is only
// rejected.
func DecodeSegment(body []byte, typ string) (*Foreign, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, requestError("body", "must be a JSON object")
	}
	f := &Foreign{}
	key, _ := textField(top["writeKey"])
	f.Key = key
	if typ != "" {
		if len(body) > SegmentMaxMessage {
			return nil, tooLarge("a message", SegmentMaxMessage)
		}
		decodeSegmentMessage(f, 0, top, typ, nil, time.Time{})
		return f, nil
	}
	if len(body) > SegmentMaxBatch {
		return nil, tooLarge("a batch", SegmentMaxBatch)
	}
	elems, ok := splitArray(top["batch"])
	if !ok {
		return nil, requestError("batch", "must be an array of messages")
	}
	if len(elems) == 0 {
		return nil, requestError("batch", "must hold at least one message")
	}
	var sentAt time.Time
	if s, ok := textField(top["sentAt"]); ok && s != "" {
		sentAt, _ = foreignTime(s)
	}
	for i, raw := range elems {
		if len(raw) > SegmentMaxMessage {
			f.reject(i, "", "message is larger than 32 KB")
			continue
		}
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(raw, &msg); err != nil || msg == nil {
			f.reject(i, "", "message must be a JSON object")
			continue
		}
		t, _ := textField(msg["type"])
		if !SegmentType(t) {
			f.reject(i, "type", "must be one of track, page, screen, identify, group, alias")
			continue
		}
		decodeSegmentMessage(f, i, msg, t, top["context"], sentAt)
	}
	return f, nil
}

// decodeSegmentMessage maps one message of type typ at position i.
func decodeSegmentMessage(f *Foreign, i int, msg map[string]json.RawMessage, typ string, batchContext json.RawMessage, sentAt time.Time) {
	if t, ok := textField(msg["type"]); ok && t != "" && t != typ {
		f.reject(i, "type", "must be "+typ+" on this path")
		return
	}
	ev := tally.Event{Source: SegmentSource, Value: 1, Name: segmentTypes[typ]}
	var ok bool
	if ev.EventID, ok = textField(msg["messageId"]); !ok {
		f.reject(i, "messageId", msgString)
		return
	}
	userID, ok := idText(msg["userId"])
	if !ok {
		f.reject(i, "userId", "must be a string or a number")
		return
	}
	anon, ok := idText(msg["anonymousId"])
	if !ok {
		f.reject(i, "anonymousId", "must be a string or a number")
		return
	}
	ev.UserID = cmp.Or(userID, anon)
	f.link(anon, userID)

	fieldOf := map[string]string{"track": "properties", "page": "properties", "screen": "properties", "identify": "traits", "group": "traits"}[typ]
	props := map[string]json.RawMessage{}
	if fieldOf != "" {
		m, ok := objectField(msg[fieldOf])
		if !ok {
			f.reject(i, fieldOf, msgObject)
			return
		}
		for k, v := range m {
			props[k] = v
		}
	}
	ctx := msg["context"]
	if len(bytes.TrimSpace(ctx)) == 0 || string(bytes.TrimSpace(ctx)) == "null" {
		ctx = batchContext
	}
	if c, ok := objectField(ctx); !ok {
		f.reject(i, "context", msgObject)
		return
	} else if len(c) > 0 {
		props["context"] = ctx
	}
	if userID != "" && anon != "" {
		props["anonymous_id"] = jsonText(anon)
	}
	extra := map[string]string{}
	switch typ {
	case "track":
		name, ok := textField(msg["event"])
		if !ok || name == "" {
			f.reject(i, "event", "required: the name of the tracked event")
			return
		}
		ev.Name = ForeignName(name)
	case "page", "screen":
		extra["name"], extra["category"] = "name", "category"
	case "group":
		extra["groupId"] = "group_id"
	case "alias":
		extra["previousId"] = "previous_id"
		if prev, ok := idText(msg["previousId"]); ok {
			f.link(prev, userID)
		}
	}
	for from, to := range extra {
		s, ok := idText(msg[from])
		if !ok {
			f.reject(i, from, "must be a string or a number")
			return
		}
		if _, taken := props[to]; s != "" && !taken {
			props[to] = jsonText(s)
		}
	}
	ev.Props = propsOf(props)

	ts, _ := textField(msg["timestamp"])
	if ts == "" {
		ts, _ = textField(msg["originalTimestamp"])
	}
	fe := ForeignEvent{Index: i}
	if ts != "" {
		t, ok := foreignTime(ts)
		if !ok {
			f.reject(i, "timestamp", msgTime)
			return
		}
		ev.Timestamp = t
		fe.SentAt = sentAt
		if s, _ := textField(msg["sentAt"]); s != "" {
			if t, ok := foreignTime(s); ok {
				fe.SentAt = t
			}
		}
	}
	fe.Event = ev
	f.Events = append(f.Events, fe)
}

package ingest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// Foreign is a payload of another analytics format (Segment, PostHog,
// CloudEvents) mapped into tally's terms by that format's decoder
// (DecodeSegment, DecodePostHog, DecodeCloudEvents), before tally's rules.
// Recorder.Foreign applies the rules and stores it like a native request.
type Foreign struct {
	// Events are the mapped events, each with its position in the request.
	Events []ForeignEvent
	// Rejected lists the items the decoder could not map, by position.
	Rejected []Rejection
	// Key is the credential the body carried (Segment's writeKey,
	// PostHog's api_key or token), "" when none. It names the tenant;
	// nothing else in a body does.
	Key string
	// Links are the identity links the payload states (an anonymous id
	// and a user id in one message, an alias, PostHog's $identify).
	Links []tally.IdentityLink
}

// ForeignEvent is one mapped event of a Foreign payload.
type ForeignEvent struct {
	// Event holds the mapped fields; a zero Timestamp means the time
	// received, an empty EventID a new random one.
	Event tally.Event
	// SentAt is the client's clock when it sent the event (zero: no
	// clock-skew correction): Timestamp is shifted by now - SentAt as
	// tally does with sent_at.
	SentAt time.Time
	// Index is the event's position in the request.
	Index int
}

// Count is the number of items of the request, mapped or not.
func (f *Foreign) Count() int { return len(f.Events) + len(f.Rejected) }

// reject records that the item at index could not be mapped.
func (f *Foreign) reject(index int, field, msg string) {
	rerr := fail(field, msg)
	f.Rejected = append(f.Rejected, rerr.rejection(index))
}

// Foreign applies tally's event rules (Validator.Prepare, with clock-skew
// correction) to a payload a format decoder mapped for tenant t, and stores
// its valid events through the Pipeline: the same dedup, redaction,
// quotas, group commit and metrics as Events. Rejections are by position
// in the request. More than tally.MaxBatchEvents items is ETooLarge.
func (r *Recorder) Foreign(ctx context.Context, t *tally.Tenant, f *Foreign) (*Result, error) {
	if n := f.Count(); n > tally.MaxBatchEvents {
		return nil, tally.Errorf(tally.ETooLarge, "a request may carry at most %d events, not %d", tally.MaxBatchEvents, n)
	}
	now := r.now().UTC().Truncate(time.Microsecond)
	if r.links != nil && len(f.Links) > 0 {
		if err := r.links.LinkIdentities(ctx, t.ID, f.Links, now); err != nil {
			return nil, err
		}
	}
	d := &Decoded{Rejected: slices.Clone(f.Rejected)}
	for _, fe := range f.Events {
		var skew time.Duration
		if !fe.SentAt.IsZero() {
			skew = now.Sub(fe.SentAt)
		}
		ev, rerr := r.v.prepare(fe.Event, t, now, skew)
		if rerr != nil {
			d.Rejected = append(d.Rejected, rerr.rejection(fe.Index))
			continue
		}
		d.Events = append(d.Events, ev)
		d.Index = append(d.Index, fe.Index)
	}
	if err := r.resolve(ctx, t, d.Events); err != nil {
		return nil, err
	}
	return r.submit(ctx, d)
}

// resolve replaces each linked anonymous user id of events by the user id
// it is linked to, so that from the link on a person counts once in the
// active-user KPIs. Events stored before the link keep the anonymous id.
func (r *Recorder) resolve(ctx context.Context, t *tally.Tenant, events []tally.Event) error {
	if r.links == nil {
		return nil
	}
	var ids []string
	seen := map[string]bool{}
	for _, e := range events {
		if e.UserID != "" && !seen[e.UserID] {
			seen[e.UserID] = true
			ids = append(ids, e.UserID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	to, err := r.links.ResolveIdentities(ctx, t.ID, ids)
	if err != nil {
		return err
	}
	for i := range events {
		if u, ok := to[events[i].UserID]; ok {
			events[i].UserID = u
		}
	}
	return nil
}

// link records, when both are set and differ, that anon and user are one
// person.
func (f *Foreign) link(anon, user string) {
	if anon != "" && user != "" && anon != user {
		f.Links = append(f.Links, tally.IdentityLink{AnonymousID: anon, UserID: user})
	}
}

// submit stores the valid events of d and merges every rejection, by
// position in the request.
func (r *Recorder) submit(ctx context.Context, d *Decoded) (*Result, error) {
	res, err := r.p.Submit(ctx, d.Events)
	if err != nil {
		return nil, err
	}
	for i := range res.Rejected { // positions in d.Events to positions in the request
		res.Rejected[i].Index = d.Index[res.Rejected[i].Index]
	}
	res.Rejected = append(res.Rejected, d.Rejected...)
	res.Batch = d.Batch
	slices.SortStableFunc(res.Rejected, func(a, b Rejection) int { return cmp.Compare(a.Index, b.Index) })
	return res, nil
}

// ForeignName turns another format's event name into a valid tally event
// name: within each dot-separated segment every run of characters other
// than A-Z, a-z, 0-9, _ and - becomes one _, and _ is trimmed from both
// ends; empty segments are dropped and the name is cut to
// tally.MaxEventNameLen. "Order Completed" is Order_Completed, PostHog's
// "$pageview" is pageview. A name with nothing left is "" (rejected).
func ForeignName(s string) string {
	var segs []string
	for seg := range strings.SplitSeq(s, ".") {
		var b strings.Builder
		under := false
		for _, c := range seg {
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
				b.WriteRune(c)
				under = false
			} else if !under {
				b.WriteByte('_')
				under = true
			}
		}
		if t := strings.Trim(b.String(), "_"); t != "" {
			segs = append(segs, t)
		}
	}
	name := strings.Join(segs, ".")
	if len(name) > tally.MaxEventNameLen {
		name = strings.TrimRight(name[:tally.MaxEventNameLen], "._")
	}
	return name
}

// foreignTime parses a client's time: RFC 3339 (fractional seconds
// allowed), and also the ISO 8601 forms without a zone offset some
// libraries send, taken as UTC.
func foreignTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// idText reads an id that clients send as a string or a number ("" for
// absent or null); ok is false for any other JSON type.
func idText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), true
	}
	return "", false
}

// textField reads an optional string field; ok is false for another type.
func textField(raw json.RawMessage) (string, bool) {
	s, _, err := jsonString(raw)
	return s, err == nil
}

// objectField reads an optional JSON object field as its members (nil for
// absent or null); ok is false for another type.
func objectField(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	if raw[0] != '{' {
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

// propsOf encodes members as a props object (keys sorted; numbers keep
// their text). Validator.Prepare then checks and redacts it.
func propsOf(m map[string]json.RawMessage) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, err := json.Marshal(m)
	if err != nil { // members come from a parsed body; cannot happen
		return []byte("{}")
	}
	return b
}

// jsonText is s as a JSON string.
func jsonText(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// splitArray splits a JSON array into its elements; ok is false when raw
// is not an array.
func splitArray(raw []byte) ([]json.RawMessage, bool) {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, false
	}
	return elems, true
}

// tooLarge is the ETooLarge error of a request over a format's limit.
func tooLarge(what string, limit int) error {
	return tally.Errorf(tally.ETooLarge, "%s is larger than %s", what, sizeText(limit))
}

func sizeText(n int) string {
	if n%1024 == 0 {
		return strconv.Itoa(n/1024) + " KB"
	}
	return fmt.Sprintf("%d bytes", n)
}

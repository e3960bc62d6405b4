package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// Meter is a meter definition (see tally.MeterDef): Slug, Event (a name or
// "prefix*"), Aggregation, ValueProperty ("value" or "props.a.b"), GroupBy,
// Filter and Description. Managing meters takes an analytics:admin key;
// querying them analytics:read.
type Meter = tally.MeterDef

// MeterPatch changes the fields it sets of a meter (see tally.MeterPatch).
type MeterPatch = tally.MeterPatch

// MeterResult is a meter query's answer: every window of every group.
type MeterResult = tally.MeterResult

// MeterQuery selects what QueryMeter asks. Zero values: the last 7 days,
// one total (no Window), the tenant's time zone, no group-by, no filter.
type MeterQuery struct {
	From, To time.Time
	Window   string // "minute", "hour", "day", "month" or "" (one total)
	TZ       string // an IANA zone name; "" for the tenant's
	GroupBy  []string
	UserID   string
	Filter   map[string]string // props path, "source" or "user_id" → value
}

// CreateMeter defines a meter; the definition is checked first, as tally
// checks it, so a bad one fails without a request (an *tally.Error naming
// the fields).
func (c *Client) CreateMeter(ctx context.Context, m Meter) (*Meter, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	body, err := jsonBody(map[string]any{"slug": m.Slug, "event": m.Event, "aggregation": m.Aggregation,
		"value_property": m.ValueProperty, "group_by": m.GroupBy, "filter": m.Filter, "description": m.Description})
	if err != nil {
		return nil, err
	}
	return c.meterCall(ctx, http.MethodPost, "/api/analytics/meters", body)
}

// Meters lists the tenant's meters, built-in ones first.
func (c *Client) Meters(ctx context.Context) ([]Meter, error) {
	res, err := c.do(ctx, http.MethodGet, "/api/analytics/meters", nil, retryTransient)
	if err != nil {
		return nil, err
	}
	var v struct {
		Meters []Meter `json:"meters"`
	}
	if err := res.decode(&v); err != nil {
		return nil, fmt.Errorf("tally: meters answer: %w", err)
	}
	return v.Meters, nil
}

// GetMeter returns one meter; a 404 *APIError when there is none.
func (c *Client) GetMeter(ctx context.Context, slug string) (*Meter, error) {
	return c.meterCall(ctx, http.MethodGet, "/api/analytics/meters/"+url.PathEscape(slug), nil)
}

// UpdateMeter changes a meter and returns it as now stored.
func (c *Client) UpdateMeter(ctx context.Context, slug string, p MeterPatch) (*Meter, error) {
	body, err := jsonBody(p)
	if err != nil {
		return nil, err
	}
	return c.meterCall(ctx, http.MethodPatch, "/api/analytics/meters/"+url.PathEscape(slug), body)
}

// DeleteMeter deletes a meter (its events stay).
func (c *Client) DeleteMeter(ctx context.Context, slug string) error {
	_, err := c.do(ctx, http.MethodDelete, "/api/analytics/meters/"+url.PathEscape(slug), nil, retryTransient)
	return err
}

func (c *Client) meterCall(ctx context.Context, method, path string, body func() []byte) (*Meter, error) {
	policy := retryTransient
	if method == http.MethodPost {
		policy = retryNever // a repeat of a create that went through is a 409
	}
	res, err := c.do(ctx, method, path, body, policy)
	if err != nil {
		return nil, err
	}
	var m Meter
	if err := res.decode(&m); err != nil {
		return nil, fmt.Errorf("tally: meter answer: %w", err)
	}
	return &m, nil
}

// QueryMeter queries a meter.
func (c *Client) QueryMeter(ctx context.Context, slug string, q MeterQuery) (*MeterResult, error) {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.Format(time.RFC3339Nano))
	}
	if q.Window != "" {
		v.Set("window", q.Window)
	}
	if q.TZ != "" {
		v.Set("tz", q.TZ)
	}
	if len(q.GroupBy) > 0 {
		v.Set("group_by", strings.Join(q.GroupBy, ","))
	}
	if q.UserID != "" {
		v.Set("user_id", q.UserID)
	}
	for k, val := range q.Filter {
		v.Set("filter["+k+"]", val)
	}
	res, err := c.do(ctx, http.MethodGet, "/api/analytics/meters/"+url.PathEscape(slug)+"/query?"+v.Encode(), nil, retryTransient)
	if err != nil {
		return nil, err
	}
	var r MeterResult
	if err := res.decode(&r); err != nil {
		return nil, fmt.Errorf("tally: meter query answer: %w", err)
	}
	return &r, nil
}

package client

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tallyhq/tally"
)

// AbsenceAlert is an absence alert ("no Event for Silence"; see
// tally.AbsenceAlert) with its state. Managing alerts takes an
// analytics:admin key; listing them analytics:read.
type AbsenceAlert = tally.AbsenceAlert

// AbsenceAlertInput defines an alert: Event (a name or "prefix*"),
// SilenceSeconds (60 to 90 days) and Description.
type AbsenceAlertInput = tally.AbsenceAlertInput

// CreateAbsenceAlert defines an absence alert; the input is checked
// first, as tally checks it, so a bad one fails without a request (an
// *tally.Error naming the fields).
func (c *Client) CreateAbsenceAlert(ctx context.Context, in AbsenceAlertInput) (*AbsenceAlert, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return c.absenceCall(ctx, http.MethodPost, absencePath, in)
}

// AbsenceAlerts lists the tenant's absence alerts.
func (c *Client) AbsenceAlerts(ctx context.Context) ([]AbsenceAlert, error) {
	res, err := c.do(ctx, http.MethodGet, absencePath, nil, retryTransient)
	if err != nil {
		return nil, err
	}
	var v struct {
		Alerts []AbsenceAlert `json:"alerts"`
	}
	if err := res.decode(&v); err != nil {
		return nil, fmt.Errorf("tally: absence alerts answer: %w", err)
	}
	return v.Alerts, nil
}

// GetAbsenceAlert returns one alert; a 404 *APIError when there is none.
func (c *Client) GetAbsenceAlert(ctx context.Context, id int64) (*AbsenceAlert, error) {
	return c.absenceCall(ctx, http.MethodGet, absenceItem(id), nil)
}

// ReplaceAbsenceAlert replaces an alert's definition (every field) and
// starts it afresh.
func (c *Client) ReplaceAbsenceAlert(ctx context.Context, id int64, in AbsenceAlertInput) (*AbsenceAlert, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return c.absenceCall(ctx, http.MethodPut, absenceItem(id), in)
}

// DeleteAbsenceAlert deletes an alert.
func (c *Client) DeleteAbsenceAlert(ctx context.Context, id int64) error {
	_, err := c.do(ctx, http.MethodDelete, absenceItem(id), nil, retryTransient)
	return err
}

const absencePath = "/api/analytics/alerts/absence"

func absenceItem(id int64) string { return absencePath + "/" + strconv.FormatInt(id, 10) }

func (c *Client) absenceCall(ctx context.Context, method, path string, in any) (*AbsenceAlert, error) {
	var body func() []byte
	if in != nil {
		b, err := jsonBody(in)
		if err != nil {
			return nil, err
		}
		body = b
	}
	policy := retryTransient
	if method == http.MethodPost {
		policy = retryNever // a repeat of a create that went through is a 409
	}
	res, err := c.do(ctx, method, path, body, policy)
	if err != nil {
		return nil, err
	}
	var a AbsenceAlert
	if err := res.decode(&a); err != nil {
		return nil, fmt.Errorf("tally: absence alert answer: %w", err)
	}
	return &a, nil
}

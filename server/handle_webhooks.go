package server

import (
	"net/http"
	"time"

	"github.com/tallyhq/tally"
)

// handleWebhookDeliveries lists the tenant's webhook deliveries (the
// outbox), newest first: where each stands, its attempts, the last answer
// or error and, while pending, when the next attempt is due.
func (s *Server) handleWebhookDeliveries() apiHandler {
	type delivery struct {
		ID             string              `json:"id"`
		EventType      string              `json:"event_type"`
		Metric         string              `json:"metric"`
		Threshold      int                 `json:"threshold"`
		PeriodStart    time.Time           `json:"period_start"`
		Status         tally.WebhookStatus `json:"status"`
		Attempts       int                 `json:"attempts"`
		LastStatusCode *int                `json:"last_status_code"`
		LastError      *string             `json:"last_error"`
		CreatedAt      time.Time           `json:"created_at"`
		NextAttemptAt  *time.Time          `json:"next_attempt_at"`
		DeliveredAt    *time.Time          `json:"delivered_at"`
	}
	type response struct {
		Deliveries []delivery `json:"deliveries"`
		NextCursor *string    `json:"next_cursor"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		var f tally.WebhookFilter
		var err error
		if f.Limit, err = parseLimit(q, 50, 500); err != nil {
			return err
		}
		if f.Cursor, err = parseCursor(q); err != nil {
			return err
		}
		list, next, err := s.Store.ListWebhooks(r.Context(), p.Tenant.ID, f)
		if err != nil {
			return err
		}
		res := response{Deliveries: make([]delivery, 0, len(list))}
		for _, d := range list {
			out := delivery{ID: d.WebhookID, EventType: d.EventType, Metric: d.Metric, Threshold: d.Threshold,
				PeriodStart: d.PeriodStart.UTC(), Status: d.Status, Attempts: d.Attempts,
				CreatedAt: d.CreatedAt.UTC(), DeliveredAt: d.DeliveredAt}
			if d.LastStatusCode != 0 {
				out.LastStatusCode = &d.LastStatusCode
			}
			if d.LastError != "" {
				out.LastError = &d.LastError
			}
			if d.Status == tally.WebhookPending {
				at := d.NextAttemptAt.UTC()
				out.NextAttemptAt = &at
			}
			res.Deliveries = append(res.Deliveries, out)
		}
		if next != nil {
			c := next.Encode()
			res.NextCursor = &c
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

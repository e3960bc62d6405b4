package server

import (
	"context"
	"net/http"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
)

// track records an event of tally's own (a name under
// tally.OwnEventPrefix, about the tally account account, "" for none);
// auto-tracking never fails or slows the request it describes.
func (s *Server) track(ctx context.Context, t *tally.Tenant, name, account string, props map[string]any) {
	if s.cfg.AnalyticsEnabled && s.Recorder != nil {
		s.Recorder.Track(ctx, t, name, account, props)
	}
}

// trackAPIRequest auto-tracks an API-key request (never the key itself).
// Requests alike that wait for the same drain of the buffer share one
// event (ingest.Recorder.TrackAPIRequest).
func (s *Server) trackAPIRequest(r *http.Request, p *tally.Principal, status int, d time.Duration) {
	if s.cfg.AnalyticsEnabled && s.Recorder != nil {
		s.Recorder.TrackAPIRequest(p.Tenant, ingest.APIRequest{Route: r.Pattern, Method: r.Method, KeyPrefix: p.Key.Prefix, Status: status}, d)
	}
}

// audit writes an audit entry; a failure is logged, not returned: the
// action it describes already happened.
func (s *Server) audit(ctx context.Context, tenantID int64, p *tally.Principal, action, target string, meta map[string]any) {
	e := &tally.AuditEntry{TenantID: tenantID, Actor: p.Actor(), Action: action, Target: target, Meta: meta}
	if err := s.Store.WriteAudit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit write failed", "action", action, "err", err)
	}
}

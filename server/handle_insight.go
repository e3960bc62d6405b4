package server

import (
	"net/http"

	"github.com/tallyhq/tally"
)

func (s *Server) handleFunnelQuery() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q, err := decode[tally.FunnelQuery](r)
		if err != nil {
			return err
		}
		res, err := s.Insights.Funnel(r.Context(), p.Tenant.ID, q)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

func (s *Server) handleRetentionQuery() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q, err := decode[tally.RetentionQuery](r)
		if err != nil {
			return err
		}
		res, err := s.Insights.Retention(r.Context(), p.Tenant.ID, q)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

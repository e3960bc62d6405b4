package server

import (
	"net/http"
	"strconv"

	"github.com/tallyhq/tally"
)

// absenceID reads the {id} of an absence alert route; one that is not a
// number names no alert.
// absenceTarget returns the service and the alert id the path names.
func (s *Server) absenceTarget(r *http.Request) (Absence, int64, error) {
	svc, err := s.absenceAlerts()
	if err != nil {
		return nil, 0, err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, 0, tally.Errorf(tally.ENotFound, "absence alert not found")
	}
	return svc, id, nil
}

// absenceAlerts returns the service, or the error of a server built
// without it.
func (s *Server) absenceAlerts() (Absence, error) {
	if s.Absence == nil {
		return nil, tally.Errorf(tally.EUnavailable, "absence alerts unavailable")
	}
	return s.Absence, nil
}

func (s *Server) handleAbsenceCreate() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		svc, err := s.absenceAlerts()
		if err != nil {
			return err
		}
		in, err := decode[tally.AbsenceAlertInput](r)
		if err != nil {
			return err
		}
		a, err := svc.Create(r.Context(), p.Tenant.ID, in)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "absence_alert.created", a.Event, map[string]any{"alert": a})
		w.Header().Set("Location", "/api/analytics/alerts/absence/"+itoa64(a.ID))
		encode(w, http.StatusCreated, a)
		return nil
	}
}

func (s *Server) handleAbsenceList() apiHandler {
	type response struct {
		Alerts []tally.AbsenceAlert `json:"alerts"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		svc, err := s.absenceAlerts()
		if err != nil {
			return err
		}
		as, err := svc.List(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Alerts: as})
		return nil
	}
}

func (s *Server) handleAbsenceGet() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		svc, id, err := s.absenceTarget(r)
		if err != nil {
			return err
		}
		a, err := svc.Get(r.Context(), p.Tenant.ID, id)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, a)
		return nil
	}
}

func (s *Server) handleAbsenceUpdate() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		svc, id, err := s.absenceTarget(r)
		if err != nil {
			return err
		}
		in, err := decode[tally.AbsenceAlertInput](r)
		if err != nil {
			return err
		}
		a, before, err := svc.Update(r.Context(), p.Tenant.ID, id, in)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "absence_alert.updated", a.Event, map[string]any{"before": before, "after": a})
		encode(w, http.StatusOK, a)
		return nil
	}
}

func (s *Server) handleAbsenceDelete() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		svc, id, err := s.absenceTarget(r)
		if err != nil {
			return err
		}
		a, err := svc.Get(r.Context(), p.Tenant.ID, id)
		if err != nil {
			return err
		}
		if err := svc.Delete(r.Context(), p.Tenant.ID, id); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "absence_alert.deleted", a.Event, map[string]any{"alert_id": id})
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

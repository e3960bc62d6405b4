package server

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tallyhq/tally"
)

// meterRequest is the body of POST /api/analytics/meters.
type meterRequest struct {
	Slug          string                 `json:"slug"`
	Event         string                 `json:"event"`
	Aggregation   tally.MeterAggregation `json:"aggregation"`
	ValueProperty string                 `json:"value_property"`
	GroupBy       []string               `json:"group_by"`
	Filter        map[string]string      `json:"filter"`
	Description   string                 `json:"description"`
}

func (s *Server) handleMeterCreate() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[meterRequest](r)
		if err != nil {
			return err
		}
		m, err := s.Meters.Create(r.Context(), p.Tenant.ID, tally.MeterDef{Slug: req.Slug, Event: req.Event,
			Aggregation: req.Aggregation, ValueProperty: req.ValueProperty, GroupBy: req.GroupBy, Filter: req.Filter,
			Description: req.Description})
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "meter.created", m.Slug, map[string]any{"meter": m})
		w.Header().Set("Location", "/api/analytics/meters/"+m.Slug)
		encode(w, http.StatusCreated, m)
		return nil
	}
}

func (s *Server) handleMeterList() apiHandler {
	type response struct {
		Meters []tally.MeterDef `json:"meters"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		ms, err := s.Meters.List(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Meters: ms})
		return nil
	}
}

func (s *Server) handleMeterGet() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		m, err := s.Meters.Get(r.Context(), p.Tenant.ID, r.PathValue("slug"))
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, m)
		return nil
	}
}

func (s *Server) handleMeterUpdate() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		patch, err := decode[tally.MeterPatch](r)
		if err != nil {
			return err
		}
		m, before, err := s.Meters.Update(r.Context(), p.Tenant.ID, r.PathValue("slug"), patch)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "meter.updated", m.Slug, map[string]any{"before": before, "after": m})
		encode(w, http.StatusOK, m)
		return nil
	}
}

func (s *Server) handleMeterDelete() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		slug := r.PathValue("slug")
		if err := s.Meters.Delete(r.Context(), p.Tenant.ID, slug); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "meter.deleted", slug, nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) handleMeterQuery() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		in, err := parseMeterQuery(q, p.Tenant, s)
		if err != nil {
			return err
		}
		res, err := s.Meters.Query(r.Context(), p.Tenant.ID, r.PathValue("slug"), in)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

// parseMeterQuery reads from, to (default: the last 7 days), window, tz
// (default: the tenant's), group_by (comma-separated), user_id,
// source and filter[KEY]=VALUE.
func parseMeterQuery(q url.Values, t *tally.Tenant, s *Server) (tally.MeterQueryInput, error) {
	var in tally.MeterQueryInput
	var err error
	if in.Loc, err = location(q, t); err != nil {
		return in, err
	}
	if in.From, in.To, err = parseRange(q, s.now(), in.Loc, false); err != nil {
		return in, err
	}
	if in.Window, err = tally.ParseMeterWindow(q.Get("window")); err != nil {
		return in, err
	}
	for _, v := range q["group_by"] {
		for g := range strings.SplitSeq(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				in.GroupBy = append(in.GroupBy, g)
			}
		}
	}
	in.Filter = map[string]string{}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "filter["); ok && strings.HasSuffix(key, "]") {
			in.Filter[strings.TrimSuffix(key, "]")] = vs[0]
		}
	}
	for _, k := range []string{"user_id", "source"} {
		if v := q.Get(k); v != "" {
			in.Filter[k] = v
		}
	}
	return in, nil
}

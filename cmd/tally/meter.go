package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/usage"
)

const meterUsage = "usage: tally meter list|create|delete|query -tenant SLUG [...] (tally meter create -h for the flags)"

// runMeter manages and queries a tenant's meters through meter.Service,
// as the API does; changes are audited with the actor "cli".
func runMeter(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &configError{msg: meterUsage}
	}
	sub := args[0]
	var slug, tenant, event, agg, value, groupBy, filter, desc, from, to, window, tz string
	db, c, err := openStore(ctx, "meter "+sub, args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&tenant, "tenant", "", "tenant slug")
		fs.StringVar(&slug, "slug", "", "meter slug")
		switch sub {
		case "create":
			fs.StringVar(&event, "event", "", "event name or prefix*")
			fs.StringVar(&agg, "aggregation", "count", "count, sum, unique_count, min, max, avg or latest")
			fs.StringVar(&value, "value", "", "value_property: value or a props path (props.tokens)")
			fs.StringVar(&groupBy, "group-by", "", "comma-separated props paths")
			fs.StringVar(&filter, "filter", "", "comma-separated KEY=VALUE (props paths, source, user_id)")
			fs.StringVar(&desc, "description", "", "description")
		case "query":
			fs.StringVar(&from, "from", "", "start, RFC 3339 (default 7 days ago)")
			fs.StringVar(&to, "to", "", "end, RFC 3339 (default now)")
			fs.StringVar(&window, "window", "", "minute, hour, day or month (default one total)")
			fs.StringVar(&tz, "tz", "UTC", "IANA time zone of the windows")
			fs.StringVar(&groupBy, "group-by", "", "comma-separated props paths among the meter's")
		}
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := required("tenant", tenant); err != nil {
		return err
	}
	t, err := db.TenantBySlug(ctx, tenant)
	if err != nil {
		return err
	}
	// The quotas refuse deleting a meter a quota names. The counters here
	// are this command's own: the servers' recount when their Reconciler
	// next compares them with the log.
	quotas := usage.NewService(usage.Config{Rules: c.UsageRules, Defaults: c.QuotaDefaults}, db, usage.NewMemoryCounters(), nil, 0)
	svc := meter.New(meter.Config{Rules: c.UsageRules, Quotas: quotas}, db)
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")
	audit := func(action string, meta map[string]any) error {
		return db.WriteAudit(ctx, &tally.AuditEntry{TenantID: t.ID, Actor: "cli", Action: action, Target: slug, Meta: meta})
	}
	switch sub {
	case "list":
		ms, err := svc.List(ctx, t.ID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			fmt.Fprintf(stdout, "%-24s %-8s %-12s %-20s %s\n", m.Slug, map[bool]string{true: "built-in", false: "custom"}[m.BuiltIn],
				m.Aggregation, m.Event, strings.Join(m.GroupBy, ","))
		}
		return nil
	case "create":
		m := tally.MeterDef{Slug: slug, Event: event, Aggregation: tally.MeterAggregation(agg), ValueProperty: value,
			GroupBy: splitList(groupBy), Filter: map[string]string{}, Description: desc}
		for _, kv := range splitList(filter) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return &configError{msg: "-filter entries are KEY=VALUE"}
			}
			m.Filter[k] = v
		}
		created, err := svc.Create(ctx, t.ID, m)
		if err != nil {
			return meterFlagError(err)
		}
		if err := audit("meter.created", map[string]any{"meter": created}); err != nil {
			return err
		}
		return out.Encode(created)
	case "delete":
		if err := required("slug", slug); err != nil {
			return err
		}
		if err := svc.Delete(ctx, t.ID, slug); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "meter %s deleted from %s\n", slug, tenant)
		return audit("meter.deleted", nil)
	case "query":
		if err := required("slug", slug); err != nil {
			return err
		}
		in := tally.MeterQueryInput{To: time.Now().UTC(), Window: tally.MeterWindow(window), GroupBy: splitList(groupBy)}
		in.From = in.To.Add(-7 * 24 * time.Hour)
		for _, p := range []struct {
			v   string
			dst *time.Time
		}{{from, &in.From}, {to, &in.To}} {
			if p.v == "" {
				continue
			}
			if *p.dst, err = time.Parse(time.RFC3339, p.v); err != nil {
				return &configError{msg: "-from and -to are RFC 3339 times"}
			}
		}
		if in.Loc, err = time.LoadLocation(tz); err != nil {
			return &configError{msg: "-tz must be an IANA time zone name"}
		}
		if _, err := tally.ParseMeterWindow(window); err != nil {
			return flagError(err)
		}
		res, err := svc.Query(ctx, t.ID, slug, in)
		if err != nil {
			return meterFlagError(err)
		}
		return out.Encode(res)
	}
	return &configError{msg: meterUsage}
}

// meterFlagError names the flags of a meter's field errors.
func meterFlagError(err error) error {
	err = flagError(err)
	if ce, ok := err.(*configError); ok {
		r := strings.NewReplacer("-value_property", "-value", "-group_by", "-group-by")
		ce.msg = r.Replace(ce.msg)
	}
	return err
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Package dataset generates event logs that look like real traffic, at any
// size: random UUID event ids as the SDKs send them, props of a few hundred
// bytes, a mix of tally's own and custom events, and several tenants of
// very different sizes (tenant i gets a share proportional to 1/(i+1), so
// the first is the biggest). tally bench builds its datasets with it, and
// tests and benchmarks use it at small sizes.
package dataset

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// Config describes a dataset. The zero value of each field means what its
// comment says.
type Config struct {
	// Events is how many events to generate (default 10,000).
	Events int
	// Tenants are the tenant ids the events go to (default: just 1).
	Tenants []int64
	// From and To bound the timestamps, spread evenly from From to To
	// (default: the 90 days before now).
	From, To time.Time
	// Users is how many distinct end users each tenant has (default
	// DefaultUsers).
	Users int
	// PropsBytes is the rough size of each event's props (default 300).
	PropsBytes int
	// Seed makes the dataset reproducible (default 1).
	Seed uint64
}

func (c *Config) setDefaults() {
	if c.Events <= 0 {
		c.Events = 10_000
	}
	if len(c.Tenants) == 0 {
		c.Tenants = []int64{1}
	}
	if c.To.IsZero() {
		c.To = time.Now().UTC()
	}
	if c.From.IsZero() || !c.From.Before(c.To) {
		c.From = c.To.Add(-90 * 24 * time.Hour)
	}
	if c.Users <= 0 {
		c.Users = DefaultUsers
	}
	if c.PropsBytes <= 0 {
		c.PropsBytes = 300
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
}

// DefaultUsers is how many end users each tenant has unless Config says
// otherwise.
const DefaultUsers = 20_000

// Names is the mix of event names an event's is drawn from, uniformly
// (a name listed twice is twice as likely): a copy.
func Names() []string { return slices.Clone(names) }

// names is the mix of event names, tally's own often.
var names = []string{
	tally.EventAPIRequest, tally.EventAPIRequest, tally.EventAPIRequest, tally.EventAPIRequest,
	tally.EventLogin, "files.uploaded", "builder.generate.completed", "page.view", "page.view",
	"page.view", tally.EventRegister, "business.order.completed", tally.EventUsageIncrement,
}

// Generator makes the events of one Config, in order of timestamp.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	weights []float64 // cumulative tenant shares
	i       int
	filler  string
}

// New returns a generator of cfg's events.
func New(cfg Config) *Generator {
	cfg.setDefaults()
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	total := 0.0
	for i := range cfg.Tenants {
		total += 1 / float64(i+1)
		g.weights = append(g.weights, total)
	}
	for i := range g.weights {
		g.weights[i] /= total
	}
	g.filler = strings.Repeat("x", max(0, cfg.PropsBytes-120))
	return g
}

// Share is the fraction of the events that goes to the i-th tenant.
func (g *Generator) Share(i int) float64 {
	if i == 0 {
		return g.weights[0]
	}
	return g.weights[i] - g.weights[i-1]
}

// Next fills batch (up to its capacity) with the next events and returns
// it; an empty batch means the dataset is complete.
func (g *Generator) Next(batch []tally.Event) []tally.Event {
	batch = batch[:0]
	span := g.cfg.To.Sub(g.cfg.From)
	for len(batch) < cap(batch) && g.i < g.cfg.Events {
		at := g.cfg.From.Add(time.Duration(float64(span) * float64(g.i) / float64(g.cfg.Events)))
		batch = append(batch, g.Event(g.tenant(), at))
		g.i++
	}
	return batch
}

// tenant picks a tenant by share.
func (g *Generator) tenant() int64 {
	x := g.rng.Float64()
	for i, w := range g.weights {
		if x < w {
			return g.cfg.Tenants[i]
		}
	}
	return g.cfg.Tenants[len(g.cfg.Tenants)-1]
}

// Event returns one event of tenant at the given time, as an SDK sends
// it: a random UUID event id, a user, props of about PropsBytes.
func (g *Generator) Event(tenant int64, at time.Time) tally.Event {
	name := names[g.rng.IntN(len(names))]
	e := tally.Event{
		TenantID:   tenant,
		EventID:    g.UUID(),
		Name:       name,
		UserID:     fmt.Sprintf("user-%d", g.rng.IntN(g.cfg.Users)),
		Source:     "sdk",
		Timestamp:  at.UTC().Truncate(time.Microsecond),
		ReceivedAt: at.UTC().Truncate(time.Microsecond),
		Value:      1,
	}
	props := map[string]any{
		"path":    fmt.Sprintf("/app/projects/%d/settings", g.rng.IntN(5000)),
		"plan":    []string{"free", "pro", "team"}[g.rng.IntN(3)],
		"ms":      g.rng.IntN(2000),
		"session": g.UUID(),
		"note":    g.filler,
	}
	if name == tally.EventUsageIncrement {
		props[tally.UsageMetricProp] = "seats_daily"
		e.Value = float64(g.rng.IntN(5) + 1)
	}
	e.Props, _ = json.Marshal(props)
	return e
}

// UUID returns a random version-4 UUID.
func (g *Generator) UUID() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

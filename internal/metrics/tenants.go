package metrics

import (
	"context"
	"strconv"
	"sync"
)

// SlugFunc looks up the slug of a tenant by id.
type SlugFunc func(ctx context.Context, tenantID int64) (string, error)

// TenantLabels names tenants in metric labels by their slug, which is what
// operators know (a slug never changes). Like a Limiter it lets at most
// Max distinct tenants through; later ones are Other. A failed lookup
// answers Other and is retried the next time. Safe for concurrent use.
type TenantLabels struct {
	max  int
	slug SlugFunc
	mu   sync.RWMutex
	seen map[int64]string
}

// NewTenantLabels returns labels for at most max tenants (max <= 0 means
// 100). slug nil names tenants by their id.
func NewTenantLabels(max int, slug SlugFunc) *TenantLabels {
	if max <= 0 {
		max = 100
	}
	return &TenantLabels{max: max, slug: slug, seen: map[int64]string{}}
}

// Value returns the label of tenant id: its slug while it is among the
// first Max tenants seen, else Other.
func (l *TenantLabels) Value(ctx context.Context, id int64) string {
	l.mu.RLock()
	v, ok := l.seen[id]
	full := len(l.seen) >= l.max
	l.mu.RUnlock()
	if ok {
		return v
	}
	if full {
		return Other
	}
	v = strconv.FormatInt(id, 10)
	if l.slug != nil {
		s, err := l.slug(ctx, id)
		if err != nil || s == "" {
			return Other
		}
		v = s
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got, ok := l.seen[id]; ok {
		return got
	}
	if len(l.seen) >= l.max {
		return Other
	}
	l.seen[id] = v
	return v
}

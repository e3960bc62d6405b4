package usage_test

import (
	"testing"

	"github.com/tallyhq/tally/usage"
	"github.com/tallyhq/tally/usage/counterstest"
)

func TestMemoryCountersConformance(t *testing.T) {
	t.Parallel()
	counterstest.Run(t, func(*testing.T) usage.Counters { return usage.NewMemoryCounters() })
}

package usage_test

import (
	"testing"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/counterstest"
	"github.com/tallyhq/tally/usage"
)

func TestMemoryCountersConformance(t *testing.T) {
	t.Parallel()
	counterstest.Run(t, func(*testing.T) tally.Counters { return usage.NewMemoryCounters() })
}

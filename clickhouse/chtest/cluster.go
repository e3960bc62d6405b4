package chtest

import (
	"context"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tallyhq/tally/internal/testenv"
)

// defaultClusterURL is the two-shard cluster scripts/clickhouse.sh
// start-cluster starts; TALLY_TEST_CLICKHOUSE_CLUSTER overrides it.
const defaultClusterURL = "clickhouse://127.0.0.1:18131/?cluster=tally_two_shards&shards=127.0.0.1:18131,127.0.0.1:18132"

// ClusterURL is the test cluster's EVENTS_URL without a database:
// TALLY_TEST_CLICKHOUSE_CLUSTER, else scripts/clickhouse.sh's cluster.
func ClusterURL() string {
	if u := os.Getenv("TALLY_TEST_CLICKHOUSE_CLUSTER"); u != "" {
		return u
	}
	return defaultClusterURL
}

// Shards are the HTTP addresses (http://HOST:PORT) of the test cluster's
// shards, in its order, from ClusterURL's shards parameter.
func Shards() []string {
	u, err := url.Parse(ClusterURL())
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range strings.Split(u.Query().Get("shards"), ",") {
		if h != "" {
			out = append(out, "http://"+h)
		}
	}
	return out
}

var (
	clusterOnce sync.Once
	clusterErr  error
)

// RequireCluster skips t, loudly, unless every shard of the test cluster
// answers (and there are at least two); under CI=true it fails t instead.
func RequireCluster(t testing.TB) {
	t.Helper()
	clusterOnce.Do(func() {
		shards := Shards()
		if len(shards) < 2 {
			clusterErr = &serverError{"no cluster", "want at least two shards in " + ClusterURL()}
			return
		}
		for _, base := range shards {
			if clusterErr = runAt(context.Background(), base, "SELECT 1"); clusterErr != nil {
				return
			}
		}
	})
	if clusterErr == nil {
		return
	}
	testenv.Missing(t, "a ClickHouse cluster at "+ClusterURL(), clusterErr.Error(),
		"run scripts/clickhouse.sh start-cluster, or set TALLY_TEST_CLICKHOUSE_CLUSTER")
}

// FreshClusterDatabase names a database that exists on no shard yet,
// dropped from every shard when t ends, and returns the cluster's
// EVENTS_URL with it.
func FreshClusterDatabase(t testing.TB) string {
	t.Helper()
	RequireCluster(t)
	db := freshName(t, Shards()...)
	u, _ := url.Parse(ClusterURL())
	u.Path = "/" + db
	return u.String()
}

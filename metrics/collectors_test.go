package metrics_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keydelivery/keydelivery/metrics"
)

// poolExposition is the text exposition the Redis pool collector must give
// for s.
func poolExposition(s metrics.RedisPoolStats) string {
	return fmt.Sprintf(`# HELP keydelivery_redis_pool_connections Redis pool connections by state.
# TYPE keydelivery_redis_pool_connections gauge
keydelivery_redis_pool_connections{state="idle"} %d
keydelivery_redis_pool_connections{state="stale"} %d
keydelivery_redis_pool_connections{state="total"} %d
# HELP keydelivery_redis_pool_hits_total Times a free connection was found in the Redis pool.
# TYPE keydelivery_redis_pool_hits_total counter
keydelivery_redis_pool_hits_total %d
# HELP keydelivery_redis_pool_misses_total Times no free connection was found in the Redis pool.
# TYPE keydelivery_redis_pool_misses_total counter
keydelivery_redis_pool_misses_total %d
# HELP keydelivery_redis_pool_timeouts_total Times waiting for a Redis pool connection timed out.
# TYPE keydelivery_redis_pool_timeouts_total counter
keydelivery_redis_pool_timeouts_total %d
`, s.IdleConns, s.StaleConns, s.TotalConns, s.Hits, s.Misses, s.Timeouts)
}

// TestRedisPoolCollector: every scrape reads the pool statistics afresh
// and reports each in its own series.
func TestRedisPoolCollector(t *testing.T) {
	var mu sync.Mutex
	var stats metrics.RedisPoolStats
	reads := 0
	c := metrics.NewRedisPoolCollector(func() metrics.RedisPoolStats {
		mu.Lock()
		defer mu.Unlock()
		reads++
		return stats
	})
	// A pedantic registry checks that what Collect gives matches Describe.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	for i, s := range []metrics.RedisPoolStats{
		{},
		{Hits: 7, Misses: 3, Timeouts: 1, TotalConns: 10, IdleConns: 6, StaleConns: 2},
		{Hits: 1 << 40, Misses: 12345, Timeouts: 99, TotalConns: 64, IdleConns: 0, StaleConns: 64},
	} {
		mu.Lock()
		stats, reads = s, 0
		mu.Unlock()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(poolExposition(s))); err != nil {
			t.Errorf("scrape %d (%+v): %v", i, s, err)
		}
		if reads != 1 {
			t.Errorf("scrape %d read the statistics %d times, want once", i, reads)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// TestCertificateCollector: each trusted certificate's NotAfter is a
// series of its own, as Unix seconds; the set is read at each scrape, so a
// rotation shows at once and a removed certificate leaves no series.
func TestCertificateCollector(t *testing.T) {
	var mu sync.Mutex
	var certs []metrics.Certificate
	c := metrics.NewCertificateCollector(func() []metrics.Certificate {
		mu.Lock()
		defer mu.Unlock()
		return certs
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	base := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	a := metrics.Certificate{Thumbprint: "q0Lkf2T9aRvfWq9xR1bq8vF3y2M", Subject: "CN=token-signer-a", NotAfter: base}
	b := metrics.Certificate{Thumbprint: "bWYx3Rk0s8dGZkS0nVvT0t5yE8A", Subject: "CN=token-signer-b,O=Example", NotAfter: base.Add(90 * 24 * time.Hour)}
	// Before the epoch, with sub-second parts: whole seconds, negative.
	old := metrics.Certificate{Thumbprint: "b2xk", Subject: "CN=old", NotAfter: time.Date(1969, 12, 31, 23, 59, 0, 999, time.UTC)}
	for i, set := range [][]metrics.Certificate{{a}, {a, b}, {b, old}, nil} {
		mu.Lock()
		certs = set
		mu.Unlock()
		want := ""
		if len(set) > 0 {
			want = "# HELP keydelivery_token_certificate_not_after_seconds NotAfter of each trusted token-signing certificate, as a Unix time.\n" +
				"# TYPE keydelivery_token_certificate_not_after_seconds gauge\n"
			for _, cert := range set {
				want += fmt.Sprintf("keydelivery_token_certificate_not_after_seconds{subject=%q,thumbprint=%q} %d\n", cert.Subject, cert.Thumbprint, cert.NotAfter.Unix())
			}
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "keydelivery_token_certificate_not_after_seconds"); err != nil {
			t.Errorf("scrape %d: %v", i, err)
		}
		if n := testutil.CollectAndCount(c); n != len(set) {
			t.Errorf("scrape %d: %d series for %d certificates", i, n, len(set))
		}
	}
	mu.Lock()
	certs = []metrics.Certificate{a, b}
	mu.Unlock()
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

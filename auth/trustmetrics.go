package auth

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// trustMetrics are the token trust sources' metrics. The source label is
// a configured source's name (bounded by the configuration); the files
// are one source, "files".
type trustMetrics struct {
	fetches *prometheus.CounterVec
}

func newTrustMetrics(t *Trust, reg prometheus.Registerer) (*trustMetrics, error) {
	m := &trustMetrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "keydelivery", Subsystem: "token_trust", Name: "fetches_total",
			Help: "Fetches of remote token trust sources (Azure Key Vault certificates, JSON Web Key Sets, OpenID Connect issuers), by source and result (ok or error). A failed fetch keeps the source's last good keys.",
		}, []string{"source", "result"}),
	}
	collectors := []prometheus.Collector{m.fetches, &trustCollector{t: t,
		lastSuccess: prometheus.NewDesc("keydelivery_token_trust_last_success_timestamp_seconds",
			"When each token trust source was last loaded or fetched successfully (Unix time; absent before the first success).", []string{"source"}, nil),
		keys: prometheus.NewDesc("keydelivery_token_trust_keys",
			"Keys trusted from each token trust source now (its last good load or fetch).", []string{"source"}, nil),
		valid: prometheus.NewDesc("keydelivery_token_trust_valid_keys",
			"Trusted token keys currently valid (with the token leeway); 0 means every token is refused.", nil, nil),
	}}
	for _, name := range t.remoteNames() {
		for _, result := range []string{"ok", "error"} {
			m.fetches.WithLabelValues(name, result)
		}
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("auth: register token trust metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts one fetch of source.
func (m *trustMetrics) observe(source string, ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.fetches.WithLabelValues(source, result).Inc()
}

func (t *Trust) remoteNames() []string {
	out := make([]string, len(t.remotes))
	for i, r := range t.remotes {
		out[i] = r.Source.Name()
	}
	return out
}

// trustCollector reports the sources' state when scraped.
type trustCollector struct {
	t                        *Trust
	lastSuccess, keys, valid *prometheus.Desc
}

func (c *trustCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lastSuccess
	ch <- c.keys
	ch <- c.valid
}

func (c *trustCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.t.Sources() {
		name := s.Name
		if s.Kind == KindFile {
			name = "files"
		}
		if !s.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, float64(s.LastSuccess.UnixNano())/1e9, name)
		}
		ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(s.Keys), name)
	}
	ch <- prometheus.MustNewConstMetric(c.valid, prometheus.GaugeValue, float64(c.t.validCount(c.t.now())))
}

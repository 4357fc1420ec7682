// Package metrics builds the server's Prometheus registry and the metric
// families shared by more than one package. Every package registers its own
// metrics on the Registerer it is given: there is no global registry and no
// promauto. Label values are bounded by construction (route templates,
// status classes, closed reason sets); a KID, subject or token is never a
// label. This package imports no package of ours.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of ours.
const Namespace = "keydelivery"

// LatencyBuckets resolve sub-millisecond latency (a cached key answers in
// tens of microseconds) up to the multi-second store deadline.
var LatencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

// BuildInfo names the running build.
type BuildInfo struct {
	Version string
	Commit  string
}

// NewRegistry returns a registry with the process and Go runtime collectors
// and keydelivery_build_info.
func NewRegistry(b BuildInfo) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": runtime.Version()},
	})
	bi.Set(1)
	reg.MustRegister(bi)
	return reg
}

// Handler serves the registry in the Prometheus exposition formats.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// HTTP holds the request metrics of one HTTP plane. Build one per plane
// with a Registerer wrapped with the plane's label, e.g.
// prometheus.WrapRegistererWith(prometheus.Labels{"plane": "delivery"}, reg).
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// series caches the children by route and status class, so the hot
	// path neither builds a label slice nor hashes label values. The map is
	// copied on write (a new route or class, a handful in a process's
	// life), so reads take no lock: a read lock's shared counter is a
	// cache line every core would fight over.
	mu     sync.Mutex
	series atomic.Pointer[map[seriesKey]httpSeries]
}

// seriesKey names one series: the route, and the status class (2 for
// 2xx) or, for a status outside 100-599 (which has no class, and is its own
// label value), the status itself with exact set.
type seriesKey struct {
	route string
	class int
	exact bool
}

func keyOf(route string, status int) seriesKey {
	if status >= 100 && status < 600 {
		return seriesKey{route: route, class: status / 100}
	}
	return seriesKey{route: route, class: status, exact: true}
}

type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewHTTP registers the request metrics on reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route template and status class.",
		}, []string{"route", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route template and status class.",
			Buckets: LatencyBuckets,
		}, []string{"route", "class"}),
	}
	h.series.Store(&map[seriesKey]httpSeries{})
	reg.MustRegister(h.requests, h.duration)
	return h
}

var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// StatusClass returns "2xx", "4xx" and so on.
func StatusClass(status int) string {
	if status >= 100 && status < 600 {
		return classes[status/100-1]
	}
	return strconv.Itoa(status)
}

// Observe records one request. route must be a route template, never a raw path.
func (h *HTTP) Observe(route string, status int, d time.Duration) {
	k := keyOf(route, status)
	s, ok := (*h.series.Load())[k]
	if !ok {
		s = h.add(k, status)
	}
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}

func (h *HTTP) add(k seriesKey, status int) httpSeries {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *h.series.Load()
	if s, ok := old[k]; ok {
		return s
	}
	c := StatusClass(status)
	s := httpSeries{h.requests.WithLabelValues(k.route, c), h.duration.WithLabelValues(k.route, c)}
	m := make(map[seriesKey]httpSeries, len(old)+1)
	for key, v := range old {
		m[key] = v
	}
	m[k] = s
	h.series.Store(&m)
	return s
}

package metrics_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/keydelivery/keydelivery/metrics"
)

const (
	requestsName = "keydelivery_http_requests_total"
	durationName = "keydelivery_http_request_duration_seconds"
)

// observation is one request given to HTTP.Observe.
type observation struct {
	route  string
	status int
	d      time.Duration
}

// series identifies one series of the request metrics.
type series struct{ plane, route, class string }

// want is what a set of observations must produce per series: the request
// count, the sum of the latencies and, per bucket of LatencyBuckets, the
// cumulative count.
type want struct {
	count   uint64
	sum     float64
	buckets []uint64
}

// expect computes, from the observations alone, what the request metrics
// of plane must hold.
func expect(plane string, obs []observation) map[series]*want {
	out := map[series]*want{}
	for _, o := range obs {
		k := series{plane, o.route, metrics.StatusClass(o.status)}
		w := out[k]
		if w == nil {
			w = &want{buckets: make([]uint64, len(metrics.LatencyBuckets))}
			out[k] = w
		}
		w.count++
		w.sum += o.d.Seconds()
		for i, le := range metrics.LatencyBuckets {
			if o.d.Seconds() <= le {
				w.buckets[i]++
			}
		}
	}
	return out
}

// labels returns a metric's labels as a map.
func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// family gathers reg and returns the family called name, or nil.
func family(t *testing.T, reg prometheus.Gatherer, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

// checkHTTP compares the request metrics in reg with wants: the same series
// (no more, no fewer), each counted, summed and bucketed as computed.
func checkHTTP(t *testing.T, reg prometheus.Gatherer, wants map[series]*want) {
	t.Helper()
	requests, duration := family(t, reg, requestsName), family(t, reg, durationName)
	if requests == nil || duration == nil {
		t.Fatalf("gathered %s: %v, %s: %v; want both", requestsName, requests != nil, durationName, duration != nil)
	}
	if requests.GetType() != dto.MetricType_COUNTER || duration.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("types %v and %v, want a counter and a histogram", requests.GetType(), duration.GetType())
	}
	seen := map[series]bool{}
	for _, m := range requests.GetMetric() {
		ls := labels(m)
		if len(ls) != 3 {
			t.Errorf("%s series with labels %v, want exactly plane, route and class", requestsName, ls)
		}
		k := series{ls["plane"], ls["route"], ls["class"]}
		w, ok := wants[k]
		if !ok {
			t.Errorf("%s has an unexpected series %+v = %v", requestsName, k, m.GetCounter().GetValue())
			continue
		}
		seen[k] = true
		if got := m.GetCounter().GetValue(); got != float64(w.count) {
			t.Errorf("%s%+v = %v, want %d", requestsName, k, got, w.count)
		}
	}
	for _, m := range duration.GetMetric() {
		ls := labels(m)
		k := series{ls["plane"], ls["route"], ls["class"]}
		w, ok := wants[k]
		if !ok || len(ls) != 3 {
			t.Errorf("%s has an unexpected series %v", durationName, ls)
			continue
		}
		h := m.GetHistogram()
		if h.GetSampleCount() != w.count {
			t.Errorf("%s%+v counts %d, want %d", durationName, k, h.GetSampleCount(), w.count)
		}
		if math.Abs(h.GetSampleSum()-w.sum) > 1e-9*math.Max(1, w.sum) {
			t.Errorf("%s%+v sums %v, want %v", durationName, k, h.GetSampleSum(), w.sum)
		}
		var bounds []float64
		var counts []uint64
		for _, b := range h.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), +1) {
				bounds = append(bounds, b.GetUpperBound())
				counts = append(counts, b.GetCumulativeCount())
			}
		}
		if !slices.Equal(bounds, metrics.LatencyBuckets) {
			t.Errorf("%s%+v buckets %v, want LatencyBuckets %v", durationName, k, bounds, metrics.LatencyBuckets)
		} else if !slices.Equal(counts, w.buckets) {
			t.Errorf("%s%+v cumulative bucket counts %v, want %v", durationName, k, counts, w.buckets)
		}
	}
	for k := range wants {
		if !seen[k] {
			t.Errorf("%s lacks the series %+v", requestsName, k)
		}
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{
		100: "1xx", 199: "1xx", 200: "2xx", 204: "2xx", 304: "3xx", 400: "4xx", 404: "4xx", 499: "4xx",
		500: "5xx", 503: "5xx", 599: "5xx",
		// No class: the status itself.
		0: "0", 99: "99", 600: "600", 999: "999", -1: "-1",
	} {
		if got := metrics.StatusClass(status); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", status, got, want)
		}
	}
}

// TestHTTPObserve: each request is counted and timed under its route
// template and status class, on its plane, in LatencyBuckets.
func TestHTTPObserve(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	h := metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "delivery"}, reg))
	obs := []observation{
		{"/keys/:kid", 200, 40 * time.Microsecond},
		{"/keys/:kid", 200, 50 * time.Microsecond}, // on a bucket's bound: counted in it
		{"/keys/:kid", 204, 3 * time.Millisecond},
		{"/keys/:kid", 404, 700 * time.Microsecond},
		{"/keys/:kid", 403, 2 * time.Second},
		{"/clearkey/license", 200, 10 * time.Second}, // above every bucket
		{"/clearkey/license", 503, time.Millisecond},
		{"/clearkey/license", 101, 0},
		{"/clearkey/license", 302, 25 * time.Millisecond},
		{"unmatched", 404, 90 * time.Microsecond},
		// Statuses without a class are labelled with themselves, each its own
		// series, even when they share the integer part of a class.
		{"unmatched", 42, time.Millisecond},
		{"unmatched", 0, time.Millisecond},
		{"unmatched", 600, time.Millisecond},
		{"unmatched", 650, time.Millisecond},
		{"unmatched", 4, time.Millisecond},
	}
	for _, o := range obs {
		h.Observe(o.route, o.status, o.d)
	}
	checkHTTP(t, reg, expect("delivery", obs))
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}

	// Again: the cached series count on.
	for _, o := range obs {
		h.Observe(o.route, o.status, o.d)
	}
	checkHTTP(t, reg, expect("delivery", append(slices.Clone(obs), obs...)))
}

// TestHTTPPlanes: the two planes register the same families on one
// registry, told apart by their plane label.
func TestHTTPPlanes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	planes := map[string]*metrics.HTTP{}
	for _, p := range []string{"delivery", "admin"} {
		planes[p] = metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": p}, reg))
	}
	delivery := []observation{{"/keys/:kid", 200, time.Millisecond}, {"/keys/:kid", 401, time.Millisecond}}
	admin := []observation{{"/api/keys", 200, 2 * time.Millisecond}, {"/keys/:kid", 200, 4 * time.Millisecond}}
	for _, o := range delivery {
		planes["delivery"].Observe(o.route, o.status, o.d)
	}
	for _, o := range admin {
		planes["admin"].Observe(o.route, o.status, o.d)
	}
	wants := expect("delivery", delivery)
	for k, w := range expect("admin", admin) {
		wants[k] = w
	}
	checkHTTP(t, reg, wants)

	// A second HTTP for a plane that has one collides.
	defer func() {
		if recover() == nil {
			t.Error("a second NewHTTP for the same plane registered without complaint")
		}
	}()
	metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "admin"}, reg))
}

// TestHTTPConcurrentObserve: many goroutines at once observe routes seen
// before and routes new to all of them, so that series are added to the
// copy-on-write map while others read it (run with -race). Every
// observation is counted exactly once, under its own series.
func TestHTTPConcurrentObserve(t *testing.T) {
	const goroutines, rounds = 16, 25
	reg := prometheus.NewPedanticRegistry()
	h := metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "delivery"}, reg))
	var routes []string
	for i := range 12 {
		routes = append(routes, fmt.Sprintf("/route/%d", i))
	}
	statuses := []int{200, 201, 404, 503, 302, 101, 700}
	// The first three routes exist before the burst.
	var obs []observation
	for _, r := range routes[:3] {
		o := observation{r, 200, time.Millisecond}
		h.Observe(o.route, o.status, o.d)
		obs = append(obs, o)
	}
	// Each goroutine starts at another route and status, so that new
	// series are first observed by several goroutines at once.
	plan := make([][]observation, goroutines)
	for g := range plan {
		for n := range rounds * len(routes) * len(statuses) {
			i := g + n
			o := observation{routes[i%len(routes)], statuses[(i/len(routes))%len(statuses)], time.Duration(i%7) * time.Millisecond}
			plan[g] = append(plan[g], o)
			obs = append(obs, o)
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range plan {
		wg.Go(func() {
			<-start
			for _, o := range plan[g] {
				h.Observe(o.route, o.status, o.d)
			}
		})
	}
	close(start)
	wg.Wait()

	wants := expect("delivery", obs)
	checkHTTP(t, reg, wants)
	// The same through testutil's own counting: one series per route and
	// class, and every request in them.
	if n := testutil.CollectAndCount(reg, requestsName); n != len(wants) {
		t.Errorf("%d request series, want %d", n, len(wants))
	}
	var total float64
	for _, m := range family(t, reg, requestsName).GetMetric() {
		total += m.GetCounter().GetValue()
	}
	if total != float64(len(obs)) {
		t.Errorf("%v requests counted, %d observed", total, len(obs))
	}
}

// TestNewRegistry: the registry holds the Go and process collectors and
// keydelivery_build_info, 1, labelled with the build and the Go version.
func TestNewRegistry(t *testing.T) {
	b := metrics.BuildInfo{Version: "v" + t.Name(), Commit: fmt.Sprintf("%x", time.Now().UnixNano())}
	reg := metrics.NewRegistry(b)
	bi := family(t, reg, "keydelivery_build_info")
	if bi == nil || len(bi.GetMetric()) != 1 {
		t.Fatalf("keydelivery_build_info: %v, want one series", bi)
	}
	m := bi.GetMetric()[0]
	if got := labels(m); len(got) != 3 || got["version"] != b.Version || got["commit"] != b.Commit || got["goversion"] != runtime.Version() {
		t.Errorf("build info labels %v, want version %q, commit %q, goversion %q", got, b.Version, b.Commit, runtime.Version())
	}
	if bi.GetType() != dto.MetricType_GAUGE || m.GetGauge().GetValue() != 1 {
		t.Errorf("build info is a %v of %v, want a gauge of 1", bi.GetType(), m.GetGauge().GetValue())
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if family(t, reg, name) == nil {
			t.Errorf("the registry lacks %s", name)
		}
	}
	// Two registries are independent: no global state.
	other := metrics.NewRegistry(metrics.BuildInfo{Version: "other"})
	if got := labels(family(t, other, "keydelivery_build_info").GetMetric()[0])["version"]; got != "other" {
		t.Errorf("a second registry's build info says version %q", got)
	}
}

// TestHandler: the registry is served in the text format, and in
// OpenMetrics to a client that asks for it.
func TestHandler(t *testing.T) {
	reg := metrics.NewRegistry(metrics.BuildInfo{Version: "v9.8.7", Commit: "c0ffee"})
	metrics.NewHTTP(prometheus.WrapRegistererWith(prometheus.Labels{"plane": "admin"}, reg)).Observe("/metrics", 200, time.Millisecond)
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	for accept, wantType := range map[string]string{
		"": "text/plain",
		"application/openmetrics-text; version=1.0.0": "application/openmetrics-text",
	} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), wantType) {
			t.Errorf("Accept %q: %d %q, want 200 %s", accept, resp.StatusCode, resp.Header.Get("Content-Type"), wantType)
		}
		for _, want := range []string{
			`keydelivery_build_info{commit="c0ffee",goversion="` + runtime.Version() + `",version="v9.8.7"} 1`,
			`keydelivery_http_requests_total{class="2xx",plane="admin",route="/metrics"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("Accept %q: the body lacks %s", accept, want)
			}
		}
		if strings.HasPrefix(wantType, "application/openmetrics") && !strings.HasSuffix(strings.TrimSpace(string(body)), "# EOF") {
			t.Errorf("OpenMetrics body does not end with # EOF")
		}
	}
}

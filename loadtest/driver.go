package main

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 60 s, three significant digits.
const (
	histMinUS = 1
	histMaxUS = 60_000_000
	histSig   = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMinUS, histMaxUS, histSig) }

// runSpec is one measured run against one target.
type runSpec struct {
	Target      string
	BaseURL     *url.URL
	PID         int // server process whose CPU is measured (0: none)
	StorePID    int // the server's redis-server, measured apart (0: none)
	Concurrency int // closed loop: workers; open loop: connection limit
	Rate        float64
	Warmup      time.Duration
	Duration    time.Duration
	Requests    int64 // measured-window bound (0: none)
	Timeout     time.Duration
	Source      requestSource
	Seed        uint64
	Client      string // "raw" (default) or "nethttp"
}

// workerDoers returns one doer per worker, and a function that closes all.
func workerDoers(spec runSpec) ([]doer, func()) {
	ds := make([]doer, spec.Concurrency)
	if spec.Client == "nethttp" {
		c := newClient(spec.BaseURL, spec.Concurrency, spec.Timeout)
		for i := range ds {
			ds[i] = netHTTPDoer{c}
		}
		return ds, c.tr.CloseIdleConnections
	}
	for i := range ds {
		ds[i] = newRawConn(spec.BaseURL.Host, spec.BaseURL.Host, spec.Timeout)
	}
	return ds, func() {
		for _, d := range ds {
			d.close()
		}
	}
}

// sample is what the workers collect; merged after the run.
type sample struct {
	latency *hdrhistogram.Histogram // closed: send→done; open: scheduled→done
	service *hdrhistogram.Histogram // open loop: send→done
	lag     *hdrhistogram.Histogram // open loop: scheduled→send
	status  map[int]int64
	errs    map[string]int64
	done    int64 // responses completed inside the window
	ok      int64 // of which 200 with 16 bytes
}

func newSample(open bool) *sample {
	s := &sample{latency: newHist(), status: map[int]int64{}, errs: map[string]int64{}}
	if open {
		s.service, s.lag = newHist(), newHist()
	}
	return s
}

func (s *sample) merge(o *sample) {
	s.latency.Merge(o.latency)
	if s.service != nil {
		s.service.Merge(o.service)
		s.lag.Merge(o.lag)
	}
	for k, v := range o.status {
		s.status[k] += v
	}
	for k, v := range o.errs {
		s.errs[k] += v
	}
	s.done += o.done
	s.ok += o.ok
}

// count records one answer inside the window: by status, or by error
// class when there was no answer. A 200 must carry the 16 key bytes. It
// reports whether there was an answer (whose latency counts).
func (s *sample) count(status, n int, errc string) bool {
	if errc != "" {
		s.errs[errc]++
		return false
	}
	s.status[status]++
	if status == http.StatusOK && n == 16 {
		s.ok++
	} else if status == http.StatusOK {
		s.errs["200 with "+strconv.Itoa(n)+" bytes"]++
	}
	return true
}

// mergeAll merges the workers' samples.
func mergeAll(samples []*sample, open bool) *sample {
	total := newSample(open)
	for _, s := range samples {
		total.merge(s)
	}
	return total
}

// sequencer numbers the requests, the warm-up's and the window's apart,
// so that a source hands the window the same requests whatever the
// warm-up took.
type sequencer struct{ warm, meas atomic.Uint64 }

func (q *sequencer) next(src requestSource, r *rand.Rand, measured bool) (request, bool) {
	if measured {
		return src.next(q.meas.Add(1)-1, r, true)
	}
	return src.next(q.warm.Add(1)-1, r, false)
}

func recordUS(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMinUS {
		us = histMinUS
	}
	if us > histMaxUS {
		us = histMaxUS
	}
	_ = h.RecordValue(us)
}

// client does one request at a time over a keep-alive connection pool.
type client struct {
	tr      *http.Transport
	base    url.URL
	bodyBuf sync.Pool
}

func newClient(base *url.URL, conns int, timeout time.Duration) *client {
	tr := &http.Transport{
		Proxy:                 nil, // loopback only; never an environment proxy
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: timeout,
	}
	return &client{tr: tr, base: *base, bodyBuf: sync.Pool{New: func() any { b := make([]byte, 512); return &b }}}
}

// do sends one GET and reads the whole answer. It returns the status, the
// body length, and an error class for transport failures.
func (c *client) do(r request) (status, n int, errClass string) {
	u := c.base
	u.Path = r.path
	u.RawPath = ""
	if i := indexByte(r.path, '?'); i >= 0 {
		u.Path, u.RawQuery = r.path[:i], r.path[i+1:]
	}
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"Authorization": {r.auth}},
		Host:       u.Host,
	}
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return 0, 0, classify(err)
	}
	bp := c.bodyBuf.Get().(*[]byte)
	for {
		m, err := resp.Body.Read(*bp)
		n += m
		if err != nil {
			if !errors.Is(err, io.EOF) {
				resp.Body.Close()
				c.bodyBuf.Put(bp)
				return resp.StatusCode, n, "read: " + classify(err)
			}
			break
		}
	}
	c.bodyBuf.Put(bp)
	resp.Body.Close()
	return resp.StatusCode, n, ""
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// classify turns a transport error into a short, bounded label.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	return "other transport error"
}

// window marks the measured interval. Phase 0: warm-up, 1: measuring,
// 2: over.
type window struct {
	phase     atomic.Int32
	t0, t1    time.Time
	cpu0      time.Duration
	cpu1      time.Duration
	self0     time.Duration
	self1     time.Duration
	cpuErr    error
	store0    time.Duration
	store1    time.Duration
	storePID  int
	doneCount atomic.Int64 // completions inside the window
	limit     int64
	reached   chan struct{}
	once      sync.Once
}

func (w *window) open(pid int) {
	if pid > 0 {
		w.cpu0, w.cpuErr = treeCPU(pid)
	}
	if w.storePID > 0 {
		w.store0, _ = cpuTime(w.storePID)
	}
	w.self0 = selfCPU()
	w.t0 = time.Now()
	w.phase.Store(1)
}

func (w *window) close(pid int) {
	w.phase.Store(2)
	w.t1 = time.Now()
	w.self1 = selfCPU()
	if pid > 0 && w.cpuErr == nil {
		w.cpu1, w.cpuErr = treeCPU(pid)
	}
	if w.storePID > 0 {
		w.store1, _ = cpuTime(w.storePID)
	}
}

// completed counts a completion inside the window and reports the limit.
func (w *window) completed() {
	if n := w.doneCount.Add(1); w.limit > 0 && n >= w.limit {
		w.once.Do(func() { close(w.reached) })
	}
}

// runResult is one run's outcome, as printed and written to JSON.
type runResult struct {
	Target          string           `json:"target"`
	Round           int              `json:"round"`
	Concurrency     int              `json:"concurrency"`
	Rate            float64          `json:"rate,omitempty"`
	WindowSeconds   float64          `json:"window_s"`
	Completed       int64            `json:"completed"`
	OK              int64            `json:"ok"`
	Throughput      float64          `json:"throughput_rps"`
	Latency         latencySummary   `json:"latency_us"`
	Service         *latencySummary  `json:"service_us,omitempty"`
	ClientLag       *latencySummary  `json:"client_lag_us,omitempty"`
	Status          map[string]int64 `json:"status"`
	Errors          map[string]int64 `json:"errors,omitempty"`
	Unsent          int64            `json:"unsent,omitempty"`
	ServerCPU       float64          `json:"server_cpu_s,omitempty"`
	ServerCPUPerReq float64          `json:"server_cpu_us_per_req,omitempty"`
	ClientCPUPerReq float64          `json:"client_cpu_us_per_req"`
	ServerCores     float64          `json:"server_cores,omitempty"`
	ClientCores     float64          `json:"client_cores"`
	ServerRSSKiB    int64            `json:"server_rss_kib,omitempty"`
	StoreCPUPerReq  float64          `json:"store_cpu_us_per_req,omitempty"`
	Exhausted       bool             `json:"tokens_exhausted,omitempty"`
	Note            string           `json:"note,omitempty"`
}

type latencySummary struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
	N    int64   `json:"count"`
}

func summarize(h *hdrhistogram.Histogram) latencySummary {
	return latencySummary{
		P50: float64(h.ValueAtQuantile(50)), P90: float64(h.ValueAtQuantile(90)),
		P99: float64(h.ValueAtQuantile(99)), P999: float64(h.ValueAtQuantile(99.9)),
		Max: float64(h.Max()), Mean: h.Mean(), N: h.TotalCount(),
	}
}

// drive runs spec: warm-up, then the measured window, then a bounded drain.
func drive(spec runSpec) runResult {
	if spec.Rate > 0 {
		return driveOpen(spec)
	}
	return driveClosed(spec)
}

// driveClosed keeps Concurrency requests in flight: each worker sends its
// next request when the previous answer is complete. Latency is from send
// to the end of the body.
func driveClosed(spec runSpec) runResult {
	doers, closeAll := workerDoers(spec)
	w := &window{limit: spec.Requests, reached: make(chan struct{}), storePID: spec.StorePID}
	var (
		seq       sequencer
		stop      atomic.Bool
		exhausted atomic.Bool
		wg        sync.WaitGroup
	)
	samples := make([]*sample, spec.Concurrency)
	for i := range samples {
		s := newSample(false)
		samples[i] = s
		c := doers[i]
		r := rand.New(rand.NewPCG(spec.Seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				startPhase := w.phase.Load()
				req, ok := seq.next(spec.Source, r, startPhase != 0)
				if !ok {
					exhausted.Store(true)
					return
				}
				start := time.Now()
				status, n, errc := c.do(req)
				d := time.Since(start)
				if w.phase.Load() != 1 {
					continue
				}
				s.done++
				w.completed()
				if s.count(status, n, errc) && startPhase == 1 {
					recordUS(s.latency, d)
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	select {
	case <-time.After(spec.Warmup):
	case <-allDone:
	}
	w.open(spec.PID)
	select {
	case <-time.After(spec.Duration):
	case <-w.reached:
	case <-allDone:
	}
	w.close(spec.PID)
	stop.Store(true)
	note := ""
	select {
	case <-allDone:
	case <-time.After(spec.Timeout + 5*time.Second):
		note = "some workers were still blocked after the drain deadline"
	}
	if note == "" {
		closeAll()
	}
	res := finish(spec, w, mergeAll(samples, false))
	res.Exhausted = exhausted.Load()
	if note != "" {
		res.Note = note
	}
	return res
}

// item is one scheduled request of an open-loop run.
type item struct {
	seq   uint64
	sched time.Time
	phase int32 // the window phase of its scheduled time
}

// driveOpen sends requests at fixed intervals whatever the answers: a
// dispatcher puts request i on a queue at start + i/Rate, and up to
// Concurrency workers (connections) take them. Latency is measured from
// the scheduled time, so a stall shows as latency of every request that
// should have been sent meanwhile (no coordinated omission); the service
// time (from the actual send) and the client's lag (scheduled to sent) are
// reported beside it.
func driveOpen(spec runSpec) runResult {
	doers, closeAll := workerDoers(spec)
	interval := time.Duration(float64(time.Second) / spec.Rate)
	measureFor := spec.Duration
	if spec.Requests > 0 {
		if d := time.Duration(spec.Requests) * interval; d < measureFor {
			measureFor = d
		}
	}
	start := time.Now().Add(10 * time.Millisecond)
	t0 := start.Add(spec.Warmup)
	t1 := t0.Add(measureFor)
	w := &window{reached: make(chan struct{}), storePID: spec.StorePID}

	queue := make(chan item, 65536)
	var (
		stopDispatch atomic.Bool
		exhausted    atomic.Bool
		unsent       atomic.Int64
		abandon      atomic.Bool
		seq          sequencer
		wg           sync.WaitGroup
	)
	go func() {
		defer close(queue)
		for i := uint64(0); ; i++ {
			sched := start.Add(time.Duration(i) * interval)
			if !sched.Before(t1) || stopDispatch.Load() {
				return
			}
			var ph int32
			if !sched.Before(t0) {
				ph = 1
			}
			if d := time.Until(sched); d > 0 {
				time.Sleep(d)
			}
			queue <- item{seq: i, sched: sched, phase: ph}
		}
	}()
	samples := make([]*sample, spec.Concurrency)
	for i := range samples {
		s := newSample(true)
		samples[i] = s
		c := doers[i]
		r := rand.New(rand.NewPCG(spec.Seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range queue {
				if abandon.Load() {
					if it.phase == 1 {
						unsent.Add(1)
					}
					continue
				}
				req, ok := seq.next(spec.Source, r, it.phase != 0)
				if !ok {
					exhausted.Store(true)
					stopDispatch.Store(true)
					continue
				}
				sent := time.Now()
				status, n, errc := c.do(req)
				end := time.Now()
				if w.phase.Load() == 1 {
					s.done++ // completed inside the window, whenever scheduled
				}
				if it.phase != 1 || !s.count(status, n, errc) {
					continue
				}
				recordUS(s.latency, end.Sub(it.sched))
				recordUS(s.service, end.Sub(sent))
				recordUS(s.lag, sent.Sub(it.sched))
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	time.Sleep(time.Until(t0))
	w.open(spec.PID)
	select {
	case <-time.After(time.Until(t1)):
	case <-allDone:
	}
	w.close(spec.PID)
	// Drain: every request scheduled in the window is still sent and
	// timed, within a bound; what is left after it is counted as unsent.
	note := ""
	select {
	case <-allDone:
	case <-time.After(spec.Timeout + 5*time.Second):
		abandon.Store(true)
		select {
		case <-allDone:
		case <-time.After(spec.Timeout + 2*time.Second):
			note = "some workers were still blocked after the drain deadline"
		}
	}
	if note == "" {
		closeAll()
	}
	total := mergeAll(samples, true)
	res := finish(spec, w, total)
	res.Rate = spec.Rate
	res.Unsent = unsent.Load()
	res.Exhausted = exhausted.Load()
	if res.Unsent > 0 {
		res.Errors["unsent (backlog at the drain deadline)"] += res.Unsent
	}
	if note != "" {
		res.Note = note
	}
	s, l := summarize(total.service), summarize(total.lag)
	res.Service, res.ClientLag = &s, &l
	return res
}

func finish(spec runSpec, w *window, total *sample) runResult {
	secs := w.t1.Sub(w.t0).Seconds()
	res := runResult{
		Target:        spec.Target,
		Concurrency:   spec.Concurrency,
		WindowSeconds: secs,
		Completed:     total.done,
		OK:            total.ok,
		Latency:       summarize(total.latency),
		Status:        map[string]int64{},
		Errors:        map[string]int64{},
	}
	if secs > 0 {
		res.Throughput = float64(total.ok) / secs
	}
	for k, v := range total.status {
		res.Status[strconv.Itoa(k)] = v
		if k != http.StatusOK {
			res.Errors[strconv.Itoa(k)] += v
		}
	}
	for k, v := range total.errs {
		res.Errors[k] += v
	}
	if total.done > 0 {
		res.ClientCPUPerReq = float64((w.self1 - w.self0).Microseconds()) / float64(total.done)
	}
	if secs > 0 {
		res.ClientCores = (w.self1 - w.self0).Seconds() / secs
	}
	if spec.PID > 0 {
		if w.cpuErr != nil {
			res.Note = "server CPU not measured: " + w.cpuErr.Error()
		} else {
			cpu := w.cpu1 - w.cpu0
			res.ServerCPU = cpu.Seconds()
			if secs > 0 {
				res.ServerCores = cpu.Seconds() / secs
			}
			if total.done > 0 {
				res.ServerCPUPerReq = float64(cpu.Microseconds()) / float64(total.done)
			}
		}
		res.ServerRSSKiB = treeRSS(spec.PID)
	}
	if spec.StorePID > 0 && total.done > 0 {
		res.StoreCPUPerReq = float64((w.store1 - w.store0).Microseconds()) / float64(total.done)
	}
	return res
}

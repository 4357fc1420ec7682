package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
)

// The TLS benchmark: go run ./loadtest tls. One ECDSA P-256 certificate
// (from a CA made for the run) for every target: keydelivery with
// --tls-cert, a bare Go TLS server answering the same 16 bytes, and nginx
// with TLS (when installed). The client speaks TLS 1.3 and HTTP/1.1. It
// measures, target by target, round by round:
//
//	(a) keep-alive: cached key requests over kept-alive TLS connections;
//	(b) full handshakes: a new connection per request, no session reuse;
//	(c) resumed handshakes: a new connection per request, resuming the
//	    worker's previous session (TLS 1.3 tickets);
//	(d) flash crowd (keydelivery only): an open-loop arrival of new
//	    viewers at rising rates, each a new TLS connection with a new
//	    token, latency counted from the scheduled arrival.
//
// Every loop is bounded by its window and every request by a timeout; all
// traffic goes to loopback.

type tlsConfig struct {
	duration, warmup, flashStep, timeout time.Duration
	concurrency, handshakeConc, rounds   int
	rates                                []int
	nginx                                bool
	nginxWorkers                         string
	serverBin, jsonOut                   string
	keepTmp                              bool
}

type tlsTarget struct {
	Name string
	Addr string
	Path string
	PID  int
	stop func()
}

// tlsRun is one measurement of one mode on one target.
type tlsRun struct {
	Target, Mode string
	Round        int
	Ops          int64   // requests (a) or connections (b, c) completed with 200
	PerSec       float64 // Ops per second of window
	P50, P99     float64 // milliseconds
	Resumed      int64   // (c): handshakes that resumed
	Errors       int64
	ServerCPUus  float64 // server CPU per op, µs
	ClientCPUus  float64 // load generator CPU per op, µs
}

// flashStep is one rate of the flash crowd.
type flashStep struct {
	Rate               int
	Scheduled, OK      int64
	Status             map[string]int64 // non-200 answers and failure classes
	P50, P99, Max      float64          // ms, from the scheduled arrival, answered requests
	Held               bool             // every answer 200 and p99 under 250 ms
	FastRefusalsP99    float64          // ms: p99 of the non-200 answers (should be fast)
	ServerCPUPerArrive float64          // µs
}

type tlsReport struct {
	Runs    []tlsRun
	Ratios  map[string]float64
	Flash   []flashStep
	Highest int
}

func parseTLSConfig(args []string, stderr io.Writer) (*tlsConfig, error) {
	c := &tlsConfig{}
	fs := flag.NewFlagSet("tls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured window of each run of (a), (b) and (c)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured warm-up before each window")
	fs.DurationVar(&c.flashStep, "flash-step", 3*time.Second, "(d): how long each arrival rate lasts")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "per request (connection, handshake and answer)")
	fs.IntVar(&c.concurrency, "concurrency", 32, "(a): kept-alive connections")
	fs.IntVar(&c.handshakeConc, "handshake-concurrency", 16, "(b), (c): connections opened at once")
	fs.IntVar(&c.rounds, "rounds", 2, "rounds; each runs every target in turn")
	rates := fs.String("rates", "250,500,1000,1500,2000,3000,4000", "(d): arrival rates, new viewers per second, in order")
	fs.BoolVar(&c.nginx, "nginx", true, "include the nginx TLS baseline (when nginx is installed)")
	fs.StringVar(&c.nginxWorkers, "nginx-workers", "auto", "nginx worker_processes")
	fs.StringVar(&c.serverBin, "server-bin", "", "keydelivery binary (default: go build ./cmd/keydelivery)")
	fs.StringVar(&c.jsonOut, "json", "", "write the results as JSON to this file")
	fs.BoolVar(&c.keepTmp, "keep-tmp", false, "keep the temporary directory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 || n > 20000 {
			return nil, fmt.Errorf("--rates %q: want positive numbers up to 20000", *rates)
		}
		c.rates = append(c.rates, n)
	}
	if c.duration <= 0 || c.flashStep <= 0 || c.timeout <= 0 || c.concurrency <= 0 || c.handshakeConc <= 0 || c.rounds <= 0 {
		return nil, errors.New("durations, concurrencies and rounds must be positive")
	}
	return c, nil
}

func tlsBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseTLSConfig(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "kd-tlsbench-")
	if err != nil {
		return err
	}
	if !c.keepTmp {
		defer os.RemoveAll(tmp)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "tls: "+format+"\n", a...) }

	// One certificate for every target.
	ca, err := tlsserve.NewCA(rand.Reader, "loadtest CA", time.Now(), 24*time.Hour)
	if err != nil {
		return err
	}
	leaf, err := ca.Issue(rand.Reader, []string{"127.0.0.1", "localhost"}, time.Now(), 12*time.Hour, false)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(tmp, "tls.crt"), filepath.Join(tmp, "tls.key")
	if err := os.Chmod(tmp, 0o711); err != nil { // nginx's workers read the files
		return err
	}
	if err := os.WriteFile(certFile, leaf.CertPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM, 0o644); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	bin := c.serverBin
	if bin == "" {
		logf("building ./cmd/keydelivery")
		if bin, err = buildServer(tmp); err != nil {
			return err
		}
	}
	kd, err := startServer(serverOptions{Bin: bin, Name: "tls", Tmp: tmp, Store: "bolt",
		Flags: []string{"--tls-cert", certFile, "--tls-key", keyFile}})
	if err != nil {
		return err
	}
	defer kd.stop()
	kid, err := createOneKey(kd)
	if err != nil {
		return err
	}
	signer, err := auth.LoadSigner(kd.signingKey(), kd.signingCert())
	if err != nil {
		return err
	}
	mint := func() (string, error) {
		now := time.Now()
		return signer.Sign(auth.TokenClaims{Issuer: "keydelivery-dev", Audience: "keydelivery", KeyIDs: []string{kid},
			IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour)})
	}
	shared, err := mint()
	if err != nil {
		return err
	}
	targets := []*tlsTarget{{Name: "keydelivery", Addr: kd.Delivery.Host, Path: "/keys/" + kid, PID: kd.PID}}
	bare, err := startBaseline("bare", "--tls-cert", certFile, "--tls-key", keyFile)
	if err != nil {
		return err
	}
	defer bare.stop()
	targets = append(targets, &tlsTarget{Name: "bare-go-tls", Addr: bare.URL.Host, Path: "/keys/" + kid, PID: bare.PID})
	if c.nginx {
		ng, err := startNginxTLS(c.nginxWorkers, tmp, certFile, keyFile, roots)
		if err != nil {
			logf("nginx baseline skipped: %v", err)
		} else {
			defer ng.stop()
			targets = append(targets, ng)
		}
	}

	rep := &tlsReport{Ratios: map[string]float64{}}
	for round := 1; round <= c.rounds; round++ {
		for _, mode := range []string{"a-keepalive", "b-handshake", "c-resumed"} {
			for _, t := range targets {
				if err := ctx.Err(); err != nil {
					return err
				}
				r := runTLSMode(c, t, mode, "Bearer "+shared, roots)
				r.Round = round
				logf("round %d %s %-12s %9.0f/s p99 %6.2f ms errors %d server CPU %.1f µs/op", round, mode, t.Name, r.PerSec, r.P99, r.Errors, r.ServerCPUus)
				rep.Runs = append(rep.Runs, r)
			}
		}
	}

	// (d) the flash crowd, keydelivery only: fresh tokens minted first.
	var need int
	for _, r := range c.rates {
		need += r * int(c.flashStep/time.Millisecond) / 1000
	}
	need = min(need+100, 200000)
	logf("minting %d tokens for the flash crowd", need)
	fresh := make([]string, need)
	for i := range fresh {
		if fresh[i], err = mint(); err != nil {
			return err
		}
		fresh[i] = "Bearer " + fresh[i]
	}
	next := 0
	for _, rate := range c.rates {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := rate * int(c.flashStep/time.Millisecond) / 1000
		if next+n > len(fresh) {
			break
		}
		step := flashCrowd(c, targets[0], rate, fresh[next:next+n], roots)
		next += n
		logf("flash crowd %5d/s: %d/%d ok, p50 %.1f ms p99 %.1f ms, other %v, held %v", rate, step.OK, step.Scheduled, step.P50, step.P99, step.Status, step.Held)
		rep.Flash = append(rep.Flash, step)
		if step.Held {
			rep.Highest = rate
		}
		if !step.Held && len(rep.Flash) >= 2 && !rep.Flash[len(rep.Flash)-2].Held {
			break // two rates past the limit are enough to see what happens
		}
		time.Sleep(time.Second) // let the server settle between rates
	}

	// Ratios: keydelivery's median throughput over each baseline's, per mode.
	med := map[string]float64{}
	for _, mode := range []string{"a-keepalive", "b-handshake", "c-resumed"} {
		for _, t := range targets {
			var xs []float64
			for _, r := range rep.Runs {
				if r.Mode == mode && r.Target == t.Name {
					xs = append(xs, r.PerSec)
				}
			}
			sort.Float64s(xs)
			med[mode+"/"+t.Name] = xs[len(xs)/2]
		}
		for _, t := range targets[1:] {
			if b := med[mode+"/"+t.Name]; b > 0 {
				rep.Ratios[mode+" keydelivery/"+t.Name] = med[mode+"/keydelivery"] / b
			}
		}
	}
	printTLSReport(stdout, rep, targets)
	if c.jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(c.jsonOut, b, 0o644)
	}
	return nil
}

// createOneKey makes a key through the admin API of s.
func createOneKey(s *keydeliveryServer) (string, error) {
	tok, err := s.adminToken()
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodPost, s.Admin+"/api/keys", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		return "", fmt.Errorf("create key: %d %v", resp.StatusCode, err)
	}
	return out.ID, nil
}

func clientTLS(roots *x509.CertPool, cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
		NextProtos: []string{"http/1.1"}, ClientSessionCache: cache}
}

// runTLSMode runs one window of mode against t.
func runTLSMode(c *tlsConfig, t *tlsTarget, mode, auth string, roots *x509.CertPool) tlsRun {
	workers := c.handshakeConc
	if mode == "a-keepalive" {
		workers = c.concurrency
	}
	var measuring, stop atomic.Bool
	var ops, errs, resumed atomic.Int64
	lat := make([][]float64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cache tls.ClientSessionCache
			if mode == "c-resumed" {
				cache = tls.NewLRUClientSessionCache(4)
			}
			conf := clientTLS(roots, cache)
			rc := newRawConn(t.Addr, t.Addr, c.timeout)
			rc.tlsConf = conf
			defer rc.close()
			req := request{path: t.Path, auth: auth}
			for !stop.Load() {
				began := time.Now()
				status, n, _ := rc.do(req)
				if mode != "a-keepalive" {
					if rc.lastResumed {
						if measuring.Load() {
							resumed.Add(1)
						}
					}
					rc.close()
				}
				if !measuring.Load() {
					continue
				}
				if status == 200 && n == 16 {
					ops.Add(1)
					lat[w] = append(lat[w], float64(time.Since(began).Microseconds())/1000)
				} else {
					errs.Add(1)
				}
			}
		}()
	}
	time.Sleep(c.warmup)
	cpu0, _ := treeCPU(t.PID)
	self0 := selfCPU()
	measuring.Store(true)
	began := time.Now()
	time.Sleep(c.duration)
	measuring.Store(false)
	window := time.Since(began)
	cpu1, _ := treeCPU(t.PID)
	self1 := selfCPU()
	stop.Store(true)
	wg.Wait()
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	r := tlsRun{Target: t.Name, Mode: mode, Ops: ops.Load(), Errors: errs.Load(), Resumed: resumed.Load()}
	r.PerSec = float64(r.Ops) / window.Seconds()
	r.P50, r.P99 = percentile(all, 0.5), percentile(all, 0.99)
	if r.Ops > 0 {
		r.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(r.Ops)
		r.ClientCPUus = float64((self1 - self0).Microseconds()) / float64(r.Ops)
	}
	return r
}

// flashCrowd schedules len(tokens) new viewers at rate per second, each a
// new TLS connection (full handshake) and one key request with its own
// token; latency counts from the scheduled arrival.
func flashCrowd(c *tlsConfig, t *tlsTarget, rate int, tokens []string, roots *x509.CertPool) flashStep {
	st := flashStep{Rate: rate, Scheduled: int64(len(tokens)), Status: map[string]int64{}}
	var mu sync.Mutex
	var okLat, refusedLat []float64
	conf := clientTLS(roots, nil)
	cpu0, _ := treeCPU(t.PID)
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	for i, tok := range tokens {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := newRawConn(t.Addr, t.Addr, c.timeout)
			rc.tlsConf = conf
			status, n, class := rc.do(request{path: t.Path, auth: tok})
			rc.close()
			ms := float64(time.Since(at).Microseconds()) / 1000
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == 200 && n == 16:
				okLat = append(okLat, ms)
			case status != 0:
				st.Status[strconv.Itoa(status)]++
				refusedLat = append(refusedLat, ms)
			default:
				st.Status[class]++
			}
		}()
	}
	wg.Wait()
	cpu1, _ := treeCPU(t.PID)
	st.OK = int64(len(okLat))
	st.P50, st.P99 = percentile(okLat, 0.5), percentile(okLat, 0.99)
	st.FastRefusalsP99 = percentile(refusedLat, 0.99)
	if len(okLat) > 0 {
		sort.Float64s(okLat)
		st.Max = okLat[len(okLat)-1]
	}
	st.Held = st.OK == st.Scheduled && st.P99 < 250
	st.ServerCPUPerArrive = float64((cpu1 - cpu0).Microseconds()) / float64(len(tokens))
	return st
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func printTLSReport(w io.Writer, rep *tlsReport, targets []*tlsTarget) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\ttarget\tround\tops/s\tp50 ms\tp99 ms\tresumed\terrors\tserver µs/op\tclient µs/op\t")
	for _, r := range rep.Runs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%d\t%d\t%.1f\t%.1f\t\n", r.Mode, r.Target, r.Round, r.PerSec, r.P50, r.P99, r.Resumed, r.Errors, r.ServerCPUus, r.ClientCPUus)
	}
	tw.Flush()
	fmt.Fprintln(w)
	var keys []string
	for k := range rep.Ratios {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "ratio %-40s %.2f\n", k, rep.Ratios[k])
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flash rate/s\tscheduled\tok\tp50 ms\tp99 ms\tmax ms\tother answers\trefusal p99 ms\tserver µs/viewer\theld\t")
	for _, s := range rep.Flash {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%v\t%.1f\t%.0f\t%v\t\n", s.Rate, s.Scheduled, s.OK, s.P50, s.P99, s.Max, s.Status, s.FastRefusalsP99, s.ServerCPUPerArrive, s.Held)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nflash crowd: highest rate held (every answer 200, p99 < 250 ms): %d new viewers/s\n", rep.Highest)
}

// nginxTLSConf serves the 16-byte file over TLS (1.2 and 1.3, session cache
// and tickets for resumption), keep-alive unlimited as for Go.
const nginxTLSConf = `daemon off;
master_process on;
worker_processes %s;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    types { }
    default_type application/octet-stream;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    ssl_session_timeout 1h;
    server {
        listen 127.0.0.1:%[3]d ssl;
        ssl_certificate %[4]s;
        ssl_certificate_key %[5]s;
        root %[2]s/www;
        location / {
            try_files /key.bin =404;
            add_header Cache-Control no-store;
        }
    }
}
`

func startNginxTLS(workers, tmp, certFile, keyFile string, roots *x509.CertPool) (*tlsTarget, error) {
	bin := findNginx()
	if bin == "" {
		return nil, errors.New("nginx is not installed (apt-get install -y nginx)")
	}
	dir := filepath.Join(tmp, "nginx-tls")
	for _, d := range []string{"www", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "key.bin"), baselineBody, 0o644); err != nil {
		return nil, err
	}
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxTLSConf, workers, dir, port, certFile, keyFile)), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		p, err := startProc(cmd, syscall.SIGTERM)
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(roots, nil)}}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !p.exited() {
			if resp, err := hc.Get("https://" + addr + "/x"); err == nil {
				resp.Body.Close()
				return &tlsTarget{Name: "nginx-tls", Addr: addr, Path: "/keys/x", PID: cmd.Process.Pid, stop: func() { p.stop(5 * time.Second) }}, nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.stop(2 * time.Second)
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if !bytes.Contains(errLog, []byte("Address already in use")) {
			return nil, fmt.Errorf("nginx with TLS did not start: %s%s", p.log.String(), clip(string(errLog), 2000))
		}
	}
	return nil, errors.New("nginx with TLS: no free port")
}

// idleConns measures what idle kept-alive connections cost the server: it
// starts keydelivery (plain HTTP, with --server-flags), opens --conns
// connections one after the other, each making one request and then
// staying open and idle, and reports the server's resident memory and the
// connections it holds. go run ./loadtest idle-conns --conns 10000
// --server-flags "--max-connections 1000". Bounded: one request per
// connection, a timeout on each, loopback only.
func idleConns(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("idle-conns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("conns", 10000, "connections to open and leave idle")
	flags := fs.String("server-flags", "", "extra keydelivery flags, space-separated")
	bin := fs.String("server-bin", "", "keydelivery binary (default: go build ./cmd/keydelivery)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n <= 0 || *n > 60000 {
		return errors.New("--conns: between 1 and 60000")
	}
	tmp, err := os.MkdirTemp("", "kd-idleconns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *bin == "" {
		if *bin, err = buildServer(tmp); err != nil {
			return err
		}
	}
	kd, err := startServer(serverOptions{Bin: *bin, Name: "idle", Tmp: tmp, Store: "bolt", Flags: strings.Fields(*flags)})
	if err != nil {
		return err
	}
	defer kd.stop()
	rss := func() string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", kd.PID))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
			}
		}
		return "?"
	}
	before := rss()
	var conns []*rawConn
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	var failed int
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		c := newRawConn(kd.Delivery.Host, kd.Delivery.Host, 10*time.Second)
		if status, _, _ := c.do(request{path: "/healthz"}); status != 200 {
			failed++
		}
		conns = append(conns, c)
	}
	time.Sleep(time.Second) // let the server mark the last ones idle
	resp, err := http.Get(kd.Admin + "/metrics")
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var held string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, `keydelivery_http_connections{plane="delivery"}`) || strings.HasPrefix(l, `keydelivery_http_idle_connections_closed_total{plane="delivery"}`) {
			held += l + "; "
		}
	}
	fmt.Fprintf(stdout, "server flags %q: %d connections opened (%d requests failed); server RSS %s before, %s after; %s\n",
		*flags, *n, failed, before, rss(), held)
	return nil
}

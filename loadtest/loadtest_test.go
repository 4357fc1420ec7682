package main

import (
	"bufio"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// These tests cover the pure parts only: no server, no network, no /proc.

func TestCheckLoopbackURL(t *testing.T) {
	ok := []string{"http://127.0.0.1:8080", "http://127.9.9.9:1", "http://localhost:8080", "http://[::1]:8080", "http://127.0.0.1:8080/"}
	for _, u := range ok {
		if _, err := checkLoopbackURL("--url", u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	bad := map[string]string{
		"public host":    "http://example.com:80",
		"private range":  "http://10.0.0.1:8080",
		"unspecified":    "http://0.0.0.0:8080",
		"no port":        "http://127.0.0.1",
		"https":          "https://127.0.0.1:8443",
		"query":          "http://127.0.0.1:8080/?kid=x",
		"credentials":    "http://u:p@127.0.0.1:8080",
		"loopback-ish":   "http://localhost.example.com:80",
		"not a URL":      "::",
		"ipv6 not local": "http://[2001:db8::1]:80",
	}
	for name, u := range bad {
		if _, err := checkLoopbackURL("--url", u); err == nil {
			t.Errorf("%s: %s accepted", name, u)
		}
	}
}

func TestParseTokenMode(t *testing.T) {
	for in, want := range map[string]tokenMode{"shared": {Kind: "shared"}, "fresh": {Kind: "fresh"}, "pool:7": {Kind: "pool", N: 7}} {
		got, err := parseTokenMode(in)
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "pool", "pool:0", "pool:-1", "pool:x", "many"} {
		if _, err := parseTokenMode(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestParseDistribution(t *testing.T) {
	for _, in := range []string{"hot", "uniform", "zipf:1.1", "zipf:0.5"} {
		if _, err := parseDistribution(in); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, in := range []string{"", "zipf", "zipf:0", "zipf:-1", "zipf:NaN", "zipf:x", "normal"} {
		if _, err := parseDistribution(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestPicker(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	hot, _ := newPicker(distribution{Kind: "hot"}, 10)
	for range 100 {
		if k := hot.pick(r); k != 0 {
			t.Fatalf("hot picked %d", k)
		}
	}
	const n, draws = 50, 20000
	z, _ := newPicker(distribution{Kind: "zipf", S: 1.1}, n)
	counts := make([]int, n)
	for range draws {
		k := z.pick(r)
		if k < 0 || k >= n {
			t.Fatalf("zipf picked %d", k)
		}
		counts[k]++
	}
	// Rank 1 over rank 2 should be about 2^1.1 = 2.14.
	if ratio := float64(counts[0]) / float64(counts[1]); math.Abs(ratio-2.14) > 0.4 {
		t.Errorf("rank1/rank2 = %.2f, want about 2.14 (counts %v)", ratio, counts[:5])
	}
	u, _ := newPicker(distribution{Kind: "uniform"}, n)
	seen := map[int]bool{}
	for range 2000 {
		seen[u.pick(r)] = true
	}
	if len(seen) != n {
		t.Errorf("uniform over %d reached %d", n, len(seen))
	}
	if _, err := newPicker(distribution{Kind: "hot"}, 0); err == nil {
		t.Error("no KIDs accepted")
	}
}

func TestSourcesReuseAndFresh(t *testing.T) {
	pk, _ := newPicker(distribution{Kind: "hot"}, 2)
	rs := &repeatSource{paths: []string{"/keys/a", "/keys/b"}, tokens: [][]string{{"t0", "t1", "t2"}}, pick: pk}
	r := rand.New(rand.NewPCG(1, 1))
	for seq := range uint64(6) {
		req, ok := rs.next(seq, r, true)
		if !ok || req.path != "/keys/a" || req.auth != []string{"t0", "t1", "t2"}[seq%3] {
			t.Fatalf("seq %d: %+v", seq, req)
		}
	}
	fs := &freshSource{reqs: []request{{"/a", "x"}, {"/b", "y"}}, warm: []request{{"/w", "w"}}}
	if req, _ := fs.next(5, r, false); req.auth != "w" {
		t.Errorf("warm-up used %+v", req)
	}
	if req, ok := fs.next(1, r, true); !ok || req.auth != "y" {
		t.Errorf("second fresh request %+v", req)
	}
	if _, ok := fs.next(2, r, true); ok {
		t.Error("a used-up fresh source went on")
	}
	cyc := baselineSource(fs)
	if req, ok := cyc.next(2, r, true); !ok || req.auth != "x" {
		t.Errorf("baseline view did not wrap: %+v %v", req, ok)
	}
}

func TestParseStatCPU(t *testing.T) {
	// comm with a space and a parenthesis; utime 150, stime 50 ticks.
	line := "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 5 0 123 456 789"
	d, err := parseStatCPU([]byte(line))
	if err != nil || d != 2*time.Second {
		t.Fatalf("got %v, %v", d, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1")); err == nil {
		t.Error("short stat accepted")
	}
}

func TestListeningInodes(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 22222 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 33333 1 0000000000000000 100 0 0 10 0
`
	got := listeningInodes(strings.NewReader(tcp), 8080)
	if len(got) != 1 || got[0] != "11111" {
		t.Errorf("port 8080: %v", got)
	}
	if got := listeningInodes(strings.NewReader(tcp), 8081); len(got) != 1 || got[0] != "33333" {
		t.Errorf("port 8081: %v", got)
	}
}

func TestReadResponse(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		status, n int
		close     bool
		wantErr   bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 16\r\nContent-Type: application/octet-stream\r\n\r\n0123456789abcdef", 200, 16, false, false},
		{"chunked", "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n", 401, 8, false, false},
		{"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno", 503, 2, true, false},
		{"until EOF", "HTTP/1.1 200 OK\r\n\r\nabc", 200, 3, true, false},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, 1, true, false},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", 0, 0, false, true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 200, 0, false, true},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nshort", 200, 5, false, true},
	}
	for _, c := range cases {
		status, n, closeAfter, err := readResponse(bufio.NewReader(strings.NewReader(c.in)))
		if (err != nil) != c.wantErr || status != c.status || (!c.wantErr && (n != c.n || closeAfter != c.close)) {
			t.Errorf("%s: status %d n %d close %v err %v", c.name, status, n, closeAfter, err)
		}
	}
	// Two answers back to back on one connection.
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
	if s, _, _, err := readResponse(br); s != 200 || err != nil {
		t.Fatalf("first: %d %v", s, err)
	}
	if s, _, _, err := readResponse(br); s != 404 || err != nil {
		t.Fatalf("second: %d %v", s, err)
	}
	if _, _, _, err := readResponse(br); err != io.EOF {
		t.Errorf("after the last answer: %v", err)
	}
}

func TestParseRedisBenchmark(t *testing.T) {
	got, err := parseRedisBenchmark("SET: 512820.53 requests per second, p50=1.487 msec")
	if err != nil || got != 512820.53 {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := parseRedisBenchmark("ERR"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestRatiosArePairedByRound(t *testing.T) {
	run := func(target string, round int, tp, cpu, p99 float64) runResult {
		return runResult{Target: target, Round: round, Concurrency: 64, Throughput: tp, ServerCPUPerReq: cpu, Latency: latencySummary{P99: p99}}
	}
	runs := []runResult{
		run("kd", 1, 100, 30, 4), run("bare", 1, 200, 15, 2),
		run("kd", 2, 50, 60, 8), run("bare", 2, 100, 30, 4), // a noisy round: both slower
		run("kd", 3, 90, 33, 4), run("bare", 3, 100, 30, 4),
	}
	rs := ratios(runs, "kd", "bare")
	if len(rs) != 1 {
		t.Fatalf("got %d rows", len(rs))
	}
	r := rs[0]
	if r.Rounds != 3 || r.Throughput != 0.5 || r.CPUPerReq != 2 || r.P99 != 2 {
		t.Errorf("got %+v; want the median of per-round ratios: 0.5, 2, 2", r)
	}
	sum := summarizeRuns(runs, map[string]bool{"bare": true})
	if len(sum) != 2 || sum[0].Target != "kd" || sum[0].Throughput != 90 || !sum[1].Baseline {
		t.Errorf("summary %+v", sum)
	}
}

func TestScenarioPresetsYieldToFlags(t *testing.T) {
	c, err := parseConfig([]string{"--scenario", "1", "--concurrency", "8", "--rounds", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Concurrency) != 1 || c.Concurrency[0] != 8 || c.Rounds != 2 {
		t.Errorf("explicit flags lost: %v rounds %d", c.Concurrency, c.Rounds)
	}
	if c.Tokens != "pool:1000" || !c.StartServer || !c.wantBaseline("nginx") {
		t.Errorf("preset not applied: tokens %s start %v baselines %v", c.Tokens, c.StartServer, c.Baselines)
	}
	if _, err := parseConfig([]string{"--url", "http://192.168.1.1:80", "--signing-key", "k"}, io.Discard); err == nil {
		t.Error("a non-loopback --url was accepted")
	}
	if _, err := parseConfig([]string{"--start-server", "--tokens", "fresh"}, io.Discard); err == nil {
		t.Error("fresh tokens without a request bound were accepted")
	}
}

func TestKIDFileCanonicalises(t *testing.T) {
	path := t.TempDir() + "/kids"
	const text = "# comment\n0A4F6E08-B4E5-4A25-9C4B-6E3E4A2C1D7F\n\nnb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f\n{11111111-2222-3333-4444-555555555555}\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readKIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "11111111-2222-3333-4444-555555555555"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v, want %v (canonical, duplicates dropped)", got, want)
	}
	if _, err := canonicalKIDs([]string{"not-a-kid"}); err == nil {
		t.Error("a bad KID was accepted")
	}
}

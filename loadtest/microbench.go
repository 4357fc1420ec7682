package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// verifyResult is one in-process timing of ES256 verification.
type verifyResult struct {
	Round       int     `json:"round"`
	Ops         int     `json:"ops"`
	MicrosPerOp float64 `json:"us_per_op"`
}

// verifyBench times auth.Verifier.Verify on n distinct tokens (so no cache
// could help), one goroutine, while the load is idle: the cost of one ES256
// verification on one core, the yardstick of scenario 2.
func verifyBench(m *minter, certFile, issuer, audience string, n, round int) (verifyResult, error) {
	trust, err := auth.NewTrust([]string{certFile}, nil)
	if err != nil {
		return verifyResult{}, fmt.Errorf("verify bench: %w", err)
	}
	v, err := auth.NewVerifier(trust, auth.Options{
		Issuers: []string{issuer}, Audience: audience, Leeway: time.Minute,
		ParseKeyID: func(s string) ([16]byte, error) { return keystore.ParseKeyID(s) },
	})
	if err != nil {
		return verifyResult{}, fmt.Errorf("verify bench: %w", err)
	}
	kid := keystore.KeyID{0x0a, 0x4f, 0x6e, 0x08, 6: 0x40, 8: 0x80}.String()
	toks := make([]string, n)
	if err := mintMany(n, func(i int) error {
		t, err := m.mint([]string{kid})
		toks[i] = strings.TrimPrefix(t, "Bearer ")
		return err
	}); err != nil {
		return verifyResult{}, err
	}
	runtime.GC()
	start := time.Now()
	for _, t := range toks {
		if _, err := v.Verify(t); err != nil {
			return verifyResult{}, fmt.Errorf("verify bench: a minted token does not verify against %s: %w", certFile, err)
		}
	}
	el := time.Since(start)
	return verifyResult{Round: round, Ops: n, MicrosPerOp: float64(el.Microseconds()) / float64(n)}, nil
}

// importResult is one timed CPIX import.
type importResult struct {
	Store         string  `json:"store"`
	Round         int     `json:"round"`
	Keys          int     `json:"keys"`
	Bytes         int     `json:"bytes"`
	Seconds       float64 `json:"seconds"`
	KeysPerSecond float64 `json:"keys_per_s"`
	ServerCPU     float64 `json:"server_cpu_s"`
	StoreCPU      float64 `json:"store_cpu_s,omitempty"` // the redis-server's, over the same window
}

// cpixDocument builds a CPIX document of n new random keys.
func cpixDocument(n int) ([]byte, error) {
	ids, vals, err := randomKeys(n)
	if err != nil {
		return nil, err
	}
	d := &cpix.Document{ContentID: "loadtest", Keys: make([]cpix.Key, n)}
	for i := range ids {
		d.Keys[i] = cpix.Key{KID: ids[i], Value: vals[i]}
	}
	var b bytes.Buffer
	if err := cpix.Write(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// importBench posts one CPIX document of n new keys and times it, from the
// first byte sent to the whole answer read (checking the answer is not
// timed).
func importBench(ctx context.Context, a *adminClient, pid, storePID, n int) (importResult, error) {
	doc, err := cpixDocument(n)
	if err != nil {
		return importResult{}, err
	}
	cpu0, _ := treeCPU(pid)
	var store0 time.Duration
	if storePID > 0 {
		store0, _ = treeCPU(storePID)
	}
	got, el, err := a.importTimed(ctx, "application/cpix+xml", doc)
	cpu1, _ := treeCPU(pid)
	var store1 time.Duration
	if storePID > 0 {
		store1, _ = treeCPU(storePID)
	}
	if err != nil {
		return importResult{}, err
	}
	if got != n {
		return importResult{}, fmt.Errorf("import: the answer lists %d keys, want %d", got, n)
	}
	return importResult{Keys: n, Bytes: len(doc), Seconds: el.Seconds(), KeysPerSecond: float64(n) / el.Seconds(),
		ServerCPU: (cpu1 - cpu0).Seconds(), StoreCPU: (store1 - store0).Seconds()}, nil
}

// redisResult is one redis-benchmark run.
type redisResult struct {
	Round             int     `json:"round"`
	RequestsPerSecond float64 `json:"set_per_s"`
	Command           string  `json:"command"`
}

var setRate = regexp.MustCompile(`SET: ([0-9.]+) requests per second`)

// parseRedisBenchmark finds the SET rate in redis-benchmark -q output (the
// progress lines end in \r; the final one in \n).
func parseRedisBenchmark(out string) (float64, error) {
	m := setRate.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, fmt.Errorf("no SET rate in redis-benchmark output %q", clip(out, 300))
	}
	return strconv.ParseFloat(m[len(m)-1][1], 64)
}

// redisBenchmark runs `redis-benchmark -t set -P 16 -q` against addr, the
// Redis the server under test uses (keys it writes go under "key:" and
// do not collide with keydelivery's "kd:" keys).
func redisBenchmark(ctx context.Context, addr string, n int) (redisResult, error) {
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port, "-t", "set", "-P", "16", "-q", "-n", strconv.Itoa(n)}
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return redisResult{}, errors.New("redis-benchmark not found (it comes with redis-tools / redis-server)")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-benchmark", args...).CombinedOutput()
	if err != nil {
		return redisResult{}, fmt.Errorf("redis-benchmark: %v: %s", err, clip(string(out), 300))
	}
	// Keep the last line only: -q prints progress with carriage returns.
	var last string
	sc := bufio.NewScanner(bytes.NewReader(bytes.ReplaceAll(out, []byte("\r"), []byte("\n"))))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "requests per second") {
			last = sc.Text()
		}
	}
	rate, err := parseRedisBenchmark(last)
	if err != nil {
		return redisResult{}, err
	}
	return redisResult{RequestsPerSecond: rate, Command: "redis-benchmark " + strings.Join(args, " ")}, nil
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the JSON document of one invocation; `loadtest plot` reads it.
type report struct {
	Tool     string         `json:"tool"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Host     hostInfo       `json:"host"`
	Config   map[string]any `json:"config"`
	Targets  []targetInfo   `json:"targets"`
	Runs     []runResult    `json:"runs"`
	Summary  []summaryRow   `json:"summary"`
	Ratios   []ratioRow     `json:"ratios"`
	Verify   []verifyResult `json:"verify_bench,omitempty"`
	Imports  []importResult `json:"imports,omitempty"`
	RedisSET []redisResult  `json:"redis_benchmark,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
}

type hostInfo struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel,omitempty"`
	CPUModel  string `json:"cpu_model,omitempty"`
}

type targetInfo struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	PID      int    `json:"pid,omitempty"`
	Baseline bool   `json:"baseline"`
	Requests string `json:"requests,omitempty"`
}

func currentHost() hostInfo {
	h := hostInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				h.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return h
}

// summaryRow is the median over rounds of one (target, concurrency, rate).
type summaryRow struct {
	Target          string  `json:"target"`
	Baseline        bool    `json:"baseline"`
	Concurrency     int     `json:"concurrency"`
	Rate            float64 `json:"rate,omitempty"`
	Rounds          int     `json:"rounds"`
	Throughput      float64 `json:"throughput_rps"`
	P50             float64 `json:"p50_us"`
	P90             float64 `json:"p90_us"`
	P99             float64 `json:"p99_us"`
	P999            float64 `json:"p99_9_us"`
	Max             float64 `json:"max_us"`
	ServerCPUPerReq float64 `json:"server_cpu_us_per_req,omitempty"`
	ClientCPUPerReq float64 `json:"client_cpu_us_per_req"`
	ServerRSSKiB    int64   `json:"server_rss_kib,omitempty"`
	StoreCPUPerReq  float64 `json:"store_cpu_us_per_req,omitempty"`
	Errors          int64   `json:"errors"`
}

// ratioRow compares a target with a baseline: the median over rounds of
// the per-round ratios (each round's pair was measured minutes apart at
// most, so noise common to both cancels).
type ratioRow struct {
	Target      string  `json:"target"`
	Baseline    string  `json:"baseline"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	Rounds      int     `json:"rounds"`
	Throughput  float64 `json:"throughput,omitempty"`
	CPUPerReq   float64 `json:"cpu_per_req,omitempty"`
	P99         float64 `json:"p99,omitempty"`
}

func median(v []float64) float64 {
	var xs []float64
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

type runKey struct {
	target string
	conc   int
	rate   float64
}

func keyOf(r runResult) runKey { return runKey{r.Target, r.Concurrency, r.Rate} }

func errorCount(r runResult) int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// summarize groups runs by (target, concurrency, rate), in first-seen
// order, and takes medians over rounds.
func summarizeRuns(runs []runResult, baseline map[string]bool) []summaryRow {
	var order []runKey
	groups := map[runKey][]runResult{}
	for _, r := range runs {
		k := keyOf(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []summaryRow
	for _, k := range order {
		g := groups[k]
		col := func(f func(runResult) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			return median(v)
		}
		row := summaryRow{
			Target: k.target, Baseline: baseline[k.target], Concurrency: k.conc, Rate: k.rate, Rounds: len(g),
			Throughput:      col(func(r runResult) float64 { return r.Throughput }),
			P50:             col(func(r runResult) float64 { return r.Latency.P50 }),
			P90:             col(func(r runResult) float64 { return r.Latency.P90 }),
			P99:             col(func(r runResult) float64 { return r.Latency.P99 }),
			P999:            col(func(r runResult) float64 { return r.Latency.P999 }),
			Max:             col(func(r runResult) float64 { return r.Latency.Max }),
			ServerCPUPerReq: col(func(r runResult) float64 { return r.ServerCPUPerReq }),
			ClientCPUPerReq: col(func(r runResult) float64 { return r.ClientCPUPerReq }),
			ServerRSSKiB:    int64(col(func(r runResult) float64 { return float64(r.ServerRSSKiB) })),
			StoreCPUPerReq:  col(func(r runResult) float64 { return r.StoreCPUPerReq }),
		}
		for _, r := range g {
			row.Errors += errorCount(r)
		}
		out = append(out, row)
	}
	return out
}

// ratios pairs each round's run of target with the same round's run of
// base at the same concurrency and rate.
func ratios(runs []runResult, target, base string) []ratioRow {
	type rk struct {
		conc  int
		rate  float64
		round int
	}
	idx := map[string]map[rk]runResult{target: {}, base: {}}
	var order []rk
	seen := map[rk]bool{}
	for _, r := range runs {
		if m, ok := idx[r.Target]; ok {
			m[rk{r.Concurrency, r.Rate, r.Round}] = r
			k := rk{r.Concurrency, r.Rate, 0}
			if r.Target == target && !seen[k] {
				seen[k] = true
				order = append(order, k)
			}
		}
	}
	var out []ratioRow
	for _, k := range order {
		var tp, cpu, p99 []float64
		n := 0
		for key, t := range idx[target] {
			if key.conc != k.conc || key.rate != k.rate {
				continue
			}
			b, ok := idx[base][key]
			if !ok {
				continue
			}
			n++
			tp = append(tp, div(t.Throughput, b.Throughput))
			cpu = append(cpu, div(t.ServerCPUPerReq, b.ServerCPUPerReq))
			p99 = append(p99, div(t.Latency.P99, b.Latency.P99))
		}
		if n == 0 {
			continue
		}
		out = append(out, ratioRow{Target: target, Baseline: base, Concurrency: k.conc, Rate: k.rate, Rounds: n,
			Throughput: median(tp), CPUPerReq: median(cpu), P99: median(p99)})
	}
	return out
}

func div(a, b float64) float64 {
	if b == 0 || a == 0 {
		return math.NaN()
	}
	return a / b
}

// verifyRatios compares the target's server CPU per request with the
// in-process ES256 verification of the same round.
func verifyRatios(runs []runResult, verify []verifyResult, target string) []ratioRow {
	per := map[int]float64{}
	for _, v := range verify {
		per[v.Round] = v.MicrosPerOp
	}
	groups := map[runKey][]float64{}
	var order []runKey
	for _, r := range runs {
		if r.Target != target || per[r.Round] == 0 {
			continue
		}
		k := keyOf(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], div(r.ServerCPUPerReq, per[r.Round]))
	}
	var out []ratioRow
	for _, k := range order {
		out = append(out, ratioRow{Target: target, Baseline: "es256-verify", Concurrency: k.conc, Rate: k.rate,
			Rounds: len(groups[k]), CPUPerReq: median(groups[k])})
	}
	return out
}

func printRun(w io.Writer, r runResult) {
	cpu := "-"
	if r.ServerCPUPerReq > 0 {
		cpu = fmt.Sprintf("%.1fµs", r.ServerCPUPerReq)
	}
	if r.StoreCPUPerReq > 0 {
		cpu += fmt.Sprintf(" +redis %.1fµs", r.StoreCPUPerReq)
	}
	mode := fmt.Sprintf("c=%d", r.Concurrency)
	if r.Rate > 0 {
		mode = fmt.Sprintf("rate=%g conns=%d", r.Rate, r.Concurrency)
	}
	fmt.Fprintf(w, "  round %d %-14s %-18s %8.0f req/s  p50 %6.0fµs p99 %7.0fµs max %7.0fµs  server %s/req (%.2f cores)  client %.1fµs/req (%.2f cores)  errors %d%s\n",
		r.Round, r.Target, mode, r.Throughput, r.Latency.P50, r.Latency.P99, r.Latency.Max, cpu, r.ServerCores, r.ClientCPUPerReq, r.ClientCores, errorCount(r), runFlags(r))
}

func runFlags(r runResult) string {
	var s []string
	if len(r.Errors) > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.Errors[k]))
		}
		s = append(s, "("+strings.Join(parts, ", ")+")")
	}
	if r.Exhausted {
		s = append(s, "[tokens used up: window ended early]")
	}
	if r.Note != "" {
		s = append(s, "["+r.Note+"]")
	}
	if len(s) == 0 {
		return ""
	}
	return " " + strings.Join(s, " ")
}

func printTables(w io.Writer, rep *report) {
	if len(rep.Summary) > 0 {
		fmt.Fprintf(w, "\nSummary (median over rounds; latency in µs; CPU in µs per completed request)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tconc\trate\trounds\treq/s\tp50\tp90\tp99\tp99.9\tmax\tserver CPU/req\tredis CPU/req\tclient CPU/req\tserver RSS MiB\terrors\t")
		for _, s := range rep.Summary {
			rate := "-"
			if s.Rate > 0 {
				rate = fmt.Sprintf("%g", s.Rate)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%.1f\t%s\t%d\t\n",
				s.Target, s.Concurrency, rate, s.Rounds, s.Throughput, s.P50, s.P90, s.P99, s.P999, s.Max,
				orDash(s.ServerCPUPerReq, "%.1f"), orDash(s.StoreCPUPerReq, "%.1f"), s.ClientCPUPerReq, orDash(float64(s.ServerRSSKiB)/1024, "%.0f"), s.Errors)
		}
		tw.Flush()
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintf(w, "\nRatios target / baseline (median of per-round ratios; throughput: higher is better; CPU/req and p99: lower is better)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tbaseline\tconc\trate\trounds\tthroughput\tCPU/req\tp99\t")
		for _, r := range rep.Ratios {
			rate := "-"
			if r.Rate > 0 {
				rate = fmt.Sprintf("%g", r.Rate)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t\n", r.Target, r.Baseline, r.Concurrency, rate, r.Rounds,
				ratioStr(r.Throughput), ratioStr(r.CPUPerReq), ratioStr(r.P99))
		}
		tw.Flush()
	}
	if len(rep.Verify) > 0 {
		fmt.Fprintf(w, "\nIn-process ES256 verification (auth.Verifier, distinct tokens, one goroutine):")
		for _, v := range rep.Verify {
			fmt.Fprintf(w, " round %d %.1fµs/op;", v.Round, v.MicrosPerOp)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Imports) > 0 {
		fmt.Fprintf(w, "\nImports (one CPIX document per round)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "store\tround\tkeys\tbytes\tseconds\tkeys/s\tserver CPU s\tredis CPU s\t")
		for _, im := range rep.Imports {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t\n", im.Store, im.Round, im.Keys, im.Bytes, im.Seconds, im.KeysPerSecond, im.ServerCPU, im.StoreCPU)
		}
		tw.Flush()
	}
	if len(rep.RedisSET) > 0 {
		fmt.Fprintf(w, "\nredis-benchmark -t set -P 16:")
		for _, r := range rep.RedisSET {
			fmt.Fprintf(w, " round %d %.0f SET/s;", r.Round, r.RequestsPerSecond)
		}
		fmt.Fprintln(w)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func orDash(v float64, f string) string {
	if v == 0 || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(f, v)
}

func ratioStr(v float64) string {
	if v == 0 || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

// sanitize replaces NaN and infinities, which JSON cannot carry, by 0.
func (rep *report) sanitize() {
	fix := func(p *float64) {
		if math.IsNaN(*p) || math.IsInf(*p, 0) {
			*p = 0
		}
	}
	for i := range rep.Ratios {
		fix(&rep.Ratios[i].Throughput)
		fix(&rep.Ratios[i].CPUPerReq)
		fix(&rep.Ratios[i].P99)
	}
}

func writeJSON(path string, rep *report) error {
	rep.sanitize()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

package deploy_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// redisOnlyMetrics exist only when the store is Redis (go-redis pool
// statistics). The dashboard's Redis pool panels use them; they are
// checked against a server running on Redis, the rest against the default
// (bbolt) server.
var redisOnlyMetrics = map[string]bool{
	"keydelivery_redis_pool_hits_total":     true,
	"keydelivery_redis_pool_misses_total":   true,
	"keydelivery_redis_pool_timeouts_total": true,
	"keydelivery_redis_pool_connections":    true,
}

// tlsOnlyMetrics exist only when a listener serves TLS: they are checked
// against the server on Redis, which runs with --dev-tls.
var tlsOnlyMetrics = map[string]bool{
	"keydelivery_tls_certificate_not_after_seconds": true,
	"keydelivery_tls_certificate_reloads_total":     true,
}

// remoteTrustMetrics exist only with a remote token trust source (Key
// Vault, OpenID Connect, a key set URL): they are checked against the
// server on Redis, which is given a key set URL on loopback where nothing
// listens (its fetches fail, and count).
var remoteTrustMetrics = map[string]bool{
	"keydelivery_token_trust_fetches_total": true,
}

// valueChecked are the labels whose values in dashboard and rule selectors
// must all appear in the scrape.
var valueChecked = map[string]bool{"plane": true, "route": true, "le": true, "result": true}

// targetLabels are attached by Prometheus at scrape time, not by the server.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true}

// grafanaDashboard is the part of the dashboard JSON the tests read.
type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // collapsed rows
}

func loadDashboard(t testing.TB) grafanaDashboard {
	t.Helper()
	b := readFile(t, deployPath(t, "grafana", "keydelivery.json"))
	if !json.Valid(b) {
		t.Fatal("deploy/grafana/keydelivery.json is not valid JSON")
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("deploy/grafana/keydelivery.json: %v", err)
	}
	return d
}

func allPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// TestDashboard checks the dashboard is importable anywhere: valid JSON,
// a Prometheus ${datasource} variable used by every panel and query (no
// hard-coded data source), unique panel IDs, a grid position for each, and
// the panels the issue asks for.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard: want a uid and a title (provisioning and links rely on the uid)")
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			hasDS = v.Type == "datasource" && string(v.Query) == `"prometheus"`
		} else if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s: data source must be ${datasource}", v.Name)
		}
	}
	if !hasDS {
		t.Error(`dashboard: want a variable "datasource" of type datasource, query "prometheus"`)
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		titles[p.Title] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: missing or bad gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source must be ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: empty, or not on ${datasource}", p.Title, tg.RefID)
			}
		}
	}
	// The views docs/operations.md describes, by the metric they show.
	exprs := strings.Join(dashboardExprs(d), "\n")
	for what, metric := range map[string]string{
		"request rate":             "keydelivery_http_requests_total",
		"error ratio by reason":    "keydelivery_token_verifications_total",
		"latency per route":        "keydelivery_http_request_duration_seconds_bucket",
		"store latency":            "keydelivery_store_operation_duration_seconds_bucket",
		"store errors":             "keydelivery_store_operations_total",
		"cache hit ratio":          "keydelivery_key_cache_hits_total",
		"Redis pool":               "keydelivery_redis_pool_connections",
		"token certificate expiry": "keydelivery_token_certificate_not_after_seconds",
		"admin activity":           "keydelivery_admin_operations_total",
		"audit failures":           "keydelivery_audit_write_failures_total",
	} {
		if !strings.Contains(exprs, metric) {
			t.Errorf("dashboard: no panel shows %s (%s)", what, metric)
		}
	}
}

// TestDashboardPromQL has promtool parse every panel query: each becomes a
// recording rule (Grafana's variables replaced by values) in a throw-away
// rule file that `promtool check rules` must accept.
func TestDashboardPromQL(t *testing.T) {
	d := loadDashboard(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$job", "keydelivery", "$namespace", ".*", "$instance", ".*")
	var rf ruleFile
	g := ruleGroup{Name: "dashboard"}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			if strings.Contains(vars.Replace(tg.Expr), "$") {
				t.Errorf("panel %q query %s: unknown variable in %s", p.Title, tg.RefID, tg.Expr)
			}
			g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:panel%d:%s", p.ID, strings.ToLower(tg.RefID)), Expr: vars.Replace(tg.Expr)})
		}
	}
	rf.Groups = append(rf.Groups, g)
	b, err := json.Marshal(rf) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool := lookPathOrFail(t, "promtool", "apt-get install prometheus   (Debian's package ships promtool)")
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool cannot parse the dashboard's queries: %v\n%s", err, out)
	}
}

// dashboardExprs are the PromQL expressions of every query and variable.
func dashboardExprs(d grafanaDashboard) []string {
	var out []string
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

var (
	metricNameRE = regexp.MustCompile(`\b(?:keydelivery|process|go)_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)
	selectorRE   = regexp.MustCompile(`\b((?:keydelivery|process|go)_[a-zA-Z0-9_]+)\{([^}]*)\}`)
	matcherRE    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// reference is one metric a query uses, with the label matchers of the
// selectors that name it.
type reference struct {
	where    map[string]bool
	matchers map[matcher]map[string]bool // -> where
}

type matcher struct{ label, op, value string }

// referencedMetrics collects every scraped-metric name (keydelivery_*,
// process_*, go_*) in the dashboard's queries and the alert rules'
// expressions. Recording rule names (level:metric:ops) are not metrics the
// server exposes and do not match.
func referencedMetrics(t testing.TB) map[string]*reference {
	refs := map[string]*reference{}
	add := func(where, expr string) {
		for _, n := range metricNameRE.FindAllString(expr, -1) {
			if refs[n] == nil {
				refs[n] = &reference{where: map[string]bool{}, matchers: map[matcher]map[string]bool{}}
			}
			refs[n].where[where] = true
		}
		for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
			for _, mm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
				k := matcher{mm[1], mm[2], mm[3]}
				if refs[m[1]].matchers[k] == nil {
					refs[m[1]].matchers[k] = map[string]bool{}
				}
				refs[m[1]].matchers[k][where] = true
			}
		}
	}
	d := loadDashboard(t)
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			add(fmt.Sprintf("dashboard panel %q", p.Title), tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		add(fmt.Sprintf("dashboard variable %s", v.Name), v.Definition)
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			add("alerts.yaml "+r.Alert+r.Record, r.Expr)
		}
	}
	return refs
}

// exposition is one /metrics scrape: sample name -> label sets.
type exposition map[string][]map[string]string

var labelPairRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseExposition(b []byte) exposition {
	e := exposition{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		ls := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			for _, m := range labelPairRE.FindAllStringSubmatch(rest[1:max(end, 1)], -1) {
				ls[m[1]] = m[2]
			}
		}
		e[name] = append(e[name], ls)
	}
	return e
}

// TestMetricsReferencedExist builds the server from this tree, runs it
// (--dev) on bbolt and on a real Redis, sends it real traffic on both
// planes, scrapes /metrics, and checks that every metric the dashboard and
// the alert rules query exists, with the labels their selectors use.
// A metric the server does not export yet fails here, naming it.
func TestMetricsReferencedExist(t *testing.T) {
	refs := referencedMetrics(t)
	if len(refs) < 15 {
		t.Fatalf("found only %d metric names in the dashboard and rules", len(refs))
	}
	bolt := runAndScrape(t, "")
	srv := redistest.Start(t, redistest.Options{})
	redis := runAndScrape(t, srv.URL())

	// The version stamped the Dockerfile's way comes back.
	stamped := false
	for _, ls := range bolt["keydelivery_build_info"] {
		stamped = stamped || (ls["version"] == testVersion && ls["commit"] == testCommit && ls["goversion"] != "")
	}
	if !stamped {
		t.Errorf("keydelivery_build_info lacks version=%q commit=%q (the Dockerfile's -X flags): %v", testVersion, testCommit, bolt["keydelivery_build_info"])
	}

	t.Logf("scraped %d sample names on bbolt and %d on Redis; checking %d metrics the dashboard and rules use", len(bolt), len(redis), len(refs))
	var missing, badLabels []string
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ref := refs[n]
		where := sortedKeys(ref.where)
		scrape, backend := bolt, "bbolt"
		if redisOnlyMetrics[n] || tlsOnlyMetrics[n] || remoteTrustMetrics[n] {
			scrape, backend = redis, "Redis with --dev-tls and a key set URL"
		}
		series, ok := scrape[n]
		if !ok {
			missing = append(missing, fmt.Sprintf("  %s (not in /metrics on %s; used by %s)", n, backend, strings.Join(where, ", ")))
			continue
		}
		ms := make([]matcher, 0, len(ref.matchers))
		for m := range ref.matchers {
			ms = append(ms, m)
		}
		sort.Slice(ms, func(i, j int) bool { return fmt.Sprint(ms[i]) < fmt.Sprint(ms[j]) })
		for _, m := range ms {
			label, op, value := m.label, m.op, m.value
			where := sortedKeys(ref.matchers[m])
			if targetLabels[label] {
				continue
			}
			has, values := false, map[string]bool{}
			for _, ls := range series {
				if v, ok := ls[label]; ok {
					has = true
					values[v] = true
				}
			}
			if !has {
				badLabels = append(badLabels, fmt.Sprintf("  %s has no label %q (selector %s%s%q in %s)", n, label, label, op, value, strings.Join(where, ", ")))
				continue
			}
			// The traffic sent makes every plane and delivery route appear,
			// histograms always expose every bucket, and the result series of
			// token verifications and store operations exist from the start:
			// check those values (a misspelt reason would select nothing).
			if !valueChecked[label] || op == "!=" || op == "!~" {
				continue
			}
			alts := []string{value}
			if op == "=~" {
				alts = strings.Split(value, "|")
			}
			for _, alt := range alts {
				if op == "=~" && regexp.QuoteMeta(alt) != alt {
					continue // a real pattern, not a list of literals
				}
				if !values[alt] {
					badLabels = append(badLabels, fmt.Sprintf("  %s{%s=%q}: no such series after real traffic (selector %s%s%q in %s)", n, label, alt, label, op, value, strings.Join(where, ", ")))
				}
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("metrics the dashboard or the alert rules query, missing from the server's /metrics:\n%s\n"+
			"(the server built from this tree does not export them; until the metrics/ work lands this is expected)", strings.Join(missing, "\n"))
	}
	if len(badLabels) > 0 {
		t.Errorf("label matchers that select nothing on the real /metrics:\n%s", strings.Join(badLabels, "\n"))
	}
	for n := range redisOnlyMetrics {
		if _, ok := redis[n]; !ok && refs[n] == nil {
			t.Errorf("%s is listed as Redis-only but neither the dashboard nor the rules use it", n)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// runAndScrape starts the built server in --dev mode (bbolt under a temp
// directory, or store when given, then with the delivery plane on HTTPS,
// --dev-tls, and a remote token trust source that fails), drives both
// planes, and returns its /metrics.
func runAndScrape(t *testing.T, store string) exposition {
	t.Helper()
	bin := serverBinary(t)
	dataDir := t.TempDir()
	args := []string{"--dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--token-certs-reload", "0", "--deleted-retention", "0"}
	if store != "" {
		args = append(args, "--store", store, "--dev-tls", "--token-jwks-url", "https://127.0.0.1:9/keys")
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logBuf bytes.Buffer
	addrs := make(chan [3]string, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Bytes()
			logMu.Lock()
			logBuf.Write(line)
			logBuf.WriteByte('\n')
			logMu.Unlock()
			var l struct{ Msg, Plane, Addr, Scheme string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" {
				addrs <- [3]string{l.Plane, l.Addr, l.Scheme}
			}
		}
	}()
	logs := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return logBuf.String()
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = cmd.Wait()
	})

	// The waits below only catch a hang (waittest): a -race build starting
	// on a busy machine is slow, not broken.
	planes := map[string]string{}
	ceiling := time.NewTimer(waittest.Timeout(t))
	defer ceiling.Stop()
	for len(planes) < 2 {
		select {
		case a := <-addrs:
			planes[a[0]] = a[2] + "://" + a[1]
		case <-done:
			t.Fatalf("keydelivery exited before listening:\n%s", logs())
		case <-ceiling.C:
			t.Fatalf("keydelivery never logged both listening addresses:\n%s", logs())
		}
	}
	admin, delivery := planes["admin"], planes["delivery"]
	client := &http.Client{Timeout: waittest.Timeout(t)}
	if strings.HasPrefix(delivery, "https://") { // --dev-tls: trust its local CA
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(readFile(t, filepath.Join(dataDir, "dev-tls-ca.crt")))
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	}
	do := func(method, url, auth, body string, want int) []byte {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, logs())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if want != 0 && resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, b)
		}
		return b
	}
	waittest.For(t, "keydelivery to be ready", func() bool {
		select {
		case <-done:
			t.Fatalf("keydelivery exited before it was ready:\n%s", logs())
		default:
		}
		resp, err := client.Get(admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Traffic on both planes: a key created through the admin API, fetched
	// with a valid token (twice: a cache miss, then a hit) on both key
	// routes and as a ClearKey license, and refused for each kind of
	// client error.
	adminToken := "Bearer " + strings.TrimSpace(string(readFile(t, filepath.Join(dataDir, "dev-admin-token"))))
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(do("POST", admin+"/api/keys", adminToken, `{}`, http.StatusCreated), &created); err != nil || created.ID == "" {
		t.Fatalf("POST /api/keys: no id (%v)", err)
	}
	do("GET", admin+"/api/keys/"+created.ID, adminToken, "", http.StatusOK)
	do("GET", admin+"/api/token-certificates", adminToken, "", http.StatusOK)
	do("GET", admin+"/api/keys", "Bearer wrong", "", http.StatusUnauthorized)
	token := "Bearer " + mintDevToken(t, filepath.Join(dataDir, "dev-token-signing.key"), created.ID)
	for range 2 {
		if k := do("GET", delivery+"/keys/"+created.ID, token, "", http.StatusOK); len(k) != 16 {
			t.Fatalf("GET /keys/%s: %d bytes, want 16", created.ID, len(k))
		}
	}
	do("GET", delivery+"/?kid="+created.ID, token, "", http.StatusOK)
	kid, err := hex.DecodeString(strings.ReplaceAll(created.ID, "-", ""))
	if err != nil {
		t.Fatal(err)
	}
	do("POST", delivery+"/clearkey/license", token, `{"kids":["`+base64.RawURLEncoding.EncodeToString(kid)+`"],"type":"temporary"}`, http.StatusOK)
	do("GET", delivery+"/keys/"+created.ID, "", "", http.StatusUnauthorized)
	do("GET", delivery+"/keys/"+created.ID, "Bearer not.a.token", "", http.StatusUnauthorized)
	do("GET", delivery+"/keys/0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", token, "", http.StatusForbidden)
	do("GET", delivery+"/healthz", "", "", http.StatusOK)
	do("GET", delivery+"/no/such/path", "", "", http.StatusNotFound)

	return parseExposition(do("GET", admin+"/metrics", "", "", http.StatusOK))
}

// mintDevToken signs an ES256 token for kid with the --dev signing key,
// with the --dev issuer and audience.
func mintDevToken(t *testing.T, keyFile, kid string) string {
	t.Helper()
	block, _ := pem.Decode(readFile(t, keyFile))
	if block == nil {
		t.Fatalf("%s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", keyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: not an EC key", keyFile)
	}
	enc := base64.RawURLEncoding
	now := time.Now().Unix()
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss": "keydelivery-dev", "aud": "keydelivery", "iat": now, "exp": now + 600, "kids": []string{kid},
	})
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig)
}

package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// TestBrokenPipes (issue 12: "close the reader of stdout, create a key,
// and both planes die (exit 141)"): the real binary, its audit log on
// stdout (the default), with the reader of stdout and then of stderr
// closed for real. The write that finds the pipe closed refuses its
// operation (503 audit_unavailable), log lines that cannot be written are
// counted, and both planes go on serving.
func TestBrokenPipes(t *testing.T) {
	m := newMaterial(t)
	args := m.args("bolt:" + filepath.Join(m.dir, "keys.db"))
	for i, a := range args {
		if a == "--audit-log" {
			args[i+1] = "stdout"
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// Drain both pipes until the test closes their readers.
	var stdout, stderr syncbuf.Buffer
	var drains sync.WaitGroup
	drains.Go(func() { _, _ = io.Copy(&stdout, outR) })
	drains.Go(func() { _, _ = io.Copy(&stderr, errR) })
	p := startProcessIO(t, args, nil, outW, errW, stderr.String)
	outW.Close() // the process holds its own copies
	errW.Close()

	// While the pipes are read: a key is created and audited on stdout.
	value := randomKey(t)
	kid := createKeyAt(t, p.adminURL, value)
	waittest.For(t, "the audit records on stdout", func() bool { return strings.Count(stdout.String(), `"operation":"keys.create"`) == 2 })
	tok := m.token(t, kid)
	if a := do(t, "GET", p.deliveryURL+"/keys/"+kid, bearer(tok)); a.status != 200 {
		t.Fatalf("key: %d", a.status)
	}

	// The reader of stdout goes away: a write is refused, nothing dies.
	outR.Close()
	for range 3 {
		a := do(t, "POST", p.adminURL+"/api/keys", http.Header{"Authorization": {"Bearer " + adminSecret}, "Content-Type": {"application/json"}})
		if a.status != 503 || !strings.Contains(string(a.body), `"reason":"audit_unavailable"`) {
			t.Fatalf("create with stdout closed: %d %s", a.status, a.body)
		}
	}
	if !p.alive() {
		t.Fatalf("the server died when stdout closed: %v", p.exitErr)
	}
	if a := do(t, "GET", p.deliveryURL+"/keys/"+kid, bearer(tok)); a.status != 200 {
		t.Fatalf("delivery after stdout closed: %d", a.status)
	}

	// Then the reader of stderr: every access-log line fails, is counted,
	// and serving goes on.
	errR.Close()
	drains.Wait()
	for range 5 {
		if a := do(t, "GET", p.deliveryURL+"/keys/"+kid, bearer(tok)); a.status != 200 {
			t.Fatalf("delivery after stderr closed: %d", a.status)
		}
	}
	scrape := do(t, "GET", p.adminURL+"/metrics", nil)
	mm := regexp.MustCompile(`(?m)^keydelivery_log_write_failures_total (\d+)`).FindSubmatch(scrape.body)
	if scrape.status != 200 || mm == nil {
		t.Fatalf("/metrics: %d, no keydelivery_log_write_failures_total", scrape.status)
	}
	if n, _ := strconv.Atoi(string(mm[1])); n < 5 {
		t.Errorf("keydelivery_log_write_failures_total = %d, want at least the 5 access-log lines", n)
	}
	if !strings.Contains(string(scrape.body), "keydelivery_audit_write_failures_total 3") {
		t.Errorf("audit write failures not counted: %s", regexp.MustCompile(`(?m)^keydelivery_audit.*$`).FindAll(scrape.body, -1))
	}
	if !p.alive() {
		t.Fatalf("the server died: %v", p.exitErr)
	}
}

// createKeyAt creates a key with value through the admin API at adminURL.
func createKeyAt(t *testing.T, adminURL string, value [16]byte) string {
	t.Helper()
	s := &server{adminURL: adminURL, client: http.DefaultClient}
	return s.createKey(t, value, nil)
}

// TestNoSecretEchoed (issue 12: "Secrets echoed and logged by position,
// not by value"): the issue's requests, against the real server with
// --access-log; no log line, audit record, answer body or header holds
// the token or the admin secret, and no log line is longer than a few
// kilobytes whatever the request.
func TestNoSecretEchoed(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db")), nil)
	kid := s.createKey(t, randomKey(t), nil)
	jwt := m.token(t, kid)
	huge := "eyJ" + strings.Repeat("A", 60<<10) // a 60 KB token-shaped KID
	var answers []answer
	send := func(method, target string, header http.Header, body string) answer {
		t.Helper()
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		a := answer{resp.StatusCode, resp.Header, b}
		answers = append(answers, a)
		return a
	}
	admin := http.Header{"Authorization": {"Bearer " + adminSecret}, "Content-Type": {"application/json"}}
	send("GET", s.deliveryURL+"/keys/"+kid+"&token="+jwt, nil, "")
	send("GET", s.deliveryURL+"/keys/"+jwt, nil, "")
	send("GET", s.deliveryURL+"/nope/"+jwt, nil, "")
	send("GET", s.deliveryURL+"/keys/"+kid, http.Header{"X-Request-Id": {jwt[:40]}}, "")
	send("POST", s.deliveryURL+"/clearkey/license", bearer(jwt), `{"kids":["`+jwt+`"]}`)
	send("POST", s.deliveryURL+"/clearkey/license", bearer(jwt), `{"kids":["`+huge+`"]}`)
	for _, q := range []string{"auth=" + adminSecret, "Authorization=" + url.QueryEscape("Bearer "+adminSecret)} {
		a := send("GET", s.adminURL+"/api/keys?"+q, nil, "")
		if p := problemOf(t, a); a.status != 400 || p["reason"] != "credential_in_query" {
			t.Errorf("?%s: %d %s", q[:4], a.status, a.body)
		}
	}
	send("GET", s.adminURL+"/api/keys/"+adminSecret, admin, "")
	if a := send("POST", s.adminURL+"/api/keys", admin, `{"`+adminSecret+`":1}`); a.status != 400 {
		t.Errorf("unknown field named with the secret: %d %s", a.status, a.body)
	}
	send("POST", s.adminURL+"/api/keys", admin, `{"name":"`+jwt+`x`+`","key":"`+jwt+`"}`)

	audit, err := os.ReadFile(filepath.Join(m.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	dot := strings.LastIndexByte(jwt, '.')
	secrets := map[string]string{"token header": jwt[:strings.IndexByte(jwt, '.')], "token payload": jwt[strings.IndexByte(jwt, '.')+1 : dot],
		"token signature": jwt[dot+1:], "admin secret": adminSecret, "admin secret's tail": adminSecret[4:], "60 KB value": huge[:64]}
	places := map[string]string{"log": s.stderr.String(), "audit log": string(audit)}
	for i, a := range answers {
		var hdr strings.Builder
		_ = a.header.Write(&hdr)
		places["answer "+strconv.Itoa(i)] = hdr.String() + string(a.body)
	}
	for where, text := range places {
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds the %s", where, what)
			}
		}
	}
	for line := range strings.Lines(s.stderr.String()) {
		if len(line) > 4<<10 {
			t.Errorf("a log line of %d bytes: %.200s", len(line), line)
		}
	}
	if !strings.Contains(s.stderr.String(), "REDACTED") {
		t.Error("no redaction in the log: the test did not exercise it")
	}
}

// TestMaxUsesAcrossInstances (issue 12: "No replay limit ... a token leaked
// from a page can be used until it expires"): two servers on one Redis
// count the uses of one token together, through their token caches; the
// use past the limit is 403 max_uses_exceeded on either. With Redis down,
// a limited token is refused (503) while an unlimited one is not counted.
func TestMaxUsesAcrossInstances(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	m := newMaterial(t)
	store := "redis://" + rs.Addr + "/0"
	// The first instance takes the new store into use; the second finds
	// its marker.
	a := start(t, m.args(store, "--store-adopt"), nil)
	b := start(t, m.args(store), nil)
	kid := a.createKey(t, randomKey(t), nil)
	now := time.Now()
	limited, err := m.signer.Sign(auth.TokenClaims{Issuer: testIssuer, Audience: testAudience, KeyIDs: []string{kid},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), Extra: map[string]any{"urn:microsoft:azure:mediaservices:maxuses": 3}})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []*server{a, b, a} {
		if r := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(limited)); r.status != 200 {
			t.Fatalf("use %d: %d %s", i+1, r.status, r.body)
		}
	}
	for _, s := range []*server{b, a} {
		r := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(limited))
		if p := problemOf(t, r); r.status != 403 || p["reason"] != "max_uses_exceeded" {
			t.Fatalf("past the limit: %d %s", r.status, r.body)
		}
	}
	rs.Stop(t)
	if r := do(t, "GET", a.deliveryURL+"/keys/"+kid, bearer(limited)); r.status != 503 {
		t.Fatalf("limited token with the store down: %d %s", r.status, r.body)
	}
}

// TestRateLimitFlags: the budgets through the real server's flags (issue
// 12: "No rate limiting anywhere ... 87,295 wrong admin secrets left 0
// audit records").
func TestRateLimitFlags(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db"),
		"--limit-auth-failures", "1/h:3", "--limit-admin-auth-failures", "1/h:2", "--require-token-key-id"), nil)
	kid := s.createKey(t, randomKey(t), nil)
	good := m.token(t, kid)
	for i := range 3 {
		if r := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer("forged."+strconv.Itoa(i)+".x")); r.status != 401 {
			t.Fatalf("forged token %d: %d", i, r.status)
		}
	}
	r := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(good))
	if p := problemOf(t, r); r.status != 429 || p["reason"] != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the budget: %d %s", r.status, r.body)
	}
	for i := range 2 {
		if r := do(t, "GET", s.adminURL+"/api/keys", bearer("kda_guess-"+strconv.Itoa(i))); r.status != 401 {
			t.Fatalf("admin guess %d: %d", i, r.status)
		}
	}
	if r := do(t, "GET", s.adminURL+"/api/keys", bearer(adminSecret)); r.status != 429 {
		t.Fatalf("admin over the budget: %d %s", r.status, r.body)
	}
	audit, err := os.ReadFile(filepath.Join(m.dir, "audit.log"))
	if err != nil || !strings.Contains(string(audit), `"operation":"authenticate","kids":[],"result":"unauthorized"`) {
		t.Fatalf("failed authentications not audited: %v\n%s", err, audit)
	}
	// --require-token-key-id: a token naming no certificate is refused.
	now := time.Now()
	bare, err := m.signer.SignWithHeader(auth.TokenClaims{Issuer: testIssuer, Audience: testAudience, KeyIDs: []string{kid},
		ExpiresAt: now.Add(time.Hour)}, map[string]any{"x5t": nil})
	if err != nil {
		t.Fatal(err)
	}
	other := start(t, m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"), "--require-token-key-id"), nil)
	if r := do(t, "GET", other.deliveryURL+"/keys/"+kid, bearer(bare)); r.status != 401 || !strings.Contains(string(r.body), "unknown_signing_key") {
		t.Fatalf("a token without x5t or kid: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"--limit-auth-failures=20", "--limit-requests=x/s", "--limit-admin-auth-failures=5/d"} {
		err := run(t.Context(), append(m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db")), bad), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "RATE/UNIT") && !strings.Contains(err.Error(), "ratelimit") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

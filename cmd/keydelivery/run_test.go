package main

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

type answer struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, rawURL string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
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
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// problemOf decodes an RFC 9457 problem body.
func problemOf(t *testing.T, a answer) map[string]any {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error Content-Type %q, body %s", ct, a.body)
	}
	var p map[string]any
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", a.body, err)
	}
	if p["request_id"] == "" || p["request_id"] == nil {
		t.Fatalf("problem without request_id: %s", a.body)
	}
	return p
}

// TestDeliveryEndToEndBolt runs the real server on a real bbolt file.
func TestDeliveryEndToEndBolt(t *testing.T) {
	m := newMaterial(t)
	dbPath := filepath.Join(m.dir, "keys.db")
	s := start(t, m.args("bolt:"+dbPath), nil)
	value := randomKey(t)
	kid := s.createKey(t, value, map[string]any{"name": "bolt e2e"})
	exerciseDelivery(t, s, m, kid, value)
	exerciseImport(t, s, m)
	exerciseLicenses(t, s, m)

	// Restart on the same file: the key is still there.
	s.stop(t)
	s2 := start(t, m.args("bolt:"+dbPath), nil)
	a := do(t, "GET", s2.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid)))
	if a.status != 200 || !bytes.Equal(a.body, value[:]) {
		t.Fatalf("after restart: %d %x", a.status, a.body)
	}
	// The file holds no key material in the clear.
	s2.stop(t)
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(kid)) {
		t.Fatal("the store file does not hold the key record at all")
	}
	for _, form := range [][]byte{value[:], []byte(b64(value[:])), []byte(strings.ToLower(strings.ReplaceAll(hexOf(value[:]), " ", "")))} {
		if bytes.Contains(raw, form) {
			t.Fatal("key material found in the store file")
		}
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestDeliveryEndToEndRedis runs the real server on a real redis-server,
// and stops Redis mid-test: 503 with Retry-After, then recovery without a
// server restart.
func TestDeliveryEndToEndRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{Persistence: true, Password: "e2e-redis-password"})
	m := newMaterial(t)
	pwFile := filepath.Join(m.dir, "redis-password")
	if err := os.WriteFile(pwFile, []byte("e2e-redis-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storeURL := "redis://" + rs.Addr + "/0"
	// The key cache is off, so the outage below reaches the store.
	s := start(t, m.args(storeURL, "--redis-password-file", pwFile, "--store-timeout", "300ms", "--key-cache-ttl", "0"), nil)
	value := randomKey(t)
	kid := s.createKey(t, value, nil)
	exerciseDelivery(t, s, m, kid, value)
	exerciseImport(t, s, m)
	exerciseLicenses(t, s, m)

	tok := m.token(t, kid)
	rs.Stop(t)
	a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok))
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d (Retry-After %q) %s; want 503 with Retry-After", a.status, a.header.Get("Retry-After"), a.body)
	}
	if p := problemOf(t, a); p["code"] != "unavailable" {
		t.Fatalf("with Redis down: %v", p)
	}
	if r := do(t, "GET", s.adminURL+"/readyz", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Redis down: %d %s", r.status, r.body)
	}
	rs.Restart(t)
	waittest.For(t, "a key read to succeed after Redis came back", func() bool {
		a = do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok))
		return a.status == 200
	})
	if a.status != 200 || !bytes.Equal(a.body, value[:]) {
		t.Fatalf("after Redis came back: %d %s", a.status, a.body)
	}
}

// exerciseDelivery fetches kid by every URL form and token transport and
// checks every refusal.
func exerciseDelivery(t *testing.T, s *server, m material, kid string, value [16]byte) {
	t.Helper()
	tok := m.token(t, kid)
	id, _ := keystore.ParseKeyID(kid)
	upper := strings.ToUpper(kid)
	noHyphens := strings.ReplaceAll(kid, "-", "")
	q := url.QueryEscape

	ok := []struct {
		name   string
		method string
		url    string
		header http.Header
	}{
		{"path, Bearer header", "GET", "/keys/" + kid, bearer(tok)},
		{"path, Bearer= header", "GET", "/keys/" + kid, http.Header{"Authorization": {"Bearer=" + tok}}},
		{"path, lower-case scheme", "GET", "/keys/" + kid, http.Header{"Authorization": {"bearer " + tok}}},
		{"path, token query", "GET", "/keys/" + kid + "?token=" + q(tok), nil},
		{"path, token query Bearer=", "GET", "/keys/" + kid + "?token=" + q("Bearer="+tok), nil},
		{"path, token query Bearer space", "GET", "/keys/" + kid + "?token=" + q("Bearer "+tok), nil},
		{"path, upper case", "GET", "/keys/" + upper, bearer(tok)},
		{"path, braces", "GET", "/keys/" + q("{"+kid+"}"), bearer(tok)},
		{"path, no hyphens", "GET", "/keys/" + noHyphens, bearer(tok)},
		{"path, AMS prefix", "GET", "/keys/nb:kid:UUID:" + kid, bearer(tok)},
		{"AMS query GET", "GET", "/?kid=" + kid, bearer(tok)},
		{"AMS query POST empty body", "POST", "/?kid=" + kid, http.Header{"Authorization": {"Bearer=" + tok}}},
		{"AMS query, KID parameter in upper case", "GET", "/?KID=" + q("nb:kid:UUID:"+upper), bearer(tok)},
		{"AMS query, token in query", "GET", "/?Kid=" + kid + "&token=" + q(tok), nil},
	}
	for _, c := range ok {
		a := do(t, c.method, s.deliveryURL+c.url, c.header)
		if a.status != 200 {
			t.Errorf("%s: status %d, body %s", c.name, a.status, a.body)
			continue
		}
		if !bytes.Equal(a.body, value[:]) {
			t.Errorf("%s: wrong key bytes", c.name)
		}
		if a.header.Get("Content-Type") != "application/octet-stream" || a.header.Get("Content-Length") != "16" || a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", c.name, a.header)
		}
	}

	now := time.Now()
	expired, _ := m.signer.Sign(auth.TokenClaims{Issuer: testIssuer, Audience: testAudience, KeyIDs: []string{kid}, IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	wrongAud, _ := m.signer.Sign(auth.TokenClaims{Issuer: testIssuer, Audience: "someone-else", KeyIDs: []string{kid}, ExpiresAt: now.Add(time.Hour)})
	other := keystore.KeyID{1, 2, 3}
	refusals := []struct {
		name   string
		url    string
		header http.Header
		status int
		code   string
		reason string
	}{
		{"no token", "/keys/" + kid, nil, 401, "invalid_token", "missing_token"},
		{"garbage token", "/keys/" + kid, bearer("not.a.jwt"), 401, "invalid_token", "malformed"},
		{"basic auth", "/keys/" + kid, http.Header{"Authorization": {"Basic Zm9vOmJhcg=="}}, 401, "invalid_token", "malformed"},
		{"expired", "/keys/" + kid, bearer(expired), 401, "invalid_token", "expired"},
		{"wrong audience", "/keys/" + kid, bearer(wrongAud), 401, "invalid_token", "wrong_audience"},
		{"oversized token", "/keys/" + kid, bearer(strings.Repeat("a", 9000)), 401, "invalid_token", "too_large"},
		{"token for another KID", "/keys/" + kid, bearer(m.token(t, other.String())), 403, "forbidden", "key_not_granted"},
		{"malformed KID", "/keys/not-a-kid", bearer(tok), 400, "invalid_request", "invalid_kid"},
		{"malformed AMS KID", "/?kid=nb:kid:UUID:xyz", bearer(tok), 400, "invalid_request", "invalid_kid"},
		{"missing AMS kid", "/?foo=bar", bearer(tok), 400, "invalid_request", "missing_kid"},
		{"granted but unknown", "/keys/" + other.String(), bearer(m.token(t, other.String())), 404, "not_found", "unknown_key"},
		{"no such route", "/nope", bearer(tok), 404, "not_found", "no_route"},
	}
	for _, c := range refusals {
		a := do(t, "GET", s.deliveryURL+c.url, c.header)
		if a.status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, a.status, c.status, a.body)
			continue
		}
		p := problemOf(t, a)
		if p["code"] != c.code || p["reason"] != c.reason {
			t.Errorf("%s: code %v reason %v, want %s %s", c.name, p["code"], p["reason"], c.code, c.reason)
		}
		if a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", c.name, a.header.Get("Cache-Control"))
		}
		if bytes.Contains(a.body, value[:]) || strings.Contains(string(a.body), b64(value[:])) {
			t.Errorf("%s: error body holds key material", c.name)
		}
		if c.status == 401 {
			www := a.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(www, "Bearer") || (c.reason != "missing_token" && !strings.Contains(www, `error="invalid_token"`) || c.reason != "missing_token" && !strings.Contains(www, c.reason)) {
				t.Errorf("%s: WWW-Authenticate %q", c.name, www)
			}
		}
	}
	_ = id

	// CORS: an allowed origin is echoed with credentials, on success and on errors.
	for _, origin := range []string{"https://player.example.com", "https://edge.cdn.example.net"} {
		h := bearer(tok)
		h.Set("Origin", origin)
		for _, path := range []string{"/keys/" + kid, "/keys/not-a-kid"} {
			a := do(t, "GET", s.deliveryURL+path, h)
			if a.header.Get("Access-Control-Allow-Origin") != origin || a.header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(strings.Join(a.header.Values("Vary"), ","), "Origin") {
				t.Errorf("CORS %s %s: %v", origin, path, a.header)
			}
		}
		pre := do(t, "OPTIONS", s.deliveryURL+"/keys/"+kid, http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"authorization"},
		})
		if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != origin ||
			!strings.Contains(strings.ToLower(pre.header.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("preflight from %s: %d %v", origin, pre.status, pre.header)
		}
	}
	// A disallowed origin gets no CORS grant (and never a literal "*").
	h := bearer(tok)
	h.Set("Origin", "https://evil.example.org")
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, h); a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("disallowed origin granted: %v", a.header)
	}
	// The health check for load balancers.
	if a := do(t, "GET", s.deliveryURL+"/healthz", nil); a.status != 200 {
		t.Errorf("healthz: %d", a.status)
	}
	// Tokens in the query string never reach the log, which has a line
	// for each of those requests.
	if !strings.Contains(s.stderr.String(), `token=REDACTED`) {
		t.Error("the access log has no line for the requests with a token in the query")
	}
	for _, part := range strings.Split(tok, ".") {
		if strings.Contains(s.stderr.String(), part) || strings.Contains(s.stdout.String(), part) {
			t.Error("a token reached the log")
		}
	}
}

// TestSIGTERMDrains sends the process SIGTERM while the server runs:
// readiness fails first, while the listeners still serve, then run returns
// nil. The test waits for the server's own "stopping" line rather than
// racing a clock; the drain delay only has to outlast one request.
func TestSIGTERMDrains(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db"), "--drain-delay", "5s"), nil)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waittest.For(t, "the stopping line", func() bool { return strings.Contains(s.stderr.String(), "stopping: readiness now fails") })
	for _, url := range []string{s.adminURL + "/readyz", s.deliveryURL + "/healthz"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("%s during the drain delay: %v", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s during the drain delay: %d, want 503", url, resp.StatusCode)
		}
	}
	if err := waittest.Receive(t, s.done, "run's return after SIGTERM"); err != nil {
		t.Fatalf("run after SIGTERM: %v", err)
	}
	s.done <- nil
}

// TestSIGHUPReloadsTrustAndCredentials adds a second token certificate (a
// Key Vault renewal) and a second admin credential while the server runs:
// after SIGHUP both are honoured, and tokens of the old certificate still
// verify.
func TestSIGHUPReloadsTrustAndCredentials(t *testing.T) {
	m := newMaterial(t)
	certDir := filepath.Join(m.dir, "certs")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.certFile, filepath.Join(certDir, "v1.pem")); err != nil {
		t.Fatal(err)
	}
	args := m.args("bolt:"+filepath.Join(m.dir, "keys.db"), "--token-certs-reload", "0")
	for i, a := range args {
		if a == m.certFile {
			args[i] = certDir
		}
	}
	s := start(t, args, nil)
	value := randomKey(t)
	kid := s.createKey(t, value, nil)

	renewed := newMaterial(t) // another certificate and key, and another admin secret file
	tokRenewed := renewed.token(t, kid)
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tokRenewed)); a.status != 401 || problemOf(t, a)["reason"] != "unknown_signing_key" {
		t.Fatalf("renewed certificate before reload: %d %s", a.status, a.body)
	}
	cert, err := os.ReadFile(renewed.certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certDir, "v2.pem"), cert, 0o600); err != nil {
		t.Fatal(err)
	}
	secondSecret := "kda_second-credential-for-the-reload-test"
	line := "second writer " + hexOf(sha256Sum(secondSecret)) + "\n"
	f, err := os.OpenFile(m.credsFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
	f.Close()
	secondAuth := http.Header{"Authorization": {"Bearer " + secondSecret}}
	if a := do(t, "GET", s.adminURL+"/api/keys/"+kid, secondAuth); a.status != 401 {
		t.Fatalf("second credential before reload: %d", a.status)
	}

	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var a answer
	waittest.For(t, "the renewed certificate to be trusted after SIGHUP", func() bool {
		a = do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tokRenewed))
		return a.status == 200
	})
	if a.status != 200 || !bytes.Equal(a.body, value[:]) {
		t.Fatalf("renewed certificate after SIGHUP: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid))); a.status != 200 {
		t.Fatalf("previous certificate after SIGHUP: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", s.adminURL+"/api/keys/"+kid, secondAuth); a.status != 200 {
		t.Fatalf("second credential after SIGHUP: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", s.adminURL+"/api/token-certificates", secondAuth); a.status != 200 || strings.Count(string(a.body), `"x5t"`) != 2 {
		t.Fatalf("token certificates after SIGHUP: %d %s", a.status, a.body)
	}
}

func sha256Sum(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// TestPlanesDoNotShareCredentials: a delivery token is never an admin
// credential, and an admin credential never fetches a key.
func TestPlanesDoNotShareCredentials(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db")), nil)
	value := randomKey(t)
	kid := s.createKey(t, value, nil)
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(adminSecret)); a.status != 401 {
		t.Fatalf("admin secret on the delivery plane: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", s.adminURL+"/api/keys/"+kid, bearer(m.token(t, kid))); a.status != 401 {
		t.Fatalf("delivery token on the admin plane: %d %s", a.status, a.body)
	}
	// Neither plane serves the other's routes.
	if a := do(t, "GET", s.deliveryURL+"/api/keys/"+kid, bearer(adminSecret)); a.status != 404 {
		t.Fatalf("admin route on the delivery plane: %d", a.status)
	}
	if a := do(t, "GET", s.adminURL+"/keys/"+kid, bearer(m.token(t, kid))); a.status != 404 {
		t.Fatalf("key route on the admin plane: %d", a.status)
	}
}

// TestAMSContentKeyEndToEnd drives the AMS v2 path through the real server
// in dev mode (which generates the protection certificate): fetch the
// protection certificate, encrypt a content key to it as the AMS SDK did,
// create the key with its checksum, then fetch it as a player.
func TestAMSContentKeyEndToEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := start(t, []string{"keydelivery", "--dev", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--audit-log", filepath.Join(dir, "audit.log")}, nil)
	m := devPaths(dir)
	secret, err := os.ReadFile(m.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := bearer(strings.TrimSpace(string(secret)))
	get := func(path string) string {
		a := do(t, "GET", s.adminURL+path, admin)
		var v struct {
			Value string `json:"value"`
		}
		if a.status != 200 || json.Unmarshal(a.body, &v) != nil || v.Value == "" {
			t.Fatalf("GET %s: %d %s", path, a.status, a.body)
		}
		return v.Value
	}
	thumb := get("/api/GetProtectionKeyId?contentKeyType=1")
	der, err := base64.StdEncoding.DecodeString(get("/api/GetProtectionKey?ProtectionKeyId='" + thumb + "'"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	value := randomKey(t)
	id, _ := keystore.ParseKeyID("316d14d4-b603-4d90-b8db-0fede8aa48f8")
	enc, err := ams.EncryptContentKey(nil, cert.PublicKey.(*rsa.PublicKey), value)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"Id": "nb:kid:UUID:" + id.String(), "ContentKeyType": 4, "EncryptedContentKey": enc,
		"ProtectionKeyId": thumb, "ProtectionKeyType": 0, "Checksum": playready.Checksum(value, id), "Name": "from the AMS SDK"})
	req, _ := http.NewRequest("POST", s.adminURL+"/api/ContentKeys", bytes.NewReader(body))
	req.Header = admin.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || bytes.Contains(out, []byte(enc)) {
		t.Fatalf("POST /api/ContentKeys: %d %s", resp.StatusCode, out)
	}
	signer, err := auth.LoadSigner(m.KeyFile, m.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Sign(auth.TokenClaims{Issuer: devIssuer, Audience: devAudience, ContentKeyID: id.String(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	a := do(t, "GET", s.deliveryURL+"/?kid=nb:kid:UUID:"+id.String(), http.Header{"Authorization": {"Bearer=" + tok}})
	if a.status != 200 || !bytes.Equal(a.body, value[:]) {
		t.Fatalf("delivery of the AMS key: %d %s", a.status, a.body)
	}
}

// TestKeyCacheInvalidatedAcrossInstances: two servers share one Redis, each
// with a long key cache. A key cached by the second is deleted through the
// first's admin API: the second stops delivering it at once (pub/sub), not
// after the TTL; restored, it is delivered again.
func TestKeyCacheInvalidatedAcrossInstances(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	m := newMaterial(t)
	store := "redis://" + rs.Addr + "/0"
	a := start(t, m.args(store, "--key-cache-ttl", "1h"), nil)
	b := start(t, m.args(store, "--key-cache-ttl", "1h"), nil)
	value := randomKey(t)
	kid := a.createKey(t, value, nil)
	tok := m.token(t, kid)
	for range 2 {
		if r := do(t, "GET", b.deliveryURL+"/keys/"+kid, bearer(tok)); r.status != 200 {
			t.Fatalf("b before delete: %d", r.status)
		}
	}
	// The second fetch was a cache hit: the test below is about invalidation.
	if mt := do(t, "GET", b.adminURL+"/metrics", nil); !regexp.MustCompile(`(?m)^keydelivery_key_cache_hits_total [1-9]`).Match(mt.body) {
		t.Fatalf("no key cache hit on b:\n%s", mt.body)
	}
	adminDo := func(method, path string) {
		req, _ := http.NewRequest(method, a.adminURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	waitStatus := func(want int) {
		t.Helper()
		waittest.For(t, fmt.Sprintf("b to answer %d", want), func() bool {
			return do(t, "GET", b.deliveryURL+"/keys/"+kid, bearer(tok)).status == want
		})
	}
	adminDo("DELETE", "/api/keys/"+kid)
	waitStatus(404)
	adminDo("POST", "/api/keys/"+kid+"/restore")
	waitStatus(200)
}

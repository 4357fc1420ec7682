package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// expiredMaterial is newMaterial whose token certificate has expired.
func expiredMaterial(t *testing.T) material {
	t.Helper()
	m := newMaterial(t)
	certPEM, _, err := auth.GenerateDevCertificate(rand.Reader, "expired token signing", time.Now().Add(-72*time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCheckConfigWarnsNoValidKey: only expired certificates still pass the
// check, with a warning that no token can verify.
func TestCheckConfigWarnsNoValidKey(t *testing.T) {
	m := expiredMaterial(t)
	var out, errOut syncBuffer
	args := append(m.args("bolt:"+filepath.Join(m.dir, "keys.db")), "--check-config")
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("check-config: %v", err)
	}
	if !strings.Contains(out.String(), "configuration ok") {
		t.Fatalf("stdout %q", out.String())
	}
	if w := out.String(); !strings.Contains(w, "warning: none of the 1 trusted token certificates is valid now") ||
		!strings.Contains(w, "/readyz reports no_valid_token_certificate") {
		t.Fatalf("no warning:\n%s", w)
	}
	// A valid certificate: no warning.
	m = newMaterial(t)
	var out2, errOut2 syncBuffer
	args = append(m.args("bolt:"+filepath.Join(m.dir, "keys.db")), "--check-config")
	if err := run(t.Context(), args, func(string) string { return "" }, &out2, &errOut2); err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(out2.String()) {
		if strings.HasPrefix(l, "warning:") && strings.Contains(l, "token") {
			t.Fatalf("a token warning with a valid certificate:\n%s", out2.String())
		}
	}
}

// TestReadyzNoValidTokenCertificate: with only an expired certificate the
// server starts, and /readyz says why it is not ready.
func TestReadyzNoValidTokenCertificate(t *testing.T) {
	m := expiredMaterial(t)
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, m.args("bolt:"+filepath.Join(m.dir, "keys.db")), func(string) string { return "" }, &syncBuffer{}, stderr)
	}()
	t.Cleanup(func() { cancel(); waittest.Receive(t, done, "the server to stop") })
	var admin string
	waittest.For(t, "the admin listener", func() bool {
		for _, l := range listenRE.FindAllStringSubmatch(stderr.String(), -1) {
			if l[1] == "admin" {
				admin = "http://" + l[2]
			}
		}
		return admin != ""
	})
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	waittest.For(t, "readiness to be decided by the checks", func() bool {
		a := do(t, "GET", admin+"/readyz", nil)
		return a.status == http.StatusServiceUnavailable && json.Unmarshal(a.body, &body) == nil && body.Checks["serving"] == "ok"
	})
	if !strings.HasPrefix(body.Checks["trust"], "no_valid_token_certificate: 1 trusted keys, none valid at ") || body.Checks["store"] != "ok" {
		t.Fatalf("readyz %+v", body)
	}
	if !strings.Contains(stderr.String(), `"reason":"no_valid_token_certificate"`) {
		t.Error("no warning in the log")
	}
}

// oidcProvider is a local OpenID Connect provider on loopback: a discovery
// document and its key set, whose keys a test replaces.
type oidcProvider struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []map[string]any
}

func newOIDCProvider(t *testing.T) *oidcProvider {
	p := &oidcProvider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/idp/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.srv.URL + "/idp", "jwks_uri": p.srv.URL + "/idp/keys"})
		case "/idp/keys":
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// rotate publishes a new EC P-256 key under kid (alone, or beside an RSA
// key the server must ignore) and returns its signer.
func (p *oidcProvider) rotate(t *testing.T, kid string) *auth.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := k.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	p.mu.Lock()
	p.keys = []map[string]any{
		{"kty": "RSA", "kid": "rsa-" + kid, "use": "sig", "n": enc([]byte{0xc1, 0x01, 0x02}), "e": "AQAB"},
		{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256", "x": enc(raw[1:33]), "y": enc(raw[33:])},
	}
	p.mu.Unlock()
	return auth.NewSigner(k, nil)
}

// TestOIDCTrustSourceEndToEnd: a server trusting only an OpenID Connect
// issuer delivers keys to the issuer's tokens, follows its key rollover
// with no operator action, and lists the key in /api/token-trust.
func TestOIDCTrustSourceEndToEnd(t *testing.T) {
	m := newMaterial(t)
	p := newOIDCProvider(t)
	issuer := p.srv.URL + "/idp"
	signer := p.rotate(t, "ec-1")
	args := []string{"keydelivery", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--store", "bolt:" + filepath.Join(m.dir, "keys.db"),
		"--token-oidc-issuer", issuer, "--token-audience", testAudience, "--token-jwks-refresh", "1h",
		"--kek-file", m.kekFile, "--admin-credentials-file", m.credsFile, "--audit-log", filepath.Join(m.dir, "audit.log")}
	s := start(t, args, nil)
	value := randomKey(t)
	kid := s.createKey(t, value, nil)
	token := func(signer *auth.Signer, keyID string) string {
		now := time.Now()
		tok, err := signer.SignWithHeader(auth.TokenClaims{Issuer: issuer, Audience: testAudience, KeyIDs: []string{kid},
			IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, map[string]any{"kid": keyID})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(token(signer, "ec-1"))); a.status != 200 || string(a.body) != string(value[:]) {
		t.Fatalf("key with the provider's token: %d %s", a.status, a.body)
	}
	a := do(t, "GET", s.adminURL+"/api/token-trust", http.Header{"Authorization": {"Bearer " + adminSecret}})
	var trust struct {
		Keys []struct {
			Kind, KeyID, Status string
		} `json:"keys"`
		Sources []struct {
			Kind, Name string
			Healthy    bool
		} `json:"sources"`
	}
	if err := json.Unmarshal(a.body, &trust); err != nil || a.status != 200 {
		t.Fatalf("token-trust: %d %s", a.status, a.body)
	}
	if len(trust.Keys) != 1 || trust.Keys[0].Kind != "oidc" || trust.Keys[0].KeyID != "ec-1" || trust.Keys[0].Status != "valid" ||
		len(trust.Sources) != 1 || trust.Sources[0].Name != issuer || !trust.Sources[0].Healthy {
		t.Fatalf("token-trust %s", a.body)
	}
	if !strings.Contains(s.stderr.String(), "rsa-ec-1") {
		t.Error("the ignored RSA key is not logged")
	}

	// The provider rolls over to a new key: the first token naming it
	// prompts a fetch (the background refresh is an hour away).
	next := p.rotate(t, "ec-2")
	tok := token(next, "ec-2")
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok)); a.status != 401 {
		t.Fatalf("before the fetch: %d", a.status)
	}
	waittest.For(t, "the rolled-over key to be trusted", func() bool {
		return do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok)).status == 200
	})
	// A token of another issuer, even signed by a trusted key, is refused.
	other, _ := next.SignWithHeader(auth.TokenClaims{Issuer: "https://elsewhere.example/", Audience: testAudience, KeyIDs: []string{kid},
		ExpiresAt: time.Now().Add(time.Hour)}, map[string]any{"kid": "ec-2"})
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(other)); a.status != 401 || problemOf(t, a)["reason"] != "wrong_issuer" {
		t.Fatalf("another issuer: %d %s", a.status, a.body)
	}
}

func TestConfigTrustSources(t *testing.T) {
	store := "bolt:" + filepath.Join(t.TempDir(), "keys.db")
	parse := func(args ...string) (*config, error) {
		return parseConfig(append([]string{"kd", "--token-audience", "a", "--kek-file", "/k", "--store", store}, args...), func(string) string { return "" }, nil)
	}
	c, err := parse("--token-keyvault-cert", "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate",
		"--token-keyvault-cert", "https://other.vault.azure.net/certificates/second", "--token-issuer", "i")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil || len(c.TokenKeyVaultCerts) != 2 || c.TokenKeyVaultRefresh != 10*time.Minute || c.TokenJWKSRefresh != 10*time.Minute {
		t.Fatalf("%v %+v", err, c)
	}
	c, err = parse("--token-oidc-issuer", "https://login.example.com/tenant/v2.0")
	if err != nil || c.validate() != nil || len(c.TokenIssuers) != 1 || c.TokenIssuers[0] != "https://login.example.com/tenant/v2.0" {
		t.Fatalf("the OIDC issuer is the default --token-issuer: %v %v", err, c.TokenIssuers)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no source":             {[]string{"--token-issuer", "i"}, "--token-certs is required"},
		"key vault version":     {[]string{"--token-issuer", "i", "--token-keyvault-cert", "https://v.vault.azure.net/certificates/c/482cc7716df14955862ea73e773156f1"}, "names one version"},
		"key vault over http":   {[]string{"--token-issuer", "i", "--token-keyvault-cert", "http://v.vault.azure.net/certificates/c"}, "--token-keyvault-cert"},
		"jwks over plain http":  {[]string{"--token-issuer", "i", "--token-jwks-url", "http://idp.example/keys"}, "--token-jwks-url"},
		"oidc without a scheme": {[]string{"--token-oidc-issuer", "idp.example"}, "--token-oidc-issuer"},
		"oidc issuer not among the issuers": {[]string{"--token-issuer", "https://tokens.example/", "--token-oidc-issuer", "https://login.example.com/tenant/v2.0"},
			"--token-oidc-issuer https://login.example.com/tenant/v2.0 is not among --token-issuer (https://tokens.example/)"},
		"refresh too short": {[]string{"--token-issuer", "i", "--token-certs", "/x", "--token-keyvault-refresh", "1ms"}, "--token-keyvault-refresh"},
	} {
		c, err := parse(tc.args...)
		if err == nil {
			err = c.validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

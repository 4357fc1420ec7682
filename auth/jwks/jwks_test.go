package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// provider is a local OpenID Connect provider: a discovery document at
// /tenant/v2.0/.well-known/openid-configuration and its key set at /keys.
type provider struct {
	srv *httptest.Server

	mu       sync.Mutex
	keys     []map[string]any
	issuer   string // what the discovery document says; default the real one
	status   int    // answer every request with it (0: none)
	requests []string
}

func newProvider(t *testing.T) *provider {
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.requests = append(p.requests, r.URL.Path)
		if p.status != 0 {
			http.Error(w, "failing on purpose", p.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/tenant/v2.0/.well-known/openid-configuration":
			iss := p.issuer
			if iss == "" {
				iss = p.issuerURL()
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": p.srv.URL + "/keys",
				"id_token_signing_alg_values_supported": []string{"ES256", "RS256"}})
		case "/keys":
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) issuerURL() string { return p.srv.URL + "/tenant/v2.0" }

func (p *provider) set(keys ...map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

func (p *provider) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.requests {
		if r == path {
			n++
		}
	}
	return n
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(t *testing.T, curve elliptic.Curve, kid string) (map[string]any, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	n := (len(raw) - 1) / 2
	m := map[string]any{"kty": "EC", "crv": curve.Params().Name, "x": b64(raw[1 : 1+n]), "y": b64(raw[1+n:]), "use": "sig", "alg": "ES256"}
	if curve != elliptic.P256() {
		m["alg"] = "ES384"
	}
	if kid != "" {
		m["kid"] = kid
	}
	return m, k
}

func rsaJWK(t *testing.T, kid string) map[string]any {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

// sign makes a token of issuer iss signed by k, naming kid.
func sign(t *testing.T, iss string, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	tok, err := auth.NewSigner(k, nil).SignWithHeader(auth.TokenClaims{Issuer: iss, Audience: "urn:test",
		KeyIDs: []string{"k"}, ExpiresAt: testNow.Add(time.Hour)}, map[string]any{"kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// verifier accepts the tokens of issuers.
func verifier(t *testing.T, tr *auth.Trust, issuers ...string) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(tr, auth.Options{Issuers: issuers, Audience: "urn:test", Leeway: auth.DefaultLeeway,
		ParseKeyID: func(string) ([16]byte, error) { return [16]byte{1}, nil }, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOIDCKeySet: discovery, then the key set; EC P-256 keys are trusted by
// kid, every other key is ignored with one log line.
func TestOIDCKeySet(t *testing.T) {
	p := newProvider(t)
	ec1, key1 := ecJWK(t, elliptic.P256(), "ec-1")
	p384, _ := ecJWK(t, elliptic.P384(), "ec-384")
	enc, _ := ecJWK(t, elliptic.P256(), "ec-enc")
	enc["use"] = "enc"
	noKid, _ := ecJWK(t, elliptic.P256(), "")
	p.set(ec1, rsaJWK(t, "rsa-1"), p384, enc, noKid, map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"})
	var logs syncbuf.Buffer
	src, err := New(Options{Issuer: p.issuerURL(), Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind() != auth.KindOIDC || src.Name() != p.issuerURL() {
		t.Fatalf("%s %s", src.Kind(), src.Name())
	}
	for range 2 {
		keys, err := src.Fetch(waittest.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].KeyID != "ec-1" || !keys[0].PublicKey.Equal(&key1.PublicKey) || keys[0].Location != p.srv.URL+"/keys" {
			t.Fatalf("keys %+v", keys)
		}
	}
	out := logs.String()
	for _, want := range []string{"kid=rsa-1", `key type \"RSA\"`, "kid=ec-384", "kid=ec-enc", `use \"enc\"`, "kid=#4", "no kid", "kid=hmac"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "kid=rsa-1"); n != 1 {
		t.Errorf("the RSA key was logged %d times over two fetches, want once", n)
	}
	if strings.Contains(out, "c2VjcmV0") {
		t.Error("the log holds key material")
	}
	if p.count("/tenant/v2.0/.well-known/openid-configuration") != 2 || p.count("/keys") != 2 {
		t.Errorf("requests %v", p.requests)
	}
}

// TestOIDCRollover: tokens from the provider verify; when it rolls over to
// a new key, the first token naming it prompts a fetch, and then it
// verifies, with no operator action.
func TestOIDCRollover(t *testing.T) {
	p := newProvider(t)
	ec1, key1 := ecJWK(t, elliptic.P256(), "ec-1")
	p.set(ec1)
	src, err := New(Options{Issuer: p.issuerURL()})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := auth.NewTrustWith(waittest.Context(t), auth.TrustOptions{Remotes: []auth.Remote{{Source: src, Refresh: time.Hour}},
		Now: func() time.Time { return testNow }, UnknownKeyRefresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Refresh(ctx) }()
	t.Cleanup(func() { cancel(); waittest.Receive(t, done, "Refresh to return") })
	iss := p.issuerURL()
	v := verifier(t, tr, iss)
	if _, err := v.Verify(sign(t, iss, key1, "ec-1")); err != nil {
		t.Fatal(err)
	}
	keys := tr.Keys()
	if len(keys) != 1 || keys[0].Kind != auth.KindOIDC || keys[0].KeyID != "ec-1" || keys[0].Status(testNow, 0) != "valid" {
		t.Fatalf("keys %+v", keys)
	}

	ec2, key2 := ecJWK(t, elliptic.P256(), "ec-2")
	p.set(ec2) // ec-1 retired
	tok := sign(t, iss, key2, "ec-2")
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("a key of the provider verified before the set was fetched again")
	}
	waittest.For(t, "a token of the new key to verify", func() bool { _, err := v.Verify(tok); return err == nil })
	if _, err := v.Verify(sign(t, iss, key1, "ec-1")); err == nil {
		t.Error("a retired key still verifies")
	}

	// The provider fails: the last good set stays.
	p.mu.Lock()
	p.status = http.StatusServiceUnavailable
	p.mu.Unlock()
	_, _ = v.Verify(sign(t, iss, key1, "unknown")) // prompts a fetch
	waittest.For(t, "the failed fetch", func() bool { return tr.Sources()[0].Failures > 0 })
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("the last good key after a failure: %v", err)
	}
	if st := tr.Sources()[0]; !strings.Contains(st.LastError, "503") || st.Keys != 1 {
		t.Errorf("status %+v", st)
	}
}

func TestJWKSURLSource(t *testing.T) {
	p := newProvider(t)
	ec1, key1 := ecJWK(t, elliptic.P256(), "ec-1")
	p.set(ec1)
	src, err := New(Options{URL: p.srv.URL + "/keys"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := src.Fetch(waittest.Context(t))
	if err != nil || len(keys) != 1 || src.Kind() != auth.KindJWKS || !keys[0].PublicKey.Equal(&key1.PublicKey) {
		t.Fatalf("%+v %v", keys, err)
	}
	if p.count("/tenant/v2.0/.well-known/openid-configuration") != 0 {
		t.Error("a key set URL made a discovery request")
	}
}

func TestFetchRefusals(t *testing.T) {
	p := newProvider(t)
	ec1, _ := ecJWK(t, elliptic.P256(), "ec-1")
	fetch := func(o Options) error {
		src, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Fetch(waittest.Context(t))
		return err
	}
	p.set(ec1)
	p.mu.Lock()
	p.issuer = "https://evil.example/"
	p.mu.Unlock()
	if err := fetch(Options{Issuer: p.issuerURL()}); err == nil || !strings.Contains(err.Error(), `is for issuer "https://evil.example/"`) {
		t.Errorf("issuer mismatch: %v", err)
	}
	p.mu.Lock()
	p.issuer = ""
	p.mu.Unlock()
	offCurve := map[string]any{"kty": "EC", "crv": "P-256", "kid": "bad", "x": b64(make([]byte, 32)), "y": b64(make([]byte, 32))}
	p.set(offCurve)
	if err := fetch(Options{Issuer: p.issuerURL()}); err == nil || !strings.Contains(err.Error(), `key "bad"`) {
		t.Errorf("a point off the curve: %v", err)
	}
	big := make([]map[string]any, 0, 10000)
	for range 8000 {
		big = append(big, ec1)
	}
	p.set(big...)
	if err := fetch(Options{URL: p.srv.URL + "/keys"}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("an oversized set: %v", err)
	}
	if err := fetch(Options{URL: p.srv.URL + "/nope"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a missing set: %v", err)
	}
}

func TestNewChecks(t *testing.T) {
	for _, o := range []Options{
		{},
		{Issuer: "https://a.example/", URL: "https://a.example/keys"},
		{URL: "http://idp.example/keys"},
		{URL: "ftp://idp.example/keys"},
		{Issuer: "https://user:pw@idp.example/"},
		{URL: "/keys"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, u := range []string{"https://idp.example/keys", "http://127.0.0.1:8080/keys", "http://localhost/keys", "http://[::1]:1/k"} {
		if err := CheckURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestRedirectToPlainHTTPRefused: a key set URL that redirects to plain
// http on another host is refused before any connection to it.
func TestRedirectToPlainHTTPRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://idp.example/keys", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	src, err := New(Options{URL: srv.URL + "/keys"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(waittest.Context(t)); err == nil || !strings.Contains(err.Error(), "https only") {
		t.Fatalf("redirect to http: %v", err)
	}
}

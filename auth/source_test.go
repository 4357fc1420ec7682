package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keydelivery/keydelivery/internal/waittest"
)

// fakeSource is a Source whose keys and error a test sets.
type fakeSource struct {
	kind, name string

	mu      sync.Mutex
	keys    []Key
	err     error
	fetches int
}

func (f *fakeSource) Kind() string { return f.kind }
func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Fetch(context.Context) ([]Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	if f.err != nil {
		return nil, f.err
	}
	return append([]Key(nil), f.keys...), nil
}

func (f *fakeSource) set(keys []Key, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys, f.err = keys, err
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

const (
	kvName     = "content-protection-token-certificate"
	kvVersion1 = "482cc7716df14955862ea73e773156f1"
	kvVersion2 = "9d2e1a1e868647f49dfcd73b496f5ab9"
	kvVersion3 = "0123456789abcdef0123456789abcdef"
)

func kvKeyID(host, version string) string {
	id := "https://" + host + "/keys/" + kvName
	if version != "" {
		id += "/" + version
	}
	return id
}

// newBareKey makes a P-256 key and a Signer without a certificate.
func newBareKey(tb testing.TB) (*ecdsa.PrivateKey, *Signer) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k, NewSigner(k, nil)
}

func newRemoteTrust(tb testing.TB, o TrustOptions) *Trust {
	tb.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	tr, err := NewTrustWith(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

func verifierFor(tb testing.TB, tr *Trust) *Verifier {
	tb.Helper()
	v, err := NewVerifier(tr, testOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func reasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// TestTrustKeyVaultKeyIdentifier: a kid holding a Key Vault key identifier
// selects the certificate version Key Vault reported it for.
func TestTrustKeyVaultKeyIdentifier(t *testing.T) {
	older := newTestCert(t, "older", testNow.Add(-24*time.Hour), 30*24*time.Hour)
	current := newTestCert(t, "current", testNow, 30*24*time.Hour)
	src := &fakeSource{kind: KindKeyVault, name: "https://mykeys.vault.azure.net/certificates/" + kvName}
	src.set([]Key{
		{Certificate: older.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion1), Location: "v1"},
		{Certificate: current.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion2), Location: "v2", Current: true},
	}, nil)
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src}}})
	v := verifierFor(t, tr)

	tests := []struct {
		name   string
		signer testCert
		kid    string
		want   Reason // "" verifies
	}{
		{"full identifier, older version", older, kvKeyID("mykeys.vault.azure.net", kvVersion1), ""},
		{"full identifier, current version", current, kvKeyID("mykeys.vault.azure.net", kvVersion2), ""},
		{"another host for the same vault object", current, kvKeyID("mykeys.privatelink.vaultcore.azure.net", kvVersion2), ""},
		{"upper-case version", older, kvKeyID("mykeys.vault.azure.net", strings.ToUpper(kvVersion1)), ""},
		{"no version: the current one", current, kvKeyID("mykeys.vault.azure.net", ""), ""},
		{"no version, signed by the older one", older, kvKeyID("mykeys.vault.azure.net", ""), ReasonBadSignature},
		{"version signed by another key", older, kvKeyID("mykeys.vault.azure.net", kvVersion2), ReasonBadSignature},
		{"unknown version", current, kvKeyID("mykeys.vault.azure.net", kvVersion3), ReasonUnknownSigningKey},
		{"another certificate name", current, "https://mykeys.vault.azure.net/keys/other/" + kvVersion2, ReasonUnknownSigningKey},
		{"a secret identifier, not a key", current, "https://mykeys.vault.azure.net/secrets/" + kvName + "/" + kvVersion2, ReasonUnknownSigningKey},
		{"plain http", current, "http://mykeys.vault.azure.net/keys/" + kvName + "/" + kvVersion2, ReasonUnknownSigningKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := tt.signer.signer().SignWithHeader(validClaims(), map[string]any{"x5t": nil, "kid": tt.kid})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(tok)
			if got := reasonOf(err); got != tt.want || (tt.want == "" && err != nil) {
				t.Fatalf("Verify = %v, want reason %q", err, tt.want)
			}
			if tt.want == "" && c.SigningKey != tt.signer.sha256Hex() {
				t.Errorf("SigningKey %s, want %s", c.SigningKey, tt.signer.sha256Hex())
			}
		})
	}
	// The x5t header still works for Key Vault certificates, and so does a
	// header naming nothing.
	for _, h := range []map[string]any{nil, {"x5t": nil}} {
		tok, _ := current.signer().SignWithHeader(validClaims(), h)
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("header %v: %v", h, err)
		}
	}
}

// TestTrustKeyVaultJSONFileKeyIdentifier: a Key Vault JSON file carries its
// kid, so the version selects it; without the Key Vault source, a kid with
// no version selects nothing.
func TestTrustKeyVaultJSONFileKeyIdentifier(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	dir := t.TempDir()
	body := `{"id":"https://mykeys.vault.azure.net/certificates/` + kvName + `/` + kvVersion1 + `",` +
		`"kid":"` + kvKeyID("mykeys.vault.azure.net", kvVersion1) + `",` +
		`"cer":"` + base64.StdEncoding.EncodeToString(a.cert.Raw) + `","attributes":{"enabled":true}}`
	writeFile(t, dir, "kv.json", []byte(body))
	tr, err := NewTrust([]string{dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Certificates(); len(got) != 1 || got[0].KeyID != kvKeyID("mykeys.vault.azure.net", kvVersion1) || got[0].Kind != KindFile {
		t.Fatalf("certificates %+v", got)
	}
	v := verifierFor(t, tr)
	for kid, want := range map[string]Reason{
		kvKeyID("mykeys.vault.azure.net", kvVersion1): "",
		kvKeyID("other.vault.azure.net", kvVersion1):  "",
		kvKeyID("mykeys.vault.azure.net", ""):         ReasonUnknownSigningKey,
	} {
		tok, _ := a.signer().SignWithHeader(validClaims(), map[string]any{"x5t": nil, "kid": kid})
		if _, err := v.Verify(tok); reasonOf(err) != want || (want == "" && err != nil) {
			t.Errorf("kid %s: %v, want %q", kid, err, want)
		}
	}
}

// TestTrustPendingKeyVaultBodySkipped: the body Key Vault answers on create
// (202, seed 000) left in the directory is skipped with a warning.
func TestTrustPendingKeyVaultBodySkipped(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	dir := t.TempDir()
	writeFile(t, dir, "a.pem", a.certPEM)
	writeFile(t, dir, "pending.json", []byte(seedPendingBody))
	log, logs := newLogger()
	tr, err := NewTrust([]string{dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tr.Certificates()); n != 1 {
		t.Fatalf("%d certificates", n)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "pending.json") || !strings.Contains(out, `\"inProgress\"`) {
		t.Errorf("no warning naming the skipped file:\n%s", out)
	}
	// Alone, it leaves nothing to trust: that is an error, as before.
	only := t.TempDir()
	writeFile(t, only, "pending.json", []byte(seedPendingBody))
	if _, err := NewTrust([]string{only}, nil); err == nil || !strings.Contains(err.Error(), "no certificate found") {
		t.Fatalf("only a pending body: %v", err)
	}
}

// seedPendingBody is seed 000's 202 Accepted body, as it stands.
const seedPendingBody = `{
  "id": "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/pending",
  "issuer": {
    "name": "Self"
  },
  "csr": "MIIBNjCB3AIBADAvMS0wKwYDVQQDEyRjb250ZW50LXByb3RlY3Rpb24tdG9rZW4tY2VydGlmaWNhdGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT4ZrYohm4JtQ/ECZRQtI5XQieFKembGBFasK5wWqJkwWcgXjLOc/UWWa0sP+kSjPhEohYbPExwCMrAxMofnBv1oEswSQYJKoZIhvcNAQkOMTwwOjAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCMAkGA1UdEwQCMAAwCgYIKoZIzj0EAwIDSQAwRgIhAM2VhBTFh6PKYmhNNmV1RH7DsfX2M1BNTXZ84ievp6WWAiEA//uY8ey5OlYyUSNIrTp8O70vL8eSqUiiPn4kYBYFHhc=",
  "cancellation_requested": false,
  "status": "inProgress",
  "status_details": "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later.",
  "request_id": "9d2e1a1e868647f49dfcd73b496f5ab9"
}`

// TestTrustBareKeys: bare keys from a key set are chosen by kid only.
func TestTrustBareKeys(t *testing.T) {
	key, signer := newBareKey(t)
	_, stranger := newBareKey(t)
	src := &fakeSource{kind: KindOIDC, name: "https://login.example/tenant/v2.0"}
	// The key is bound to the issuer of the tokens below (an OpenID
	// Connect issuer's keys verify only its tokens: TestIssuerBinding).
	src.set([]Key{{PublicKey: &key.PublicKey, KeyID: "key-1", Location: "https://login.example/keys", Issuer: testIssuer}}, nil)
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src}}})
	if n := len(tr.Certificates()); n != 0 {
		t.Fatalf("a bare key listed among certificates (%d)", n)
	}
	keys := tr.Keys()
	if len(keys) != 1 || keys[0].Kind != KindOIDC || keys[0].KeyID != "key-1" || keys[0].Source != "https://login.example/keys" ||
		keys[0].Status(testNow, 0) != "valid" {
		t.Fatalf("keys %+v", keys)
	}
	v := verifierFor(t, tr)
	cv, err := NewCachedVerifier(v, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := signer.SignWithHeader(validClaims(), map[string]any{"kid": "key-1"})
	for range 2 { // the second from the cache: a bare key has no NotAfter
		c, err := cv.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		sum := jwkThumbprint(&key.PublicKey)
		if c.SigningKey != hex.EncodeToString(sum[:]) {
			t.Errorf("SigningKey %s", c.SigningKey)
		}
	}
	if cv.Len() != 1 {
		t.Errorf("cache holds %d tokens", cv.Len())
	}
	for name, tc := range map[string]struct {
		s    *Signer
		h    map[string]any
		want Reason
	}{
		"no kid":                  {signer, nil, ReasonUnknownSigningKey},
		"unknown kid":             {signer, map[string]any{"kid": "key-2"}, ReasonUnknownSigningKey},
		"signed by another key":   {stranger, map[string]any{"kid": "key-1"}, ReasonBadSignature},
		"kid is the thumbprint":   {signer, map[string]any{"kid": keys[0].JWKThumbprint()}, ReasonUnknownSigningKey},
		"x5t of zeros never hits": {signer, map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(make([]byte, 20))}, ReasonUnknownSigningKey},
	} {
		tok, _ := tc.s.SignWithHeader(validClaims(), tc.h)
		if _, err := v.Verify(tok); reasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
}

// TestJWKThumbprint checks RFC 7638's example thumbprint computation on a
// P-256 key: the canonical members in order, no whitespace.
func TestJWKThumbprint(t *testing.T) {
	key, _ := newBareKey(t)
	raw, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	want := sha256Sum(`{"crv":"P-256","kty":"EC","x":"` + enc(raw[1:33]) + `","y":"` + enc(raw[33:]) + `"}`)
	if got := jwkThumbprint(&key.PublicKey); got != want {
		t.Fatalf("thumbprint %x, want %x", got, want)
	}
}

// TestTrustSourceFailureKeepsLastGoodSet: a failing source keeps its keys,
// and says so in Sources, Detail, metrics and the log; readiness passes
// while a valid key is trusted.
func TestTrustSourceFailureKeepsLastGoodSet(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	src := &fakeSource{kind: KindKeyVault, name: "https://mykeys.vault.azure.net/certificates/" + kvName}
	src.set([]Key{{Certificate: a.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion1)}}, nil)
	log, logs := newLogger()
	reg := prometheus.NewPedanticRegistry()
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src, Refresh: time.Hour}}, Log: log, Registerer: reg})
	setBefore := tr.set.Load()
	if err := tr.Ready(); err != nil || tr.Detail() != "" {
		t.Fatalf("ready %v, detail %q", err, tr.Detail())
	}
	src.set(nil, errors.New("GET https://mykeys.vault.azure.net/certificates: 503 Service Unavailable\nsecond line"))
	r := tr.remotes[0]
	for range 2 {
		if tr.fetchRemote(context.Background(), r) {
			t.Fatal("a failing fetch reported success")
		}
	}
	if len(tr.Certificates()) != 1 || tr.set.Load() != setBefore {
		t.Fatal("a failed fetch changed the set")
	}
	st := tr.Sources()
	if len(st) != 1 || st[0].Healthy() || st[0].Failures != 2 || st[0].Keys != 1 || !strings.Contains(st[0].LastError, "503") ||
		strings.Contains(st[0].LastError, "second line") || st[0].Refresh != time.Hour {
		t.Fatalf("status %+v", st)
	}
	if err := tr.Ready(); err != nil {
		t.Fatalf("a failing source with a valid last good set is not ready: %v", err)
	}
	if d := tr.Detail(); !strings.Contains(d, "keeping the last good set (1 keys") || !strings.Contains(d, "2 failed attempts") {
		t.Errorf("detail %q", d)
	}
	if !strings.Contains(logs.String(), "keeping its last good keys") {
		t.Errorf("log:\n%s", logs)
	}
	if got := testutil.ToFloat64(tr.metrics.fetches.WithLabelValues(src.name, "error")); got != 2 {
		t.Errorf("error fetches %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "keydelivery_token_trust_keys", "keydelivery_token_trust_valid_keys",
		"keydelivery_token_trust_last_success_timestamp_seconds"); err != nil || n != 3 {
		t.Errorf("gathered %d series: %v", n, err)
	}

	// Recovery with the same keys keeps the set (and the token cache).
	src.set([]Key{{Certificate: a.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion1)}}, nil)
	if !tr.fetchRemote(context.Background(), r) || tr.set.Load() != setBefore || tr.Detail() != "" {
		t.Fatal("recovery with the same keys replaced the set, or still reports a failure")
	}
}

// TestTrustReadyNoValidKey: only expired keys, or none, fail readiness with
// no_valid_token_certificate.
func TestTrustReadyNoValidKey(t *testing.T) {
	expired := newTestCert(t, "expired", testNow.Add(-48*time.Hour), 24*time.Hour)
	dir := t.TempDir()
	writeFile(t, dir, "expired.pem", expired.certPEM)
	log, logs := newLogger()
	tr, err := NewTrustWith(context.Background(), TrustOptions{Paths: []string{dir}, Log: log, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Ready()
	if err == nil || !strings.HasPrefix(err.Error(), NoValidTokenCertificate+": 1 trusted keys, none valid") {
		t.Fatalf("Ready = %v", err)
	}
	if !strings.Contains(logs.String(), "reason="+NoValidTokenCertificate) {
		t.Errorf("no warning:\n%s", logs)
	}

	// A remote source that never answered: nothing trusted, and why.
	src := &fakeSource{kind: KindJWKS, name: "https://idp.example/jwks", err: errors.New("connection refused")}
	tr = newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src}}})
	err = tr.Ready()
	if err == nil || !strings.HasPrefix(err.Error(), NoValidTokenCertificate+": no key is trusted; jwks https://idp.example/jwks: never loaded") {
		t.Fatalf("Ready = %v", err)
	}
}

// TestTrustUnknownKeyPromptsRefresh: a token naming a key the set lacks
// makes the remote source fetch again at once, rate-limited, and a later
// token with that key verifies without any operator action.
func TestTrustUnknownKeyPromptsRefresh(t *testing.T) {
	v1 := newTestCert(t, "v1", testNow, 48*time.Hour)
	v2 := newTestCert(t, "v2", testNow, 72*time.Hour)
	src := &fakeSource{kind: KindKeyVault, name: "https://mykeys.vault.azure.net/certificates/" + kvName}
	src.set([]Key{{Certificate: v1.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion1), Current: true}}, nil)
	clock := testNow
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src, Refresh: 24 * time.Hour}}, Now: now, UnknownKeyRefresh: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Refresh(ctx) }()
	t.Cleanup(func() { cancel(); waittest.Receive(t, done, "Refresh to return") })
	v := verifierFor(t, tr)

	// Key Vault renews: the new version is there, the server does not know it yet.
	src.set([]Key{
		{Certificate: v1.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion1)},
		{Certificate: v2.cert, KeyID: kvKeyID("mykeys.vault.azure.net", kvVersion2), Current: true},
	}, nil)
	tok, _ := v2.signer().Sign(validClaims()) // x5t of the renewed version
	if _, err := v.Verify(tok); reasonOf(err) != ReasonUnknownSigningKey {
		t.Fatalf("first token of the renewed version: %v", err)
	}
	waittest.For(t, "the renewed version to be trusted", func() bool { _, err := v.Verify(tok); return err == nil })
	if n := src.count(); n != 2 {
		t.Fatalf("%d fetches, want 2 (start, unknown key)", n)
	}
	// Within the rate limit, unknown keys prompt nothing more.
	stranger := newTestCert(t, "stranger", testNow, time.Hour)
	bad, _ := stranger.signer().Sign(validClaims())
	for range 5 {
		if _, err := v.Verify(bad); reasonOf(err) != ReasonUnknownSigningKey {
			t.Fatal(err)
		}
	}
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := v.Verify(bad); reasonOf(err) != ReasonUnknownSigningKey {
		t.Fatal(err)
	}
	waittest.For(t, "the rate-limited fetch", func() bool { return src.count() == 3 })
}

func TestNextDelay(t *testing.T) {
	within := func(d, want time.Duration) bool { return d >= want-want/10 && d <= want+want/10 }
	for failures, want := range map[int]time.Duration{0: 10 * time.Minute, 1: 5 * time.Second, 2: 10 * time.Second, 4: 40 * time.Second, 8: 10 * time.Minute, 30: 10 * time.Minute} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := nextDelay(10*time.Minute, failures)
			if !within(d, want) {
				t.Fatalf("failures %d: delay %v, want %v ±10%%", failures, d, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("failures %d: no jitter", failures)
		}
	}
	if d := nextDelay(time.Second, 3); !within(d, time.Second) {
		t.Errorf("backoff above the interval: %v", d)
	}
}

func TestNewTrustWithChecks(t *testing.T) {
	if _, err := NewTrustWith(context.Background(), TrustOptions{}); err == nil {
		t.Error("no paths and no sources accepted")
	}
	src := &fakeSource{kind: KindJWKS, name: "https://idp.example/jwks"}
	if _, err := NewTrustWith(context.Background(), TrustOptions{Remotes: []Remote{{Source: src}, {Source: src}}}); err == nil {
		t.Error("a source given twice accepted")
	}
	// A source with a bad key fails its fetch, not the Trust.
	rsaLike := &ecdsa.PublicKey{Curve: elliptic.P384()}
	src.set([]Key{{PublicKey: rsaLike, KeyID: "k"}}, nil)
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src}}})
	if st := tr.Sources(); st[0].Healthy() || !strings.Contains(st[0].LastError, "P-256") {
		t.Fatalf("status %+v", st[0])
	}
}

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// TestSeed000KeyIdentifierSelects: seed 000's GET body as a file carries
// its kid, and a token whose kid header is that Key Vault key identifier
// selects the certificate (signed by another key, it fails on the
// signature, not as unknown_signing_key), within the certificate's
// validity.
func TestSeed000KeyIdentifierSelects(t *testing.T) {
	const seedKID = "https://mykeys.vault.azure.net/keys/content-protection-token-certificate/482cc7716df14955862ea73e773156f1"
	tr, err := NewTrust([]string{filepath.Join("testdata", "keyvault-seed.json")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	certs := tr.Certificates()
	if len(certs) != 1 || certs[0].KeyID != seedKID || certs[0].X5T() != "c1CQpIcz5cAvX4Ds9AcEdgjc0To" {
		t.Fatalf("%+v", certs)
	}
	in2023 := time.Date(2023, 3, 1, 12, 0, 0, 0, time.UTC)
	opts := testOptions()
	opts.Now = func() time.Time { return in2023 }
	v, err := NewVerifier(tr, opts)
	if err != nil {
		t.Fatal(err)
	}
	claims := validClaims()
	claims.IssuedAt, claims.ExpiresAt = in2023.Add(-time.Minute), in2023.Add(time.Hour)
	other := newTestCert(t, "not the seed's key", in2023, time.Hour)
	for kid, want := range map[string]Reason{
		seedKID: ReasonBadSignature,
		"https://mykeys.vault.azure.net/keys/content-protection-token-certificate/00000000000000000000000000000000": ReasonUnknownSigningKey,
	} {
		tok, _ := other.signer().SignWithHeader(claims, map[string]any{"x5t": nil, "kid": kid})
		if _, err := v.Verify(tok); reasonOf(err) != want {
			t.Errorf("kid %s: %v, want %s", kid, err, want)
		}
	}
}

// TestTrustReloadPromptsRemoteSources: Reload (SIGHUP) makes every remote
// source fetch again at once, whatever the rate limit.
func TestTrustReloadPromptsRemoteSources(t *testing.T) {
	src := &fakeSource{kind: KindJWKS, name: "https://idp.example/keys"}
	key, _ := newBareKey(t)
	src.set([]Key{{PublicKey: &key.PublicKey, KeyID: "k1"}}, nil)
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src, Refresh: 24 * time.Hour}}, UnknownKeyRefresh: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Refresh(ctx) }()
	t.Cleanup(func() { cancel(); waittest.Receive(t, done, "Refresh to return") })
	for want := 2; want <= 3; want++ {
		if err := tr.Reload(); err != nil {
			t.Fatal(err)
		}
		waittest.For(t, "the fetch Reload prompts", func() bool { return src.count() >= want })
	}
}

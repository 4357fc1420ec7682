package keyvault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// testNow is within the seed certificate's validity (2022-11-08 to
// 2023-11-08).
var testNow = time.Date(2023, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	olderVersion    = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
	disabledVersion = "d15ab1edd15ab1edd15ab1edd15ab1ed"
	expiredVersion  = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0"
	pendingVersion  = "9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e"
	renewedVersion  = "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e"
)

// vaultWithSeed is a fake vault holding, besides the seed's own version
// (as seed 000 answers it), an older version, a disabled one, an expired
// one and a pending one.
func vaultWithSeed(t *testing.T) (*fakeVault, *ecdsa.PrivateKey, []byte) {
	v := newFakeVault(t)
	olderDER, olderKey := newTokenCert(t, 10, time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC))
	disabledDER, _ := newTokenCert(t, 11, time.Date(2022, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC))
	expiredDER, _ := newTokenCert(t, 12, time.Date(2021, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2022, 12, 1, 0, 0, 0, 0, time.UTC))
	v.add(&fakeVersion{id: expiredVersion, enabled: true, nbf: time.Date(2021, 12, 1, 0, 0, 0, 0, time.UTC), exp: time.Date(2022, 12, 1, 0, 0, 0, 0, time.UTC), der: expiredDER})
	v.add(&fakeVersion{id: olderVersion, enabled: true, nbf: time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC), exp: time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), der: olderDER, key: olderKey})
	v.add(&fakeVersion{id: seedVersion, enabled: true, nbf: time.Unix(1667936448, 0), exp: time.Unix(1699473048, 0), der: seedDER(t), body: seedGetBody})
	v.add(&fakeVersion{id: disabledVersion, enabled: false, nbf: time.Date(2022, 12, 1, 0, 0, 0, 0, time.UTC), exp: time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC), der: disabledDER})
	v.add(&fakeVersion{id: pendingVersion, enabled: true, nbf: testNow.Add(-time.Minute)})
	return v, olderKey, olderDER
}

func seedDER(t *testing.T) []byte {
	t.Helper()
	var body struct {
		Cer string `json:"cer"`
	}
	if err := json.Unmarshal([]byte(seedGetBody), &body); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(body.Cer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func newTestSource(t *testing.T, v *fakeVault, cred *staticCredential, log *slog.Logger) *Source {
	t.Helper()
	s, err := newSource(Options{CertificateURL: seedCertURL, HTTPClient: v.client, Log: log, Now: func() time.Time { return testNow }}, cred, false)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifier(t *testing.T, tr *auth.Trust) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(tr, auth.Options{Issuers: []string{"https://tokens.example/"}, Audience: "urn:test", Leeway: auth.DefaultLeeway,
		ParseKeyID: func(string) ([16]byte, error) { return [16]byte{1}, nil }, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sign(t *testing.T, key *ecdsa.PrivateKey, der []byte, header map[string]any) string {
	t.Helper()
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewSigner(key, x).SignWithHeader(auth.TokenClaims{Issuer: "https://tokens.example/", Audience: "urn:test",
		KeyIDs: []string{"k"}, ExpiresAt: testNow.Add(time.Hour)}, header)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func keyIDOf(version string) string {
	return "https://" + seedVault + "/keys/" + seedName + "/" + version
}

// TestKeyVaultSourceSeed: the real SDK, against a fake vault serving the
// JSON of seed 000, trusts every enabled version within its validity
// window, and nothing else.
func TestKeyVaultSourceSeed(t *testing.T) {
	v, _, olderDER := vaultWithSeed(t)
	cred := &staticCredential{}
	var logs syncbuf.Buffer
	src := newTestSource(t, v, cred, slog.New(slog.NewTextHandler(&logs, nil)))
	keys, err := src.Fetch(waittest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.KeyID)
		if !strings.HasSuffix(k.Location, "/certificates/"+seedName+"/"+k.KeyID[strings.LastIndex(k.KeyID, "/")+1:]) {
			t.Errorf("location %s of %s", k.Location, k.KeyID)
		}
	}
	want := []string{keyIDOf(olderVersion), keyIDOf(seedVersion)}
	if !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v (not the expired, disabled or pending versions)", got, want)
	}
	if keys[0].Current || !keys[1].Current {
		t.Errorf("the seed's version (newest valid) should be current: %+v", keys)
	}
	if !bytes.Equal(keys[0].Certificate.Raw, olderDER) {
		t.Error("older version's certificate differs")
	}
	if !strings.Contains(logs.String(), "pending certificate operation") || !strings.Contains(logs.String(), pendingVersion) {
		t.Errorf("the pending version's skip is not logged:\n%s", logs.String())
	}
	// The challenge: the first request went out without a token, was
	// answered 401 with the vault's resource and tenant, and the
	// credential was asked for exactly that.
	reqs := v.log()
	if len(reqs) < 2 || !strings.HasSuffix(reqs[0], "/versions false") || !strings.HasSuffix(reqs[1], "/versions true") {
		t.Fatalf("requests %v", reqs)
	}
	if len(cred.asked) == 0 || !slices.Equal(cred.asked[0].Scopes, []string{"https://vault.azure.net/.default"}) || cred.asked[0].TenantID != seedTenant {
		t.Fatalf("token requests %+v", cred.asked)
	}
	for _, r := range reqs {
		if strings.Contains(r, disabledVersion) || strings.Contains(r, expiredVersion) {
			t.Errorf("fetched a version it does not trust: %s", r)
		}
	}

	// In a Trust, the seed's certificate is trusted under the seed's x5t
	// and kid, with its status.
	tr, err := auth.NewTrustWith(waittest.Context(t), auth.TrustOptions{Remotes: []auth.Remote{{Source: src}}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var seed *auth.Certificate
	for _, c := range tr.Keys() {
		if c.X5T() == seedX5T {
			seed = &c
		}
	}
	if seed == nil || seed.KeyID != keyIDOf(seedVersion) || seed.Kind != auth.KindKeyVault || !seed.Current ||
		seed.Subject != "CN="+seedName || seed.Status(testNow, 0) != "valid" || seed.Source != certID(seedVersion) {
		t.Fatalf("seed certificate %+v", seed)
	}
	// A second fetch reads the versions again but not the certificates it
	// already has.
	before := len(v.log())
	if _, err := src.Fetch(waittest.Context(t)); err != nil {
		t.Fatal(err)
	}
	for _, r := range v.log()[before:] {
		if !strings.Contains(r, "/versions") && !strings.Contains(r, pendingVersion) { // a pending one may be issued by now
			t.Errorf("refetched a known version: %s", r)
		}
	}
}

// TestKeyVaultRenewalFollowed is the "done when": after Key Vault
// renews the certificate, a token signed by the renewed version verifies
// with no operator action, and tokens of the previous version still do.
func TestKeyVaultRenewalFollowed(t *testing.T) {
	v, olderKey, olderDER := vaultWithSeed(t)
	src := newTestSource(t, v, &staticCredential{}, nil)
	tr, err := auth.NewTrustWith(waittest.Context(t), auth.TrustOptions{
		Remotes: []auth.Remote{{Source: src, Refresh: time.Hour}}, Now: func() time.Time { return testNow },
		UnknownKeyRefresh: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Refresh(ctx) }()
	t.Cleanup(func() { cancel(); waittest.Receive(t, done, "Refresh to return") })
	ver := verifier(t, tr)

	old := sign(t, olderKey, olderDER, map[string]any{"x5t": nil, "kid": keyIDOf(olderVersion)})
	if _, err := ver.Verify(old); err != nil {
		t.Fatalf("token of the older version: %v", err)
	}

	// Key Vault renews (the policy's AutoRenew at 80% of the lifetime).
	renewedDER, renewedKey := newTokenCert(t, 20, testNow.Add(-10*time.Minute), testNow.Add(365*24*time.Hour))
	v.add(&fakeVersion{id: renewedVersion, enabled: true, nbf: testNow.Add(-10 * time.Minute), exp: testNow.Add(365 * 24 * time.Hour), der: renewedDER, key: renewedKey})

	// A token as Key Vault's sign operation reports it: kid is the key
	// identifier of the new version. The first one prompts the fetch.
	renewed := sign(t, renewedKey, renewedDER, map[string]any{"x5t": nil, "kid": keyIDOf(renewedVersion)})
	if _, err := ver.Verify(renewed); err == nil {
		t.Fatal("the renewed version verified before the source was read again")
	}
	waittest.For(t, "a token of the renewed version to verify", func() bool { _, err := ver.Verify(renewed); return err == nil })
	for name, tok := range map[string]string{
		"older version by kid":          old,
		"renewed version by x5t":        sign(t, renewedKey, renewedDER, nil),
		"current version without one":   sign(t, renewedKey, renewedDER, map[string]any{"x5t": nil, "kid": keyIDOf("")}),
		"renewed version, no header id": sign(t, renewedKey, renewedDER, map[string]any{"x5t": nil}),
	} {
		if _, err := ver.Verify(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	var current []string
	for _, c := range tr.Keys() {
		if c.Current {
			current = append(current, c.KeyID)
		}
	}
	if !slices.Equal(current, []string{keyIDOf(renewedVersion)}) {
		t.Errorf("current versions %v", current)
	}
}

// TestKeyVaultUnreachableKeepsLastGoodSet: a vault that fails keeps the
// versions already trusted, and says why.
func TestKeyVaultUnreachableKeepsLastGoodSet(t *testing.T) {
	v, olderKey, olderDER := vaultWithSeed(t)
	src := newTestSource(t, v, &staticCredential{}, nil)
	tr, err := auth.NewTrustWith(waittest.Context(t), auth.TrustOptions{
		Remotes: []auth.Remote{{Source: src, Refresh: time.Hour}}, Now: func() time.Time { return testNow }, UnknownKeyRefresh: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.Refresh(ctx) }()
	t.Cleanup(func() { cancel(); waittest.Receive(t, done, "Refresh to return") })
	ver := verifier(t, tr)

	v.setFailure(http.StatusForbidden, "ForbiddenByRbac")
	stranger := sign(t, olderKey, olderDER, map[string]any{"x5t": nil, "kid": keyIDOf(renewedVersion)}) // prompts a fetch
	if _, err := ver.Verify(stranger); err == nil {
		t.Fatal("an unknown version verified")
	}
	waittest.For(t, "the failed fetch", func() bool { return tr.Sources()[0].Failures > 0 })
	st := tr.Sources()[0]
	if st.Keys != 2 || !strings.Contains(st.LastError, "403 ForbiddenByRbac") || !strings.Contains(st.LastError, "Key Vault Certificate User") {
		t.Fatalf("status %+v", st)
	}
	if err := tr.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if d := tr.Detail(); !strings.Contains(d, "keeping the last good set (2 keys") {
		t.Errorf("detail %q", d)
	}
	if _, err := ver.Verify(sign(t, olderKey, olderDER, map[string]any{"x5t": nil, "kid": keyIDOf(olderVersion)})); err != nil {
		t.Fatalf("token of a kept version: %v", err)
	}
}

func TestKeyVaultErrors(t *testing.T) {
	v, _, _ := vaultWithSeed(t)
	for _, tc := range []struct {
		status int
		code   string
		want   string
	}{
		{http.StatusForbidden, "Forbidden", "grant the server's identity read access"},
		{http.StatusNotFound, "CertificateNotFound", "check the vault and certificate names"},
		{http.StatusTooManyRequests, "Throttled", "429 Throttled"},
	} {
		v.setFailure(tc.status, tc.code)
		_, err := newTestSource(t, v, &staticCredential{}, nil).Fetch(waittest.Context(t))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "keyvault: list the versions of "+seedCertURL) ||
			strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), fakeToken) {
			t.Errorf("%d: %v", tc.status, err)
		}
	}
	// Answers that contradict themselves fail the fetch.
	v.setFailure(0, "")
	bad := newFakeVault(t)
	der, _ := newTokenCert(t, 30, testNow.Add(-time.Hour), testNow.Add(time.Hour))
	other, _ := newTokenCert(t, 31, testNow.Add(-time.Hour), testNow.Add(time.Hour))
	bad.add(&fakeVersion{id: olderVersion, enabled: true, nbf: testNow.Add(-time.Hour), exp: testNow.Add(time.Hour), der: der,
		body: `{"id":"` + certID(olderVersion) + `","x5t":"` + x5t(other) + `","cer":"` + b64(der) + `"}`})
	if _, err := newTestSource(t, bad, &staticCredential{}, nil).Fetch(waittest.Context(t)); err == nil || !strings.Contains(err.Error(), "x5t") {
		t.Errorf("mismatched x5t: %v", err)
	}
}

func TestParseCertificateURL(t *testing.T) {
	vault, name, err := ParseCertificateURL(seedCertURL)
	if err != nil || vault != "https://"+seedVault || name != seedName {
		t.Fatalf("%q %q %v", vault, name, err)
	}
	if _, _, err := ParseCertificateURL(seedCertURL + "/"); err != nil {
		t.Errorf("trailing slash: %v", err)
	}
	for _, bad := range []string{
		"http://" + seedVault + "/certificates/" + seedName,
		"https://" + seedVault + "/keys/" + seedName,
		"https://" + seedVault + "/certificates/",
		"https://" + seedVault + "/certificates/" + seedName + "/" + seedVersion,
		"https://" + seedVault + "/certificates/bad_name",
		"https://user:s3cret@" + seedVault + "/certificates/" + seedName,
		"https://" + seedVault + "/certificates/" + seedName + "?api-version=7.3",
		"mykeys",
	} {
		if _, _, err := ParseCertificateURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error quotes the password: %v", err)
		}
	}
	if _, _, err := ParseCertificateURL(seedCertURL + "/" + seedVersion); err == nil || !strings.Contains(err.Error(), "names one version") {
		t.Errorf("version: %v", err)
	}
}

// TestNewUsesTheDefaultCredentialChain: New builds without contacting
// anything (the default credential chain is only asked for a token on the
// first fetch).
func TestNewUsesTheDefaultCredentialChain(t *testing.T) {
	s, err := New(Options{CertificateURL: seedCertURL})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind() != auth.KindKeyVault || s.Name() != seedCertURL {
		t.Fatalf("%s %s", s.Kind(), s.Name())
	}
	if _, err := New(Options{CertificateURL: "https://" + seedVault}); err == nil {
		t.Error("a vault URL without a certificate accepted")
	}
}

package auth

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNow is the injected clock for every test.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testIssuer   = "https://issuer.example/"
	testAudience = "urn:keydelivery:test"
	kid1         = "6a2b3c4d-1111-4222-8333-944455556666"
	kid2         = "00000000-0000-4000-8000-000000000002"
	kid3         = "ABCDEF01-2345-4678-9ABC-DEF012345678" // upper case on purpose
)

// testCert is a generated token-signing certificate and its key.
type testCert struct {
	key     *ecdsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
	c       Certificate
}

// newTestCert makes a certificate with GenerateDevCertificate: valid from
// now-1h to now+validity.
func newTestCert(tb testing.TB, cn string, now time.Time, validity time.Duration) testCert {
	tb.Helper()
	certPEM, keyPEM, err := GenerateDevCertificate(rand.Reader, cn, now, validity)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	x, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := newCertificate(x, "")
	if err != nil {
		tb.Fatal(err)
	}
	return testCert{key: k.(*ecdsa.PrivateKey), cert: x, certPEM: certPEM, keyPEM: keyPEM, c: c}
}

func (tc testCert) signer() *Signer { return NewSigner(tc.key, tc.cert) }

func (tc testCert) sha256Hex() string { return hex.EncodeToString(tc.c.SHA256[:]) }

// parseUUID is a canonical UUID parser standing in for the caller's.
func parseUUID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, errors.New("uuid: bad syntax: " + s) // quotes input on purpose
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return id, errors.New("uuid: bad hex: " + s)
	}
	return id, nil
}

func mustUUID(tb testing.TB, s string) [16]byte {
	tb.Helper()
	id, err := parseUUID(s)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// fixture is a trust directory with two valid certificates (a, b), an
// expired one and one not yet valid.
type fixture struct {
	a, b, expired, future testCert
	dir                   string
	trust                 *Trust
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{
		a:       newTestCert(tb, "token-signer-a", testNow, 30*24*time.Hour),
		b:       newTestCert(tb, "token-signer-b", testNow, 60*24*time.Hour),
		expired: newTestCert(tb, "token-signer-expired", testNow.Add(-48*time.Hour), 24*time.Hour),
		future:  newTestCert(tb, "token-signer-future", testNow.Add(48*time.Hour), 24*time.Hour),
		dir:     tb.TempDir(),
	}
	writeFile(tb, f.dir, "a.pem", f.a.certPEM)
	writeFile(tb, f.dir, "b.pem", f.b.certPEM)
	writeFile(tb, f.dir, "expired.pem", f.expired.certPEM)
	writeFile(tb, f.dir, "future.pem", f.future.certPEM)
	var err error
	if f.trust, err = NewTrust([]string{f.dir}, nil); err != nil {
		tb.Fatal(err)
	}
	return f
}

func testOptions() Options {
	return Options{
		Issuers:    []string{"https://other-issuer.example/", testIssuer},
		Audience:   testAudience,
		Leeway:     DefaultLeeway,
		ParseKeyID: parseUUID,
		Now:        func() time.Time { return testNow },
	}
}

func (f *fixture) verifier(tb testing.TB, mod func(*Options)) *Verifier {
	tb.Helper()
	opts := testOptions()
	if mod != nil {
		mod(&opts)
	}
	v, err := NewVerifier(f.trust, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// validClaims is a token that the default verifier accepts.
func validClaims() TokenClaims {
	return TokenClaims{
		Issuer:    testIssuer,
		Audience:  testAudience,
		Subject:   "player-1",
		KeyIDs:    []string{kid1},
		IssuedAt:  testNow.Add(-time.Minute),
		ExpiresAt: testNow.Add(10 * time.Minute),
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// assertNoTokenInError checks the security invariant that no part of the
// token appears in the error text.
func assertNoTokenInError(tb testing.TB, raw string, err error) {
	tb.Helper()
	msg := err.Error()
	for _, seg := range strings.Split(raw, ".") {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			tb.Errorf("error %q contains a token segment", msg)
		}
	}
}

// Package authtest gives tests real token material: a fresh self-signed
// P-256 token-signing certificate in the test's temporary directory, a
// Verifier that trusts it, and a Signer that signs with its key. It is
// imported only by tests.
package authtest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
)

// Material is a trusted certificate, its files and what uses them.
type Material struct {
	CertFile, KeyFile string
	Verifier          *auth.Verifier
	Signer            *auth.Signer
}

// New makes the material. o is the verifier's options: ParseKeyID defaults
// to keystore.ParseKeyID, Issuers to ["iss"], Audience to "aud".
func New(tb testing.TB, o auth.Options) Material {
	tb.Helper()
	dir := tb.TempDir()
	certPEM, keyPEM, err := auth.GenerateDevCertificate(rand.Reader, "authtest", time.Now(), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	m := Material{CertFile: filepath.Join(dir, "token.crt"), KeyFile: filepath.Join(dir, "token.key")}
	if err := os.WriteFile(m.CertFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(m.KeyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	trust, err := auth.NewTrust([]string{m.CertFile}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if o.ParseKeyID == nil {
		o.ParseKeyID = func(s string) ([16]byte, error) { return keystore.ParseKeyID(s) }
	}
	if len(o.Issuers) == 0 {
		o.Issuers = []string{"iss"}
	}
	if o.Audience == "" {
		o.Audience = "aud"
	}
	if m.Verifier, err = auth.NewVerifier(trust, o); err != nil {
		tb.Fatal(err)
	}
	if m.Signer, err = auth.LoadSigner(m.KeyFile, m.CertFile); err != nil {
		tb.Fatal(err)
	}
	return m
}

// Token signs a token from issuer "iss" to audience "aud" granting kids,
// valid for an hour.
func (m Material) Token(tb testing.TB, kids ...string) string {
	tb.Helper()
	tok, err := m.Signer.Sign(auth.TokenClaims{Issuer: "iss", Audience: "aud", KeyIDs: kids, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

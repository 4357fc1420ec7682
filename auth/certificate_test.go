package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyVaultJSON is a certificate bundle in the shape of Key Vault's GET
// certificate response (see testdata/keyvault-seed.json).
func keyVaultJSON(tb testing.TB, der []byte, x5t string, enabled bool) []byte {
	tb.Helper()
	if x5t == "" {
		sum := sha1.Sum(der)
		x5t = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return []byte(mustJSON(tb, map[string]any{
		"id":  "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/0123",
		"kid": "https://mykeys.vault.azure.net/keys/content-protection-token-certificate/0123",
		"x5t": x5t,
		"cer": base64.StdEncoding.EncodeToString(der),
		"attributes": map[string]any{
			"enabled": enabled,
			"nbf":     1667936448,
			"exp":     1699473048,
		},
		"policy": map[string]any{"key_props": map[string]any{"kty": "EC", "crv": "P-256"}},
	}))
}

func rsaCertPEM(tb testing.TB) []byte {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "rsa-signer"},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestLoadCertificatesKeyVaultSeed(t *testing.T) {
	certs, err := LoadCertificates([]string{filepath.Join("testdata", "keyvault-seed.json")})
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 {
		t.Fatalf("got %d certificates, want 1", len(certs))
	}
	c := certs[0]
	if got := c.X5T(); got != "c1CQpIcz5cAvX4Ds9AcEdgjc0To" {
		t.Errorf("X5T = %s", got)
	}
	if c.Subject != "CN=content-protection-token-certificate" {
		t.Errorf("Subject = %q", c.Subject)
	}
	// Key Vault's attributes.nbf and exp mirror the certificate's window.
	if c.NotBefore.Unix() != 1667936448 || c.NotAfter.Unix() != 1699473048 {
		t.Errorf("window %v..%v", c.NotBefore, c.NotAfter)
	}
	if got := c.Status(testNow, DefaultLeeway); got != "expired" {
		t.Errorf("Status = %s, want expired", got)
	}
	if got := c.Status(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), 0); got != "valid" {
		t.Errorf("Status in 2023 = %s, want valid", got)
	}
	if got := c.Status(time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), 0); got != "not_yet_valid" {
		t.Errorf("Status in 2022 = %s, want not_yet_valid", got)
	}
	if c.PublicKey == nil || c.PublicKey.Curve.Params().Name != "P-256" || c.Cert == nil {
		t.Errorf("key: %+v", c.PublicKey)
	}
	if !strings.HasSuffix(c.Source, "keyvault-seed.json") {
		t.Errorf("Source = %q", c.Source)
	}
	if c.X5TS256() != base64.RawURLEncoding.EncodeToString(c.SHA256[:]) {
		t.Error("X5TS256")
	}
}

func TestLoadCertificates(t *testing.T) {
	a := newTestCert(t, "a", testNow, 48*time.Hour)
	b := newTestCert(t, "b", testNow, 24*time.Hour) // expires first
	c := newTestCert(t, "c", testNow, 72*time.Hour)
	d := newTestCert(t, "d", testNow, 96*time.Hour)

	tests := []struct {
		name    string
		files   map[string][]byte // relative to a fresh directory
		paths   []string          // relative; nil means the directory itself
		want    []testCert        // in NotAfter order
		wantErr string            // substring of the error; "" means success
	}{
		{
			name:  "PEM with two certificates and a key",
			files: map[string][]byte{"bundle.pem": append(append(append([]byte{}, a.certPEM...), a.keyPEM...), b.certPEM...)},
			paths: []string{"bundle.pem"},
			want:  []testCert{b, a},
		},
		{
			name:  "DER file",
			files: map[string][]byte{"a.cer": a.cert.Raw},
			paths: []string{"a.cer"},
			want:  []testCert{a},
		},
		{
			name:  "Key Vault JSON",
			files: map[string][]byte{"kv.json": keyVaultJSON(t, a.cert.Raw, "", true)},
			paths: []string{"kv.json"},
			want:  []testCert{a},
		},
		{
			name:  "Key Vault JSON without x5t",
			files: map[string][]byte{"kv.json": []byte(`{"cer":"` + base64.StdEncoding.EncodeToString(a.cert.Raw) + `"}`)},
			paths: []string{"kv.json"},
			want:  []testCert{a},
		},
		{
			name:    "Key Vault JSON with a mismatched x5t",
			files:   map[string][]byte{"kv.json": keyVaultJSON(t, a.cert.Raw, b.c.X5T(), true)},
			paths:   []string{"kv.json"},
			wantErr: "kv.json: key vault json: x5t does not match",
		},
		{
			name:    "Key Vault JSON without cer",
			files:   map[string][]byte{"kv.json": []byte(`{"x5t":"c1CQpIcz5cAvX4Ds9AcEdgjc0To"}`)},
			paths:   []string{"kv.json"},
			wantErr: "kv.json",
		},
		{
			name: "disabled Key Vault certificate skipped",
			files: map[string][]byte{
				"kv-disabled.json": keyVaultJSON(t, a.cert.Raw, "", false),
				"b.pem":            b.certPEM,
			},
			want: []testCert{b},
		},
		{
			name:    "only a disabled Key Vault certificate",
			files:   map[string][]byte{"kv.json": keyVaultJSON(t, a.cert.Raw, "", false)},
			wantErr: "no certificate found",
		},
		{
			name:    "RSA certificate refused",
			files:   map[string][]byte{"a.pem": a.certPEM, "rsa.pem": rsaCertPEM(t)},
			wantErr: "rsa.pem",
		},
		{
			name:    "garbage file",
			files:   map[string][]byte{"a.pem": a.certPEM, "junk.crt": []byte("hello")},
			wantErr: "junk.crt",
		},
		{
			name:    "corrupt certificate in PEM",
			files:   map[string][]byte{"bad.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})},
			wantErr: "bad.pem",
		},
		{
			name: "directory with mixed files",
			files: map[string][]byte{
				"a.pem":         a.certPEM,
				"b.der":         b.cert.Raw,
				"c.json":        keyVaultJSON(t, c.cert.Raw, "", true),
				"tls.key":       a.keyPEM, // PEM without certificates: ignored
				".hidden":       []byte("not a certificate"),
				"sub/d.pem":     d.certPEM, // not recursive
				"..data/junk":   []byte("junk"),
				"a-again.pem":   a.certPEM, // duplicate
				"bundle-ab.pem": append(append([]byte{}, a.certPEM...), b.certPEM...),
			},
			want: []testCert{b, a, c},
		},
		{
			name:    "empty directory",
			files:   map[string][]byte{},
			wantErr: "no certificate found",
		},
		{
			name:    "missing path",
			files:   map[string][]byte{},
			paths:   []string{"nope.pem"},
			wantErr: "nope.pem",
		},
		{
			name:  "file and directory paths together",
			files: map[string][]byte{"x/a.pem": a.certPEM, "d.pem": d.certPEM},
			paths: []string{"x", "d.pem"},
			want:  []testCert{a, d},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Dir(p), filepath.Base(p), data)
			}
			paths := []string{dir}
			if tt.paths != nil {
				paths = nil
				for _, p := range tt.paths {
					paths = append(paths, filepath.Join(dir, p))
				}
			}
			got, err := LoadCertificates(paths)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("LoadCertificates succeeded with %d certificates, want error", len(got))
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "auth: ") {
					t.Fatalf("error %q, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d certificates, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].SHA256 != tt.want[i].c.SHA256 {
					t.Errorf("certificate %d is %s, want %s", i, got[i].Subject, tt.want[i].c.Subject)
				}
				if got[i].Source == "" || !strings.HasPrefix(got[i].Source, dir) {
					t.Errorf("Source = %q", got[i].Source)
				}
			}
		})
	}
}

func TestLoadCertificatesFollowsSymlinkedFile(t *testing.T) {
	a := newTestCert(t, "a", testNow, time.Hour)
	elsewhere := writeFile(t, t.TempDir(), "real.pem", a.certPEM)
	dir := t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, "tls.crt")); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	got, err := LoadCertificates([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].SHA256 != a.c.SHA256 {
		t.Fatalf("got %+v", got)
	}
}

func TestGenerateDevCertificate(t *testing.T) {
	certPEM, keyPEM, err := GenerateDevCertificate(rand.Reader, "dev-signer", testNow, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatal("no CERTIFICATE block")
	}
	x, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if x.Subject.CommonName != "dev-signer" || x.IsCA || !x.BasicConstraintsValid || x.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("certificate: CN=%s IsCA=%v BC=%v KU=%v", x.Subject.CommonName, x.IsCA, x.BasicConstraintsValid, x.KeyUsage)
	}
	if !x.NotBefore.Equal(testNow.Add(-time.Hour)) || !x.NotAfter.Equal(testNow.Add(24*time.Hour)) {
		t.Errorf("window %v..%v", x.NotBefore, x.NotAfter)
	}
	if x.SerialNumber.Sign() <= 0 {
		t.Errorf("serial %v", x.SerialNumber)
	}
	if err := x.CheckSignature(x.SignatureAlgorithm, x.RawTBSCertificate, x.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatal("no PRIVATE KEY block")
	}
	if _, err := newCertificate(x, ""); err != nil {
		t.Error(err)
	}
	for name, f := range map[string]func() error{
		"empty cn":      func() error { _, _, err := GenerateDevCertificate(rand.Reader, "", testNow, time.Hour); return err },
		"zero validity": func() error { _, _, err := GenerateDevCertificate(rand.Reader, "x", testNow, 0); return err },
		"nil rand":      func() error { _, _, err := GenerateDevCertificate(nil, "x", testNow, time.Hour); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
	_, _, err = GenerateDevCertificate(strings.NewReader(""), "x", testNow, time.Hour)
	if err == nil {
		t.Error("exhausted random source: no error")
	}
}

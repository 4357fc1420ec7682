package tlsserve

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(rand.Reader, name, t0, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// rsaLeaf is an RSA server certificate signed by ca, PEM.
func rsaLeaf(t *testing.T, ca *CA, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func TestReadKeyPair(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	leaf, err := ca.Issue(rand.Reader, []string{"keys.test.example"}, t0, 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ca.Issue(rand.Reader, []string{"other.test.example"}, t0, 24*time.Hour, false)
	rsaCert, rsaKey := rsaLeaf(t, ca, "rsa.test.example")
	leafOnly, _, _ := strings.Cut(string(leaf.CertPEM), "-----END CERTIFICATE-----\n")
	leafOnly += "-----END CERTIFICATE-----\n"
	reversed := append(append([]byte{}, ca.CertPEM...), []byte(leafOnly)...)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	good := write(t, dir, "good.crt", leaf.CertPEM)
	goodKey := write(t, dir, "good.key", leaf.KeyPEM)
	for _, tc := range []struct {
		name      string
		cert, key string
		at        time.Time
		want      string // in the error; "" for success
	}{
		{"ECDSA chain", good, goodKey, t0, ""},
		{"leaf without its chain", write(t, dir, "leaf.crt", []byte(leafOnly)), goodKey, t0, ""},
		{"RSA", write(t, dir, "rsa.crt", rsaCert), write(t, dir, "rsa.key", rsaKey), t0, ""},
		{"key of another certificate", good, write(t, dir, "other.key", other.KeyPEM), t0, "does not match the certificate"},
		{"expired", good, goodKey, t0.Add(25 * time.Hour), "expired on"},
		{"not yet valid", good, goodKey, t0.Add(-time.Hour), "not valid before"},
		{"unreadable certificate", filepath.Join(dir, "missing.crt"), goodKey, t0, "certificate file: open"},
		{"unreadable key", good, filepath.Join(dir, "missing.key"), t0, "key file: open"},
		{"chain out of order", write(t, dir, "reversed.crt", reversed), write(t, dir, "ca.key", ca.KeyPEM), t0, "put the server's certificate first"},
		{"key in the certificate file", write(t, dir, "both.crt", append(append([]byte{}, leaf.KeyPEM...), leaf.CertPEM...)), goodKey, t0, "go in separate files"},
		{"no certificate", write(t, dir, "empty.crt", []byte("hello\n")), goodKey, t0, "no PEM certificate"},
		{"no key", good, write(t, dir, "empty.key", leaf.CertPEM), t0, "no PEM private key"},
		{"encrypted key", good, write(t, dir, "enc.key", encrypted), t0, "encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ReadKeyPair(tc.cert, tc.key, tc.at)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Leaf == nil || len(c.Certificate) == 0 {
					t.Fatalf("incomplete certificate %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if bytes.Contains([]byte(err.Error()), []byte("PRIVATE KEY-----")) {
				t.Fatalf("error quotes key material: %v", err)
			}
		})
	}
}

func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	first, _ := ca.Issue(rand.Reader, []string{"first.test.example"}, t0, 24*time.Hour, false)
	second, _ := ca.Issue(rand.Reader, []string{"second.test.example"}, t0, 24*time.Hour, false)
	certFile := write(t, dir, "tls.crt", first.CertPEM)
	keyFile := write(t, dir, "tls.key", first.KeyPEM)
	logs := &syncbuf.Buffer{}
	var ok, failed atomic.Int32
	f, err := LoadCertFiles(certFile, keyFile, CertFilesOptions{Log: slog.New(slog.NewJSONHandler(logs, nil)),
		Now: func() time.Time { return t0 }, OnReload: func(good bool) {
			if good {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		c, _ := f.GetCertificate(&tls.ClientHelloInfo{})
		return c.Leaf.DNSNames[0]
	}

	// A half-written pair (new certificate, old key) keeps the old one.
	write(t, dir, "tls.crt", second.CertPEM)
	if err := f.Reload(); err == nil || name() != "first.test.example" || failed.Load() != 1 {
		t.Fatalf("reload of a mismatched pair: err %v, serving %s", err, name())
	}
	if !strings.Contains(logs.String(), "keeping the certificate in use") {
		t.Fatalf("the failed reload is not logged: %s", logs)
	}
	write(t, dir, "tls.key", second.KeyPEM)
	if err := f.Reload(); err != nil || name() != "second.test.example" || ok.Load() != 1 {
		t.Fatalf("reload: err %v, serving %s", err, name())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Fatalf("key material in the log: %s", logs)
	}

	// Watch picks up a change of the files by itself.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Watch(ctx, 10*time.Millisecond)
	write(t, dir, "tls.crt", first.CertPEM)
	write(t, dir, "tls.key", first.KeyPEM)
	future := time.Now().Add(time.Minute) // a distinct time, whatever the file system's resolution
	_ = os.Chtimes(certFile, future, future)
	_ = os.Chtimes(keyFile, future, future)
	waittest.For(t, "Watch to reload the changed files", func() bool { return name() == "first.test.example" })
}

func TestLoadCertPool(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "client CA")
	if _, err := LoadCertPool(write(t, dir, "ca.crt", ca.CertPEM), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCertPool(write(t, dir, "ca.crt", ca.CertPEM), t0.Add(2*365*24*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired CA: %v", err)
	}
	if _, err := LoadCertPool(write(t, dir, "junk", []byte("junk")), t0); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("junk CA file: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/internal/acmetest"
	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore/redisstore"
)

const acmeName = "keys.test.example"

// acmeClient verifies the server against Pebble's root, as keys.test.example.
func acmeClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: acmeName}}}
}

// waitCertificate waits until the delivery plane serves a certificate for
// keys.test.example that Pebble issued, and returns it.
func waitCertificate(t *testing.T, s *server, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var cert *x509.Certificate
	waittest.For(t, "the ACME certificate to be served", func() bool {
		resp, err := acmeClient(roots).Get(s.deliveryURL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		cert = resp.TLS.PeerCertificates[0]
		return true
	})
	return cert
}

func acmeArgs(m material, p *acmetest.Pebble, store string, port int, extra ...string) []string {
	args := m.args(store, append([]string{"--acme-domain", acmeName, "--acme-email", "ops@test.example",
		"--acme-directory", p.Directory, "--acme-directory-ca", p.CAFile}, extra...)...)
	for i, a := range args {
		if a == "--listen" {
			args[i+1] = "127.0.0.1:" + strconv.Itoa(port)
		}
	}
	return args
}

func readyz(t *testing.T, s *server) int {
	t.Helper()
	resp, err := http.Get(s.adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestACMEEndToEnd runs the real server against Pebble (TLS-ALPN-01 on the
// delivery listener, for a dotted name on 127.0.0.1): the certificate is
// ordered, served with keys over HTTP/2, kept under --data-dir and reused
// after a restart without another order; readiness waits for it.
func TestACMEEndToEnd(t *testing.T) {
	m := newMaterial(t)
	port := acmetest.FreePort(t)
	p := acmetest.Start(t, acmetest.Options{TLSPort: port})
	roots := p.Roots(t)
	dataDir := t.TempDir()
	args := acmeArgs(m, p, "bolt:"+filepath.Join(dataDir, "keys.db"), port, "--data-dir", dataDir)

	s := startListening(t, args)
	cert := waitCertificate(t, s, roots)
	waitFor(t, "readiness", func() bool { return readyz(t, s) == 200 })
	kid := s.createKey(t, randomKey(t), nil)
	req, _ := http.NewRequest(http.MethodGet, s.deliveryURL+"/keys/"+kid, nil)
	req.Header.Set("Authorization", "Bearer "+m.token(t, kid))
	resp, err := acmeClient(roots).Do(req)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("key over the ACME certificate: %v %v", err, resp)
	}
	resp.Body.Close()
	if !strings.Contains(s.stderr.String(), `"challenge_type":"tls-alpn-01"`) {
		t.Fatal("not validated by TLS-ALPN-01")
	}
	_, text := get(t, http.DefaultClient, s.adminURL+"/metrics", nil)
	for _, want := range []string{`keydelivery_tls_acme_certificates_total{result="obtained"} 1`,
		`keydelivery_tls_certificate_not_after_seconds{name="keys.test.example",plane="delivery"}`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	s.stop(t)

	s2 := startListening(t, args)
	again := waitCertificate(t, s2, roots)
	if again.SerialNumber.Cmp(cert.SerialNumber) != 0 || strings.Count(p.Output(), "Issued certificate serial") != 1 {
		t.Fatalf("after a restart: serial %v (was %v); pebble output:\n%s", again.SerialNumber, cert.SerialNumber, p.Output())
	}
}

// TestACMESharedThroughRedis: two instances on one Redis order one
// certificate between them (Pebble validates against the first instance's
// port whichever instance orders: the challenge is shared through Redis
// too) and serve the same one; Redis never holds it in the clear.
func TestACMESharedThroughRedis(t *testing.T) {
	m := newMaterial(t)
	rd := redistest.Start(t, redistest.Options{})
	portA, portB := acmetest.FreePort(t), acmetest.FreePort(t)
	p := acmetest.Start(t, acmetest.Options{TLSPort: portA})
	roots := p.Roots(t)
	a := startListening(t, acmeArgs(m, p, rd.URL(), portA, "--data-dir", t.TempDir()))
	b := startListening(t, acmeArgs(m, p, rd.URL(), portB, "--data-dir", t.TempDir()))
	ca, cb := waitCertificate(t, a, roots), waitCertificate(t, b, roots)
	if ca.SerialNumber.Cmp(cb.SerialNumber) != 0 {
		t.Fatalf("the instances serve different certificates: %v and %v", ca.SerialNumber, cb.SerialNumber)
	}
	if n := strings.Count(p.Output(), "Issued certificate serial"); n != 1 {
		t.Fatalf("pebble issued %d certificates for two instances", n)
	}

	rs, err := redisstore.New(redisstore.Options{URL: rd.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	names, err := rs.ListBlobs(context.Background(), "")
	if err != nil || len(names) == 0 {
		t.Fatalf("no ACME blobs in Redis: %v %v", names, err)
	}
	var sawKey bool
	for _, n := range names {
		v, _, _, err := rs.GetBlob(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		sawKey = sawKey || strings.HasSuffix(n, ".key")
		if bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("CERTIFICATE")) {
			t.Fatalf("Redis holds %s in the clear", n)
		}
	}
	if !sawKey {
		t.Fatalf("no certificate key among %v", names)
	}
}

package tlsserve_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/acmetest"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

const domain = "keys.test.example"

// acmeServer is an HTTPS listener whose certificate comes from ACME.
type acmeServer struct {
	acme *tlsserve.ACME
	addr string
	log  *syncbuf.Buffer
}

// serveACME listens on l with certificates from a, and starts a.
func serveACME(t *testing.T, l net.Listener, o tlsserve.ACMEOptions) *acmeServer {
	t.Helper()
	logs := &syncbuf.Buffer{}
	o.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := tlsserve.NewACME(o)
	if err != nil {
		t.Fatal(err)
	}
	tc := tlsserve.ServerConfig(a.GetCertificate, nil)
	tc.NextProtos = append(tc.NextProtos, tlsserve.ACMETLSProto)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }), TLSConfig: tc,
		ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug)} // handshakes before the certificate exists fail
	go srv.ServeTLS(l, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		a.Stop()
		srv.Close()
	})
	return &acmeServer{acme: a, addr: l.Addr().String(), log: logs}
}

// served is the certificate a client verifying against roots gets for
// domain, or nil.
func served(addr string, roots *x509.CertPool) *x509.Certificate {
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: domain, RootCAs: roots})
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func waitServed(t *testing.T, s *acmeServer, roots *x509.CertPool, what string, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	var got *x509.Certificate
	waittest.For(t, what, func() bool {
		got = served(s.addr, roots)
		return got != nil && ok(got)
	})
	return got
}

func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l, l.Addr().(*net.TCPAddr).Port
}

func directoryCAs(p *acmetest.Pebble) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA)
	return pool
}

// issued counts the certificates Pebble issued.
func issued(p *acmetest.Pebble) int { return strings.Count(p.Output(), "Issued certificate serial") }

// TestACMEOrderServeRestart: against Pebble, with TLS-ALPN-01 validated
// for real on the listener, a certificate for a dotted name is ordered
// (Pebble's finalize answer has no Location header) and served; a restart
// on the same directory serves it again without ordering another.
func TestACMEOrderServeRestart(t *testing.T) {
	l, port := listen(t)
	p := acmetest.Start(t, acmetest.Options{TLSPort: port})
	dir := t.TempDir()
	o := tlsserve.ACMEOptions{Domains: []string{domain}, Email: "ops@test.example", Directory: p.Directory,
		DirectoryCAs: directoryCAs(p), Dir: dir, TLSALPNPort: port}
	var events sync.Map
	o.OnEvent = func(e string) { events.Store(e, true) }
	s := serveACME(t, l, o)
	roots := p.Roots(t)
	cert := waitServed(t, s, roots, "the ordered certificate", func(*x509.Certificate) bool { return true })
	if cert.DNSNames[0] != domain || issued(p) != 1 {
		t.Fatalf("served %v; pebble issued %d", cert.DNSNames, issued(p))
	}
	if err := s.acme.Ready(); err != nil {
		t.Fatal(err)
	}
	if _, ok := events.Load("cert_obtained"); !ok {
		t.Fatal("no cert_obtained event")
	}
	if c := s.acme.Certificates(); len(c) != 1 || c[0].SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("Certificates() = %v", c)
	}
	if !strings.Contains(s.log.String(), `"challenge_type":"tls-alpn-01"`) || strings.Contains(s.log.String(), `"msg":"challenge failed"`) {
		t.Fatalf("not validated by TLS-ALPN-01 at the first try:\n%s", s.log)
	}
	s.acme.Stop()

	// A restart on the same directory: the stored certificate, no order.
	l2, port2 := listen(t)
	o.TLSALPNPort = port2
	s2 := serveACME(t, l2, o)
	again := waitServed(t, s2, roots, "the stored certificate", func(*x509.Certificate) bool { return true })
	if again.SerialNumber.Cmp(cert.SerialNumber) != 0 || issued(p) != 1 {
		t.Fatalf("after a restart: serial %v (was %v); pebble issued %d", again.SerialNumber, cert.SerialNumber, issued(p))
	}
}

// TestACMERenews: a certificate close to its end (Pebble issues them for
// 20 seconds here) is renewed, and the new one served.
func TestACMERenews(t *testing.T) {
	l, port := listen(t)
	p := acmetest.Start(t, acmetest.Options{TLSPort: port, Validity: 20 * time.Second})
	s := serveACME(t, l, tlsserve.ACMEOptions{Domains: []string{domain}, Directory: p.Directory,
		DirectoryCAs: directoryCAs(p), Dir: t.TempDir(), TLSALPNPort: port, RenewCheckInterval: 500 * time.Millisecond})
	roots := p.Roots(t)
	first := waitServed(t, s, roots, "the first certificate", func(*x509.Certificate) bool { return true })
	waitServed(t, s, roots, "the renewed certificate", func(c *x509.Certificate) bool { return c.SerialNumber.Cmp(first.SerialNumber) != 0 })
	if issued(p) < 2 {
		t.Fatalf("pebble issued %d certificates", issued(p))
	}
}

// TestACMEHTTP01: with TLS-ALPN-01 off, the HTTP-01 challenge is answered
// by HTTPChallengeHandler on its own listener.
func TestACMEHTTP01(t *testing.T) {
	l, port := listen(t)
	hl, hport := listen(t)
	p := acmetest.Start(t, acmetest.Options{TLSPort: port, HTTPPort: hport})
	s := serveACME(t, l, tlsserve.ACMEOptions{Domains: []string{domain}, Directory: p.Directory, DirectoryCAs: directoryCAs(p),
		Dir: t.TempDir(), TLSALPNPort: port, HTTPPort: hport, DisableTLSALPN: true})
	hs := &http.Server{Handler: s.acme.HTTPChallengeHandler(http.NotFoundHandler())}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	waitServed(t, s, p.Roots(t), "the certificate", func(*x509.Certificate) bool { return true })
	if !strings.Contains(s.log.String(), `"challenge_type":"http-01"`) {
		t.Fatalf("not validated by HTTP-01:\n%s", s.log)
	}
}

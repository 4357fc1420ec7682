package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// pki is the certificates of a TLS test: a CA, the delivery and admin
// planes' certificates (for keys.test.example and 127.0.0.1), and an admin
// client certificate, as files.
type pki struct {
	ca                        *tlsserve.CA
	caFile                    string
	certFile, keyFile         string
	adminCertFile, adminKey   string
	clientCert                tls.Certificate
	clientCAFile              string
	dir                       string
	otherCertPEM, otherKeyPEM []byte // a second delivery certificate, for reloads
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	ca, err := tlsserve.NewCA(rand.Reader, "keydelivery test CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCA, err := tlsserve.NewCA(rand.Reader, "keydelivery test client CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *tlsserve.CA, client bool, names ...string) *tlsserve.Leaf {
		l, err := ca.Issue(rand.Reader, names, now, time.Hour, client)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	w := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d := issue(ca, false, "keys.test.example", "127.0.0.1")
	a := issue(ca, false, "admin.test.example", "127.0.0.1")
	c := issue(clientCA, true, "ops-laptop")
	o := issue(ca, false, "keys2.test.example", "127.0.0.1")
	cc, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca, dir: dir, caFile: w("ca.crt", ca.CertPEM),
		certFile: w("tls.crt", d.CertPEM), keyFile: w("tls.key", d.KeyPEM),
		adminCertFile: w("admin.crt", a.CertPEM), adminKey: w("admin.key", a.KeyPEM),
		clientCert: cc, clientCAFile: w("client-ca.crt", clientCA.CertPEM),
		otherCertPEM: o.CertPEM, otherKeyPEM: o.KeyPEM}
}

// client trusts the CA, speaks HTTP/2 when the server offers it, and
// presents the admin client certificate when withCert.
func (p *pki) client(withCert bool) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	tc := &tls.Config{RootCAs: roots}
	if withCert {
		tc.Certificates = []tls.Certificate{p.clientCert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
}

func get(t *testing.T, c *http.Client, url string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestHTTPSBothPlanes runs the real server with TLS on both planes and
// mutual TLS on the admin plane: keys over HTTP/2, TLS 1.2 at least, Go's
// 400 for plain HTTP, client certificates required and credentials still
// checked, certificate files reloaded without dropping a connection, a
// failed reload keeping the certificate in use, and the expiry metric.
func TestHTTPSBothPlanes(t *testing.T) {
	m := newMaterial(t)
	p := newPKI(t)
	s := startWith(t, m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"),
		"--tls-cert", p.certFile, "--tls-key", p.keyFile,
		"--admin-tls-cert", p.adminCertFile, "--admin-tls-key", p.adminKey, "--admin-client-ca", p.clientCAFile,
		"--tls-reload", "20ms"), nil, p.client(true))
	if !strings.HasPrefix(s.deliveryURL, "https://") || !strings.HasPrefix(s.adminURL, "https://") {
		t.Fatalf("listeners %s %s, want https", s.deliveryURL, s.adminURL)
	}
	value := randomKey(t)
	kid := s.createKey(t, value, nil)

	// Keys over HTTP/2, negotiated by ALPN.
	c := p.client(false)
	resp, body := get(t, c, s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid)))
	if resp.StatusCode != 200 || !bytes.Equal(body, value[:]) || resp.ProtoMajor != 2 {
		t.Fatalf("key over HTTPS: %d %s, %d bytes", resp.StatusCode, resp.Proto, len(body))
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].DNSNames[0] != "keys.test.example" {
		t.Fatalf("served certificate %v", resp.TLS)
	}

	// TLS 1.1 is refused; a plain HTTP request gets Go's 400, not a hang.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.deliveryURL, "https://"), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	plain, err := http.Get("http://" + strings.TrimPrefix(s.deliveryURL, "https://") + "/healthz")
	if err != nil {
		t.Fatalf("plain HTTP to the TLS port: %v", err)
	}
	pb, _ := io.ReadAll(plain.Body)
	plain.Body.Close()
	if plain.StatusCode != 400 || !strings.Contains(string(pb), "HTTPS") {
		t.Fatalf("plain HTTP to the TLS port: %d %s", plain.StatusCode, pb)
	}

	// The admin plane: no client certificate, no handshake; a client
	// certificate alone is no credential.
	if _, err := p.client(false).Get(s.adminURL + "/healthz"); err == nil {
		t.Fatal("the admin plane answered a client without a certificate")
	}
	if resp, _ := get(t, p.client(true), s.adminURL+"/api/keys", nil); resp.StatusCode != 401 {
		t.Fatalf("client certificate without a credential: %d", resp.StatusCode)
	}
	if resp, _ := get(t, p.client(true), s.adminURL+"/api/keys", bearer(adminSecret)); resp.StatusCode != 200 {
		t.Fatalf("client certificate and credential: %d", resp.StatusCode)
	}

	// A reload: new handshakes get the new certificate; the open HTTP/2
	// connection goes on.
	kept := p.client(false)
	if resp, _ := get(t, kept, s.deliveryURL+"/healthz", nil); resp.ProtoMajor != 2 {
		t.Fatal("no HTTP/2 connection to keep")
	}
	var firstConn string
	trace := func(c *http.Client) string {
		resp, _ := get(t, c, s.deliveryURL+"/healthz", nil)
		return resp.TLS.PeerCertificates[0].DNSNames[0] + fmt.Sprint(resp.TLS.DidResume)
	}
	firstConn = trace(kept)
	writeFile(t, p.keyFile, p.otherKeyPEM)
	writeFile(t, p.certFile, p.otherCertPEM)
	waitFor(t, "the new certificate on new connections", func() bool {
		resp, _ := get(t, p.client(false), s.deliveryURL+"/healthz", nil)
		return resp.TLS.PeerCertificates[0].DNSNames[0] == "keys2.test.example"
	})
	if trace(kept) != firstConn {
		t.Fatalf("the kept connection changed: %s, was %s", trace(kept), firstConn)
	}

	// A failed reload (a key that does not match) keeps serving the
	// certificate in use, and says so.
	writeFile(t, p.keyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	waitFor(t, "the failed reload in the log", func() bool {
		return strings.Contains(s.stderr.String(), "TLS certificate reload failed; keeping the certificate in use")
	})
	if resp, _ := get(t, p.client(false), s.deliveryURL+"/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("after a failed reload: %d", resp.StatusCode)
	}
	_, metricsText := get(t, p.client(true), s.adminURL+"/metrics", nil)
	for _, want := range []string{
		`keydelivery_tls_certificate_not_after_seconds{name="keys2.test.example",plane="delivery"}`,
		`keydelivery_tls_certificate_not_after_seconds{name="admin.test.example",plane="admin"}`,
		`keydelivery_tls_certificate_reloads_total{plane="delivery",result="failed"}`,
		`keydelivery_http_connections{plane="delivery"}`,
	} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(s.stderr.String(), "AAAA") {
		t.Fatal("key file content in the log")
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Duration(len(b)) * time.Second) // a new modification time, whatever the file system's resolution
	_ = os.Chtimes(path, future, future)
}

// waitFor waits for cond (internal/waittest's ceiling).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waittest.For(t, what, cond)
}

// TestBadTLSRefusesStartAndCheckConfig: a key that does not match its
// certificate, an expired certificate, an unreadable file stop both the
// server and --check-config with a message that says what is wrong.
func TestBadTLSRefusesStartAndCheckConfig(t *testing.T) {
	m := newMaterial(t)
	p := newPKI(t)
	expired, err := p.ca.Issue(rand.Reader, []string{"old.test.example"}, time.Now().Add(-3*time.Hour), time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := p.ca.Issue(rand.Reader, []string{"other.test.example"}, time.Now(), time.Hour, false)
	w := func(name string, b []byte) string {
		path := filepath.Join(p.dir, name)
		writeFile(t, path, b)
		return path
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mismatched key", []string{"--tls-cert", p.certFile, "--tls-key", w("other.key", other.KeyPEM)}, "does not match the certificate"},
		{"expired", []string{"--tls-cert", w("expired.crt", expired.CertPEM), "--tls-key", w("expired.key", expired.KeyPEM)}, "expired on"},
		{"unreadable", []string{"--admin-tls-cert", filepath.Join(p.dir, "missing.crt"), "--admin-tls-key", p.keyFile}, "admin plane TLS"},
		{"client CA without admin TLS", []string{"--admin-client-ca", p.clientCAFile}, "--admin-client-ca needs --admin-tls-cert"},
		{"half a pair", []string{"--tls-cert", p.certFile}, "--tls-cert and --tls-key go together"},
		{"h2c with TLS", []string{"--tls-cert", p.certFile, "--tls-key", p.keyFile, "--h2c"}, "--h2c"},
		{"proxy protocol without trusted proxies", []string{"--proxy-protocol"}, "--proxy-protocol needs --trusted-proxies"},
		{"bad trusted proxy", []string{"--trusted-proxies", "10.0.0.0/8,example.com"}, "example.com"},
		{"undotted ACME name", []string{"--acme-domain", "localhost"}, "--acme-domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, check := range []bool{true, false} {
				args := m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"), tc.args...)
				if check {
					args = append(args, "--check-config")
				}
				var out bytes.Buffer
				err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("check-config %v: err %v, want %q", check, err, tc.want)
				}
			}
		})
	}
	var out bytes.Buffer
	args := m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"), "--check-config", "--tls-cert", p.certFile, "--tls-key", p.keyFile,
		"--trusted-proxies", "10.0.0.0/8", "--proxy-protocol")
	if err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "delivery https, admin http, 1 trusted proxy prefix(es) (PROXY protocol)") {
		t.Fatalf("check-config summary: %s", out.String())
	}
}

// TestH2C: with --h2c the plain listener speaks HTTP/2 with prior
// knowledge; without it, it does not.
func TestH2C(t *testing.T) {
	m := newMaterial(t)
	h2c := &http.Client{Transport: &http.Transport{Protocols: func() *http.Protocols {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		return &p
	}()}}
	for _, on := range []bool{true, false} {
		extra := []string{}
		if on {
			extra = append(extra, "--h2c")
		}
		s := start(t, m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"), extra...), nil)
		kid := s.createKey(t, randomKey(t), nil)
		req, _ := http.NewRequest(http.MethodGet, s.deliveryURL+"/keys/"+kid, nil)
		req.Header.Set("Authorization", "Bearer "+m.token(t, kid))
		resp, err := h2c.Do(req)
		if on {
			if err != nil || resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
				t.Fatalf("--h2c: %v %v", err, resp)
			}
			resp.Body.Close()
		} else if err == nil {
			resp.Body.Close()
			t.Fatalf("prior-knowledge HTTP/2 without --h2c: %s %d", resp.Proto, resp.StatusCode)
		}
		// HTTP/1.1 works either way.
		if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid))); a.status != 200 {
			t.Fatalf("HTTP/1.1 (h2c %v): %d", on, a.status)
		}
	}
}

// TestDevTLS: --dev --dev-tls serves the delivery plane over HTTPS with a
// certificate from a local CA under the data dir, and says how to trust it.
func TestDevTLS(t *testing.T) {
	dir := t.TempDir()
	args := []string{"keydelivery", "--dev", "--dev-tls", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
	s := start(t, args, nil)
	if !strings.HasPrefix(s.deliveryURL, "https://127.0.0.1:") || !strings.HasPrefix(s.adminURL, "http://127.0.0.1:") {
		t.Fatalf("dev listeners %s %s", s.deliveryURL, s.adminURL)
	}
	waitFor(t, "the banner", func() bool { return strings.Contains(s.stdout.String(), "certutil") })
	banner := s.stdout.String()
	caFile := filepath.Join(dir, "dev-tls-ca.crt")
	if !strings.Contains(banner, s.deliveryURL) || !strings.Contains(banner, caFile) {
		t.Fatalf("banner lacks the bound address %s or the CA file:\n%s", s.deliveryURL, banner)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host}}}
		resp, err := c.Get(s.deliveryURL + "/healthz")
		if err != nil {
			t.Fatalf("dev HTTPS as %s: %v", host, err)
		}
		resp.Body.Close()
	}
	s.stop(t)

	// A restart keeps the CA (a browser that trusts it keeps trusting it).
	s2 := start(t, args, nil)
	caAgain, _ := os.ReadFile(caFile)
	if !bytes.Equal(caPEM, caAgain) {
		t.Fatal("the dev CA changed on restart")
	}
	s2.stop(t)
}

func TestDevListensOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "127.0.0.1:8080"},
		{[]string{"--listen", ":9090"}, nil, ":9090"},
		{nil, map[string]string{"KD_LISTEN": "0.0.0.0:8080"}, "0.0.0.0:8080"},
	} {
		c, err := parseConfig(append([]string{"kd", "--dev"}, tc.args...), func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		c.devDefaults(devPaths(t.TempDir()))
		if c.Listen != tc.want {
			t.Errorf("%v %v: listen %s, want %s", tc.args, tc.env, c.Listen, tc.want)
		}
	}
	c, _ := parseConfig([]string{"kd"}, func(string) string { return "" }, io.Discard)
	if c.Listen != ":8080" {
		t.Fatalf("without --dev the default listen address changed: %s", c.Listen)
	}
}

// accessRemote returns the remote of the access-log lines of path.
func accessRemotes(log, path string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"path":"`+path) || strings.Contains(line, `"uri":"`+path) {
			if _, rest, ok := strings.Cut(line, `"remote":"`); ok {
				r, _, _ := strings.Cut(rest, `"`)
				out = append(out, r)
			}
		}
	}
	return out
}

// TestTrustedProxies: only from a trusted proxy is X-Forwarded-For
// believed, in the access log and the audit log; the PROXY protocol
// likewise.
func TestTrustedProxies(t *testing.T) {
	m := newMaterial(t)
	for _, tc := range []struct {
		name    string
		extra   []string
		want    string
		proxyV1 bool
	}{
		{"no trusted proxies: headers ignored", nil, "127.0.0.1", false},
		{"trusted loopback proxy", []string{"--trusted-proxies", "127.0.0.0/8"}, "198.51.100.7", false},
		{"other proxies trusted", []string{"--trusted-proxies", "10.0.0.0/8"}, "127.0.0.1", false},
		{"PROXY protocol", []string{"--trusted-proxies", "127.0.0.1", "--proxy-protocol"}, "203.0.113.5", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"), tc.extra...), nil)
			kid := s.createKey(t, randomKey(t), nil)
			path := "/keys/" + kid
			hostPort := strings.TrimPrefix(s.deliveryURL, "http://")
			c, err := net.Dial("tcp", hostPort)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.proxyV1 {
				fmt.Fprintf(c, "PROXY TCP4 203.0.113.5 127.0.0.1 4711 443\r\n")
			}
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.7\r\nConnection: close\r\n\r\n", path, m.token(t, kid))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("key: %v %v", err, resp)
			}
			waitFor(t, "the access-log line", func() bool { return len(accessRemotes(s.stderr.String(), path)) > 0 })
			if got := accessRemotes(s.stderr.String(), path); got[0] != tc.want {
				t.Fatalf("access log remote %v, want %s", got, tc.want)
			}
			if tc.proxyV1 {
				return
			}
			// The admin plane and its audit log use the same address.
			req, _ := http.NewRequest(http.MethodDelete, s.adminURL+"/api/keys/"+kid, nil)
			req.Header.Set("Authorization", "Bearer "+adminSecret)
			req.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.7")
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			audit, _ := os.ReadFile(filepath.Join(m.dir, "audit.log"))
			var last string
			for _, l := range strings.Split(strings.TrimSpace(string(audit)), "\n") {
				if strings.Contains(l, kid) {
					last = l
				}
			}
			if !strings.Contains(last, `"`+tc.want+`"`) {
				t.Fatalf("audit record %s, want source %s", last, tc.want)
			}
		})
	}
}

// TestConnectionCap: many idle kept-alive connections never hold more than
// --max-connections open; the longest idle make room.
func TestConnectionCap(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"), "--max-connections", "5"), nil)
	addr := strings.TrimPrefix(s.deliveryURL, "http://")
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	_, text := get(t, http.DefaultClient, s.adminURL+"/metrics", nil)
	open := metricValue(t, string(text), `keydelivery_http_connections{plane="delivery"}`)
	closed := metricValue(t, string(text), `keydelivery_http_idle_connections_closed_total{plane="delivery"}`)
	if open > 5 || closed < 35 {
		t.Fatalf("open %v (cap 5), idle closed %v (want at least 35)", open, closed)
	}
}

func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// TestAdminSlowBody: a request without a credential that sends its body a
// byte at a time loses its connection within the delivery plane's timeouts,
// not the admin plane's minutes; an authenticated one gets those minutes.
func TestAdminSlowBody(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(t.TempDir(), "keys.db"),
		"--header-timeout", "3s", "--request-timeout", "3s", "--admin-request-timeout", "1h"), nil)
	addr := strings.TrimPrefix(s.adminURL, "http://")

	// Without a credential: 401 at once, then the connection is closed
	// while the body trickles in.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /api/keys/import HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 262144\r\n\r\n[")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("unauthenticated slow body: %v %v", err, resp)
	}
	io.Copy(io.Discard, resp.Body)
	began := time.Now()
	closed := make(chan error, 1)
	go func() { _, err := br.ReadByte(); closed <- err }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// The ceiling (the test binary's -timeout, less a margin) is far below
	// the admin request timeout (1h) the connection would otherwise get.
	ceiling := time.After(time.Until(waittest.Deadline(t)))
wait:
	for {
		select {
		case err := <-closed:
			if !errors.Is(err, io.EOF) && !isReset(err) {
				t.Fatalf("read after 401: %v", err)
			}
			break wait
		case <-tick.C:
			c.Write([]byte(" "))
		case <-ceiling:
			t.Fatal("an unauthenticated slow body held its connection")
		}
	}
	t.Logf("unauthenticated slow body closed after %s", time.Since(began).Round(time.Millisecond))

	// With a credential, a body slower than --request-timeout arrives.
	kid := "6b1e2a3c-0d4f-4e5a-8b6c-7d8e9f0a1b2c"
	body := []byte(`[{"Id":"` + kid + `","Data":"` + b64(randomKeyBytes(t)) + `"}]`)
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "POST /api/keys/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", adminSecret, len(body))
	half := len(body) / 2
	c2.Write(body[:half])
	// The input, not a wait: the body's second half comes later than
	// --request-timeout allows, so only the extended deadline lets it in.
	// (4s is past --request-timeout, 3s, which is that long so that the
	// handler has ample time to run on a busy machine.)
	time.Sleep(4 * time.Second)
	c2.Write(body[half:])
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("authenticated slow body: %v %v", err, resp)
	}
}

func randomKeyBytes(t *testing.T) []byte {
	k := randomKey(t)
	return k[:]
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

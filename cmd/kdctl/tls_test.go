package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/keystore"
)

// TestMutualTLS: kdctl reaches an admin plane that requires a client
// certificate with --cacert, --cert and --key, or KD_CACERT, KD_CERT and
// KD_KEY; without the certificate, or without trusting the server's CA, it
// does not.
func TestMutualTLS(t *testing.T) {
	now := time.Now()
	serverCA, err := tlsserve.NewCA(rand.Reader, "server CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clientCA, _ := tlsserve.NewCA(rand.Reader, "client CA", now, time.Hour)
	serverLeaf, _ := serverCA.Issue(rand.Reader, []string{"127.0.0.1"}, now, time.Hour, false)
	clientLeaf, _ := clientCA.Issue(rand.Reader, []string{"ops"}, now, time.Hour, true)
	serverPair, err := tls.X509KeyPair(serverLeaf.CertPEM, serverLeaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientCA.Cert)

	secret, credsFile := generateAdminKey(t, "ops", "writer")
	creds, err := credentials.Load(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plane.New(plane.Options{Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		Keys: keystest.New(t, keystore.Options{}), Credentials: creds, Audit: audit.New(&strings.Builder{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Register(p, admin.Options{PublicURL: "https://keys.example.com"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.TLS = tlsserve.ServerConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serverPair, nil }, clientCAs)
	srv.TLS.Certificates = []tls.Certificate{serverPair} // else StartTLS puts its own there, served to clients without SNI
	srv.StartTLS()
	t.Cleanup(srv.Close)

	caFile := writeFile(t, "ca.crt", serverCA.CertPEM)
	certFile := writeFile(t, "client.crt", clientLeaf.CertPEM)
	keyFile := writeFile(t, "client.key", clientLeaf.KeyPEM)
	env := map[string]string{"KD_SERVER": srv.URL, "KD_ADMIN_TOKEN": secret}

	r := kdctl(t, env, "keys", "create", "--quiet", "--cacert", caFile, "--cert", certFile, "--key", keyFile)
	if r.code != 0 {
		t.Fatalf("with flags: %d %s", r.code, r.stderr)
	}
	withEnv := map[string]string{"KD_SERVER": srv.URL, "KD_ADMIN_TOKEN": secret, "KD_CACERT": caFile, "KD_CERT": certFile, "KD_KEY": keyFile}
	if r := kdctl(t, withEnv, "keys", "list"); r.code != 0 {
		t.Fatalf("with KD_ variables: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, env, "keys", "list", "--cacert", caFile); r.code != exitUnavailable {
		t.Fatalf("without a client certificate: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, env, "keys", "list", "--cert", certFile, "--key", keyFile); r.code != exitUnavailable || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("without trusting the server's CA: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, env, "keys", "list", "--cert", certFile); r.code != exitUsage || !strings.Contains(r.stderr, "--cert and --key go together") {
		t.Fatalf("--cert without --key: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, env, "keys", "list", "--cacert", keyFile); r.code != exitUsage {
		t.Fatalf("--cacert without a certificate: %d %s", r.code, r.stderr)
	}
}

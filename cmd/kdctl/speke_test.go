package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/admin/speke"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
)

// newSPEKEServer serves an admin plane with the SPEKE API.
func newSPEKEServer(t *testing.T, credsFile string) (string, *keystore.Keys) {
	t.Helper()
	keys := keystest.New(t, keystore.Options{})
	creds, err := credentials.Load(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plane.New(plane.Options{Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		Keys: keys, Credentials: creds, Audit: audit.New(&bytes.Buffer{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := speke.Register(p, speke.Options{PublicURL: "https://keys.example.com"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL, keys
}

// TestSPEKERequest: kdctl speke request asks as a packager, prints every
// key with its signaling decoded, keeps the CPIX answer with --out, and
// prints SPEKE's plain-text refusals as they are.
func TestSPEKERequest(t *testing.T) {
	r := kdctl(t, nil, "adminkey", "generate", "--name", "enc-1", "--role", "packager", "--content", "live-*")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[1], " content=live-*") {
		t.Fatalf("adminkey generate: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := kdctl(t, nil, "adminkey", "generate", "--name", "x", "--role", "reader", "--content", "a"); r.code != exitUsage {
		t.Fatalf("--content on a reader: %d", r.code)
	}
	url, keys := newSPEKEServer(t, writeFile(t, "creds", []byte(lines[1]+"\n")))
	env := map[string]string{"KD_SERVER": url, "KD_ADMIN_TOKEN": lines[0]}
	out := filepath.Join(t.TempDir(), "answer.xml")
	const v, a = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "1b5f7f19-c5f6-4b36-8d5c-7f4f5b3d2e80"
	r = kdctl(t, env, "speke", "request", "--content", "live-7", "--kid", v, "--kid", a, "--system", "widevine,aes128,fairplay", "--period", "3", "--out", out)
	if r.code != 0 {
		t.Fatalf("speke request: %d %s", r.code, r.stderr)
	}
	for _, kid := range []string{v, a} {
		k, err := keys.Get(context.Background(), keystore.KeyID(mustParse(t, kid)))
		if err != nil || k.Period == nil || k.Period.Index != 3 || k.Assets[0] != "live-7" {
			t.Fatalf("stored %s: %+v %v", kid, k, err)
		}
		if !strings.Contains(r.stdout, "key "+kid+" (cbcs)\n  value  "+base64.StdEncoding.EncodeToString(k.Value[:])) {
			t.Errorf("the output lacks key %s:\n%s", kid, r.stdout)
		}
	}
	for _, want := range []string{
		`HLSSignalingData (media)               #EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/keys/` + v + `"`,
		`#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://keys.example.com/fairplay/license?kid=` + a + `"`,
		"  widevine\n    PSSH ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the output lacks %q:\n%s", want, r.stdout)
		}
	}
	answer, err := os.ReadFile(out)
	if err != nil || !regexp.MustCompile(`<cpix:ContentKeyPeriod id="keyPeriod_kdctl" index="3"/>`).Match(answer) {
		t.Fatalf("--out: %v\n%s", err, answer)
	}
	if r := kdctl(t, env, "speke", "request", "--content", "vod-1", "--system", "widevine"); r.code != exitRefused || !strings.Contains(r.stderr, `server refused: 403 Forbidden: This credential may not ask for the keys of content "vod-1"`) {
		t.Fatalf("another content: %d %s", r.code, r.stderr)
	}
	if r := kdctl(t, env, "speke", "request", "--content", "live-8", "--system", "widevine", "--track-type", "SD"); r.code != exitRefused || !strings.Contains(r.stderr, "Non compliant encryption contract") {
		t.Fatalf("a preset refused: %d %s", r.code, r.stderr)
	}
	for _, bad := range [][]string{
		{"speke", "request", "--system", "widevine"},
		{"speke", "request", "--content", "c"},
		{"speke", "request", "--content", "c", "--system", "marlin"},
		{"speke", "request", "--content", "c", "--system", "widevine", "--kid", v, "--kid", a, "--kid", "2b5f7f19-c5f6-4b36-8d5c-7f4f5b3d2e80"},
		{"speke", "nothing"},
	} {
		if r := kdctl(t, env, bad...); r.code != exitUsage {
			t.Errorf("%v: %d %s", bad, r.code, r.stderr)
		}
	}
}

func mustParse(t *testing.T, s string) keystore.KeyID {
	t.Helper()
	id, err := keystore.ParseKeyID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestExportEncrypted: keys export --recipient-cert writes a CPIX document
// with no key in the clear, which the recipient's key reads.
func TestExportEncrypted(t *testing.T) {
	secret, creds := generateAdminKey(t, "ops", "admin")
	srv := newTestServer(t, creds)
	env := map[string]string{"KD_SERVER": srv.url, "KD_ADMIN_TOKEN": secret}
	r := kdctl(t, env, "keys", "create", "--quiet")
	kid := strings.TrimSpace(r.stdout)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	certFile := writeFile(t, "recipient.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	out := filepath.Join(t.TempDir(), "enc.xml")
	if r := kdctl(t, env, "keys", "export", kid, "--recipient-cert", certFile, "--out", out); r.code != 0 {
		t.Fatalf("export: %d %s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(out)
	d, err := cpix.ReadWith(bytes.NewReader(b), cpix.ReadOptions{Max: 1 << 20, Recipient: priv})
	stored, _ := srv.keys.Get(context.Background(), mustParse(t, kid))
	if err != nil || len(d.Keys) != 1 || !bytes.Equal(d.Keys[0].Value, stored.Value[:]) || bytes.Contains(b, []byte("PlainValue")) {
		t.Fatalf("%v %s", err, b)
	}
	if r := kdctl(t, env, "keys", "export", kid, "--recipient-cert", writeFile(t, "x.pem", []byte("nope"))); r.code != exitRefused {
		t.Fatalf("a bad certificate: %d", r.code)
	}
}

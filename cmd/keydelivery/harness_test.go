package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
)

const (
	testIssuer   = "https://tokens.example.test/"
	testAudience = "urn:keydelivery:test"
	adminSecret  = "kda_test-secret-for-the-e2e-suite"
)

// syncBuffer is written by the server while the test reads it.
type syncBuffer = syncbuf.Buffer

// material is what a test server trusts and signs with.
type material struct {
	dir       string
	certFile  string
	keyFile   string
	kekFile   string
	credsFile string
	signer    *auth.Signer
}

func newMaterial(t testing.TB) material {
	t.Helper()
	dir := t.TempDir()
	m := material{
		dir:       dir,
		certFile:  filepath.Join(dir, "token.crt"),
		keyFile:   filepath.Join(dir, "token.key"),
		kekFile:   filepath.Join(dir, "kek"),
		credsFile: filepath.Join(dir, "admin-credentials"),
	}
	certPEM, keyPEM, err := auth.GenerateDevCertificate(rand.Reader, "e2e token signing", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	line, err := keystore.GenerateKEKLine(rand.Reader, "e2e-1")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(adminSecret))
	for path, b := range map[string][]byte{
		m.certFile:  certPEM,
		m.keyFile:   keyPEM,
		m.kekFile:   []byte(line + "\n"),
		m.credsFile: []byte("e2e admin " + hex.EncodeToString(sum[:]) + "\n"),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if m.signer, err = auth.LoadSigner(m.keyFile, m.certFile); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m material) args(store string, extra ...string) []string {
	return append([]string{"keydelivery",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--store", store,
		"--token-certs", m.certFile, "--token-issuer", testIssuer, "--token-audience", testAudience,
		"--kek-file", m.kekFile, "--admin-credentials-file", m.credsFile,
		"--audit-log", filepath.Join(m.dir, "audit.log"),
		"--cors-origins", "https://player.example.com,https://*.cdn.example.net",
		"--access-log", // so the checks that no token reaches the log have lines to read
	}, extra...)
}

// token mints a delivery token for kids, valid for an hour.
func (m material) token(t testing.TB, kids ...string) string {
	t.Helper()
	now := time.Now()
	tok, err := m.signer.Sign(auth.TokenClaims{Issuer: testIssuer, Audience: testAudience, Subject: "viewer-1",
		KeyIDs: kids, IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// server is a running instance of run.
type server struct {
	deliveryURL string
	adminURL    string
	stdout      *syncBuffer
	stderr      *syncBuffer
	cancel      context.CancelFunc
	done        chan error
	// client reaches both planes (it trusts their certificates).
	client *http.Client
}

var listenRE = regexp.MustCompile(`"msg":"listening","plane":"(delivery|admin)","addr":"([^"]+)","scheme":"(https?)"`)

// start runs the server with args and waits until /readyz answers 200.
func start(t *testing.T, args []string, env map[string]string) *server {
	t.Helper()
	return startWith(t, args, env, http.DefaultClient)
}

// startWith is start, asking /readyz with client (which trusts the
// server's TLS certificate, and has the admin plane's client certificate).
func startWith(t *testing.T, args []string, env map[string]string, client *http.Client) *server {
	t.Helper()
	s := launch(t, args, env, client)
	var lastReady string // the last /readyz answer, for the failure message
	deadline := waittest.Deadline(t)
	for time.Now().Before(deadline) {
		if s.listening(t) {
			resp, err := client.Get(s.adminURL + "/readyz")
			if err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s
				}
				lastReady = fmt.Sprintf("%d %s", resp.StatusCode, b)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server not ready in time; /readyz: %s\nstderr:\n%s", lastReady, s.stderr.String())
	return nil
}

// startListening runs the server with args and waits until both planes
// listen, ready or not.
func startListening(t *testing.T, args []string) *server {
	t.Helper()
	s := launch(t, args, nil, http.DefaultClient)
	waittest.For(t, "the server to listen", func() bool { return s.listening(t) })
	return s
}

// launch runs the server with args and env in the background, stopped when
// the test ends.
func launch(t *testing.T, args []string, env map[string]string, client *http.Client) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), client: client}
	getenv := func(k string) string { return env[k] }
	go func() { s.done <- run(ctx, args, getenv, s.stdout, s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// listening reports whether both planes listen (their addresses from the
// log), failing t if the server exited.
func (s *server) listening(t *testing.T) bool {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		t.Fatalf("server exited during start: %v\nstderr:\n%s", err, s.stderr.String())
	default:
	}
	for _, m := range listenRE.FindAllStringSubmatch(s.stderr.String(), -1) {
		if m[1] == "delivery" {
			s.deliveryURL = m[3] + "://" + m[2]
		} else {
			s.adminURL = m[3] + "://" + m[2]
		}
	}
	return s.adminURL != "" && s.deliveryURL != ""
}

// stop cancels the server and waits for run to return.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("run returned %v", err)
		}
	case <-time.After(time.Until(waittest.Deadline(t))):
		t.Errorf("server did not stop before the test's -timeout")
	}
}

// createKey creates a key with a known value through the admin API.
func (s *server) createKey(t *testing.T, value [16]byte, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"key": b64(value[:])}
	for k, v := range extra {
		body[k] = v
	}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.adminURL+"/api/keys", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key: %d %s", resp.StatusCode, out)
	}
	var meta struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &meta); err != nil || meta.ID == "" {
		t.Fatalf("create key answer %s: %v", out, err)
	}
	if strings.Contains(string(out), b64(value[:])) {
		t.Fatalf("create answer leaks key material: %s", out)
	}
	return meta.ID
}

func randomKey(t *testing.T) [16]byte {
	var k [16]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

// importJSON posts a JSON import to the admin API and returns the status
// and body.
func (s *server) importJSON(t *testing.T, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.adminURL+"/api/keys/import", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// exerciseImport imports a key, imports it again (unchanged), then another
// key under the same KID (409, stored key untouched), and fetches it.
func exerciseImport(t *testing.T, s *server, m material) {
	t.Helper()
	value, other := randomKey(t), randomKey(t)
	kid := "5b1e2a3c-0d4f-4e5a-8b6c-7d8e9f0a1b2c"
	body := func(v [16]byte) string { return `[{"Id":"` + kid + `","Data":"` + b64(v[:]) + `"}]` }
	if st, out := s.importJSON(t, body(value)); st != 200 || !strings.Contains(out, `"Status":"created"`) {
		t.Fatalf("import: %d %s", st, out)
	}
	if st, out := s.importJSON(t, body(value)); st != 200 || !strings.Contains(out, `"Status":"unchanged"`) {
		t.Fatalf("re-import: %d %s", st, out)
	}
	if st, out := s.importJSON(t, body(other)); st != 409 || !strings.Contains(out, kid) {
		t.Fatalf("conflicting import: %d %s", st, out)
	}
	a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid)))
	if a.status != 200 || !bytes.Equal(a.body, value[:]) {
		t.Fatalf("imported key: %d, stored key changed: %v", a.status, !bytes.Equal(a.body, value[:]))
	}
}

// Package admintest builds a real admin plane for the tests of the admin
// APIs (admin, admin/amsapi, admin/speke): a credential per role (two
// packagers, one limited to content IDs), an audit log
// and a server log the test reads, a fresh metrics registry, and requests
// sent through the plane's http.Handler.
package admintest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
)

// Test secrets, one per role, and a packager limited to content IDs that
// start with "live-".
const (
	SecretReader          = "kda_reader-secret"
	SecretWriter          = "kda_writer-secret"
	SecretExporter        = "kda_exporter-secret"
	SecretAdmin           = "kda_admin-secret"
	SecretPackager        = "kda_packager-secret"
	SecretLimitedPackager = "kda_limited-packager-secret"
)

// Credential names of the packagers (HTTP Basic sends the name).
const (
	PackagerName        = "packager-1"
	LimitedPackagerName = "packager-live"
)

// CredentialsText is the credentials file naming the test secrets (the
// admin's hash in upper case, which the file allows).
func CredentialsText() string {
	return fmt.Sprintf("# test credentials\nreader-1 reader %s\nwriter-1 writer %s\n\nexporter-1 exporter %s\nadmin-1 admin %s\n%s packager %s\n%s packager %s content=live-*\n",
		credentials.HashSecret(SecretReader), credentials.HashSecret(SecretWriter),
		credentials.HashSecret(SecretExporter), strings.ToUpper(credentials.HashSecret(SecretAdmin)),
		PackagerName, credentials.HashSecret(SecretPackager), LimitedPackagerName, credentials.HashSecret(SecretLimitedPackager))
}

// Now is the clock of the test audit log.
var Now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Env is a plane under test.
type Env struct {
	Plane *plane.Plane
	Audit *syncbuf.Buffer
	Log   *syncbuf.Buffer
	Reg   *prometheus.Registry
}

// New builds a plane with the test credentials, an audit log in Env.Audit
// and a log in Env.Log; mod may change the options, register mounts the
// APIs under test.
func New(t testing.TB, keys plane.Keys, mod func(*plane.Options), register func(*plane.Plane) error) *Env {
	t.Helper()
	creds, err := credentials.Parse([]byte(CredentialsText()))
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Audit: &syncbuf.Buffer{}, Log: &syncbuf.Buffer{}, Reg: prometheus.NewRegistry()}
	o := plane.Options{
		Log:         slog.New(slog.NewJSONHandler(env.Log, nil)),
		Registerer:  env.Reg,
		Keys:        keys,
		Credentials: creds,
		Audit:       audit.New(env.Audit, func() time.Time { return Now }),
	}
	if mod != nil {
		mod(&o)
	}
	p, err := plane.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if register != nil {
		if err := register(p); err != nil {
			t.Fatal(err)
		}
	}
	env.Plane = p
	return env
}

// Response is what the plane answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Problem decodes the problem body, failing the test if it is not one.
func (r Response) Problem(t testing.TB) httpedge.Problem {
	t.Helper()
	var p httpedge.Problem
	if ct := r.Header.Get("Content-Type"); ct != httpedge.ProblemType {
		t.Fatalf("content type %q, want %s (body %s)", ct, httpedge.ProblemType, r.Body)
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.Body, err)
	}
	return p
}

// JSON decodes the body into v, failing the test if it cannot.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
}

// Do sends one request; secret "" sends no Authorization header; hdr are
// header name, value pairs. A body is sent as application/json unless hdr
// says otherwise.
func (e *Env) Do(t testing.TB, method, target, secret, body string, hdr ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.Plane.ServeHTTP(rec, req)
	return Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// AuditLines parses the audit log written so far.
func AuditLines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// NoSecrets fails the test if body, the log or the audit log holds any of
// secrets.
func (e *Env) NoSecrets(t testing.TB, body []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(string(body), s) {
			t.Errorf("an answer holds secret %q: %s", s, body)
		}
		if strings.Contains(e.Log.String(), s) {
			t.Errorf("the log holds secret %q", s)
		}
		if strings.Contains(e.Audit.String(), s) {
			t.Errorf("the audit log holds secret %q", s)
		}
	}
}

// AuditOperations is the audit log so far as "operation:result,...".
func (e *Env) AuditOperations(t testing.TB) string {
	t.Helper()
	var out []string
	for _, rec := range AuditLines(t, e.Audit.String()) {
		out = append(out, fmt.Sprint(rec["operation"], ":", rec["result"]))
	}
	return strings.Join(out, ",")
}

// FailWriter fails every write after the first OK ones.
type FailWriter struct {
	mu     sync.Mutex
	OK     int
	writes int
	buf    bytes.Buffer
}

func (w *FailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.writes > w.OK {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(p)
}

// String returns what was written.
func (w *FailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

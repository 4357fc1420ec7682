package admin

import (
	"bytes"
	"context"
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

	"github.com/keydelivery/keydelivery/internal/syncbuf"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/keystore"
)

// Test secrets, one per role, and the credentials file naming them.
const (
	secretReader   = "kda_reader-secret"
	secretWriter   = "kda_writer-secret"
	secretExporter = "kda_exporter-secret"
	secretAdmin    = "kda_admin-secret"
)

func testCredentialsText() string {
	return fmt.Sprintf("# test credentials\nreader-1 reader %s\nwriter-1 writer %s\n\nexporter-1 exporter %s\nadmin-1 admin %s\n",
		HashSecret(secretReader), HashSecret(secretWriter), HashSecret(secretExporter), strings.ToUpper(HashSecret(secretAdmin)))
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeKeys is a hand-written keyManager for Create and Metadata (with
// injected failures); the other operations are tested against the real
// keystore over a real bbolt file (realstore_test.go), and calling them
// here panics on the nil embedded interface.
type fakeKeys struct {
	keyManager
	mu      sync.Mutex
	keys    map[keystore.KeyID]keystore.Key
	err     error // when set, every call fails with it
	creates int   // Create calls that reached the store
}

func newFakeKeys() *fakeKeys { return &fakeKeys{keys: map[keystore.KeyID]keystore.Key{}} }

func (f *fakeKeys) Create(_ context.Context, k keystore.Key) (keystore.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	if f.err != nil {
		return keystore.Key{}, f.err
	}
	if old, ok := f.keys[k.ID]; ok {
		if old.Value == k.Value {
			return keystore.Key{}, fmt.Errorf("%w: %w: %s", keystore.ErrExists, keystore.ErrSameKey, k.ID)
		}
		return keystore.Key{}, fmt.Errorf("%w: %s", keystore.ErrExists, k.ID)
	}
	k.Created, k.Updated = testNow, testNow
	f.keys[k.ID] = k
	return k, nil
}

func (f *fakeKeys) Metadata(_ context.Context, id keystore.KeyID) (keystore.Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return keystore.Key{}, f.err
	}
	k, ok := f.keys[id]
	if !ok {
		return keystore.Key{}, fmt.Errorf("%w: %s", keystore.ErrNotFound, id)
	}
	k.Value = [16]byte{}
	return k, nil
}

func (f *fakeKeys) stored(id keystore.KeyID) (keystore.Key, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[id]
	return k, ok
}

// syncBuffer is written by the server while the test reads it.
type syncBuffer = syncbuf.Buffer

// failWriter fails every write after the first ok ones.
type failWriter struct {
	mu     sync.Mutex
	ok     int
	writes int
	buf    bytes.Buffer
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.writes > w.ok {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(p)
}

type testEnv struct {
	h     *Handler
	keys  *fakeKeys
	audit *syncBuffer
	log   *syncBuffer
	reg   *prometheus.Registry
}

func newEnv(t testing.TB, mod func(*Options)) *testEnv {
	t.Helper()
	creds, err := ParseCredentials([]byte(testCredentialsText()))
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{keys: newFakeKeys(), audit: &syncBuffer{}, log: &syncBuffer{}, reg: prometheus.NewRegistry()}
	o := Options{
		Log:         slog.New(slog.NewJSONHandler(env.log, nil)),
		Registerer:  env.reg,
		Keys:        env.keys,
		Credentials: creds,
		Audit:       NewAudit(env.audit, func() time.Time { return testNow }),
		Now:         func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	env.h = h
	return env
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t testing.TB) problem {
	t.Helper()
	var p problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json (body %s)", ct, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	return p
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// do sends one request; secret "" sends no Authorization header.
func (e *testEnv) do(t testing.TB, method, target, secret, body string, hdr ...string) response {
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
	e.h.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// auditLines parses the audit log written so far.
func auditLines(t testing.TB, s string) []map[string]any {
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

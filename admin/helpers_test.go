package admin

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/admintest"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/keystore"
)

// Test secrets, one per role (see internal/admintest).
const (
	secretReader   = admintest.SecretReader
	secretWriter   = admintest.SecretWriter
	secretExporter = admintest.SecretExporter
	secretAdmin    = admintest.SecretAdmin
)

var testNow = admintest.Now

// The plane's codes and reasons the tests expect.
const (
	codeConflict            = "conflict"
	codeInvalidRequest      = "invalid_request"
	codeNotConfigured       = "not_configured"
	codeNotFound            = "not_found"
	reasonAudit             = plane.ReasonAudit
	reasonExists            = plane.ReasonExists
	reasonInvalidCredential = plane.ReasonInvalidCredential
	reasonInvalidKID        = plane.ReasonInvalidKID
	reasonMissingCredential = plane.ReasonMissingCredential
	reasonNoRoute           = plane.ReasonNoRoute
	reasonRole              = plane.ReasonRole
	reasonStore             = plane.ReasonStore
	reasonTokenInQuery      = plane.ReasonCredentialInQuery
	reasonUnknownKey        = plane.ReasonUnknownKey
)

// fakeKeys is a hand-written plane.Keys for Create and Metadata (with
// injected failures); the other operations are tested against the real
// keystore over a real bbolt file (realstore_test.go), and calling them
// here panics on the nil embedded interface.
type fakeKeys struct {
	plane.Keys
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
		if old.Value == k.Value && old.Type == k.Type && bytes.Equal(old.IV, k.IV) {
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
type failWriter = admintest.FailWriter

// testOptions are the options of a test plane and of the native API on it.
type testOptions struct {
	planeOptions
	Options
}

type planeOptions = plane.Options

type testEnv struct {
	*admintest.Env
	keys  *fakeKeys
	audit *syncBuffer
	log   *syncBuffer
}

// newEnv is a plane with the native API over fakeKeys; mod may change the
// options (Keys among them).
func newEnv(t testing.TB, mod func(*testOptions)) *testEnv {
	t.Helper()
	keys := newFakeKeys()
	var native Options
	env := admintest.New(t, keys, func(o *plane.Options) {
		to := testOptions{planeOptions: *o, Options: Options{Now: func() time.Time { return testNow }}}
		if mod != nil {
			mod(&to)
		}
		*o, native = to.planeOptions, to.Options
	}, func(p *plane.Plane) error { return Register(p, native) })
	return &testEnv{Env: env, keys: keys, audit: env.Audit, log: env.Log}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t testing.TB) httpedge.Problem {
	t.Helper()
	return admintest.Response{Status: r.status, Header: r.header, Body: r.body}.Problem(t)
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	admintest.Response{Body: r.body}.JSON(t, v)
}

// do sends one request; secret "" sends no Authorization header.
func (e *testEnv) do(t testing.TB, method, target, secret, body string, hdr ...string) response {
	t.Helper()
	r := e.Do(t, method, target, secret, body, hdr...)
	return response{status: r.Status, header: r.Header, body: r.Body}
}

// auditLines parses the audit log written so far.
func auditLines(t testing.TB, s string) []map[string]any { return admintest.AuditLines(t, s) }

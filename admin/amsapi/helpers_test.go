package amsapi

import (
	"net/http"
	"testing"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/admintest"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/keystest"
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

const (
	kid1     = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	keyB64   = "7lIBmBeF+EGDaguNx7EgQA=="
	seedKID1 = "d83cb192-1135-4c4e-9267-120b0d762856"
	seedKID2 = "9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb"
)

// The plane's codes and reasons the tests expect.
const (
	codeNotConfigured = "not_configured"
	reasonAudit       = plane.ReasonAudit
	reasonExists      = plane.ReasonExists
	reasonInvalidKID  = plane.ReasonInvalidKID
	reasonNoRoute     = plane.ReasonNoRoute
	reasonRole        = plane.ReasonRole
	reasonUnknownKey  = plane.ReasonUnknownKey
)

type syncBuffer = syncbuf.Buffer

type failWriter = admintest.FailWriter

type planeOptions = plane.Options

// testOptions are the options of a test plane and of the AMS API on it; the
// native API is mounted too, with the same public URL.
type testOptions struct {
	planeOptions
	Options
}

type testEnv struct {
	*admintest.Env
	audit *syncBuffer
	log   *syncBuffer
}

// newEnv is a plane with the native and the AMS API; mod may change the
// options (Keys must be set).
func newEnv(t testing.TB, mod func(*testOptions)) *testEnv {
	t.Helper()
	var ams Options
	env := admintest.New(t, nil, func(o *plane.Options) {
		to := testOptions{planeOptions: *o}
		if mod != nil {
			mod(&to)
		}
		*o, ams = to.planeOptions, to.Options
	}, func(p *plane.Plane) error {
		if err := admin.Register(p, admin.Options{PublicURL: ams.PublicURL}); err != nil {
			return err
		}
		return Register(p, ams)
	})
	return &testEnv{Env: env, audit: env.Audit, log: env.Log}
}

// newRealEnv is newEnv over the real keystore on a real bbolt file.
func newRealEnv(t *testing.T, mod func(*testOptions)) (*testEnv, *keystore.Keys) {
	t.Helper()
	keys := newRealKeys(t)
	env := newEnv(t, func(o *testOptions) {
		o.Keys = keys
		o.PublicURL = "https://keys.example.com/"
		if mod != nil {
			mod(o)
		}
	})
	return env, keys
}

// newRealKeys is a keystore.Keys over a real bbolt file.
func newRealKeys(tb testing.TB) *keystore.Keys {
	tb.Helper()
	return keystest.New(tb, keystore.Options{})
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

// noSecrets fails the test if an answer, the log or the audit log holds
// any of secrets.
func noSecrets(t *testing.T, env *testEnv, body []byte, secrets ...string) {
	t.Helper()
	env.NoSecrets(t, body, secrets...)
}

// auditOperations is the audit log as "operation:result,...".
func auditOperations(t *testing.T, env *testEnv) string { return env.AuditOperations(t) }

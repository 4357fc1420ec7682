package plane

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/keystore"
)

// fakeKeys is a Keys whose methods are never called.
type fakeKeys struct{ Keys }

func TestNewRequiresDependencies(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	creds, _ := credentials.Parse(nil)
	for name, o := range map[string]Options{
		"no log":                 {Registerer: prometheus.NewRegistry()},
		"no registerer":          {Log: log},
		"credentials, no keys":   {Log: log, Registerer: prometheus.NewRegistry(), Credentials: creds, Audit: audit.New(io.Discard, nil)},
		"credentials, no audit":  {Log: log, Registerer: prometheus.NewRegistry(), Credentials: creds, Keys: fakeKeys{}},
		"check without function": {Log: log, Registerer: prometheus.NewRegistry(), Checks: []Check{{Name: "x"}}},
		"duplicate check": {Log: log, Registerer: prometheus.NewRegistry(), Checks: []Check{
			{Name: "x", Check: func(context.Context) error { return nil }},
			{Name: "x", Check: func(context.Context) error { return nil }},
		}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// countingKeys counts the key store calls that reach it.
type countingKeys struct {
	Keys
	mu    sync.Mutex
	calls []string
}

func (k *countingKeys) note(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, name)
}

func (k *countingKeys) Metadata(_ context.Context, id keystore.KeyID) (keystore.Key, error) {
	k.note("Metadata")
	return keystore.Key{ID: id}, nil
}

func (k *countingKeys) Create(_ context.Context, key keystore.Key) (keystore.Key, error) {
	k.note("Create")
	return key, nil
}

// switchWriter writes until fail is set.
type switchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	fail bool
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(p)
}

func (w *switchWriter) set(fail bool) { w.mu.Lock(); w.fail = fail; w.mu.Unlock() }

func (w *switchWriter) lines(t *testing.T) []audit.Record {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []audit.Record
	for line := range strings.Lines(w.buf.String()) {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, r)
	}
	w.buf.Reset()
	return out
}

const (
	testReader = "kda_test-reader"
	testWriter = "kda_test-writer"
)

var (
	testKID   = keystore.KeyID{1, 2, 3}
	opRead    = Operation{Name: "t.read", Perm: credentials.Read}
	opWrite   = Operation{Name: "t.write", Perm: credentials.Write, Writes: true}
	opMisuse  = Operation{Name: "t.misuse", Perm: credentials.Read}
	opRefused = Operation{Name: "t.refused", Perm: credentials.Write, Writes: true}
)

// newTestPlane is a plane with four test operations: a read that names a
// key, a write, a read that (wrongly) asks for the writer, and a write
// refused before it begins.
func newTestPlane(t *testing.T) (*Plane, *countingKeys, *switchWriter, *prometheus.Registry) {
	t.Helper()
	return newTestPlaneWith(t, nil)
}

// newTestPlaneWith is newTestPlane with mod applied to the options.
func newTestPlaneWith(t *testing.T, mod func(*Options)) (*Plane, *countingKeys, *switchWriter, *prometheus.Registry) {
	t.Helper()
	creds, err := credentials.Parse([]byte("r reader " + credentials.HashSecret(testReader) + "\nw writer " + credentials.HashSecret(testWriter) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{}
	w := &switchWriter{}
	reg := prometheus.NewRegistry()
	o := Options{Log: slog.New(slog.DiscardHandler), Registerer: reg, Keys: keys, Credentials: creds, Audit: audit.New(w, nil)}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p.Handle(http.MethodGet, "/api/things/:id", opRead, func(c *Call) (Answer, error) {
		c.Name(testKID)
		k, err := c.Keys().Metadata(c.Context(), testKID)
		return JSON(http.StatusOK, map[string]string{"id": k.ID.String(), "param": c.Param("id")}), err
	})
	p.Handle(http.MethodPost, "/api/things", opWrite, func(c *Call) (Answer, error) {
		keys, err := c.Begin(testKID)
		if err != nil {
			return Answer{}, err
		}
		k, err := keys.Create(c.Context(), keystore.Key{ID: testKID})
		return JSON(http.StatusCreated, map[string]string{"id": k.ID.String()}).With("Location", "/api/things/x"), err
	})
	p.Handle(http.MethodGet, "/api/misuse", opMisuse, func(c *Call) (Answer, error) {
		_, err := c.Begin(testKID)
		return Answer{}, err
	})
	p.Handle(http.MethodPost, "/api/refused", opRefused, func(*Call) (Answer, error) {
		return Answer{}, Invalid("bad_thing", "the thing is bad")
	})
	return p, keys, w, reg
}

func send(p http.Handler, method, target, secret string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	if secret != "" {
		r.Header.Set("Authorization", "Bearer "+secret)
	}
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w
}

func results(recs []audit.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Operation+":"+string(r.Result)+":"+strings.Join(r.KIDs, ","))
	}
	return strings.Join(s, " ")
}

func counted(t *testing.T, reg *prometheus.Registry, op string, result audit.Result) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "keydelivery_admin_operations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == op && labels["result"] == string(result) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestOperationsAreAudited: every wrapped operation writes its outcome
// exactly once, with the audit's result word; a write writes "started"
// first; each is counted once.
func TestOperationsAreAudited(t *testing.T) {
	p, keys, w, reg := newTestPlane(t)
	kid := testKID.String()
	for _, c := range []struct {
		method, target, secret string
		status                 int
		audit                  string
		op                     string
		result                 audit.Result
	}{
		{"GET", "/api/things/a", testReader, 200, "t.read:ok:" + kid, "t.read", audit.OK},
		{"POST", "/api/things", testWriter, 201, "t.write:started:" + kid + " t.write:ok:" + kid, "t.write", audit.OK},
		{"POST", "/api/things", testReader, 403, "t.write:forbidden:", "t.write", audit.Forbidden},
		{"POST", "/api/refused", testWriter, 400, "t.refused:invalid:", "t.refused", audit.Invalid},
		{"GET", "/api/misuse", testReader, 500, "t.misuse:error:", "t.misuse", audit.Error},
	} {
		before := counted(t, reg, c.op, c.result)
		r := send(p, c.method, c.target, c.secret)
		if r.Code != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.target, r.Code, r.Body, c.status)
		}
		if got := results(w.lines(t)); got != c.audit {
			t.Errorf("%s %s: audit %q, want %q", c.method, c.target, got, c.audit)
		}
		if n := counted(t, reg, c.op, c.result) - before; n != 1 {
			t.Errorf("%s %s: counted %v times as %s", c.method, c.target, n, c.result)
		}
	}
	if got := strings.Join(keys.calls, ","); got != "Metadata,Create" {
		t.Errorf("store calls %s, want Metadata,Create (the refused and forbidden ones reach nothing)", got)
	}
}

// TestAuditFailsClosed: with the audit log failing, a write does not reach
// the store and a read does not answer its result: both are 503
// audit_unavailable, counted once as unavailable.
func TestAuditFailsClosed(t *testing.T) {
	p, keys, w, reg := newTestPlane(t)
	w.set(true)
	for _, c := range []struct{ method, target, secret, op string }{
		{"POST", "/api/things", testWriter, "t.write"},
		{"GET", "/api/things/a", testReader, "t.read"},
	} {
		before := counted(t, reg, c.op, audit.Unavailable)
		r := send(p, c.method, c.target, c.secret)
		if r.Code != 503 || !strings.Contains(r.Body.String(), `"reason":"audit_unavailable"`) || r.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %d %s", c.method, c.target, r.Code, r.Body)
		}
		if strings.Contains(r.Body.String(), `"id"`) || r.Header().Get("Location") != "" {
			t.Errorf("%s %s: the answer was disclosed: %s", c.method, c.target, r.Body)
		}
		if n := counted(t, reg, c.op, audit.Unavailable) - before; n != 1 {
			t.Errorf("%s %s: counted %v times", c.method, c.target, n)
		}
	}
	if got := strings.Join(keys.calls, ","); got != "Metadata" {
		t.Errorf("store calls %s: the write reached the store", got)
	}
}

// TestRoutingAnswers: the plane's answers before any operation runs.
func TestRoutingAnswers(t *testing.T) {
	p, _, w, _ := newTestPlane(t)
	for _, c := range []struct {
		method, target, secret string
		status                 int
		allow, reason          string
	}{
		{"PUT", "/api/things", testReader, 405, "POST", ""},
		{"DELETE", "/api/things/a", testReader, 405, "GET", ""},
		{"OPTIONS", "/api/things/a", testReader, 405, "GET", ""},
		{"GET", "/api/nothing", testReader, 404, "", "no_route"},
		{"GET", "/api/nothing", "", 401, "", "missing_credential"},
		{"PUT", "/api/things", "", 401, "", "missing_credential"},
		{"GET", "/api/things/a", "kda_wrong", 401, "", "invalid_credential"},
		{"GET", "/api/things/a?access_token=x", testReader, 400, "", "credential_in_query"},
	} {
		r := send(p, c.method, c.target, c.secret)
		if r.Code != c.status || r.Header().Get("Allow") != c.allow || !strings.Contains(r.Body.String(), `"reason":"`+c.reason+`"`) && c.reason != "" {
			t.Errorf("%s %s: %d Allow %q %s", c.method, c.target, r.Code, r.Header().Get("Allow"), r.Body)
		}
		if r.Header().Get("Cache-Control") != "no-store" || r.Header().Get("X-Request-Id") == "" {
			t.Errorf("%s %s: headers %v", c.method, c.target, r.Header())
		}
	}
	// Routing refusals write no audit record; the three failed
	// authentications (one address, within a second) write one, which
	// counts the first (issue 12: failed admin authentications are
	// audited at a bounded rate with counts).
	if recs := w.lines(t); results(recs) != "authenticate:unauthorized:" || recs[0].Count != 1 || recs[0].Credential != "-" {
		t.Errorf("refusals before an operation wrote audit records: %q %+v", results(recs), recs)
	}
}

// TestRewrite: a pre-router's rewrite reaches the routes as an ordinary
// route parameter; a path it does not change is untouched.
func TestRewrite(t *testing.T) {
	p, _, _, _ := newTestPlane(t)
	p.Rewrite(func(u *url.URL) {
		if rest, ok := strings.CutPrefix(u.EscapedPath(), "/api/Things('"); ok {
			key, _, _ := strings.Cut(rest, "')")
			key, _ = url.PathUnescape(key)
			u.RawPath = "/api/things/" + url.PathEscape(key)
			u.Path, _ = url.PathUnescape(u.RawPath)
		}
	})
	r := send(p, "GET", "/api/Things('a%2Fb')", testReader)
	if r.Code != 200 || !strings.Contains(r.Body.String(), `"param":"a/b"`) {
		t.Errorf("rewritten: %d %s", r.Code, r.Body)
	}
	if r := send(p, "GET", "/api/things/c", testReader); r.Code != 200 || !strings.Contains(r.Body.String(), `"param":"c"`) {
		t.Errorf("plain: %d %s", r.Code, r.Body)
	}
}

// TestProtectAndBasic: a protected prefix needs a credential like /api/,
// Bearer or Basic (name and secret both matching one credential); with
// text errors its refusals are plain text; a TextError is written as it
// is and audited by its status.
func TestProtectAndBasic(t *testing.T) {
	p, _, w, _ := newTestPlane(t)
	p.Protect("/text/", true)
	p.Handle(http.MethodPost, "/text/op", opRefused, func(c *Call) (Answer, error) {
		if c.Header("X-Fail") != "" {
			return Answer{}, &TextError{Status: 422, Reason: "speke_thing", Text: "Missing CPIX@contentId", Header: [][2]string{{"X-Speke-Version", "2.0"}}}
		}
		return Blob(http.StatusOK, "application/xml", []byte("<ok/>")), nil
	})
	basicAuth := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	for _, c := range []struct {
		name, target, auth string
		status             int
		body               string
	}{
		{"bearer", "/text/op", "Bearer " + testWriter, 200, "<ok/>"},
		{"basic", "/text/op", basicAuth("w", testWriter), 200, "<ok/>"},
		{"basic scheme in lower case", "/text/op", strings.Replace(basicAuth("w", testWriter), "Basic", "basic", 1), 200, "<ok/>"},
		{"basic on /api/ is not a credential", "/api/refused", basicAuth("w", testWriter), 401, ""},
		{"basic with another credential's name", "/text/op", basicAuth("w", testReader), 401, "the admin credential is not valid\n"},
		{"basic with a wrong secret", "/text/op", basicAuth("r", "kda_wrong"), 401, "the admin credential is not valid\n"},
		{"basic without a password", "/text/op", basicAuth("r", ""), 401, ""},
		{"basic not base64", "/text/op", "Basic %%%", 401, ""},
		{"none", "/text/op", "", 401, ""},
		{"unknown path", "/text/nothing", "", 401, ""},
		{"unknown path with a credential", "/text/nothing", "Bearer " + testReader, 404, "no such endpoint\n"},
	} {
		r := httptest.NewRequest(http.MethodPost, c.target, nil)
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, r)
		if rec.Code != c.status || c.body != "" && rec.Body.String() != c.body {
			t.Errorf("%s: %d %q", c.name, rec.Code, rec.Body)
		}
		if strings.HasPrefix(c.target, "/text/") && rec.Code >= 400 && rec.Header().Get("Content-Type") != "text/plain; charset=UTF-8" {
			t.Errorf("%s: content type %q, want plain text", c.name, rec.Header().Get("Content-Type"))
		}
		if rec.Code == 401 && strings.HasPrefix(c.target, "/text/") {
			if got := rec.Header().Values("WWW-Authenticate"); len(got) != 2 || got[0] != realm || got[1] != basicRealm {
				t.Errorf("%s: WWW-Authenticate %q, want Bearer and Basic", c.name, got)
			}
		}
	}
	if got := send(p, "GET", "/api/nothing", "").Header().Values("WWW-Authenticate"); len(got) != 1 {
		t.Errorf("under /api/ the challenge is Bearer only: %q", got)
	}
	r := httptest.NewRequest(http.MethodPost, "/text/op", nil)
	r.Header.Set("Authorization", "Bearer "+testWriter)
	r.Header.Set("X-Fail", "1")
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, r)
	if rec.Code != 422 || rec.Body.String() != "Missing CPIX@contentId\n" || rec.Header().Get("X-Speke-Version") != "2.0" {
		t.Errorf("TextError: %d %q %v", rec.Code, rec.Body, rec.Header())
	}
	recs := w.lines(t)
	if got := results(recs); !strings.HasSuffix(got, "refused:invalid:") {
		t.Errorf("the TextError was audited as %q", got)
	}
	for _, bad := range []string{"", "/", "speke/", "/speke", "/api/"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Protect(%q) accepted", bad)
				}
			}()
			p.Protect(bad, false)
		}()
	}
}

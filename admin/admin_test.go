package admin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/keystore"
)

const (
	kid1    = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	keyB64  = "7lIBmBeF+EGDaguNx7EgQA=="
	ivB64   = "AAECAwQFBgcICQoLDA0ODw=="
	zeroB64 = "AAAAAAAAAAAAAAAAAAAAAA=="
)

// readiness is the body of GET /readyz.
type readiness struct {
	Status  string            `json:"status"`
	Checks  map[string]string `json:"checks"`
	Details map[string]string `json:"details"`
}

func TestHealthz(t *testing.T) {
	env := newEnv(t, nil)
	r := env.do(t, "GET", "/healthz", "", "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Request-Id") == "" {
		t.Errorf("headers %v", r.header)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	t.Run("all ok", func(t *testing.T) {
		env := newEnv(t, func(o *testOptions) {
			o.Checks = []plane.Check{{Name: "store", Check: ok}, {Name: "trust", Check: ok}}
		})
		r := env.do(t, "GET", "/readyz", "", "")
		var body readiness
		r.json(t, &body)
		if r.status != 200 || body.Status != "ok" || body.Checks["store"] != "ok" || body.Checks["trust"] != "ok" {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
	})
	t.Run("one fails", func(t *testing.T) {
		env := newEnv(t, func(o *testOptions) {
			o.Checks = []plane.Check{
				{Name: "store", Check: func(context.Context) error { return keystore.ErrUnavailable }},
				{Name: "trust", Check: ok},
			}
		})
		r := env.do(t, "GET", "/readyz", "", "")
		var body readiness
		r.json(t, &body)
		if r.status != 503 || body.Status != "unavailable" || body.Checks["store"] != keystore.ErrUnavailable.Error() || body.Checks["trust"] != "ok" {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
	})
	t.Run("a detail while ready", func(t *testing.T) {
		detail := ""
		env := newEnv(t, func(o *testOptions) {
			o.Checks = []plane.Check{{Name: "store", Check: ok},
				{Name: "trust", Check: ok, Detail: func() string { return detail }}}
		})
		r := env.do(t, "GET", "/readyz", "", "")
		if r.status != 200 || strings.Contains(string(r.body), "details") {
			t.Fatalf("readyz without a detail: %d %s", r.status, r.body)
		}
		detail = "keyvault https://v/certificates/c: 2 failed attempts; keeping the last good set"
		r = env.do(t, "GET", "/readyz", "", "")
		var body readiness
		r.json(t, &body)
		if r.status != 200 || body.Status != "ok" || body.Details["trust"] != detail || len(body.Details) != 1 {
			t.Fatalf("readyz with a detail: %d %s", r.status, r.body)
		}
	})
	t.Run("checks run in parallel with a deadline", func(t *testing.T) {
		// In a synctest bubble the clock is fake: it moves only when every
		// goroutine waits, so the elapsed time below is the checks' own,
		// whatever else the machine is doing.
		synctest.Test(t, func(t *testing.T) {
			var running atomic.Int32
			slow := func(ctx context.Context) error {
				running.Add(1)
				<-ctx.Done()
				return ctx.Err()
			}
			stuck := func(context.Context) error { time.Sleep(3 * time.Second); return nil } // ignores its context
			env := newEnv(t, func(o *testOptions) {
				o.Checks = []plane.Check{{Name: "a", Check: slow}, {Name: "b", Check: slow}, {Name: "c", Check: stuck}}
			})
			start := time.Now()
			r := env.do(t, "GET", "/readyz", "", "")
			if d := time.Since(start); d != plane.CheckTimeout {
				t.Errorf("readyz took %v, want the one check timeout %v (checks in parallel, the stuck one abandoned)", d, plane.CheckTimeout)
			}
			var body readiness
			r.json(t, &body)
			if r.status != 503 || !strings.Contains(body.Checks["a"], "timed out") || !strings.Contains(body.Checks["c"], "timed out") {
				t.Fatalf("readyz: %d %s", r.status, r.body)
			}
			if running.Load() != 2 {
				t.Errorf("%d checks ran", running.Load())
			}
			time.Sleep(3 * time.Second) // let the abandoned check end (fake time)
		})
	})
}

func TestMetricsEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	env := newEnv(t, func(o *testOptions) {
		o.Registerer = reg
		o.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics here") })
	})
	r := env.do(t, "GET", "/metrics", "", "")
	if r.status != 200 || string(r.body) != "metrics here" {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
	env.do(t, "POST", "/api/keys", secretWriter, `{}`)
	env.do(t, "POST", "/api/keys", secretReader, `{}`)
	env.do(t, "GET", "/api/keys/"+kid1, "wrong", "")
	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{"keys.create", "ok", 1},
		{"keys.create", "forbidden", 1},
		{"authenticate", "unauthorized", 1},
		{"keys.get", "ok", 0},
	} {
		got := counterValue(t, reg, "keydelivery_admin_operations_total", map[string]string{"operation": c.op, "result": c.result})
		if got != c.want {
			t.Errorf("operations{%s,%s} = %v, want %v", c.op, c.result, got, c.want)
		}
	}
	if n := counterValue(t, reg, "keydelivery_http_requests_total", map[string]string{"plane": "admin", "route": "/api/keys", "class": "2xx"}); n != 1 {
		t.Errorf("http requests{plane=admin,route=/api/keys,class=2xx} = %v", n)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "keydelivery_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var plane string
			for _, l := range m.GetLabel() {
				if l.GetName() == "plane" {
					plane = l.GetValue()
				}
			}
			if plane != "admin" {
				t.Errorf("http metric without plane=admin: %v", m.GetLabel())
			}
		}
	}
}

// counterValue returns the value of the one series of a counter in reg with
// the given labels, or -1 if there is none.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func TestAuthentication(t *testing.T) {
	env := newEnv(t, nil)
	for _, c := range []struct {
		name       string
		method     string
		target     string
		header     string // Authorization
		status     int
		code       string
		reason     string
		authHeader bool
	}{
		{"no credential", "GET", "/api/keys/" + kid1, "", 401, "unauthorized", reasonMissingCredential, true},
		{"wrong secret", "GET", "/api/keys/" + kid1, "Bearer nope", 401, "unauthorized", reasonInvalidCredential, true},
		{"empty bearer", "GET", "/api/keys/" + kid1, "Bearer ", 401, "unauthorized", reasonMissingCredential, true},
		{"basic scheme", "GET", "/api/keys/" + kid1, "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secretAdmin)), 401, "unauthorized", reasonMissingCredential, true},
		{"secret without scheme", "GET", "/api/keys/" + kid1, secretAdmin, 401, "unauthorized", reasonMissingCredential, true},
		{"hash instead of secret", "GET", "/api/keys/" + kid1, "Bearer " + credentials.HashSecret(secretAdmin), 401, "unauthorized", reasonInvalidCredential, true},
		{"unknown route needs a credential", "GET", "/api/nothing", "", 401, "unauthorized", reasonMissingCredential, true},
		{"unknown route with credential", "GET", "/api/nothing", "Bearer " + secretReader, 404, "not_found", reasonNoRoute, false},
		{"token in query", "GET", "/api/keys/" + kid1 + "?token=" + secretAdmin, "", 400, "invalid_request", reasonTokenInQuery, false},
		{"token in query with header", "GET", "/api/keys/" + kid1 + "?TOKEN=" + secretAdmin, "Bearer " + secretAdmin, 400, "invalid_request", reasonTokenInQuery, false},
		{"access_token in query", "GET", "/api/token-certificates?access_token=x", "Bearer " + secretAdmin, 400, "invalid_request", reasonTokenInQuery, false},
		{"reader cannot create", "POST", "/api/keys", "Bearer " + secretReader, 403, "forbidden", reasonRole, false},
		{"exporter cannot create", "POST", "/api/keys", "Bearer " + secretExporter, 403, "forbidden", reasonRole, false},
		{"scheme in lower case", "GET", "/api/token-certificates", "bearer " + secretReader, 200, "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := env.do(t, c.method, c.target, "", "", "Authorization", c.header)
			if r.status != c.status {
				t.Fatalf("status %d, want %d (%s)", r.status, c.status, r.body)
			}
			if c.status == 200 {
				return
			}
			p := r.problem(t)
			if p.Code != c.code || p.Reason != c.reason || p.Status != c.status || p.RequestID == "" || p.RequestID != r.header.Get("X-Request-Id") {
				t.Errorf("problem %+v", p)
			}
			if got := r.header.Get("WWW-Authenticate"); c.authHeader != (got != "") || c.authHeader && got != `Bearer realm="keydelivery-admin"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if strings.Contains(string(r.body), secretAdmin) {
				t.Error("the answer quotes the secret")
			}
		})
	}
	if env.keys.creates != 0 {
		t.Errorf("%d creates reached the store", env.keys.creates)
	}
	if strings.Contains(env.log.String(), secretAdmin) || strings.Contains(env.audit.String(), secretAdmin) {
		t.Error("a secret reached the log or the audit log")
	}
	if !strings.Contains(env.log.String(), "token=REDACTED") {
		t.Errorf("query credential not redacted in the log: %s", env.log.String())
	}
}

func TestRoles(t *testing.T) {
	env := newEnv(t, nil)
	for _, c := range []struct {
		secret           string
		create, get, crt int
	}{
		{secretReader, 403, 404, 200},
		{secretWriter, 201, 404, 200},
		{secretExporter, 403, 404, 200},
		{secretAdmin, 201, 404, 200},
	} {
		if r := env.do(t, "POST", "/api/keys", c.secret, `{}`); r.status != c.create {
			t.Errorf("%s create: %d, want %d", c.secret, r.status, c.create)
		}
		if r := env.do(t, "GET", "/api/keys/"+kid1, c.secret, ""); r.status != c.get {
			t.Errorf("%s get: %d, want %d", c.secret, r.status, c.get)
		}
		if r := env.do(t, "GET", "/api/token-certificates", c.secret, ""); r.status != c.crt {
			t.Errorf("%s certificates: %d, want %d", c.secret, r.status, c.crt)
		}
	}
}

func TestCreateKeyDefaults(t *testing.T) {
	env := newEnv(t, nil)
	r := env.do(t, "POST", "/api/keys", secretWriter, "")
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var fields map[string]any
	r.json(t, &fields)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"created", "creationMethod", "id", "name", "type", "typeName", "updated"}; !slices.Equal(keys, want) {
		t.Errorf("metadata fields %v, want %v", keys, want)
	}
	var m keyMetadata
	r.json(t, &m)
	id, err := keystore.ParseKeyID(m.ID)
	if err != nil || m.ID != id.String() {
		t.Fatalf("id %q: %v", m.ID, err)
	}
	if id[6]>>4 != 4 || id[8]>>6 != 2 {
		t.Errorf("generated id %s is not a version 4 UUID", id)
	}
	if m.Type != 4 || m.TypeName != "EnvelopeEncryption" || m.CreationMethod != "Random" || !m.Created.Equal(testNow) {
		t.Errorf("metadata %+v", m)
	}
	if r.header.Get("Location") != "/api/keys/"+m.ID {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	k, ok := env.keys.stored(id)
	if !ok || k.Value == ([16]byte{}) || k.Method != keystore.CreatedRandom || k.IV != nil {
		t.Fatalf("stored %+v", k)
	}
	if strings.Contains(string(r.body), base64.StdEncoding.EncodeToString(k.Value[:])) {
		t.Error("answer holds key material")
	}
}

func TestCreateKeyImport(t *testing.T) {
	for _, form := range []string{kid1, strings.ToUpper(kid1), "{" + kid1 + "}", strings.ReplaceAll(kid1, "-", ""), "nb:kid:UUID:" + kid1} {
		t.Run(form, func(t *testing.T) {
			env := newEnv(t, nil)
			body := fmt.Sprintf(`{"id":%q,"name":"movie 1","type":"CommonEncryption","key":%q,"iv":%q}`, form, keyB64, ivB64)
			r := env.do(t, "POST", "/api/keys", secretWriter, body)
			if r.status != 201 {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			var m keyMetadata
			r.json(t, &m)
			if m.ID != kid1 || m.Name != "movie 1" || m.Type != 0 || m.TypeName != "CommonEncryption" || m.CreationMethod != "Import" {
				t.Errorf("metadata %+v", m)
			}
			if strings.Contains(string(r.body), keyB64) || strings.Contains(string(r.body), ivB64) {
				t.Error("answer holds key material")
			}
			id, _ := keystore.ParseKeyID(kid1)
			k, _ := env.keys.stored(id)
			want, _ := base64.StdEncoding.DecodeString(keyB64)
			iv, _ := base64.StdEncoding.DecodeString(ivB64)
			if string(k.Value[:]) != string(want) || string(k.IV) != string(iv) || k.Method != keystore.CreatedImport {
				t.Errorf("stored %+v", k)
			}
		})
	}
}

func TestCreateKeyTypes(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want keystore.ContentKeyType
	}{
		{`4`, keystore.EnvelopeEncryption}, {`0`, keystore.CommonEncryption}, {`"1"`, keystore.StorageEncryption},
		{`"configurationencryption"`, keystore.ConfigurationEncryption}, {`null`, keystore.EnvelopeEncryption}, {`""`, keystore.EnvelopeEncryption},
	} {
		env := newEnv(t, nil)
		r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`","type":`+c.raw+`}`)
		var m keyMetadata
		r.json(t, &m)
		if r.status != 201 || m.Type != int(c.want) {
			t.Errorf("type %s: %d %s", c.raw, r.status, r.body)
		}
	}
}

func TestCreateKeyRefusesBadInput(t *testing.T) {
	big := `{"name":"` + strings.Repeat("a", maxKeyBody) + `"}`
	for _, c := range []struct {
		name   string
		body   string
		ctype  string
		status int
		reason string
	}{
		{"unknown field", `{"kid":"` + kid1 + `"}`, "", 400, "unknown_field"},
		{"field in the wrong case", `{"Key":"` + keyB64 + `"}`, "", 400, "unknown_field"},
		{"short inline key seed", `{"keySeed":"abc"}`, "", 400, "invalid_keySeed"},
		{"bad kid", `{"id":"not-a-kid"}`, "", 400, reasonInvalidKID},
		{"kid as number", `{"id":5}`, "", 400, "invalid_id"},
		{"unknown type number", `{"type":3}`, "", 400, "invalid_type"},
		{"unknown type name", `{"type":"PlayReady"}`, "", 400, "invalid_type"},
		{"fractional type", `{"type":4.5}`, "", 400, "invalid_type"},
		{"boolean type", `{"type":true}`, "", 400, "invalid_type"},
		{"key too short", `{"key":"AAECAwQFBgcICQoLDA0O"}`, "", 400, "invalid_key"},
		{"key too long", `{"key":"AAECAwQFBgcICQoLDA0ODxA="}`, "", 400, "invalid_key"},
		{"key 2 bytes (seed example)", `{"key":"AQI="}`, "", 400, "invalid_key"},
		{"key not base64", `{"key":"this is not base64 at all!"}`, "", 400, "invalid_key"},
		{"key without padding", `{"key":"7lIBmBeF+EGDaguNx7EgQA"}`, "", 400, "invalid_key"},
		{"key in base64url", `{"key":"7lIBmBeF-EGDaguNx7EgQA=="}`, "", 400, "invalid_key"},
		{"key non-canonical padding bits", `{"key":"7lIBmBeF+EGDaguNx7EgQB=="}`, "", 400, "invalid_key"},
		{"key with a line break", `{"key":"7lIBmBeF+EGD\naguNx7EgQA=="}`, "", 400, "invalid_key"},
		{"key with a line break, same length", `{"key":"7lIBmBeF+EGD\naguNx7EgQA="}`, "", 400, "invalid_key"},
		{"all-zero key", `{"key":"` + zeroB64 + `"}`, "", 400, "invalid_key"},
		{"key as number", `{"key":16}`, "", 400, "invalid_key"},
		{"iv too short", `{"iv":"AAECAwQFBgcICQoL"}`, "", 400, "invalid_iv"},
		{"iv not canonical", `{"iv":"AAECAwQFBgcICQoLDA0ODx=="}`, "", 400, "invalid_iv"},
		{"name too long", `{"name":"` + strings.Repeat("x", maxNameBytes+1) + `"}`, "", 400, "invalid_name"},
		{"name with control character", `{"name":"a\u0007b"}`, "", 400, "invalid_name"},
		{"not json", `key=abc`, "", 400, "invalid_body"},
		{"array", `[{"id":"` + kid1 + `"}]`, "", 400, "invalid_body"},
		{"null", `null`, "", 400, "invalid_body"},
		{"two objects", `{} {}`, "", 400, "invalid_body"},
		{"trailing garbage", `{}x`, "", 400, "invalid_body"},
		{"too large", big, "", 413, "body_too_large"},
		{"not json content type", `{}`, "text/plain", 415, "unsupported_media_type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newEnv(t, nil)
			hdr := []string{}
			if c.ctype != "" {
				hdr = []string{"Content-Type", c.ctype}
			}
			r := env.do(t, "POST", "/api/keys", secretWriter, c.body, hdr...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			p := r.problem(t)
			if p.Reason != c.reason {
				t.Errorf("reason %q, want %q (%s)", p.Reason, c.reason, p.Detail)
			}
			if strings.Contains(p.Detail, "7lIBmBeF") || strings.Contains(p.Detail, "AAECAwQF") {
				t.Errorf("detail quotes key material: %s", p.Detail)
			}
			if env.keys.creates != 0 {
				t.Error("a refused body reached the store")
			}
			lines := auditLines(t, env.audit.String())
			if len(lines) != 1 || lines[0]["result"] != "invalid" || lines[0]["operation"] != "keys.create" {
				t.Errorf("audit %v", lines)
			}
		})
	}
}

func TestCreateKeyConflict(t *testing.T) {
	env := newEnv(t, nil)
	body := `{"id":"` + kid1 + `","key":"` + keyB64 + `"}`
	if r := env.do(t, "POST", "/api/keys", secretWriter, body); r.status != 201 {
		t.Fatalf("first create: %d %s", r.status, r.body)
	}
	// The same key again (a retried create) is no conflict: 200, unchanged
	// (issue 11: 409 means a real conflict only).
	if r := env.do(t, "POST", "/api/keys", secretWriter, body); r.status != 200 || !strings.Contains(string(r.body), `"status":"unchanged"`) ||
		r.header.Get("Location") != "/api/keys/"+kid1 {
		t.Fatalf("same key again: %d %s", r.status, r.body)
	}
	for name, b := range map[string]string{
		"different key":  `{"id":"` + strings.ToUpper(kid1) + `","key":"` + ivB64 + `"}`,
		"random key":     `{"id":"` + kid1 + `"}`,
		"different type": `{"id":"` + kid1 + `","key":"` + keyB64 + `","type":0}`,
	} {
		r := env.do(t, "POST", "/api/keys", secretWriter, b)
		if r.status != 409 {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		p := r.problem(t)
		if p.Code != "conflict" || p.Reason != "exists" || p.KID != kid1 || !strings.Contains(p.Detail, kid1) {
			t.Errorf("%s: problem %+v", name, p)
		}
	}
	id, _ := keystore.ParseKeyID(kid1)
	k, _ := env.keys.stored(id)
	if base64.StdEncoding.EncodeToString(k.Value[:]) != keyB64 {
		t.Error("stored key was overwritten")
	}
	lines := auditLines(t, env.audit.String())
	if got := lines[len(lines)-1]; got["result"] != "conflict" {
		t.Errorf("audit %v", got)
	}
}

func TestStoreUnavailable(t *testing.T) {
	env := newEnv(t, func(o *testOptions) { o.RetryAfter = 3 * time.Second })
	env.keys.err = fmt.Errorf("%w: %w", keystore.ErrUnavailable, context.DeadlineExceeded)
	for _, r := range []response{
		env.do(t, "POST", "/api/keys", secretWriter, `{}`),
		env.do(t, "GET", "/api/keys/"+kid1, secretReader, ""),
	} {
		if r.status != 503 || r.header.Get("Retry-After") != "3" {
			t.Fatalf("status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
		if p := r.problem(t); p.Code != "unavailable" || p.Reason != reasonStore {
			t.Errorf("problem %+v", p)
		}
	}
}

func TestStoreInternalError(t *testing.T) {
	env := newEnv(t, nil)
	env.keys.err = errors.New("boltstore: secret path /var/lib/x corrupted")
	r := env.do(t, "GET", "/api/keys/"+kid1, secretReader, "")
	if r.status != 500 {
		t.Fatalf("status %d", r.status)
	}
	if p := r.problem(t); p.Code != "internal" || strings.Contains(p.Detail, "corrupted") {
		t.Errorf("problem %+v", p)
	}
	if !strings.Contains(env.log.String(), "corrupted") {
		t.Error("the error is not in the log")
	}
}

func TestGetKey(t *testing.T) {
	env := newEnv(t, nil)
	id, _ := keystore.ParseKeyID(kid1)
	deleted := testNow.Add(time.Hour)
	env.keys.keys[id] = keystore.Key{ID: id, Value: [16]byte{1, 2, 3}, Name: "gone", Type: keystore.EnvelopeEncryption,
		Method: keystore.CreatedImport, Created: testNow, Updated: testNow, DeletedAt: deleted}

	for _, path := range []string{kid1, "%7B" + kid1 + "%7D", "nb:kid:UUID:" + strings.ToUpper(kid1)} {
		r := env.do(t, "GET", "/api/keys/"+path, secretReader, "")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var m keyMetadata
		r.json(t, &m)
		if m.ID != kid1 || m.Name != "gone" || m.DeletedAt == nil || !m.DeletedAt.Equal(deleted) || m.CreationMethod != "Import" {
			t.Errorf("%s: %s", path, r.body)
		}
		stored := env.keys.keys[id]
		if strings.Contains(string(r.body), base64.StdEncoding.EncodeToString(stored.Value[:])) {
			t.Error("answer holds key material")
		}
	}

	r := env.do(t, "GET", "/api/keys/11111111-2222-4333-8444-555555555555", secretReader, "")
	if p := r.problem(t); r.status != 404 || p.Code != "not_found" || p.Reason != reasonUnknownKey || p.KID != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("absent: %d %+v", r.status, p)
	}
	r = env.do(t, "GET", "/api/keys/nope", secretReader, "")
	if p := r.problem(t); r.status != 400 || p.Reason != reasonInvalidKID {
		t.Errorf("bad kid: %d %+v", r.status, p)
	}
	lines := auditLines(t, env.audit.String())
	if got := lines[len(lines)-2]; got["result"] != "not_found" || got["operation"] != "keys.get" {
		t.Errorf("audit %v", got)
	}
}

func TestTokenCertificates(t *testing.T) {
	certs := []auth.Certificate{
		{Subject: "CN=current", SHA1: [20]byte{1}, SHA256: sha256.Sum256([]byte("a")),
			NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour), Source: "/etc/kd/current.pem"},
		{Subject: "CN=old", SHA1: [20]byte{2}, SHA256: sha256.Sum256([]byte("b")),
			NotBefore: testNow.Add(-48 * time.Hour), NotAfter: testNow.Add(-30 * time.Second), Source: "/etc/kd/old.pem"},
		{Subject: "CN=next", SHA1: [20]byte{3}, SHA256: sha256.Sum256([]byte("c")),
			NotBefore: testNow.Add(time.Hour), NotAfter: testNow.Add(48 * time.Hour), Source: "/etc/kd/next.pem"},
	}
	env := newEnv(t, func(o *testOptions) {
		o.Certificates = func() []auth.Certificate { return certs }
		o.TokenLeeway = time.Minute
	})
	r := env.do(t, "GET", "/api/token-certificates", secretReader, "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []map[string]string
	r.json(t, &got)
	if len(got) != 3 {
		t.Fatalf("%s", r.body)
	}
	wantStatus := []string{"valid", "valid", "not_yet_valid"} // "old" expired 30s ago, within the leeway
	for i, c := range certs {
		want := map[string]string{
			"subject": c.Subject, "x5t": c.X5T(), "sha256": hex.EncodeToString(c.SHA256[:]),
			"notBefore": c.NotBefore.Format(time.RFC3339), "notAfter": c.NotAfter.Format(time.RFC3339),
			"status": wantStatus[i], "source": c.Source,
		}
		for k, v := range want {
			if got[i][k] != v {
				t.Errorf("cert %d %s = %q, want %q", i, k, got[i][k], v)
			}
		}
		if len(got[i]) != len(want) {
			t.Errorf("cert %d fields %v", i, got[i])
		}
	}
	// None configured: an empty array, not null.
	env = newEnv(t, nil)
	if r := env.do(t, "GET", "/api/token-certificates", secretReader, ""); strings.TrimSpace(string(r.body)) != "[]" {
		t.Errorf("no certificates: %s", r.body)
	}
}

func TestNoCredentialsConfigured(t *testing.T) {
	env := newEnv(t, func(o *testOptions) { o.Credentials = nil })
	r := env.do(t, "GET", "/api/keys/"+kid1, secretAdmin, "")
	if r.status != 401 {
		t.Fatalf("%d", r.status)
	}
	if r := env.do(t, "GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
}

func TestRequestID(t *testing.T) {
	env := newEnv(t, nil)
	if r := env.do(t, "GET", "/healthz", "", "", "X-Request-Id", "kdctl-123"); r.header.Get("X-Request-Id") != "kdctl-123" {
		t.Errorf("caller's request ID not kept: %q", r.header.Get("X-Request-Id"))
	}
	if r := env.do(t, "GET", "/healthz", "", "", "X-Request-Id", `a"b`+strings.Repeat("x", 100)); len(r.header.Get("X-Request-Id")) != 24 {
		t.Errorf("bad request ID not replaced: %q", r.header.Get("X-Request-Id"))
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	env := newEnv(t, nil)
	r := env.do(t, "GET", "/nothing", "", "")
	if p := r.problem(t); r.status != 404 || p.Code != "not_found" {
		t.Errorf("%d %+v", r.status, p)
	}
	r = env.do(t, "PUT", "/api/keys/"+kid1, secretAdmin, "")
	if p := r.problem(t); r.status != 405 || p.Code != "method_not_allowed" || r.header.Get("Allow") != "GET, DELETE" {
		t.Errorf("PUT /api/keys/{kid}: %d %v %s", r.status, r.header, r.body)
	}
	if r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", r.header)
	}
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PATCH", "/api/keys", 405, "GET, POST"},
		{"GET", "/api/keys/" + kid1 + "/restore", 405, "POST"},
		{"POST", "/api/keys/" + kid1 + "/delivery-url", 405, "GET"},
		{"GET", "/api/keys/" + kid1 + "/nothing", 404, ""},
		{"GET", "/api/nothing/at/all", 404, ""},
	} {
		r := env.do(t, c.method, c.path, secretAdmin, "")
		if r.status != c.status || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", c.method, c.path, r.status, r.header.Get("Allow"), c.status, c.allow)
		}
	}
	// Without a credential, the answer is 401 whatever the route: an
	// anonymous caller learns nothing about the API.
	if r := env.do(t, "PUT", "/api/keys/"+kid1, "", ""); r.status != 401 {
		t.Errorf("anonymous PUT: %d", r.status)
	}
}

package admin

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/keystore"
)

func TestAuditRecordsCreate(t *testing.T) {
	env := newEnv(t, nil)
	r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`","key":"`+keyB64+`"}`, "X-Request-Id", "req-1")
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	lines := auditLines(t, env.audit.String())
	if len(lines) != 2 {
		t.Fatalf("audit %v", lines)
	}
	for i, result := range []string{"started", "ok"} {
		l := lines[i]
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"credential", "kids", "operation", "request_id", "result", "source", "time"}; !slices.Equal(keys, want) {
			t.Errorf("record fields %v, want %v", keys, want)
		}
		kids, _ := l["kids"].([]any)
		if l["credential"] != "writer-1" || l["operation"] != "keys.create" || l["result"] != result ||
			l["request_id"] != "req-1" || l["source"] != "192.0.2.1" || len(kids) != 1 || kids[0] != kid1 ||
			l["time"] != testNow.Format(time.RFC3339) {
			t.Errorf("record %d: %v", i, l)
		}
	}
	if s := env.audit.String(); strings.Contains(s, keyB64) || strings.Contains(s, secretWriter) || strings.Contains(s, credentials.HashSecret(secretWriter)) {
		t.Error("audit log holds key material or a secret")
	}
}

func TestAuditRecordsReadsAndRefusals(t *testing.T) {
	env := newEnv(t, nil)
	env.do(t, "GET", "/api/token-certificates", secretReader, "")
	env.do(t, "POST", "/api/keys", secretReader, `{}`)
	lines := auditLines(t, env.audit.String())
	if len(lines) != 2 {
		t.Fatalf("audit %v", lines)
	}
	if l := lines[0]; l["operation"] != "token-certificates.list" || l["result"] != "ok" || l["credential"] != "reader-1" {
		t.Errorf("read record %v", l)
	}
	if kids, _ := lines[0]["kids"].([]any); kids == nil {
		t.Error("kids is not an array")
	}
	if l := lines[1]; l["operation"] != "keys.create" || l["result"] != "forbidden" || l["credential"] != "reader-1" {
		t.Errorf("refusal record %v", l)
	}
}

// TestAuditFailsClosed: when the audit log cannot be written, a change is
// refused with 503 before it is made, and a read is refused before its
// answer is sent.
func TestAuditFailsClosed(t *testing.T) {
	t.Run("create refused and not done", func(t *testing.T) {
		w := &failWriter{}
		env := newEnv(t, func(o *testOptions) { o.Audit = audit.New(w, nil) })
		r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`"}`)
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if p := r.problem(t); p.Code != "unavailable" || p.Reason != "audit_unavailable" {
			t.Errorf("problem %+v", p)
		}
		if env.keys.creates != 0 || len(env.keys.keys) != 0 {
			t.Error("the key was created without an audit record")
		}
		if !strings.Contains(env.log.String(), "audit record not written") {
			t.Error("the failure is not logged")
		}
	})
	t.Run("read refused", func(t *testing.T) {
		env := newEnv(t, func(o *testOptions) { o.Audit = audit.New(&failWriter{}, nil) })
		id, _ := keystore.ParseKeyID(kid1)
		env.keys.keys[id] = keystore.Key{ID: id, Name: "secret-name"}
		r := env.do(t, "GET", "/api/keys/"+kid1, secretReader, "")
		if r.status != 503 || strings.Contains(string(r.body), "secret-name") {
			t.Fatalf("%d %s", r.status, r.body)
		}
		r = env.do(t, "GET", "/api/token-certificates", secretReader, "")
		if r.status != 503 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("outcome record lost after the change", func(t *testing.T) {
		w := &failWriter{OK: 1} // "started" is written, the outcome is not
		env := newEnv(t, func(o *testOptions) { o.Audit = audit.New(w, nil) })
		r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`"}`)
		if r.status != 201 {
			t.Fatalf("%d %s: a change that was made must be reported", r.status, r.body)
		}
		if !strings.Contains(w.String(), `"result":"started"`) {
			t.Errorf("audit %s", w.String())
		}
	})
}

package admin

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	if s := env.audit.String(); strings.Contains(s, keyB64) || strings.Contains(s, secretWriter) || strings.Contains(s, HashSecret(secretWriter)) {
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
		env := newEnv(t, func(o *Options) { o.Audit = NewAudit(w, nil) })
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
		env := newEnv(t, func(o *Options) { o.Audit = NewAudit(&failWriter{}, nil) })
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
		w := &failWriter{ok: 1} // "started" is written, the outcome is not
		env := newEnv(t, func(o *Options) { o.Audit = NewAudit(w, nil) })
		r := env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`"}`)
		if r.status != 201 {
			t.Fatalf("%d %s: a change that was made must be reported", r.status, r.body)
		}
		if !strings.Contains(w.buf.String(), `"result":"started"`) {
			t.Errorf("audit %s", w.buf.String())
		}
	})
}

func TestAuditConcurrentWritesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer // not safe for concurrent use: Audit must serialise
	a := NewAudit(&buf, nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_ = a.write(auditRecord{Credential: strings.Repeat("c", i), Operation: "op", Result: "ok"})
		})
	}
	wg.Wait()
	n := 0
	for line := range strings.Lines(buf.String()) {
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		n++
	}
	if n != 50 {
		t.Errorf("%d lines", n)
	}
}

func TestOpenAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, c, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.write(auditRecord{Operation: "keys.create", Result: "started"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "earlier line\n{") || !strings.Contains(string(b), `"kids":[]`) {
		t.Errorf("audit file %q", b)
	}
	// Writing after close fails: the caller must then refuse the change.
	if err := a.write(auditRecord{}); err == nil {
		t.Error("write to a closed audit log succeeded")
	}

	newPath := filepath.Join(t.TempDir(), "new.log")
	_, c, err = OpenAudit(newPath)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if fi, err := os.Stat(newPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new audit file: %v %v", fi.Mode(), err)
	}

	for _, p := range []string{"", "-", "stdout"} {
		a, c, err := OpenAudit(p)
		if err != nil || a.w != os.Stdout {
			t.Errorf("%q: %v", p, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("closing stdout audit: %v", err)
		}
	}
	if _, _, err := OpenAudit(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Error("open in a missing directory succeeded")
	}
}

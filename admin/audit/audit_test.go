package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	l := New(&buf, func() time.Time { return now })
	if err := l.Write(Record{Credential: "ops", Source: "127.0.0.1", Operation: "keys.create", KIDs: []string{"k"}, Result: Started, RequestID: "r1"}); err != nil {
		t.Fatal(err)
	}
	if err := l.System("retention", "keys.purge", nil, OK); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-03-01T11:00:00Z","credential":"ops","source":"127.0.0.1","operation":"keys.create","kids":["k"],"result":"started","request_id":"r1"}` + "\n" +
		`{"time":"2026-03-01T11:00:00Z","credential":"system","source":"retention","operation":"keys.purge","kids":[],"result":"ok","request_id":""}` + "\n"
	if buf.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", buf.String(), want)
	}
	var nilLog *Log
	if err := nilLog.Write(Record{}); err == nil {
		t.Error("a nil log accepted a record")
	}
	if err := New(failWriter{}, nil).Write(Record{}); err == nil {
		t.Error("a failed write was not reported")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer // not safe for concurrent use: Log must serialise
	l := New(&buf, nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_ = l.Write(Record{Credential: strings.Repeat("c", i), Operation: "op", Result: OK})
		})
	}
	wg.Wait()
	n := 0
	for line := range strings.Lines(buf.String()) {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		n++
	}
	if n != 50 {
		t.Errorf("%d lines", n)
	}
}

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("earlier line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(Record{Operation: "keys.create", Result: Started}); err != nil {
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
	if err := l.Write(Record{}); err == nil {
		t.Error("write to a closed audit log succeeded")
	}

	newPath := filepath.Join(t.TempDir(), "new.log")
	_, c, err = Open(newPath)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if fi, err := os.Stat(newPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new audit file: %v %v", fi.Mode(), err)
	}

	for _, p := range []string{"", "-", "stdout"} {
		l, c, err := Open(p)
		if err != nil || l.w != os.Stdout {
			t.Errorf("%q: %v", p, err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("closing stdout audit: %v", err)
		}
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Error("open in a missing directory succeeded")
	}
}

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

// diskWriter is a disk that fills: it takes bytes until its space runs out
// (keeping what fits of a write, as write(2) does) and then fails, until
// free gives it room again.
type diskWriter struct {
	buf  bytes.Buffer
	room int
}

func (d *diskWriter) Write(p []byte) (int, error) {
	if d.room <= 0 {
		return 0, errors.New("no space left on device")
	}
	n := min(len(p), d.room)
	d.buf.Write(p[:n])
	d.room -= n
	if n < len(p) {
		return n, errors.New("no space left on device")
	}
	return n, nil
}

// TestFreshLineAfterShortWrite: when the audit disk fills, a record is cut
// off part-way; the next record, once there is room, starts on a line of
// its own instead of being glued to the cut one (which hid a started
// record: 1 of 39 lines unparseable).
func TestFreshLineAfterShortWrite(t *testing.T) {
	d := &diskWriter{room: 1 << 20}
	l := New(d, nil)
	rec := func(i int) Record {
		return Record{Credential: "ops", Operation: "keys.create", KIDs: []string{strings.Repeat("k", i)}, Result: Started, RequestID: "r"}
	}
	written, failed := 0, 0
	for i := range 39 {
		switch i {
		case 10:
			d.room = 30 // the disk fills in the middle of the next record
		case 11:
			d.room = 0 // and stays full
		case 13:
			d.room = 1 << 20 // space is freed
		}
		if err := l.Write(rec(i)); err != nil {
			failed++
		} else {
			written++
		}
	}
	var good, bad int
	for line := range strings.Lines(d.buf.String()) {
		var r Record
		if json.Unmarshal([]byte(line), &r) == nil {
			good++
		} else {
			bad++
		}
	}
	if good != written || bad != 1 || failed != 3 {
		t.Errorf("%d records acknowledged, %d failed; the log has %d parseable and %d unparseable lines, want %d and 1:\n%s", written, failed, good, bad, written, d.buf.String())
	}
}

func TestCount(t *testing.T) {
	var buf bytes.Buffer
	if err := New(&buf, nil).Write(Record{Credential: "-", Operation: "authenticate", Result: Unauthorized, Count: 7}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"count":7`) {
		t.Errorf("record: %s", buf.String())
	}
}

// Package audit writes the admin audit log of keydelivery: one JSON line per
// record,
//
//	{"time","credential","source","operation","kids":[...],"result","request_id"[,"warning"][,"count"]}
//
// An admin write is recorded twice, Started before it is done and its
// outcome after; a read once, with its outcome. Records never hold a
// secret or key bytes: the credential is named, the keys are identified by
// KID.
//
// It is a leaf package (standard library only), so the admin plane, the
// retention sweeper and any other writer of records share it without
// importing an HTTP package.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Result is the result word of a record. These are the audit's own words,
// decided from what happened, not from an HTTP status.
type Result string

// The results.
const (
	// Started: a write is about to change the store. Its outcome follows.
	Started Result = "started"
	// OK: done.
	OK Result = "ok"
	// Conflict: refused because of the stored state (a key exists, a key is
	// not deleted, an import holds conflicting keys).
	Conflict Result = "conflict"
	// NotFound: the key (or key seed, or asset) is not stored.
	NotFound Result = "not_found"
	// Invalid: refused because of the request itself.
	Invalid Result = "invalid"
	// Unavailable: the store or the audit log could not be used; retry.
	Unavailable Result = "unavailable"
	// Forbidden: the credential's role does not allow the operation.
	Forbidden Result = "forbidden"
	// Unauthorized: no valid credential.
	Unauthorized Result = "unauthorized"
	// Error: anything else (a bug, or a server not configured for it).
	Error Result = "error"
)

// Results lists every result word.
func Results() []Result {
	return []Result{Started, OK, Conflict, NotFound, Invalid, Unavailable, Forbidden, Unauthorized, Error}
}

// Record is one line of the audit log.
type Record struct {
	Time       time.Time `json:"time"`
	Credential string    `json:"credential"`
	Source     string    `json:"source"`
	Operation  string    `json:"operation"`
	KIDs       []string  `json:"kids"`
	Result     Result    `json:"result"`
	RequestID  string    `json:"request_id"`
	// Warning, when set, is what deserves attention in what was done (an
	// import of weak keys: "weak_key: ...").
	Warning string `json:"warning,omitempty"`
	// Count, when above 0, says the record stands for that many events of
	// its kind from its source since the previous such record (failed
	// authentications are recorded at a bounded rate, with counts).
	Count int `json:"count,omitempty"`
}

// Log writes the audit log. Writes are serialised, so records never
// interleave. A Log is safe for concurrent use.
type Log struct {
	mu   sync.Mutex // serialises writes to w
	w    io.Writer
	sync func() error // nil, or flushes w to stable storage
	now  func() time.Time
	// partial: the last record was cut off after some of its bytes (a
	// full disk, a closed pipe), so the next one must start with a
	// newline rather than be glued to it.
	partial bool
}

// New returns a Log writing to w, stamping records with now (default
// time.Now).
func New(w io.Writer, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{w: w, now: now}
}

// Open opens the audit log at path: "", "-" or "stdout" mean standard
// output, anything else a file opened for appending (created with mode 0600).
// Each record written to a file is synced before the operation proceeds.
// The returned Closer closes the file (and does nothing for stdout).
func Open(path string) (*Log, io.Closer, error) {
	switch path {
	case "", "-", "stdout":
		return New(os.Stdout, nil), nopCloser{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: open: %w", err)
	}
	l := New(f, nil)
	l.sync = f.Sync
	return l, f, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Write appends r as one line, stamped with the time. An error means the
// record may not be in the log, and the caller must not do (or must not
// reveal) what it recorded.
func (l *Log) Write(r Record) error {
	if l == nil {
		return fmt.Errorf("audit: no audit log configured")
	}
	if r.KIDs == nil {
		r.KIDs = []string{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Time = l.now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	b = append(b, '\n')
	prefix := 0
	if l.partial {
		// End the cut-off record first: every record starts on a fresh
		// line, so a reader loses the cut-off record only.
		b, prefix = append([]byte{'\n'}, b...), 1
	}
	n, err := l.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		switch {
		case n > prefix: // this record was cut off after some of its bytes
			l.partial = true
		case n == prefix: // the line is closed; nothing of this record
			l.partial = false
		}
		return fmt.Errorf("audit: write: %w", err)
	}
	l.partial = false
	if l.sync != nil {
		if err := l.sync(); err != nil {
			return fmt.Errorf("audit: sync: %w", err)
		}
	}
	return nil
}

// System writes a record of something the server did by itself (no
// credential): credential "system", source naming the mechanism (for
// example "retention"), the operation, the keys and the result.
func (l *Log) System(source, operation string, kids []string, result Result) error {
	return l.Write(Record{Credential: "system", Source: source, Operation: operation, KIDs: kids, Result: result})
}

package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Audit results. An operation that changes the store is recorded twice:
// resultStarted before it is done, then its outcome.
const (
	resultStarted      = "started"
	resultOK           = "ok"
	resultConflict     = "conflict"
	resultNotFound     = "not_found"
	resultInvalid      = "invalid"
	resultUnavailable  = "unavailable"
	resultForbidden    = "forbidden"
	resultUnauthorized = "unauthorized"
	resultError        = "error"
)

// auditRecord is one line of the audit log. It never holds a secret or key
// bytes: the credential is named, the keys are identified by KID.
type auditRecord struct {
	Time       time.Time `json:"time"`
	Credential string    `json:"credential"`
	Source     string    `json:"source"`
	Operation  string    `json:"operation"`
	KIDs       []string  `json:"kids"`
	Result     string    `json:"result"`
	RequestID  string    `json:"request_id"`
}

// Audit writes the audit log: one JSON object per line,
//
//	{"time","credential","source","operation","kids":[...],"result","request_id"}
//
// Writes are serialised, so records never interleave. Audit is safe for
// concurrent use.
type Audit struct {
	mu   sync.Mutex // serialises writes to w
	w    io.Writer
	sync func() error // nil, or flushes w to stable storage
	now  func() time.Time
}

// NewAudit returns an Audit writing to w, stamping records with now (default
// time.Now).
func NewAudit(w io.Writer, now func() time.Time) *Audit {
	if now == nil {
		now = time.Now
	}
	return &Audit{w: w, now: now}
}

// OpenAudit opens the audit log at path: "", "-" or "stdout" mean standard
// output, anything else a file opened for appending (created with mode 0600).
// Each record written to a file is synced before the operation proceeds.
// The returned Closer closes the file (and does nothing for stdout).
func OpenAudit(path string) (*Audit, io.Closer, error) {
	switch path {
	case "", "-", "stdout":
		return NewAudit(os.Stdout, nil), nopCloser{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("admin: open audit log: %w", err)
	}
	a := NewAudit(f, nil)
	a.sync = f.Sync
	return a, f, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// write appends r as one line. An error means the record may not be in the
// log, and the caller must not do (or must not reveal) what it recorded.
func (a *Audit) write(r auditRecord) error {
	if a == nil {
		return fmt.Errorf("admin: audit: no audit log configured")
	}
	if r.KIDs == nil {
		r.KIDs = []string{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r.Time = a.now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("admin: audit: %w", err)
	}
	b = append(b, '\n')
	if _, err := a.w.Write(b); err != nil {
		return fmt.Errorf("admin: audit: write: %w", err)
	}
	if a.sync != nil {
		if err := a.sync(); err != nil {
			return fmt.Errorf("admin: audit: sync: %w", err)
		}
	}
	return nil
}

// Record writes a record of something the server did by itself (no
// credential): credential "system", source naming the mechanism (for
// example "retention"), the operation, the keys and the result.
func (a *Audit) Record(source, operation string, kids []string, result string) error {
	return a.write(auditRecord{Credential: "system", Source: source, Operation: operation, KIDs: kids, Result: result})
}

//go:build faults

package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

// httpClient gives up on an answer after a while only to catch a hang:
// the server bounds every store call itself.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// ledger records every acknowledged write: the key the server answered 2xx
// for, and its bytes.
type ledger struct {
	mu   sync.Mutex
	keys map[keystore.KeyID][16]byte
	ids  []keystore.KeyID
	// round is the fault round under way; when records each key's round
	// at its acknowledgement, for the report of a loss.
	round int
	when  map[keystore.KeyID]int
}

func newLedger() *ledger {
	return &ledger{keys: map[keystore.KeyID][16]byte{}, when: map[keystore.KeyID]int{}}
}

func (l *ledger) add(id keystore.KeyID, v [16]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.keys[id]; !ok {
		l.ids = append(l.ids, id)
		l.when[id] = l.round
	}
	l.keys[id] = v
}

// nextRound marks the start of a fault round.
func (l *ledger) nextRound() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.round++
}

// roundOf is the round in which id was acknowledged (0: before the first
// fault).
func (l *ledger) roundOf(id keystore.KeyID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.when[id]
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// pick returns a random acknowledged key.
func (l *ledger) pick() (keystore.KeyID, [16]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) == 0 {
		return keystore.KeyID{}, [16]byte{}, false
	}
	id := l.ids[mathrand.IntN(len(l.ids))]
	return id, l.keys[id], true
}

func (l *ledger) all() map[keystore.KeyID][16]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[keystore.KeyID][16]byte, len(l.keys))
	for k, v := range l.keys {
		out[k] = v
	}
	return out
}

// stats are what the writer and the reader saw, with the times of the
// 503s, so the windows can be told.
type stats struct {
	mu          sync.Mutex
	reads, r503 int
	firstR503   time.Time
	lastR503    time.Time
	write503    int
	notRepl     int
	// goodReads and goodWrites are the times of the good answers since
	// the last recovered (which empties them): the first ones after a
	// fault's end tell its recovery.
	goodReads, goodWrites []time.Time
	writes                int
	violations            []string
	reasons               map[string]int
	// mark, when set, labels a KID; marked counts the first answers to
	// the creates of labelled KIDs, by label and status (the Cluster
	// scenarios: in the failed master's slots or not).
	mark   func(keystore.KeyID) string
	marked map[string]int
}

func newStats() *stats { return &stats{reasons: map[string]int{}, marked: map[string]int{}} }

func (s *stats) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 50 {
		s.violations = append(s.violations, fmt.Sprintf(format, args...))
	}
}

// problem is the part of an error answer the suite reads.
type problem struct {
	Reason string `json:"reason"`
}

func reasonOf(b []byte) string {
	var p problem
	_ = json.Unmarshal(b, &p)
	return p.Reason
}

// writer creates keys with known bytes through the admin API, each one
// sent again (as kdctl does) until it is acknowledged or the writer stops:
// a 503 or a dropped connection may hide a write that was done, and the
// retry must then answer "unchanged", never 409.
type writer struct {
	srv    func() *server
	ledger *ledger
	st     *stats
	// pace is the pause between creates.
	pace time.Duration
}

func (w *writer) run(ctx context.Context) {
	for ctx.Err() == nil {
		var id keystore.KeyID
		var v [16]byte
		_, _ = rand.Read(id[:])
		id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80
		_, _ = rand.Read(v[:])
		w.create(ctx, id, v)
		if w.pace > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(w.pace):
			}
		}
	}
}

// create sends one create until it is acknowledged (or ctx ends).
func (w *writer) create(ctx context.Context, id keystore.KeyID, v [16]byte) {
	body, _ := json.Marshal(map[string]string{"id": id.String(), "key": base64.StdEncoding.EncodeToString(v[:])})
	label := ""
	w.st.mu.Lock()
	if w.st.mark != nil {
		label = w.st.mark(id)
	}
	w.st.mu.Unlock()
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, w.srv().admin+"/api/keys", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		status, reason := 0, "connection"
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, reason = resp.StatusCode, reasonOf(b)
		}
		w.st.mu.Lock()
		w.st.writes++
		if label != "" && attempt == 0 {
			w.st.marked[label+fmt.Sprintf(" %d %s", status, reason)]++
		}
		w.st.mu.Unlock()
		switch {
		case status == http.StatusCreated || status == http.StatusOK:
			w.ledger.add(id, v)
			w.st.mu.Lock()
			w.st.goodWrites = append(w.st.goodWrites, time.Now())
			w.st.mu.Unlock()
			return
		case status == http.StatusConflict:
			w.st.violation("create %s, attempt %d: 409 %s (a retry must never conflict with its own earlier attempt)", id, attempt, reason)
			return
		case status == http.StatusServiceUnavailable:
			w.st.mu.Lock()
			w.st.write503++
			w.st.reasons["write "+reason]++
			if reason == "not_replicated" {
				w.st.notRepl++
			}
			w.st.mu.Unlock()
		case status == 0:
			w.st.mu.Lock()
			w.st.reasons["write connection"]++
			w.st.mu.Unlock()
		default:
			w.st.violation("create %s, attempt %d: %d %s", id, attempt, status, reason)
			return
		}
		if ctx.Err() != nil {
			return // not acknowledged: not in the ledger
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reader fetches random acknowledged keys through the delivery plane: each
// must answer 200 with its bytes, or 503; never 404, never other bytes.
type reader struct {
	srv    func() *server
	token  string
	ledger *ledger
	st     *stats
}

func (r *reader) run(ctx context.Context) {
	for ctx.Err() == nil {
		id, v, ok := r.ledger.pick()
		if !ok {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.read(id, v)
		time.Sleep(2 * time.Millisecond)
	}
}

func (r *reader) read(id keystore.KeyID, v [16]byte) {
	req, _ := http.NewRequest(http.MethodGet, r.srv().delivery+"/keys/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		r.st.mu.Lock()
		r.st.reasons["read connection"]++
		r.st.mu.Unlock()
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	now := time.Now()
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	r.st.reads++
	switch resp.StatusCode {
	case http.StatusOK:
		if !bytes.Equal(b, v[:]) {
			r.st.violations = append(r.st.violations, fmt.Sprintf("read %s: 200 with other bytes", id))
		}
		r.st.goodReads = append(r.st.goodReads, now)
	case http.StatusServiceUnavailable:
		r.st.r503++
		r.st.reasons["read "+reasonOf(b)]++
		if r.st.firstR503.IsZero() {
			r.st.firstR503 = now
		}
		r.st.lastR503 = now
	default:
		if len(r.st.violations) < 50 {
			r.st.violations = append(r.st.violations, fmt.Sprintf("read %s (acknowledged): %d %s", id, resp.StatusCode, reasonOf(b)))
		}
	}
}

// workload is a writer and a reader running against a server.
type workload struct {
	t      *testing.T
	srv    *server
	m      material
	ledger *ledger
	st     *stats
	w      *writer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startWorkload runs a writer (pace between creates) and readers against
// srv until stop.
func startWorkload(t *testing.T, srv *server, m material, pace time.Duration, readers int) *workload {
	wl := &workload{t: t, srv: srv, m: m, ledger: newLedger(), st: newStats()}
	ctx, cancel := context.WithCancel(context.Background())
	wl.cancel = cancel
	cur := func() *server { return wl.srv }
	wl.w = &writer{srv: cur, ledger: wl.ledger, st: wl.st, pace: pace}
	wl.wg.Go(func() { wl.w.run(ctx) })
	for range readers {
		r := &reader{srv: cur, token: m.token, ledger: wl.ledger, st: wl.st}
		wl.wg.Go(func() { r.run(ctx) })
	}
	t.Cleanup(wl.stop)
	return wl
}

func (wl *workload) stop() {
	wl.cancel()
	wl.wg.Wait()
}

// acked waits until at least n writes are acknowledged.
func (wl *workload) acked(n int) {
	waittest.For(wl.t, fmt.Sprintf("%d acknowledged writes", n), func() bool { return wl.ledger.len() >= n })
}

// recovered waits until, after since, a read was answered 200 and a write
// acknowledged, and returns when that happened (the later of the two).
func (wl *workload) recovered(since time.Time) time.Time {
	var at time.Time
	waittest.For(wl.t, "reads and writes to succeed again", func() bool {
		wl.st.mu.Lock()
		defer wl.st.mu.Unlock()
		r, w := firstAfter(wl.st.goodReads, since), firstAfter(wl.st.goodWrites, since)
		if r.IsZero() || w.IsZero() {
			return false
		}
		at = r
		if w.After(at) {
			at = w
		}
		wl.st.goodReads, wl.st.goodWrites = nil, nil
		return true
	})
	return at
}

// firstAfter is the earliest of ts after since (zero if none).
func firstAfter(ts []time.Time, since time.Time) time.Time {
	var first time.Time
	for _, t := range ts {
		if t.After(since) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// verify reads every acknowledged key back through the delivery plane
// (retrying a 503, which is not an answer), and returns how many are lost
// or changed; each is reported.
func (wl *workload) verify(srv *server) int {
	t := wl.t
	lost := 0
	for id, v := range wl.ledger.all() {
		var status int
		var b []byte
		waittest.For(t, "an answer other than 503", func() bool {
			req, _ := http.NewRequest(http.MethodGet, srv.delivery+"/keys/"+id.String(), nil)
			req.Header.Set("Authorization", "Bearer "+wl.m.token)
			resp, err := httpClient.Do(req)
			if err != nil {
				return false
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			return status != http.StatusServiceUnavailable
		})
		if status != 200 || !bytes.Equal(b, v[:]) {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged key %s (before fault round %d): %d %s (lost or changed)", id, wl.ledger.roundOf(id)+1, status, strings.TrimSpace(string(b)))
			}
		}
	}
	return lost
}

// checkViolations fails t for every answer that must never happen.
func (wl *workload) checkViolations() {
	wl.st.mu.Lock()
	defer wl.st.mu.Unlock()
	for _, v := range wl.st.violations {
		wl.t.Error(v)
	}
}

// maxDuration is the largest of ds.
func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// flakyServer answers the first answers in order, then passes requests
// to next; it records each request's Idempotency-Key.
type flakyServer struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter, r *http.Request)
	keys    []string
	next    http.Handler
}

func (f *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	var a func(http.ResponseWriter, *http.Request)
	if len(f.answers) > 0 {
		a, f.answers = f.answers[0], f.answers[1:]
	}
	f.mu.Unlock()
	if a != nil {
		a(w, r)
		return
	}
	f.next.ServeHTTP(w, r)
}

func unavailable(reason string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(503)
		io.WriteString(w, `{"status":503,"code":"unavailable","reason":"`+reason+`","detail":"retry"}`)
	}
}

// dropAfter lets the real server do the work, then drops the connection
// without an answer: the client cannot know whether it was done.
func dropAfter(next http.Handler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(httptest.NewRecorder(), r)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

// TestRetries: kdctl sends a write again after a 503 (not_replicated) or
// a dropped connection, with the same Idempotency-Key, and ends in the
// state asked for, told so: a random key created by an attempt whose
// answer was lost is the one printed, not a second key; a restore or
// purge whose first answer was lost succeeds.
func TestRetries(t *testing.T) {
	secret, credsFile := generateAdminKey(t, "ops", "admin")
	ts := newTestServer(t, credsFile)
	real := http.Handler(nil)
	{
		// The real admin plane behind newTestServer, reached by URL.
		real = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequest(r.Method, ts.url+r.URL.RequestURI(), r.Body)
			req.Header = r.Header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				w.WriteHeader(502)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		})
	}
	f := &flakyServer{next: real}
	srv := httptest.NewServer(f)
	defer srv.Close()
	env := map[string]string{"KD_SERVER": srv.URL, "KD_ADMIN_TOKEN": secret}

	// A random key: the first attempt creates it and its answer is lost;
	// then a 503; the third attempt answers the first attempt's key.
	f.answers = append(f.answers, dropAfter(real), unavailable("not_replicated"))
	r := kdctl(t, env, "keys", "create", "--quiet")
	if r.code != 0 {
		t.Fatalf("create with retries: %d %s", r.code, r.stderr)
	}
	kid := strings.TrimSpace(r.stdout)
	list := kdctl(t, env, "keys", "list")
	if n := strings.Count(list.stdout, `"id"`); n != 1 || !strings.Contains(list.stdout, kid) {
		t.Fatalf("after a create retried twice the store holds %d keys (want 1, %s):\n%s", n, kid, list.stdout)
	}
	f.mu.Lock()
	keys := f.keys[:3]
	f.mu.Unlock()
	if keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("the attempts carried Idempotency-Keys %q, want one key for all", keys)
	}
	if !strings.Contains(r.stderr, "sending it again") || !strings.Contains(r.stderr, "not_replicated") {
		t.Errorf("retries are not reported: %s", r.stderr)
	}

	// Delete, then a restore whose answer is lost: the retry gets 409
	// not_deleted, which is its own earlier attempt: success.
	if r := kdctl(t, env, "keys", "delete", kid); r.code != 0 {
		t.Fatalf("delete: %d %s", r.code, r.stderr)
	}
	f.mu.Lock()
	f.answers = append(f.answers, dropAfter(real))
	f.mu.Unlock()
	if r := kdctl(t, env, "keys", "restore", kid); r.code != 0 || !strings.Contains(r.stdout, kid) || strings.Contains(r.stdout, "deletedAt") {
		t.Fatalf("restore retried: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// A real conflict is not retried away: restoring a live key is 409.
	if r := kdctl(t, env, "keys", "restore", kid); r.code != 1 || !strings.Contains(r.stderr, "not_deleted") {
		t.Fatalf("restore of a live key: %d %s", r.code, r.stderr)
	}
	// Purge whose answer is lost: the retry finds the key gone.
	kdctl(t, env, "keys", "delete", kid)
	f.mu.Lock()
	f.answers = append(f.answers, dropAfter(real))
	f.mu.Unlock()
	if r := kdctl(t, env, "keys", "purge", kid); r.code != 0 {
		t.Fatalf("purge retried: %d %s", r.code, r.stderr)
	}
	// A random key seed under a random ID is not sent twice.
	f.mu.Lock()
	f.answers = append(f.answers, dropAfter(real))
	f.mu.Unlock()
	if r := kdctl(t, env, "keyseeds", "create"); r.code != 3 {
		t.Fatalf("random key seed with a dropped answer: %d %s (want 3, not a second seed)", r.code, r.stderr)
	}
	if r := kdctl(t, env, "keyseeds", "list"); strings.Count(r.stdout, `"id"`) != 1 {
		t.Fatalf("key seeds after a create sent once: %s", r.stdout)
	}
}

// TestStoreAdopt: kdctl store adopt answers the store's identity (role
// admin only).
func TestStoreAdopt(t *testing.T) {
	secret, credsFile := generateAdminKey(t, "ops", "admin")
	ts := newTestServer(t, credsFile)
	r := kdctl(t, map[string]string{"KD_SERVER": ts.url, "KD_ADMIN_TOKEN": secret}, "store", "adopt")
	if r.code != 0 || !strings.Contains(r.stdout, `"status": "adopted"`) || !strings.Contains(r.stdout, ts.keys.StoreID()) {
		t.Fatalf("store adopt: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := kdctl(t, map[string]string{"KD_SERVER": ts.url, "KD_ADMIN_TOKEN": secret}, "store", "adopt", "x"); r.code != 2 {
		t.Fatalf("store adopt with an argument: %d", r.code)
	}
}

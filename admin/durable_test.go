package admin

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// TestCreateIdempotencyKey: a create of a random key with an
// Idempotency-Key answers, when retried, the key the first attempt
// created; the same key with another body is refused; another
// credential's key of the same text is its own; creates that give their
// value ignore the header (they are idempotent by value).
func TestCreateIdempotencyKey(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	idem := func(k string) []string { return []string{"Idempotency-Key", k} }
	body := `{"name":"movie","assets":["film-1"]}`
	r := env.do(t, "POST", "/api/keys", secretWriter, body, idem("req-1")...)
	if r.status != 201 {
		t.Fatalf("first attempt: %d %s", r.status, r.body)
	}
	var first keyMetadata
	r.json(t, &first)
	r = env.do(t, "POST", "/api/keys", secretWriter, body, idem("req-1")...)
	var again createAnswer
	r.json(t, &again)
	if r.status != 200 || again.ID != first.ID || again.Status != "unchanged" || r.header.Get("Location") != "/api/keys/"+first.ID {
		t.Fatalf("retry: %d %s; want 200 unchanged with %s", r.status, r.body, first.ID)
	}
	if list, _ := keys.List(context.Background(), keystore.KeyID{}, 10); len(list) != 1 {
		t.Fatalf("the retry created another key: %d stored", len(list))
	}
	r = env.do(t, "POST", "/api/keys", secretWriter, `{"name":"other"}`, idem("req-1")...)
	if p := r.problem(t); r.status != 422 || p.Reason != reasonIdempotencyReused {
		t.Fatalf("same key, other body: %d %s", r.status, r.body)
	}
	r = env.do(t, "POST", "/api/keys", secretAdmin, body, idem("req-1")...)
	var other keyMetadata
	r.json(t, &other)
	if r.status != 201 || other.ID == first.ID {
		t.Fatalf("another credential's key: %d %s", r.status, r.body)
	}
	// The first attempt claimed the key but stopped before storing: the
	// retry creates the key under the claimed KID.
	claimed, _ := keystore.ParseKeyID("6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")
	fp := fingerprint(&createBody{Name: "movie", Assets: []string{"film-1"}}, keystore.EnvelopeEncryption)
	if _, _, err := keys.ClaimIdempotency(context.Background(), "writer-1", "req-2", claimed, fp); err != nil {
		t.Fatal(err)
	}
	r = env.do(t, "POST", "/api/keys", secretWriter, body, idem("req-2")...)
	var resumed keyMetadata
	r.json(t, &resumed)
	if r.status != 201 || resumed.ID != claimed.String() {
		t.Fatalf("retry after a claim without a key: %d %s; want 201 %s", r.status, r.body, claimed)
	}
	// A create that gives its value ignores the header.
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	imp := `{"id":"` + kid1 + `","key":"` + key + `"}`
	if r := env.do(t, "POST", "/api/keys", secretWriter, imp, idem("req-1")...); r.status != 201 {
		t.Fatalf("import with a used idempotency key: %d %s", r.status, r.body)
	}
	if r := env.do(t, "POST", "/api/keys", secretWriter, imp, idem("req-1")...); r.status != 200 || !strings.Contains(string(r.body), `"status":"unchanged"`) {
		t.Fatalf("import again: %d %s", r.status, r.body)
	}
	// Bad headers.
	for _, h := range []string{strings.Repeat("x", 256), "tab\there"} {
		if r := env.do(t, "POST", "/api/keys", secretWriter, body, idem(h)...); r.status != 400 || r.problem(t).Reason != "invalid_idempotency_key" {
			t.Errorf("Idempotency-Key %q: %d %s", h, r.status, r.body)
		}
	}
	if strings.Contains(env.audit.String(), "req-1") {
		t.Error("the audit log holds an idempotency key")
	}
}

// TestWriteAnswersOfAStore: a write the replicas did not confirm, a full
// store and a lost store are 503 with their reasons and Retry-After, and
// audited as unavailable.
func TestWriteAnswersOfAStore(t *testing.T) {
	for _, c := range []struct {
		err    error
		reason string
	}{
		{fmt.Errorf("redisstore: create: %w: WAIT 1: 0 replicas", keystore.ErrNotReplicated), "not_replicated"},
		{fmt.Errorf("redisstore: create: %w: OOM", keystore.ErrFull), "store_full"},
		{&keystore.StoreLostError{Why: "the marker is gone"}, "store_lost"},
	} {
		env := newEnv(t, func(o *testOptions) { o.RetryAfter = 2 * time.Second })
		env.keys.err = c.err
		r := env.do(t, "POST", "/api/keys", secretWriter, `{}`)
		if p := r.problem(t); r.status != 503 || p.Code != "unavailable" || p.Reason != c.reason || r.header.Get("Retry-After") != "2" {
			t.Errorf("%s: %d %s (Retry-After %q)", c.reason, r.status, r.body, r.header.Get("Retry-After"))
		}
		lines := auditLines(t, env.audit.String())
		if got := lines[len(lines)-1]; got["result"] != "unavailable" {
			t.Errorf("%s: audit %v", c.reason, got)
		}
	}
}

// TestAdoptStore: only an admin adopts the store; adopting answers the
// store's identity and is audited.
func TestAdoptStore(t *testing.T) {
	env, keys := newRealEnv(t, nil)
	if r := env.do(t, "POST", "/api/store/adopt", secretWriter, ""); r.status != 403 {
		t.Fatalf("writer: %d %s", r.status, r.body)
	}
	r := env.do(t, "POST", "/api/store/adopt", secretAdmin, "")
	var a adoptAnswer
	r.json(t, &a)
	if r.status != 200 || a.Status != "adopted" || a.Store == "" || a.Store != keys.StoreID() {
		t.Fatalf("adopt: %d %s", r.status, r.body)
	}
	r = env.do(t, "POST", "/api/store/adopt", secretAdmin, "{}")
	var b adoptAnswer
	r.json(t, &b)
	if r.status != 200 || b.Store != a.Store {
		t.Fatalf("adopt again: %d %s, want the same identity", r.status, r.body)
	}
	if ops := auditOperations(t, env); !strings.Contains(ops, "store.adopt:started,store.adopt:ok") {
		t.Errorf("audit %s", ops)
	}
}

// TestKeySeedRetry: the same seed under the same ID again is 200
// unchanged; another seed is 409.
func TestKeySeedRetry(t *testing.T) {
	env, _ := newRealEnv(t, nil)
	body := `{"id":"` + seedID1 + `","seed":"` + vectorSeed + `"}`
	if r := env.do(t, "POST", "/api/keyseeds", secretAdmin, body); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	r := env.do(t, "POST", "/api/keyseeds", secretAdmin, body)
	if r.status != 200 || !strings.Contains(string(r.body), `"status":"unchanged"`) || strings.Contains(string(r.body), vectorSeed) {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
}

package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/delivery"
	"github.com/keydelivery/keydelivery/keystore"
)

// contentKey stores a random key recorded under assets.
func (e *env) contentKey(t *testing.T, assets ...string) keystore.Key {
	t.Helper()
	var k keystore.Key
	if _, err := rand.Read(k.ID[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(k.Value[:]); err != nil {
		t.Fatal(err)
	}
	k.Type, k.Assets = keystore.EnvelopeEncryption, assets
	if _, err := e.keys.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

// contentToken signs a token granting the contents and the keys by KID.
func (e *env) contentToken(t *testing.T, contents []string, keys ...keystore.Key) string {
	t.Helper()
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.ID.String()
	}
	tok, err := e.signer.Sign(auth.TokenClaims{Issuer: "iss", Audience: "aud", KeyIDs: kids, ContentIDs: contents,
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// request is one request to the delivery plane, with a fixed request ID so
// that two answers can be compared byte for byte.
type request struct {
	method, path, body string
}

func (e *env) do(r request, token string) reply {
	req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-ID", "compare-1")
	req.Header.Set("Origin", "https://player.example")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
}

// keyRequests are the requests of every endpoint for the key x, beside
// the key a (granted) where an endpoint takes several KIDs.
func keyRequests(a, x keystore.Key) map[string]request {
	both := a.ID.String() + "&kid=" + x.ID.String()
	return map[string]request{
		"GET /keys/{kid}":          {"GET", "/keys/" + x.ID.String(), ""},
		"GET /?kid=":               {"GET", "/?kid=" + x.ID.String(), ""},
		"POST /?kid=":              {"POST", "/?kid=" + x.ID.String(), ""},
		"ClearKey, mixed kids":     {"POST", "/clearkey/license", ckRequest("temporary", a, x)},
		"ClearKey, the one kid":    {"POST", "/clearkey/license", ckRequest("temporary", x)},
		"Widevine, mixed kids":     {"POST", "/widevine/license?kid=" + both, "challenge"},
		"PlayReady challenge":      {"POST", "/PlayReady/", playReadyChallenge("4.0.0.0", a.ID, x.ID)},
		"FairPlay, the AMS form":   {"POST", "/FairPlay/?kid=" + x.ID.String(), "spc=AAAA"},
		"PlayReady, the new route": {"POST", "/playready/license?kid=" + both, ""},
	}
}

// TestContentGrant: a content_ids token gets every key recorded under its
// contents, at every endpoint, and nothing else.
func TestContentGrant(t *testing.T) {
	e := newEnv(t, delivery.Options{})
	p0, p1 := e.contentKey(t, "live-1"), e.contentKey(t, "other", "live-1")
	vod, loose := e.contentKey(t, "vod-2"), e.contentKey(t)
	byKID := e.key(t)
	tok := e.contentToken(t, []string{"live-1"})

	for _, k := range []keystore.Key{p0, p1} {
		for _, path := range []string{"/keys/" + k.ID.String(), "/?kid=" + k.ID.String()} {
			if r := e.get(path, tok, ""); r.status != 200 || !bytes.Equal(r.body, k.Value[:]) {
				t.Errorf("GET %s: %d %s", path, r.status, r.body)
			}
		}
	}
	r := e.post("/clearkey/license", tok, ckRequest("temporary", p1, p0))
	if r.status != 200 || bytes.Count(r.body, []byte(`"kty":"oct"`)) != 2 {
		t.Errorf("ClearKey for both periods: %d %s", r.status, r.body)
	}
	if r := e.post("/widevine/license?kid="+p0.ID.String()+","+p1.ID.String(), tok, "challenge"); r.status != 200 {
		t.Errorf("Widevine stub for both periods: %d %s", r.status, r.body)
	}

	// Keys of another content, of none, or granted only by another
	// token's KID: refused, 403.
	for _, k := range []keystore.Key{vod, loose, byKID} {
		r := e.get("/keys/"+k.ID.String(), tok, "")
		if p := r.problem(t); r.status != 403 || p.Reason != "key_not_granted" {
			t.Errorf("key %s: %d %s", k.ID, r.status, r.body)
		}
		assertNoKeyMaterial(t, r.body, k)
	}
	// A ClearKey request with a key of the content and one of another:
	// the whole request is refused, naming the other one.
	r = e.post("/clearkey/license", tok, ckRequest("temporary", p0, vod))
	if p := r.problem(t); r.status != 403 || p.Reason != "key_not_granted" || !slices.Equal(p.KIDs, []string{vod.ID.String()}) {
		t.Errorf("mixed ClearKey: %d %s", r.status, r.body)
	}
	assertNoKeyMaterial(t, r.body, p0, vod)

	// kids and content_ids together: each grants its own; a KID the token
	// names and the store lacks is still 404, listed alone; a refused KID
	// wins over a missing one, and is the only one listed.
	missing := keystore.Key{ID: keystore.KeyID{0xee, 1}}
	both := e.contentToken(t, []string{"live-1"}, byKID, missing)
	if r := e.post("/clearkey/license", both, ckRequest("temporary", byKID, p0)); r.status != 200 || bytes.Count(r.body, []byte(`"kty"`)) != 2 {
		t.Errorf("kids and content_ids: %d %s", r.status, r.body)
	}
	r = e.post("/clearkey/license", both, ckRequest("temporary", p0, missing))
	if p := r.problem(t); r.status != 404 || p.Reason != "unknown_key" || !slices.Equal(p.KIDs, []string{missing.ID.String()}) {
		t.Errorf("a KID granted by name and not stored: %d %s", r.status, r.body)
	}
	r = e.post("/clearkey/license", both, ckRequest("temporary", missing, vod))
	if p := r.problem(t); r.status != 403 || !slices.Equal(p.KIDs, []string{vod.ID.String()}) {
		t.Errorf("refused and missing: %d %s", r.status, r.body)
	}

	// An empty content_ids grants nothing, and never makes a token
	// unbound (even where unbound tokens are allowed).
	empty := e.contentToken(t, []string{})
	for _, k := range []keystore.Key{p0, loose} {
		if r := e.get("/keys/"+k.ID.String(), empty, ""); r.status != 403 {
			t.Errorf("empty content_ids: %d %s", r.status, r.body)
		}
	}
	// Content IDs compare exactly.
	if r := e.get("/keys/"+p0.ID.String(), e.contentToken(t, []string{"LIVE-1"}), ""); r.status != 403 {
		t.Errorf("a content ID in another case: %d %s", r.status, r.body)
	}
}

// TestContentRefusalIndistinguishable: for a content_ids token, a key of
// another content, a soft-deleted key and a key that does not exist get
// the same answer at every endpoint: status, headers and body byte for
// byte (the request ID is the caller's, the same for all three).
func TestContentRefusalIndistinguishable(t *testing.T) {
	e := newEnv(t, delivery.Options{CORSOrigins: []string{"https://player.example"}})
	a := e.contentKey(t, "live-1")
	tok := e.contentToken(t, []string{"live-1"})
	ctx := context.Background()
	for name := range keyRequests(a, keystore.Key{}) {
		t.Run(name, func(t *testing.T) {
			x := e.contentKey(t, "vod-2")
			req := keyRequests(a, x)[name]
			answers := map[string]reply{"another content": e.do(req, tok)}
			if _, err := e.keys.Delete(ctx, x.ID); err != nil {
				t.Fatal(err)
			}
			answers["soft-deleted"] = e.do(req, tok)
			if err := e.keys.Purge(ctx, x.ID); err != nil {
				t.Fatal(err)
			}
			answers["not stored"] = e.do(req, tok)

			want := answers["another content"]
			if p := want.problem(t); want.status != 403 || p.Reason != "key_not_granted" || slices.Contains(p.KIDs, a.ID.String()) {
				t.Fatalf("%d %s", want.status, want.body)
			}
			if want.header.Get("X-Request-ID") != "compare-1" {
				t.Fatalf("request ID %q", want.header.Get("X-Request-ID"))
			}
			for what, got := range answers {
				if got.status != want.status || !bytes.Equal(got.body, want.body) || !maps.EqualFunc(got.header, want.header, slices.Equal) {
					t.Errorf("%s: %d %v %s\nanother content: %d %v %s", what, got.status, got.header, got.body, want.status, want.header, want.body)
				}
			}
		})
	}
}

// countingKeys counts the reads that reach the store.
type countingKeys struct {
	keys  *keystore.Keys
	reads atomic.Int64
}

func (c *countingKeys) Get(ctx context.Context, id keystore.KeyID) (keystore.Key, error) {
	c.reads.Add(1)
	return c.keys.Get(ctx, id)
}

// TestContentGrantFromKeyCache: the key cache holds each key with its
// assets, so a content grant answered from it makes no store read, for a
// granted key and for a refused one alike.
func TestContentGrantFromKeyCache(t *testing.T) {
	base := newEnv(t, delivery.Options{})
	in, out := base.contentKey(t, "live-1"), base.contentKey(t, "vod-2")
	src := &countingKeys{keys: base.keys}
	cache, err := keystore.NewCache(src, keystore.CacheOptions{TTL: time.Hour, Size: 16})
	if err != nil {
		t.Fatal(err)
	}
	h, err := delivery.New(delivery.Options{Log: slog.New(slog.DiscardHandler), Verifier: base.v, Keys: cache, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	e := *base
	e.h = h
	tok := e.contentToken(t, []string{"live-1"})
	for range 3 {
		if r := e.get("/keys/"+in.ID.String(), tok, ""); r.status != 200 || !bytes.Equal(r.body, in.Value[:]) {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if r := e.get("/keys/"+out.ID.String(), tok, ""); r.status != 403 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if n := src.reads.Load(); n != 2 {
		t.Errorf("%d store reads for two keys asked three times each, want 2", n)
	}
}

// TestKIDGrantStillBeforeLookup: a token with kids and no content_ids is
// still refused from the token alone, at every endpoint (the store is not
// asked).
func TestKIDGrantStillBeforeLookup(t *testing.T) {
	base := newEnv(t, delivery.Options{})
	a, x := base.key(t), base.contentKey(t, "live-1")
	src := &countingKeys{keys: base.keys}
	h, err := delivery.New(delivery.Options{Log: slog.New(slog.DiscardHandler), Verifier: base.v, Keys: src, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	e := *base
	e.h = h
	tok := e.token(t, a)
	for name, req := range keyRequests(a, x) {
		if r := e.do(req, tok); r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if n := src.reads.Load(); n != 0 {
		t.Errorf("the store was read %d times for keys the token does not grant", n)
	}
}

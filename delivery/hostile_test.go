package delivery_test

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/delivery"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/keystore"
)

func (e *env) get(path, token, remote string) reply {
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
}

// limitedToken signs a token for keys with the AMS replay limit.
func (e *env) limitedToken(t *testing.T, maxUses any, keys ...keystore.Key) string {
	t.Helper()
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.ID.String()
	}
	tok, err := e.signer.Sign(auth.TokenClaims{Issuer: "iss", Audience: "aud", KeyIDs: kids, ExpiresAt: time.Now().Add(time.Hour),
		Extra: map[string]any{"urn:microsoft:azure:mediaservices:maxuses": maxUses}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// highSTwin returns the token with the other valid signature (r, n-s).
func highSTwin(t *testing.T, tok string) string {
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// TestMaxUses is the replay limit (issue: "no replay limit: a token leaked
// from a page can be used until it expires"): the AMS maxuses claim,
// counted in the store (here a real bbolt file) per token.
func TestMaxUses(t *testing.T) {
	t.Run("keys", func(t *testing.T) {
		e := newEnv(t, delivery.Options{})
		cached, err := auth.NewCachedVerifier(e.v, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		e = newEnvWith(t, e, delivery.Options{Verifier: cached, Uses: e.keys})
		k := e.key(t)
		tok := e.limitedToken(t, "2", k)
		for i := range 2 {
			if r := e.get("/keys/"+k.ID.String(), tok, ""); r.status != 200 {
				t.Fatalf("use %d: %d %s", i+1, r.status, r.body)
			}
		}
		// The third use, from the verified-token cache, and its high-S
		// twin (another signature, the same signed token) are refused.
		for _, s := range []string{tok, highSTwin(t, tok)} {
			r := e.get("/keys/"+k.ID.String(), s, "")
			if p := r.problem(t); r.status != 403 || p.Reason != "max_uses_exceeded" {
				t.Fatalf("past the limit: %d %+v", r.status, p)
			}
			assertNoKeyMaterial(t, r.body, k)
		}
		// Another token for the same key has its own count; a token
		// without the claim is never counted.
		if r := e.get("/keys/"+k.ID.String(), e.limitedToken(t, 1, k), ""); r.status != 200 {
			t.Fatalf("a fresh limited token: %d", r.status)
		}
		plain := e.token(t, k)
		for range 5 {
			if r := e.get("/keys/"+k.ID.String(), plain, ""); r.status != 200 {
				t.Fatalf("an unlimited token: %d", r.status)
			}
		}
	})
	t.Run("licenses", func(t *testing.T) {
		e := newEnv(t, delivery.Options{})
		e = newEnvWith(t, e, delivery.Options{Uses: e.keys})
		k1, k2 := e.key(t), e.key(t)
		tok := e.limitedToken(t, 1, k1, k2)
		if r := e.post("/clearkey/license", tok, ckRequest("temporary", k1, k2)); r.status != 200 {
			t.Fatalf("first license: %d %s", r.status, r.body)
		}
		for _, path := range []string{"/clearkey/license", "/widevine/license?kid=" + k1.ID.String()} {
			body := ckRequest("temporary", k1)
			r := e.post(path, tok, body)
			if p := r.problem(t); r.status != 403 || p.Reason != "max_uses_exceeded" {
				t.Fatalf("%s past the limit: %d %+v", path, r.status, p)
			}
		}
	})
	t.Run("fails closed", func(t *testing.T) {
		for name, uses := range map[string]interface {
			CountUse(context.Context, [32]byte, time.Time) (int64, error)
		}{"no counter": nil, "counter down": brokenCounter{}} {
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, delivery.Options{})
				o := delivery.Options{}
				if uses != nil {
					o.Uses = uses
				}
				e = newEnvWith(t, e, o)
				k := e.key(t)
				r := e.get("/keys/"+k.ID.String(), e.limitedToken(t, 5, k), "")
				if r.status != 503 || r.header.Get("Retry-After") == "" {
					t.Fatalf("a limited token without a counter: %d %s", r.status, r.body)
				}
				assertNoKeyMaterial(t, r.body, k)
				if r := e.get("/keys/"+k.ID.String(), e.token(t, k), ""); r.status != 200 {
					t.Fatalf("an unlimited token needs no counter: %d", r.status)
				}
			})
		}
	})
}

type brokenCounter struct{}

func (brokenCounter) CountUse(context.Context, [32]byte, time.Time) (int64, error) {
	return 0, keystore.ErrUnavailable
}

// newEnvWith rebuilds e's handler over the same keys and signer with o
// (e's verifier unless o has one).
func newEnvWith(t *testing.T, e *env, o delivery.Options) *env {
	t.Helper()
	if o.Verifier == nil {
		o.Verifier = e.v
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	e2 := *e
	e2.reg = prometheus.NewRegistry()
	o.Keys, o.Registerer = e.keys, e2.reg
	var err error
	if e2.h, err = delivery.New(o); err != nil {
		t.Fatal(err)
	}
	return &e2
}

// countingVerifier counts the tokens it is asked to verify.
type countingVerifier struct {
	v interface {
		Verify(string) (auth.Claims, error)
	}
	calls atomic.Int64
}

func (c *countingVerifier) Verify(raw string) (auth.Claims, error) {
	c.calls.Add(1)
	return c.v.Verify(raw)
}

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

// TestAuthFailureBudget (issue: "no rate limiting anywhere: unique
// bad-signature tokens cost the server 128 µs each"): an address that has
// spent its budget of failed verifications gets 429 rate_limited with
// Retry-After, decided before its token reaches the verifier.
func TestAuthFailureBudget(t *testing.T) {
	e := newEnv(t, delivery.Options{})
	cv := &countingVerifier{v: e.v}
	c := &clock{}
	c.t.Store(time.Now().UnixNano())
	e = newEnvWith(t, e, delivery.Options{Verifier: cv, AuthFailures: ratelimit.Limit{Rate: 2, Burst: 3}, Now: c.now})
	k := e.key(t)
	good := e.token(t, k)
	forged := good[:strings.LastIndexByte(good, '.')+1] + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	const attacker, player = "192.0.2.1:1000", "198.51.100.7:2000"
	for i := range 3 {
		if r := e.get("/keys/"+k.ID.String(), forged, attacker); r.status != 401 {
			t.Fatalf("forged token %d: %d", i, r.status)
		}
	}
	before := cv.calls.Load()
	for _, tok := range []string{forged, good} {
		r := e.get("/keys/"+k.ID.String(), tok, attacker)
		if p := r.problem(t); r.status != 429 || p.Reason != "rate_limited" || r.header.Get("Retry-After") != "1" {
			t.Fatalf("over budget: %d %+v Retry-After=%q", r.status, p, r.header.Get("Retry-After"))
		}
		assertNoKeyMaterial(t, r.body, k)
	}
	if n := cv.calls.Load() - before; n != 0 {
		t.Fatalf("%d tokens verified after the budget was spent", n)
	}
	if r := e.get("/keys/"+k.ID.String(), good, player); r.status != 200 {
		t.Fatalf("another address: %d", r.status)
	}
	// An IPv6 attacker cannot take a fresh budget per address of its /64.
	for i := range 3 {
		e.get("/keys/"+k.ID.String(), forged, "[2001:db8:1:2::"+string(rune('a'+i))+"]:1")
	}
	if r := e.get("/keys/"+k.ID.String(), forged, "[2001:db8:1:2::ffff]:1"); r.status != 429 {
		t.Fatalf("another address of the same /64: %d", r.status)
	}
	c.advance(500 * time.Millisecond)
	if r := e.get("/keys/"+k.ID.String(), good, attacker); r.status != 200 {
		t.Fatalf("after the refill: %d", r.status)
	}
	if v := counterValue2(t, e, "keydelivery_rate_limited_total", "limit", "auth_failures"); v != 3 {
		t.Errorf("rate_limited_total{limit=auth_failures} = %v, want 3", v)
	}
}

func TestRequestBudget(t *testing.T) {
	e := newEnv(t, delivery.Options{})
	c := &clock{}
	c.t.Store(time.Now().UnixNano())
	e = newEnvWith(t, e, delivery.Options{Requests: ratelimit.Limit{Rate: 1, Burst: 2}, Now: c.now})
	k := e.key(t)
	tok := e.token(t, k)
	for range 2 {
		if r := e.get("/keys/"+k.ID.String(), tok, ""); r.status != 200 {
			t.Fatalf("%d", r.status)
		}
	}
	r := e.get("/keys/"+k.ID.String(), tok, "")
	if p := r.problem(t); r.status != 429 || p.Reason != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the request budget: %d %+v", r.status, p)
	}
	if r := e.get("/healthz", "", ""); r.status != 200 {
		t.Fatalf("health checks are not budgeted: %d", r.status)
	}
}

// TestRefusalLog (issue 15: "a wrong audience logs aud claim does not
// contain the audience without the expected or the received value; without
// --access-log no 4xx refusal is logged at all"): every refused token is
// logged at Info with its request ID, reason and facts, paced per address.
func TestRefusalLog(t *testing.T) {
	var buf syncbuf.Buffer
	e := newEnv(t, delivery.Options{})
	c := &clock{}
	c.t.Store(time.Now().UnixNano())
	e = newEnvWith(t, e, delivery.Options{Log: slog.New(slog.NewJSONHandler(&buf, nil)), Now: c.now})
	k, other := e.key(t), e.key(t)
	wrongAud, err := e.signer.Sign(auth.TokenClaims{Issuer: "iss", Audience: "urn:someone-else", KeyIDs: []string{k.ID.String()}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/keys/"+k.ID.String(), nil)
	req.Header.Set("Authorization", "Bearer "+wrongAud)
	req.Header.Set("X-Request-Id", "player-req-1")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("%d", rec.Code)
	}
	line := buf.String()
	for _, want := range []string{`"level":"INFO"`, `"msg":"token refused"`, `"request_id":"player-req-1"`, `"reason":"wrong_audience"`,
		`"aud":["urn:someone-else"]`, `"aud_expected":"aud"`, `"server_time"`, `"certificate_asked":"x5t:`} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal line lacks %s: %s", want, line)
		}
	}
	if strings.Contains(line, wrongAud[:20]) || strings.Contains(line, wrongAud[strings.LastIndexByte(wrongAud, '.')+1:]) {
		t.Fatalf("the log holds the token: %s", line)
	}

	// A token that does not grant the key: the KIDs asked and granted.
	buf.Reset()
	c.advance(time.Second)
	e.get("/keys/"+other.ID.String(), e.token(t, k), "")
	line = buf.String()
	for _, want := range []string{`"reason":"key_not_granted"`, `"kids_asked":["` + other.ID.String() + `"]`, `"kids_granted":["` + k.ID.String() + `"]`} {
		if !strings.Contains(line, want) {
			t.Errorf("grant refusal line lacks %s: %s", want, line)
		}
	}

	// Paced: a flood from one address is one line a second, with a count.
	buf.Reset()
	c.advance(time.Second)
	for range 50 {
		e.get("/keys/"+k.ID.String(), "garbage", "")
	}
	if n := strings.Count(buf.String(), "token refused"); n != 1 {
		t.Fatalf("%d lines for a flood, want 1", n)
	}
	c.advance(time.Second)
	buf.Reset()
	e.get("/keys/"+k.ID.String(), "garbage", "")
	if !strings.Contains(buf.String(), `"count":50`) {
		t.Fatalf("the next line does not count the refusals it stands for: %s", buf.String())
	}
}

// counterValue2 reads one series of a counter from e's registry.
func counterValue2(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCachedVerifier(t *testing.T) {
	f := newFixture(t)
	now := testNow
	v := f.verifier(t, func(o *Options) { o.Now = func() time.Time { return now } })
	c, err := NewCachedVerifier(v, 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.a.signer().Sign(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		claims, err := c.Verify(tok)
		if err != nil || !claims.Grants(mustUUID(t, kid1)) {
			t.Fatalf("Verify = %+v, %v", claims, err)
		}
	}
	if c.Len() != 1 {
		t.Fatalf("cache holds %d tokens, want 1", c.Len())
	}

	// A token differing only in its signature is verified afresh, and refused.
	tampered := []byte(tok)
	tampered[len(tampered)-2] ^= 0x01
	if _, err := c.Verify(string(tampered)); err == nil {
		t.Fatal("a tampered token was accepted from the cache")
	}
	// Refusals are not cached.
	for _, bad := range []string{"x.y.z", string(tampered), "", "a"} {
		_, _ = c.Verify(bad)
	}
	if c.Len() != 1 {
		t.Fatalf("refusals were cached: %d entries", c.Len())
	}

	// Past exp + leeway the cached token is refused as expired.
	now = testNow.Add(10*time.Minute + DefaultLeeway + time.Second)
	var ae *Error
	if _, err := c.Verify(tok); !errors.As(err, &ae) || ae.Reason != ReasonExpired {
		t.Fatalf("expired cached token: %v", err)
	}
}

// TestCachedVerifierForgedSignature: once a token is cached, the same
// header and payload under any other signature (another token's valid
// signature, random bytes, a short or an empty one, none), and the cached
// signature under another header and payload, never hit the entry: each
// is verified afresh and refused, and the cached token is neither evicted
// nor disturbed. A cache keyed by the signed part alone, or by the
// signature alone, would answer some of these from the entry and fail.
func TestCachedVerifierForgedSignature(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	c, tok := cachedAndVerified(t, f, reg)
	other := validClaims()
	other.Subject = "someone else"
	otherTok, err := f.a.signer().Sign(other)
	if err != nil {
		t.Fatal(err)
	}
	signed := tok[:strings.LastIndexByte(tok, '.')]
	random := make([]byte, 64)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	forged := map[string]string{
		"another token's signature": signed + otherTok[strings.LastIndexByte(otherTok, '.'):],
		"random signature":          signed + "." + base64.RawURLEncoding.EncodeToString(random),
		"short signature":           signed + ".AAAA",
		"empty signature":           signed + ".",
		"no signature":              signed,
		"signature with padding":    tok + "=",
		// The cached signature under another header and payload (what an
		// attacker who saw only a signature could try).
		"the cached signature on another payload": otherTok[:strings.LastIndexByte(otherTok, '.')] + tok[strings.LastIndexByte(tok, '.'):],
		"no dot at all": strings.ReplaceAll(tok, ".", ""),
	}
	for name, bad := range forged {
		hits, misses := count(t, reg, "hits"), count(t, reg, "misses")
		if claims, err := c.Verify(bad); err == nil {
			t.Fatalf("%s: accepted (%+v)", name, claims)
		}
		if count(t, reg, "hits") != hits || count(t, reg, "misses") != misses+1 {
			t.Fatalf("%s: answered from the cache", name)
		}
	}
	// The genuine token is still cached, and still the only entry.
	hits := count(t, reg, "hits")
	if _, err := c.Verify(tok); err != nil || count(t, reg, "hits") != hits+1 || c.Len() != 1 {
		t.Fatalf("the cached token after the forgeries: %v, hit %v, %d entries", err, count(t, reg, "hits") == hits+1, c.Len())
	}
}

// count reads the counter keydelivery_token_cache_<name>_total from reg.
func count(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "keydelivery_token_cache_"+name+"_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// TestCachedVerifierTrustReload: removing a certificate from the trust set
// stops its cached tokens at once.
func TestCachedVerifierTrustReload(t *testing.T) {
	f := newFixture(t)
	c, tok := cachedAndVerified(t, f, nil)
	if err := os.Remove(filepath.Join(f.dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	if err := f.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	var ae *Error
	if _, err := c.Verify(tok); !errors.As(err, &ae) || ae.Reason != ReasonUnknownSigningKey {
		t.Fatalf("token of a removed certificate after reload: %v", err)
	}
}

// TestCachedVerifierBounded: the cache never holds more than its size.
func TestCachedVerifierBounded(t *testing.T) {
	f := newFixture(t)
	c, err := NewCachedVerifier(f.verifier(t, nil), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		cl := validClaims()
		cl.Subject = string(rune('a' + i))
		tok, err := f.a.signer().Sign(cl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 4 {
		t.Fatalf("cache holds %d, want 4", c.Len())
	}
	if _, err := NewCachedVerifier(f.verifier(t, nil), 0, nil); err == nil {
		t.Fatal("size 0 accepted")
	}
}

func BenchmarkCachedVerify(b *testing.B) {
	f := newFixture(b)
	c, err := NewCachedVerifier(f.verifier(b, nil), 1024, nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, err := f.a.signer().Sign(validClaims())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheMemory fills a token cache with 100,000 distinct verified
// tokens (each with its own subject and one KID, as players get them) and
// reports the heap the cache keeps per entry (bytes/entry: live heap after
// a GC, less the live heap before, over the entries; the tokens themselves
// are dropped as they are verified, so only what the cache holds counts).
// Signing and verifying 100,000 ES256 tokens takes a while; run it alone:
//
//	go test -run '^$' -bench CacheMemory -benchtime 1x ./auth/
func BenchmarkCacheMemory(b *testing.B) {
	const n = 100_000
	f := newFixture(b)
	v := f.verifier(b, nil)
	signer := f.a.signer()
	var perEntry, tokenBytes float64
	for b.Loop() {
		c, err := NewCachedVerifier(v, n, nil)
		if err != nil {
			b.Fatal(err)
		}
		before := liveHeap()
		total := 0
		for i := range n {
			cl := validClaims()
			cl.Subject = fmt.Sprintf("viewer-%08d", i)
			tok, err := signer.Sign(cl)
			if err != nil {
				b.Fatal(err)
			}
			total += len(tok)
			if _, err := c.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
		after := liveHeap()
		if c.Len() != n {
			b.Fatalf("cache holds %d tokens, want %d", c.Len(), n)
		}
		perEntry = float64(after-before) / n
		tokenBytes = float64(total) / n
		runtime.KeepAlive(c)
	}
	b.ReportMetric(perEntry, "bytes/entry")
	b.ReportMetric(tokenBytes, "token-bytes")
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// cachedAndVerified is a CachedVerifier of 8 tokens over f's verifier,
// counting into reg (nil: none), with one valid token verified through it
// (so it is cached).
func cachedAndVerified(t *testing.T, f *fixture, reg prometheus.Registerer) (*CachedVerifier, string) {
	t.Helper()
	c, err := NewCachedVerifier(f.verifier(t, nil), 8, reg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.a.signer().Sign(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(tok); err != nil {
		t.Fatal(err)
	}
	return c, tok
}

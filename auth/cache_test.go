package auth

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// TestCachedVerifierTrustReload: removing a certificate from the trust set
// stops its cached tokens at once.
func TestCachedVerifierTrustReload(t *testing.T) {
	f := newFixture(t)
	c, err := NewCachedVerifier(f.verifier(t, nil), 8, nil)
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

package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestVerifyContentIDs reads the content_ids claim: an array of content
// IDs, de-duplicated in order; anything else refuses the token as
// malformed. A token naming contents is bound to them: never unbound, even
// with AllowUnbound.
func TestVerifyContentIDs(t *testing.T) {
	f := newFixture(t)
	strict := f.verifier(t, nil)
	unbound := f.verifier(t, func(o *Options) { o.AllowUnbound = true })
	many := make([]string, MaxContentIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("content-%d", i)
	}
	for _, tt := range []struct {
		name    string
		kids    []string // the kids claim (nil: absent)
		value   any      // the content_ids claim (absent when nil and !null)
		null    bool
		want    []string // Claims.ContentIDs; ignored when malformed
		grants  bool     // Grants(kid1)
		refused bool     // malformed
	}{
		{name: "one content", value: []string{"live-1"}, want: []string{"live-1"}},
		{name: "two contents", value: []string{"live-1", "vod-2"}, want: []string{"live-1", "vod-2"}},
		{name: "duplicates kept once, in order", value: []string{"b", "a", "b", "a"}, want: []string{"b", "a"}},
		{name: "beside kids", kids: []string{kid1}, value: []string{"live-1"}, want: []string{"live-1"}, grants: true},
		{name: "the largest list", value: many[:MaxContentIDs], want: many[:MaxContentIDs]},
		{name: "an empty list grants nothing", value: []string{}, want: []string{}},
		{name: "null is no claim", null: true},
		{name: "case kept: IDs compare exactly", value: []string{"Live-1", "live-1"}, want: []string{"Live-1", "live-1"}},
		{name: "a string, not an array", value: "live-1", refused: true},
		{name: "a number in the array", value: []any{"live-1", 7}, refused: true},
		{name: "an object", value: map[string]any{"id": "live-1"}, refused: true},
		{name: "an empty entry", value: []string{"live-1", ""}, refused: true},
		{name: "too many entries", value: many, refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validClaims()
			c.KeyIDs = tt.kids
			if tt.value != nil || tt.null {
				c.Extra = map[string]any{claimContentIDs: tt.value}
			}
			tok, err := f.a.signer().Sign(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []*Verifier{strict, unbound} {
				got, err := v.Verify(tok)
				if tt.refused {
					if reasonOf(err) != ReasonMalformed {
						t.Fatalf("Verify = %+v, %v; want %s", got, err, ReasonMalformed)
					}
					assertNoTokenInError(t, tok, err)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.ContentIDs, tt.want) || (got.ContentIDs == nil) != (tt.want == nil) {
					t.Errorf("ContentIDs = %q, want %q", got.ContentIDs, tt.want)
				}
				// Only the token without any granting claim is unbound.
				wantUnbound := v == unbound && tt.null && tt.kids == nil
				if got.Unbound != wantUnbound {
					t.Errorf("Unbound = %v, want %v", got.Unbound, wantUnbound)
				}
				if g := got.Grants(mustUUID(t, kid1)); g != (tt.grants || wantUnbound) {
					t.Errorf("Grants(kid1) = %v", g)
				}
			}
		})
	}
}

// TestGrantsContent: a key is granted by content when one of its assets is
// one of the token's contents, compared exactly.
func TestGrantsContent(t *testing.T) {
	c := Claims{ContentIDs: []string{"live-1", "vod-2"}}
	for _, tt := range []struct {
		assets []string
		want   bool
	}{
		{[]string{"live-1"}, true},
		{[]string{"other", "vod-2"}, true},
		{[]string{"other"}, false},
		{[]string{"LIVE-1"}, false},
		{[]string{"live-1 "}, false},
		{[]string{"live"}, false},
		{nil, false},
	} {
		if got := c.GrantsContent(tt.assets); got != tt.want {
			t.Errorf("GrantsContent(%q) = %v, want %v", tt.assets, got, tt.want)
		}
	}
	for _, none := range []Claims{{}, {ContentIDs: []string{}}, {Unbound: true}, {KeyIDs: [][16]byte{{1}}}} {
		if none.GrantsContent([]string{"live-1"}) {
			t.Errorf("%+v grants a content", none)
		}
	}
}

// TestGrantCheckAllocations: the grant checks of the hot path allocate
// nothing.
func TestGrantCheckAllocations(t *testing.T) {
	id := mustUUID(t, kid2)
	c := Claims{KeyIDs: [][16]byte{mustUUID(t, kid1), id}, ContentIDs: []string{"live-1"}}
	assets := []string{"other", "live-1"}
	if n := testing.AllocsPerRun(100, func() {
		if !c.Grants(id) || !c.GrantsContent(assets) {
			t.Fatal("not granted")
		}
	}); n != 0 {
		t.Errorf("%v allocations per grant check", n)
	}
}

// TestIssuerBinding: a key from an OpenID Connect issuer verifies only
// that issuer's tokens (wrong_issuer otherwise, naming the key's issuer
// in the facts); keys from a plain key set URL and from certificate
// files verify the tokens of any configured issuer.
func TestIssuerBinding(t *testing.T) {
	const (
		issuerA = "https://login.example/tenant-a/v2.0"
		issuerB = "https://login.example/tenant-b/v2.0"
		unknown = "https://elsewhere.example/"
	)
	f := newFixture(t)
	keyA, signerA := newBareKey(t)
	keyB, signerB := newBareKey(t)
	keySet, signerSet := newBareKey(t)
	oidcA := &fakeSource{kind: KindOIDC, name: issuerA}
	oidcA.set([]Key{{PublicKey: &keyA.PublicKey, KeyID: "a-1", Location: issuerA + "/keys", Issuer: issuerA}}, nil)
	oidcB := &fakeSource{kind: KindOIDC, name: issuerB}
	oidcB.set([]Key{{PublicKey: &keyB.PublicKey, KeyID: "b-1", Location: issuerB + "/keys", Issuer: issuerB}}, nil)
	set := &fakeSource{kind: KindJWKS, name: "https://keys.example/jwks"}
	set.set([]Key{{PublicKey: &keySet.PublicKey, KeyID: "set-1", Location: "https://keys.example/jwks"}}, nil)
	tr := newRemoteTrust(t, TrustOptions{Paths: []string{f.dir}, Remotes: []Remote{{Source: oidcA}, {Source: oidcB}, {Source: set}}})
	v, err := NewVerifier(tr, Options{Issuers: []string{testIssuer, issuerA, issuerB}, Audience: testAudience,
		ParseKeyID: parseUUID, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := NewCachedVerifier(v, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range tr.Keys() {
		want := map[string]string{"a-1": issuerA, "b-1": issuerB}[k.KeyID]
		if k.Issuer != want {
			t.Errorf("key %s (%s): Issuer %q, want %q", k.KeyID, k.Kind, k.Issuer, want)
		}
	}
	bare := func(s *Signer, kid string) func(TokenClaims) (string, error) {
		return func(c TokenClaims) (string, error) { return s.SignWithHeader(c, map[string]any{"kid": kid}) }
	}
	for _, tt := range []struct {
		name  string
		sign  func(TokenClaims) (string, error)
		iss   string
		want  Reason // "" accepted
		bound string // the issuer the facts expect on wrong_issuer by binding
	}{
		{"issuer A's key, A's token", bare(signerA, "a-1"), issuerA, "", ""},
		{"issuer B's key, B's token", bare(signerB, "b-1"), issuerB, "", ""},
		{"issuer A's key claiming issuer B", bare(signerA, "a-1"), issuerB, ReasonWrongIssuer, issuerA},
		{"issuer B's key claiming issuer A", bare(signerB, "b-1"), issuerA, ReasonWrongIssuer, issuerB},
		{"issuer A's key claiming the certificate files' issuer", bare(signerA, "a-1"), testIssuer, ReasonWrongIssuer, issuerA},
		{"issuer A's key claiming an issuer not configured", bare(signerA, "a-1"), unknown, ReasonWrongIssuer, ""},
		{"issuer A's key, iss missing", bare(signerA, "a-1"), "", ReasonWrongIssuer, ""},
		{"issuer A's key, iss of A in another case", bare(signerA, "a-1"), strings.ToUpper(issuerA), ReasonWrongIssuer, ""},
		{"plain key set, the files' issuer", bare(signerSet, "set-1"), testIssuer, "", ""},
		{"plain key set, issuer A", bare(signerSet, "set-1"), issuerA, "", ""},
		{"plain key set, issuer B", bare(signerSet, "set-1"), issuerB, "", ""},
		{"certificate file, the files' issuer", f.a.signer().Sign, testIssuer, "", ""},
		{"certificate file, issuer A", f.a.signer().Sign, issuerA, "", ""},
		{"certificate file, issuer B", f.b.signer().Sign, issuerB, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validClaims()
			c.Issuer = tt.iss
			tok, err := tt.sign(c)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second through the cache (a refusal is never cached)
				got, err := cv.Verify(tok)
				if tt.want == "" {
					if err != nil || got.Issuer != tt.iss {
						t.Fatalf("Verify = %+v, %v", got, err)
					}
					continue
				}
				var ae *Error
				if !errors.As(err, &ae) || ae.Reason != tt.want {
					t.Fatalf("Verify = %+v, %v; want %s", got, err, tt.want)
				}
				if tt.bound != "" && (!slices.Equal(ae.Facts.ExpectedIssuers, []string{tt.bound}) || !ae.Facts.Verified) {
					t.Errorf("facts %+v, want the key's issuer %s", ae.Facts, tt.bound)
				}
			}
		})
	}
}

// TestSharedKeyIDAcrossIssuers: two identity providers that number their
// keys alike ("1") each get their own tokens verified: the kid is resolved
// with the token's iss. Before, the first key with the kid won, and every
// token of the second provider was refused as bad_signature. A token that
// claims the other provider's iss still fails (bad_signature: the key of
// that issuer did not sign it).
func TestSharedKeyIDAcrossIssuers(t *testing.T) {
	const (
		issuerA = "https://login.example/tenant-a/v2.0"
		issuerB = "https://login.example/tenant-b/v2.0"
	)
	keyA, signerA := newBareKey(t)
	keyB, signerB := newBareKey(t)
	oidcA := &fakeSource{kind: KindOIDC, name: issuerA}
	oidcA.set([]Key{{PublicKey: &keyA.PublicKey, KeyID: "1", Location: issuerA + "/keys", Issuer: issuerA}}, nil)
	oidcB := &fakeSource{kind: KindOIDC, name: issuerB}
	oidcB.set([]Key{{PublicKey: &keyB.PublicKey, KeyID: "1", Location: issuerB + "/keys", Issuer: issuerB}}, nil)
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: oidcA}, {Source: oidcB}}})
	v, err := NewVerifier(tr, Options{Issuers: []string{issuerA, issuerB}, Audience: testAudience,
		ParseKeyID: parseUUID, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		signer *Signer
		iss    string
		want   Reason
	}{
		{"A's token", signerA, issuerA, ""},
		{"B's token", signerB, issuerB, ""},
		{"A's key claiming B", signerA, issuerB, ReasonBadSignature},
		{"B's key claiming A", signerB, issuerA, ReasonBadSignature},
	} {
		c := validClaims()
		c.Issuer = tt.iss
		tok, err := tt.signer.SignWithHeader(c, map[string]any{"kid": "1"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(tok)
		var ae *Error
		switch {
		case tt.want == "" && (err != nil || got.Issuer != tt.iss):
			t.Errorf("%s: Verify = %+v, %v", tt.name, got, err)
		case tt.want != "" && (!errors.As(err, &ae) || ae.Reason != tt.want):
			t.Errorf("%s: Verify = %+v, %v; want %s", tt.name, got, err, tt.want)
		}
	}
}

// TestOIDCKeyWithoutIssuerRefused: a source of an OpenID Connect issuer
// that reports a key without its issuer fails the fetch (it would verify
// any configured issuer's tokens), and its last good keys stay.
func TestOIDCKeyWithoutIssuerRefused(t *testing.T) {
	const issuer = "https://login.example/tenant/v2.0"
	good, signer := newBareKey(t)
	other, _ := newBareKey(t)
	src := &fakeSource{kind: KindOIDC, name: issuer}
	src.set([]Key{{PublicKey: &good.PublicKey, KeyID: "k-1", Issuer: issuer}}, nil)
	tr := newRemoteTrust(t, TrustOptions{Remotes: []Remote{{Source: src}}})
	src.set([]Key{{PublicKey: &other.PublicKey, KeyID: "k-2"}}, nil)
	if tr.fetchRemote(t.Context(), tr.remotes[0]) {
		t.Fatal("a key of an OpenID Connect issuer without its issuer was trusted")
	}
	if st := tr.Sources()[0]; !strings.Contains(st.LastError, "must name its issuer") || st.Keys != 1 {
		t.Errorf("status %+v", st)
	}
	v, err := NewVerifier(tr, Options{Issuers: []string{issuer}, Audience: testAudience, ParseKeyID: parseUUID,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	c := validClaims()
	c.Issuer = issuer
	tok, _ := signer.SignWithHeader(c, map[string]any{"kid": "k-1"})
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("the last good key: %v", err)
	}
}

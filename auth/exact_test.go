package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// signRaw signs a hand-written header and payload (JSON text, as is) with
// key: the way an attacker who controls what an issuer signs, or a sloppy
// issuer, would make a token that no JSON encoder would write.
func signRaw(tb testing.TB, key *ecdsa.PrivateKey, header, payload string) string {
	tb.Helper()
	signed := b64(header) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// twin returns the other valid signature of tok: (r, n-s) for (r, s).
func twin(tb testing.TB, tok string) string {
	tb.Helper()
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil || len(sig) != 64 {
		tb.Fatalf("not an ES256 token: %v", err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := make([]byte, 64)
	copy(out, sig[:32])
	s.FillBytes(out[32:])
	return tok[:dot+1] + base64.RawURLEncoding.EncodeToString(out)
}

// TestVerifyExactNames is the issue's "claim names are matched ignoring
// case, with Unicode folding" list, each as a correctly signed token: every
// one was accepted before (most granting a key the exact-name reading does
// not), and is refused as malformed now.
func TestVerifyExactNames(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, func(o *Options) { o.AllowUnbound = true })
	hdr := `{"alg":"ES256","typ":"JWT","x5t":"` + f.a.c.X5T() + `"}`
	iat, exp := testNow.Add(-time.Minute).Unix(), testNow.Add(10*time.Minute).Unix()
	past := testNow.Add(-time.Hour).Unix()
	base := fmt.Sprintf(`"iss":%q,"aud":%q,"iat":%d`, testIssuer, testAudience, iat)
	body := func(rest string) string { return "{" + base + "," + rest + "}" }
	expOK := fmt.Sprintf(`"exp":%d`, exp)

	// The control: the exact names are accepted.
	ok := signRaw(t, f.a.key, hdr, body(expOK+`,"kids":["`+kid1+`"]`))
	if c, err := v.Verify(ok); err != nil || !c.Grants(mustUUID(t, kid1)) {
		t.Fatalf("exact names refused: %v", err)
	}

	tests := []struct{ name, header, payload string }{
		{"kids and kids with the Kelvin sign (encoding/json took the second)", hdr, body(expOK + `,"kids":["` + kid1 + `"],"\u212aids":["` + kid2 + `"]`)},
		{"Kelvin-sign kids alone", hdr, body(expOK + `,"\u212aids":["` + kid2 + `"]`)},
		{"KIDS for kids", hdr, body(expOK + `,"KIDS":["` + kid2 + `"]`)},
		{"Kids for kids", hdr, body(expOK + `,"Kids":["` + kid2 + `"]`)},
		{"kidſ (long s) for kids", hdr, body(expOK + `,"kid\u017f":["` + kid2 + `"]`)},
		{"EXP for exp", hdr, body(fmt.Sprintf(`"EXP":%d,"kids":["%s"]`, exp, kid1))},
		{"exp past then ExP future (encoding/json took the second)", hdr, body(fmt.Sprintf(`"exp":%d,"ExP":%d,"kids":["%s"]`, past, exp, kid1))},
		{"ISS beside a wrong iss", hdr, fmt.Sprintf(`{"iss":"https://evil.example/","ISS":%q,"aud":%q,"exp":%d,"kids":["%s"]}`, testIssuer, testAudience, exp, kid1)},
		{"ıss (dotless i, which encoding/json folds to I)", hdr, fmt.Sprintf(`{"\u0131ss":%q,"aud":%q,"exp":%d,"kids":["%s"]}`, testIssuer, testAudience, exp, kid1)},
		{"AUD beside a wrong aud", hdr, fmt.Sprintf(`{"iss":%q,"aud":"urn:elsewhere","AUD":%q,"exp":%d,"kids":["%s"]}`, testIssuer, testAudience, exp, kid1)},
		{"content key claim in upper case", hdr, body(expOK + `,"URN:MICROSOFT:AZURE:MEDIASERVICES:CONTENTKEYIDENTIFIER":"` + kid2 + `"`)},
		{"CONTENT_IDS for content_ids", hdr, body(expOK + `,"CONTENT_IDS":["live-1"]`)},
		{"Content_Ids for content_ids", hdr, body(expOK + `,"Content_Ids":["live-1"]`)},
		{"content_ids and content_ıds (dotless i, which encoding/json folds to I)", hdr, body(expOK + `,"content_ids":["live-1"],"content_\u0131ds":["live-2"]`)},
		{"content_idſ (long s) alone", hdr, body(expOK + `,"content_id\u017f":["live-2"]`)},
		{"content_ids twice (last wins in encoding/json)", hdr, body(expOK + `,"content_ids":["live-1"],"content_ids":["live-2"]`)},
		{"maxuses in upper case", hdr, body(expOK + `,"kids":["` + kid1 + `"],"urn:microsoft:azure:mediaservices:MAXUSES":1`)},
		{"kids twice (last wins in encoding/json)", hdr, body(expOK + `,"kids":["` + kid1 + `"],"kids":["` + kid2 + `"]`)},
		{"exp twice", hdr, body(fmt.Sprintf(`"exp":%d,"exp":%d,"kids":["%s"]`, past, exp, kid1))},
		{"a name of no claim twice, deep inside", hdr, body(expOK + `,"kids":["` + kid1 + `"],"x":{"y":1,"y":2}`)},
		{"exp as a string of a number", hdr, body(`"exp":"1e10","kids":["` + kid1 + `"]`)},
		{"nbf as a string", hdr, body(expOK + `,"nbf":"0","kids":["` + kid1 + `"]`)},
		{"iat as a string", fmt.Sprintf(`{"alg":"ES256","x5t":%q}`, f.a.c.X5T()), fmt.Sprintf(`{"iss":%q,"aud":%q,"iat":"%d","exp":%d}`, testIssuer, testAudience, iat, exp)},
		{"exp beyond year 9999", hdr, body(`"exp":1e300,"kids":["` + kid1 + `"]`)},
		{"ALG in the header", fmt.Sprintf(`{"alg":"ES256","ALG":"none","x5t":%q}`, f.a.c.X5T()), body(expOK)},
		{"alg twice in the header", fmt.Sprintf(`{"alg":"none","alg":"ES256","x5t":%q}`, f.a.c.X5T()), body(expOK)},
		{"X5T in the header", fmt.Sprintf(`{"alg":"ES256","X5T":%q}`, f.a.c.X5T()), body(expOK)},
		{"Kid in the header", fmt.Sprintf(`{"alg":"ES256","x5t":%q,"Kid":"x"}`, f.a.c.X5T()), body(expOK)},
		{"CRIT in the header", fmt.Sprintf(`{"alg":"ES256","x5t":%q,"CRIT":["exp"]}`, f.a.c.X5T()), body(expOK)},
		{"payload is an array", hdr, `[` + body(expOK) + `]`},
		{"two objects in the payload", hdr, body(expOK) + body(expOK)},
		{"invalid UTF-8 in a claim", hdr, body(expOK + `,"sub":"` + "\xff" + `"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := signRaw(t, f.a.key, tt.header, tt.payload)
			c, err := v.Verify(tok)
			var ae *Error
			if !errors.As(err, &ae) || ae.Reason != ReasonMalformed {
				t.Fatalf("Verify = %+v, %v; want %s", c, err, ReasonMalformed)
			}
			assertNoTokenInError(t, tok, err)
		})
	}
}

// TestVerifyMaxUses reads the AMS replay-limit claim.
func TestVerifyMaxUses(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	sign := func(extra map[string]any) string {
		c := validClaims()
		c.Extra = extra
		tok, err := f.a.signer().Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tt := range []struct {
		name  string
		value any
		want  int // 0: refused as malformed
	}{
		{"number", 3, 3},
		{"string, as the AMS .NET samples write it", "2", 2},
		{"one", 1, 1},
		{"the largest", MaxUsesLimit, MaxUsesLimit},
		{"zero", 0, 0},
		{"negative", -1, 0},
		{"fraction", 1.5, 0},
		{"too large", MaxUsesLimit + 1, 0},
		{"string not a number", "two", 0},
		{"signed string", "+2", 0},
		{"empty string", "", 0},
		{"bool", true, 0},
		{"array", []int{2}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(map[string]any{claimMaxUses: tt.value})
			c, err := v.Verify(tok)
			if tt.want == 0 {
				var ae *Error
				if !errors.As(err, &ae) || ae.Reason != ReasonMalformed {
					t.Fatalf("Verify = %v, want malformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(tok, ".")
			if c.MaxUses != tt.want || c.TokenDigest != sha256.Sum256([]byte(parts[0]+"."+parts[1])) {
				t.Errorf("MaxUses = %d, TokenDigest = %x", c.MaxUses, c.TokenDigest)
			}
		})
	}
	c, err := v.Verify(sign(nil))
	if err != nil || c.MaxUses != 0 || c.TokenDigest != ([32]byte{}) {
		t.Errorf("a token without maxuses: %+v, %v", c, err)
	}
}

// TestVerifyHighSTwin: the twin of a valid signature, (r, n-s), verifies
// too (signers do not normalise s, so refusing high-S would refuse half of
// their tokens); it is the same token to the replay counter, whose key is
// the digest of the signed part.
func TestVerifyHighSTwin(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	c := validClaims()
	c.Extra = map[string]any{claimMaxUses: 1}
	tok, err := f.a.signer().Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	other := twin(t, tok)
	if other == tok {
		t.Fatal("twin is the same token")
	}
	a, errA := v.Verify(tok)
	b, errB := v.Verify(other)
	if errA != nil || errB != nil {
		t.Fatalf("Verify: %v, %v", errA, errB)
	}
	if a.TokenDigest != b.TokenDigest || a.TokenDigest == ([32]byte{}) {
		t.Errorf("twins have digests %x and %x, want one", a.TokenDigest, b.TokenDigest)
	}
	// Through the cache too: each twin is its own entry, with the same
	// digest.
	cv, err := NewCachedVerifier(v, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, s := range []string{tok, other} {
			got, err := cv.Verify(s)
			if err != nil || got.TokenDigest != a.TokenDigest {
				t.Fatalf("cached: %x, %v", got.TokenDigest, err)
			}
		}
	}
}

// TestVerifyNoKeyHeader: a token naming no certificate costs at most one
// signature check per valid certificate (it cost one more when golang-jwt
// verified the chosen certificate again), and RequireKeyID refuses it.
func TestVerifyNoKeyHeader(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	v := f.verifier(t, func(o *Options) { o.Registerer = reg })
	checks := func() float64 { return testutil.ToFloat64(v.sigChecks) }
	signedBy := func(tc testCert) string {
		tok, err := tc.signer().SignWithHeader(validClaims(), map[string]any{"x5t": nil})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tt := range []struct {
		name  string
		token string
		want  float64
	}{
		{"signed by the first of two valid certificates", signedBy(f.a), 1},
		{"signed by the second", signedBy(f.b), 2},
		{"signed by an untrusted key", signedBy(newTestCert(t, "untrusted", testNow, time.Hour)), 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := checks()
			_, _ = v.Verify(tt.token)
			if got := checks() - before; got != tt.want {
				t.Errorf("%v signature checks, want %v", got, tt.want)
			}
		})
	}
	named, err := f.b.signer().Sign(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	before := checks()
	if _, err := v.Verify(named); err != nil || checks()-before != 1 {
		t.Errorf("a named certificate: %v, %v checks", err, checks()-before)
	}

	strict := f.verifier(t, func(o *Options) { o.RequireKeyID = true })
	_, err = strict.Verify(signedBy(f.a))
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonUnknownSigningKey {
		t.Errorf("RequireKeyID: %v, want %s", err, ReasonUnknownSigningKey)
	}
	if _, err := strict.Verify(named); err != nil {
		t.Errorf("RequireKeyID refuses a token with x5t: %v", err)
	}
}

// TestVerifyFacts: a refusal carries what explains it, never the token.
func TestVerifyFacts(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	sign := func(mod func(*TokenClaims)) string {
		c := validClaims()
		mod(&c)
		tok, err := f.a.signer().Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	facts := func(tok string) (*Error, *Facts) {
		_, err := v.Verify(tok)
		var ae *Error
		if !errors.As(err, &ae) || ae.Facts == nil {
			t.Fatalf("Verify = %v, want an *Error with Facts", err)
		}
		if !ae.Facts.Now.Equal(testNow) {
			t.Errorf("Now = %v", ae.Facts.Now)
		}
		return ae, ae.Facts
	}
	ae, fs := facts(sign(func(c *TokenClaims) { c.Audience = "urn:someone-else\n\x1b[31m" }))
	if ae.Reason != ReasonWrongAudience || fs.ExpectedAudience != testAudience || !slices.Equal(fs.Audience, []string{"urn:someone-else??[31m"}) || !fs.Verified {
		t.Errorf("wrong audience: %+v", fs)
	}
	if fs.Thumbprint != "x5t:"+f.a.c.X5T() {
		t.Errorf("Thumbprint = %q", fs.Thumbprint)
	}
	ae, fs = facts(sign(func(c *TokenClaims) { c.Issuer = strings.Repeat("i", 100) }))
	if ae.Reason != ReasonWrongIssuer || !slices.Equal(fs.ExpectedIssuers, testOptions().Issuers) || fs.Issuer != strings.Repeat("i", 64)+"..." {
		t.Errorf("wrong issuer: %+v", fs)
	}
	ae, fs = facts(sign(func(c *TokenClaims) { c.ExpiresAt = testNow.Add(-time.Hour) }))
	if ae.Reason != ReasonExpired || !fs.ExpiresAt.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("expired: %+v", fs)
	}
	// A forged token: its claims are not reported.
	tok := sign(func(c *TokenClaims) { c.Issuer = "https://evil.example/" })
	tok = tok[:strings.LastIndexByte(tok, '.')+1] + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	ae, fs = facts(tok)
	if ae.Reason != ReasonBadSignature || fs.Verified || fs.Issuer != "" || fs.Thumbprint == "" {
		t.Errorf("bad signature: %+v", fs)
	}
}

// TestKnownClaimsCoverReadClaims: every claim parseClaims reads is in
// knownClaims, so a claim added later gets its case variants refused too.
func TestKnownClaimsCoverReadClaims(t *testing.T) {
	// Each name parseClaims reads answers a wrong type as a refusal naming
	// it; a name it skips does not.
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", claimKeyIDs, claimContentKeyID, claimContentIDs, claimMaxUses} {
		if !slices.Contains(knownClaims, name) {
			t.Errorf("%s is read but not in knownClaims", name)
		}
		_, e := parseClaims(b64(`{"` + name + `":{}}`))
		if e == nil || !strings.Contains(e.Error(), name) {
			t.Errorf("%s: %v", name, e)
		}
	}
	for _, name := range knownClaims {
		_, e := parseClaims(b64(`{"` + name + `":{}}`))
		if e == nil {
			t.Errorf("knownClaims lists %s, which parseClaims does not read", name)
		}
	}
	if _, e := parseClaims(b64(`{"other":{}}`)); e != nil {
		t.Errorf("an unknown claim is refused: %v", e)
	}
}

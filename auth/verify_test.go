package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signWith makes a token with any golang-jwt method, for the attacks.
func signWith(tb testing.TB, m jwt.SigningMethod, key any, c TokenClaims, header map[string]any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, c.mapClaims())
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	other := newTestCert(t, "untrusted", testNow, 24*time.Hour) // a P-256 key nobody trusts
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	trustedX5T := map[string]any{"x5t": f.a.c.X5T()}

	sign := func(tc testCert, mod func(*TokenClaims), header map[string]any) func(*testing.T) string {
		return func(t *testing.T) string {
			c := validClaims()
			if mod != nil {
				mod(&c)
			}
			s, err := tc.signer().SignWithHeader(c, header)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	raw := func(s string) func(*testing.T) string { return func(*testing.T) string { return s } }
	validHeader := b64(`{"alg":"ES256","typ":"JWT","x5t":"` + f.a.c.X5T() + `"}`)
	validPayload := b64(mustJSON(t, validClaims().mapClaims()))
	fakeSig := base64.RawURLEncoding.EncodeToString(make([]byte, 64))

	accepted := func(signer testCert) func(*testing.T, Claims) {
		return func(t *testing.T, c Claims) {
			if c.SigningKey != signer.sha256Hex() {
				t.Errorf("SigningKey = %s, want %s", c.SigningKey, signer.sha256Hex())
			}
			if !c.Grants(mustUUID(t, kid1)) || c.Grants(mustUUID(t, kid2)) || c.Unbound {
				t.Errorf("grants: %+v", c)
			}
		}
	}

	tests := []struct {
		name  string
		token func(*testing.T) string
		opts  func(*Options)
		want  Reason // "" means accepted
		check func(*testing.T, Claims)
	}{
		// Accepted, by each way of naming the key.
		{name: "valid by x5t", token: sign(f.a, nil, nil), check: func(t *testing.T, c Claims) {
			accepted(f.a)(t, c)
			if c.Subject != "player-1" || c.Issuer != testIssuer || !c.IssuedAt.Equal(testNow.Add(-time.Minute)) || !c.ExpiresAt.Equal(testNow.Add(10*time.Minute)) {
				t.Errorf("claims: %+v", c)
			}
		}},
		{name: "valid by x5t#S256", token: sign(f.b, nil, map[string]any{"x5t": nil, "x5t#S256": f.b.c.X5TS256()}), check: accepted(f.b)},
		{name: "valid by x5t and x5t#S256 agreeing", token: sign(f.b, nil, map[string]any{"x5t#S256": f.b.c.X5TS256()}), check: accepted(f.b)},
		{name: "valid by kid as base64url SHA-1", token: sign(f.a, nil, map[string]any{"x5t": nil, "kid": f.a.c.X5T()}), check: accepted(f.a)},
		{name: "valid by kid as base64url SHA-256", token: sign(f.a, nil, map[string]any{"x5t": nil, "kid": f.a.c.X5TS256()}), check: accepted(f.a)},
		{name: "valid by kid as upper-case hex SHA-256", token: sign(f.b, nil, map[string]any{"x5t": nil, "kid": strings.ToUpper(f.b.sha256Hex())}), check: accepted(f.b)},
		{name: "valid by kid as hex SHA-1", token: sign(f.b, nil, map[string]any{"x5t": nil, "kid": hex.EncodeToString(f.b.c.SHA1[:])}), check: accepted(f.b)},
		{name: "valid with no key header, two trusted certs, signed by the first", token: sign(f.a, nil, map[string]any{"x5t": nil}), check: accepted(f.a)},
		{name: "valid with no key header, two trusted certs, signed by the second", token: sign(f.b, nil, map[string]any{"x5t": nil}), check: accepted(f.b)},
		{name: "valid with aud as an array", token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"aud": []string{"someone-else", testAudience}} }, nil), check: accepted(f.a)},
		{name: "valid without iat", token: sign(f.a, func(c *TokenClaims) { c.IssuedAt = time.Time{} }, nil), check: func(t *testing.T, c Claims) {
			if !c.IssuedAt.IsZero() {
				t.Errorf("IssuedAt = %v, want zero", c.IssuedAt)
			}
		}},

		// Algorithm confusion and foreign algorithms.
		{name: "alg none", want: ReasonUnsupportedAlgorithm, token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(), trustedX5T)
		}},
		{name: "alg none with a hand-made header", want: ReasonUnsupportedAlgorithm, token: raw(b64(`{"alg":"none"}`) + "." + validPayload + ".")},
		{name: "HS256 keyed with the certificate DER (algorithm confusion)", want: ReasonUnsupportedAlgorithm, token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodHS256, f.a.cert.Raw, validClaims(), trustedX5T)
		}},
		{name: "HS256 keyed with the public key PEM (algorithm confusion)", want: ReasonUnsupportedAlgorithm, token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodHS256, f.a.certPEM, validClaims(), trustedX5T)
		}},
		{name: "RS256", want: ReasonUnsupportedAlgorithm, token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodRS256, rsaKey, validClaims(), trustedX5T)
		}},
		{name: "ES384 with a P-384 key", want: ReasonUnsupportedAlgorithm, token: func(t *testing.T) string {
			return signWith(t, jwt.SigningMethodES384, p384, validClaims(), trustedX5T)
		}},
		{name: "unknown alg", want: ReasonUnsupportedAlgorithm, token: raw(b64(`{"alg":"XX999"}`) + "." + validPayload + "." + fakeSig)},
		{name: "lower-case es256", want: ReasonUnsupportedAlgorithm, token: raw(b64(`{"alg":"es256"}`) + "." + validPayload + "." + fakeSig)},
		{name: "alg missing", want: ReasonMalformed, token: raw(b64(`{"typ":"JWT"}`) + "." + validPayload + "." + fakeSig)},

		// Keys.
		{name: "untrusted P-256 key with the trusted x5t", want: ReasonBadSignature, token: sign(other, nil, trustedX5T)},
		{name: "untrusted P-256 key with its own x5t", want: ReasonUnknownSigningKey, token: sign(other, nil, nil)},
		{name: "untrusted P-256 key with no key header", want: ReasonBadSignature, token: sign(other, nil, map[string]any{"x5t": nil})},
		{name: "unknown x5t", want: ReasonUnknownSigningKey, token: sign(f.a, nil, map[string]any{"x5t": base64.RawURLEncoding.EncodeToString(make([]byte, 20))})},
		{name: "unknown x5t#S256", want: ReasonUnknownSigningKey, token: sign(f.a, nil, map[string]any{"x5t": nil, "x5t#S256": base64.RawURLEncoding.EncodeToString(make([]byte, 32))})},
		{name: "unknown kid", want: ReasonUnknownSigningKey, token: sign(f.a, nil, map[string]any{"x5t": nil, "kid": "https://mykeys.vault.azure.net/keys/x/1"})},
		{name: "x5t and x5t#S256 naming different certificates", want: ReasonUnknownSigningKey, token: sign(f.a, nil, map[string]any{"x5t#S256": f.b.c.X5TS256()})},
		{name: "x5t of the wrong length", want: ReasonUnknownSigningKey, token: sign(f.a, nil, map[string]any{"x5t": f.a.c.X5TS256()})},
		{name: "x5t not base64url", want: ReasonMalformed, token: sign(f.a, nil, map[string]any{"x5t": strings.Repeat("*", 27)})},
		{name: "x5t not a string", want: ReasonMalformed, token: sign(f.a, nil, map[string]any{"x5t": 42})},
		{name: "kid not a string", want: ReasonMalformed, token: sign(f.a, nil, map[string]any{"x5t": nil, "kid": []int{1}})},
		{name: "crit header", want: ReasonMalformed, token: sign(f.a, nil, map[string]any{"crit": []string{"exp"}})},
		{name: "certificate expired", want: ReasonSigningKeyNotValid, token: sign(f.expired, nil, nil)},
		{name: "certificate not yet valid", want: ReasonSigningKeyNotValid, token: sign(f.future, nil, nil)},
		{name: "certificate expired, named by kid", want: ReasonSigningKeyNotValid, token: sign(f.expired, nil, map[string]any{"x5t": nil, "kid": f.expired.sha256Hex()})},
		{name: "certificate expired, no key header", want: ReasonBadSignature, token: sign(f.expired, nil, map[string]any{"x5t": nil})},
		{name: "signature of another token", want: ReasonBadSignature, token: func(t *testing.T) string {
			a := sign(f.a, nil, nil)(t)
			b := sign(f.a, func(c *TokenClaims) { c.Subject = "player-2" }, nil)(t)
			return a[:strings.LastIndexByte(a, '.')] + b[strings.LastIndexByte(b, '.'):]
		}},
		{name: "tampered payload", want: ReasonBadSignature, token: func(t *testing.T) string {
			a := sign(f.a, nil, nil)(t)
			parts := strings.Split(a, ".")
			c := validClaims()
			c.KeyIDs = []string{kid2}
			parts[1] = b64(mustJSON(t, c.mapClaims()))
			return strings.Join(parts, ".")
		}},
		{name: "signature too short", want: ReasonBadSignature, token: raw(validHeader + "." + validPayload + "." + b64("short"))},
		{name: "expired and bad signature is bad_signature", want: ReasonBadSignature, token: func(t *testing.T) string {
			s := sign(f.a, func(c *TokenClaims) { c.ExpiresAt = testNow.Add(-time.Hour) }, nil)(t)
			return s[:strings.LastIndexByte(s, '.')] + "." + fakeSig
		}},

		// Time.
		{name: "expired beyond leeway", want: ReasonExpired, token: sign(f.a, func(c *TokenClaims) { c.ExpiresAt = testNow.Add(-61 * time.Second) }, nil)},
		{name: "expired inside leeway", token: sign(f.a, func(c *TokenClaims) { c.ExpiresAt = testNow.Add(-30 * time.Second) }, nil)},
		{name: "expired beyond a custom leeway", want: ReasonExpired, opts: func(o *Options) { o.Leeway = 10 * time.Second }, token: sign(f.a, func(c *TokenClaims) { c.ExpiresAt = testNow.Add(-30 * time.Second) }, nil)},
		{name: "not yet valid (nbf)", want: ReasonNotYetValid, token: sign(f.a, func(c *TokenClaims) { c.NotBefore = testNow.Add(5 * time.Minute) }, nil)},
		{name: "nbf inside leeway", token: sign(f.a, func(c *TokenClaims) { c.NotBefore = testNow.Add(30 * time.Second) }, nil)},
		{name: "iat in the future", want: ReasonNotYetValid, token: sign(f.a, func(c *TokenClaims) { c.IssuedAt = testNow.Add(5 * time.Minute) }, nil)},
		{name: "missing exp", want: ReasonMissingClaim, token: sign(f.a, func(c *TokenClaims) { c.ExpiresAt = time.Time{} }, nil)},
		{name: "lifetime too long", want: ReasonLifetimeTooLong, opts: func(o *Options) { o.MaxLifetime = 5 * time.Minute }, token: sign(f.a, nil, nil)},
		{name: "lifetime within the maximum", opts: func(o *Options) { o.MaxLifetime = 11 * time.Minute }, token: sign(f.a, nil, nil)},
		{name: "missing iat with a maximum lifetime", want: ReasonMissingClaim, opts: func(o *Options) { o.MaxLifetime = time.Hour }, token: sign(f.a, func(c *TokenClaims) { c.IssuedAt = time.Time{} }, nil)},

		// Issuer and audience.
		{name: "wrong issuer", want: ReasonWrongIssuer, token: sign(f.a, func(c *TokenClaims) { c.Issuer = "https://evil.example/" }, nil)},
		{name: "missing issuer", want: ReasonWrongIssuer, token: sign(f.a, func(c *TokenClaims) { c.Issuer = "" }, nil)},
		{name: "second configured issuer", token: sign(f.a, func(c *TokenClaims) { c.Issuer = "https://other-issuer.example/" }, nil)},
		{name: "wrong audience", want: ReasonWrongAudience, token: sign(f.a, func(c *TokenClaims) { c.Audience = "urn:keydelivery:admin" }, nil)},
		{name: "missing audience", want: ReasonWrongAudience, token: sign(f.a, func(c *TokenClaims) { c.Audience = "" }, nil)},

		// Size and structure.
		{name: "token over 8 KiB", want: ReasonTooLarge, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"pad": strings.Repeat("x", MaxTokenSize)} }, nil)},
		{name: "garbage over 8 KiB", want: ReasonTooLarge, token: raw(strings.Repeat(".", MaxTokenSize+1))},
		{name: "garbage of exactly 8 KiB", want: ReasonMalformed, token: raw(strings.Repeat("a", MaxTokenSize))},
		{name: "empty", want: ReasonMalformed, token: raw("")},
		{name: "two segments", want: ReasonMalformed, token: raw(validHeader + "." + validPayload)},
		{name: "four segments", want: ReasonMalformed, token: raw(validHeader + "." + validPayload + "." + fakeSig + "." + fakeSig)},
		{name: "bad base64 in header", want: ReasonMalformed, token: raw("!!!!." + validPayload + "." + fakeSig)},
		{name: "bad base64 in payload", want: ReasonMalformed, token: raw(validHeader + ".!!!!." + fakeSig)},
		{name: "bad base64 in signature", want: ReasonMalformed, token: raw(validHeader + "." + validPayload + ".!!!!")},
		{name: "padded base64", want: ReasonMalformed, token: raw(validHeader + "." + validPayload + "." + base64.URLEncoding.EncodeToString(make([]byte, 64)))},
		{name: "garbage JSON header", want: ReasonMalformed, token: raw(b64("{not json") + "." + validPayload + "." + fakeSig)},
		{name: "garbage JSON payload", want: ReasonMalformed, token: raw(validHeader + "." + b64("[1,2") + "." + fakeSig)},
		{name: "header is JSON null", want: ReasonMalformed, token: raw(b64("null") + "." + validPayload + "." + fakeSig)},
		{name: "exp is a string", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"exp": "tomorrow"} }, nil)},
		{name: "aud is a number", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"aud": 7} }, nil)},

		// Grants.
		{name: "malformed kids entry", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.KeyIDs = []string{kid1, "not-a-uuid"} }, nil)},
		{name: "malformed content key claim", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.ContentKeyID = "zzz" }, nil)},
		{name: "kids is a string", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"kids": kid1} }, nil)},
		{name: "kids holds a number", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"kids": []any{kid1, 7}} }, nil)},
		{name: "content key claim is an array", want: ReasonMalformed, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{claimContentKeyID: []string{kid1}} }, nil)},
		{name: "unbound without AllowUnbound grants nothing", token: sign(f.a, func(c *TokenClaims) { c.KeyIDs = nil }, nil), check: func(t *testing.T, c Claims) {
			if c.Unbound || len(c.KeyIDs) != 0 || c.Grants(mustUUID(t, kid1)) {
				t.Errorf("claims grant something: %+v", c)
			}
		}},
		{name: "unbound with AllowUnbound grants every key", opts: func(o *Options) { o.AllowUnbound = true }, token: sign(f.a, func(c *TokenClaims) { c.KeyIDs = nil }, nil), check: func(t *testing.T, c Claims) {
			if !c.Unbound || !c.Grants(mustUUID(t, kid1)) || !c.Grants([16]byte{}) {
				t.Errorf("claims do not grant everything: %+v", c)
			}
		}},
		{name: "empty kids array with AllowUnbound grants nothing", opts: func(o *Options) { o.AllowUnbound = true }, token: sign(f.a, func(c *TokenClaims) { c.Extra = map[string]any{"kids": []string{}} }, nil), check: func(t *testing.T, c Claims) {
			if c.Unbound || c.Grants(mustUUID(t, kid1)) {
				t.Errorf("claims grant something: %+v", c)
			}
		}},
		{name: "kids and content key claim together", opts: func(o *Options) { o.AllowUnbound = true }, token: sign(f.a, func(c *TokenClaims) {
			c.KeyIDs = []string{kid2, kid1, kid2, strings.ToLower(kid3)}
			c.ContentKeyID = kid3
		}, nil), check: func(t *testing.T, c Claims) {
			want := [][16]byte{mustUUID(t, kid3), mustUUID(t, kid2), mustUUID(t, kid1)}
			if !slices.Equal(c.KeyIDs, want) || c.Unbound {
				t.Errorf("KeyIDs = %x, want %x", c.KeyIDs, want)
			}
			for _, k := range []string{kid1, kid2, kid3} {
				if !c.Grants(mustUUID(t, k)) {
					t.Errorf("does not grant %s", k)
				}
			}
			if c.Grants([16]byte{}) {
				t.Error("grants the zero key")
			}
		}},
		{name: "content key claim alone", token: sign(f.a, func(c *TokenClaims) { c.KeyIDs = nil; c.ContentKeyID = kid2 }, nil), check: func(t *testing.T, c Claims) {
			if !c.Grants(mustUUID(t, kid2)) || c.Grants(mustUUID(t, kid1)) {
				t.Errorf("grants: %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := f.verifier(t, tt.opts)
			token := tt.token(t)
			c, err := v.Verify(token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("Verify error = %v (%T), want *Error with reason %s", err, err, tt.want)
			}
			if ae.Reason != tt.want {
				t.Fatalf("reason = %s, want %s (%v)", ae.Reason, tt.want, err)
			}
			if !slices.Contains(Reasons(), ae.Reason) {
				t.Errorf("reason %q is not in Reasons()", ae.Reason)
			}
			if c.SigningKey != "" || c.KeyIDs != nil || c.Unbound {
				t.Errorf("refusal returned claims %+v", c)
			}
			assertNoTokenInError(t, token, err)
		})
	}
}

func TestVerifyNoValidCertificate(t *testing.T) {
	f := newFixture(t)
	// Move the clock past every certificate: a token naming no key finds none.
	v := f.verifier(t, func(o *Options) { o.Now = func() time.Time { return testNow.Add(365 * 24 * time.Hour) } })
	c := validClaims()
	c.IssuedAt, c.ExpiresAt = time.Time{}, testNow.Add(366*24*time.Hour)
	tok, err := f.a.signer().SignWithHeader(c, map[string]any{"x5t": nil})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(tok)
	var ae *Error
	if !errors.As(err, &ae) || ae.Reason != ReasonUnknownSigningKey {
		t.Fatalf("Verify = %v, want %s", err, ReasonUnknownSigningKey)
	}
}

func TestVerifyUsesReloadedTrust(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	c := newTestCert(t, "token-signer-c", testNow, 24*time.Hour)
	tok, err := c.signer().Sign(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("token from an untrusted certificate accepted")
	}
	writeFile(t, f.dir, "c.pem", c.certPEM)
	if err := f.trust.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("after reload: %v", err)
	}
}

func TestNewVerifierOptions(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		mod  func(*Options)
		ok   bool
	}{
		{"defaults", func(*Options) {}, true},
		{"no clock", func(o *Options) { o.Now = nil }, true},
		{"maximum leeway", func(o *Options) { o.Leeway = MaxLeeway }, true},
		{"no leeway", func(o *Options) { o.Leeway = 0 }, true},
		{"no issuers", func(o *Options) { o.Issuers = nil }, false},
		{"empty issuer", func(o *Options) { o.Issuers = []string{testIssuer, ""} }, false},
		{"no audience", func(o *Options) { o.Audience = "" }, false},
		{"leeway over 5m", func(o *Options) { o.Leeway = MaxLeeway + time.Second }, false},
		{"negative leeway", func(o *Options) { o.Leeway = -time.Second }, false},
		{"negative max lifetime", func(o *Options) { o.MaxLifetime = -time.Second }, false},
		{"no key ID parser", func(o *Options) { o.ParseKeyID = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.mod(&o)
			v, err := NewVerifier(f.trust, o)
			if tt.ok != (err == nil) {
				t.Fatalf("NewVerifier error = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the auth: prefix", err)
			}
			if err == nil && v.leeway != o.Leeway {
				t.Errorf("leeway = %v, want %v", v.leeway, o.Leeway)
			}
		})
	}
	if _, err := NewVerifier(nil, testOptions()); err == nil {
		t.Error("nil trust accepted")
	}
}

func TestErrorAndReasons(t *testing.T) {
	rs := Reasons()
	if len(rs) != 13 {
		t.Errorf("Reasons() has %d entries, want 13", len(rs))
	}
	seen := map[Reason]bool{}
	for _, r := range rs {
		if seen[r] || r == "" || strings.ToLower(string(r)) != string(r) {
			t.Errorf("bad or duplicate reason %q", r)
		}
		seen[r] = true
	}
	inner := errors.New("detail")
	e := &Error{Reason: ReasonExpired, Err: inner}
	if e.Error() != "auth: expired: detail" {
		t.Errorf("Error() = %q", e.Error())
	}
	if !errors.Is(e, inner) {
		t.Error("Unwrap does not reach the detail")
	}
	if (&Error{Reason: ReasonMalformed}).Error() != "auth: malformed" {
		t.Error("Error() without detail")
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	v := f.verifier(b, nil)
	tok, err := f.a.signer().Sign(validClaims())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

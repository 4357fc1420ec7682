package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzVerify checks that Verify never panics, that every refusal is an
// *Error with a documented reason that does not quote the token, and that
// whatever it accepts really is an ES256 signature by a trusted, valid
// certificate over claims inside their time window.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	const maxLifetime = time.Hour
	v := fx.verifier(f, func(o *Options) { o.MaxLifetime = maxLifetime })
	leeway := v.leeway

	keys := map[string]Certificate{}
	for _, c := range fx.trust.Certificates() {
		keys[hex.EncodeToString(c.SHA256[:])] = c
	}

	sign := func(tc testCert, mod func(*TokenClaims), header map[string]any) string {
		c := validClaims()
		if mod != nil {
			mod(&c)
		}
		s, err := tc.signer().SignWithHeader(c, header)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	valid := sign(fx.a, nil, nil)
	if _, err := v.Verify(valid); err != nil {
		f.Fatalf("the valid seed is refused, so the acceptance properties would never run: %v", err)
	}
	for _, s := range []string{
		valid,
		sign(fx.b, nil, map[string]any{"x5t": nil}),
		sign(fx.a, nil, map[string]any{"x5t": nil, "x5t#S256": fx.a.c.X5TS256()}),
		sign(fx.b, nil, map[string]any{"x5t": nil, "kid": strings.ToUpper(fx.b.sha256Hex())}),
		sign(fx.a, func(c *TokenClaims) { c.ContentKeyID = kid2; c.KeyIDs = []string{kid3, kid1} }, nil),
		sign(fx.a, func(c *TokenClaims) { c.KeyIDs = []string{"nope"} }, nil),
		sign(fx.a, func(c *TokenClaims) { c.ExpiresAt = testNow.Add(-time.Hour) }, nil),
		sign(fx.a, func(c *TokenClaims) { c.ExpiresAt = testNow.Add(2 * time.Hour) }, nil),
		sign(fx.expired, nil, nil),
		valid[:strings.LastIndexByte(valid, '.')] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64)),
		b64(`{"alg":"none"}`) + "." + b64(`{"exp":1e300,"iat":-1e300}`) + ".",
		b64(`{"alg":"ES256","kid":"`+strings.Repeat("A", 43)+`"}`) + ".e30.",
		"", ".", "..", "a.b.c", "e30.e30.e30",
		twin(f, valid),
		sign(fx.a, func(c *TokenClaims) { c.Extra = map[string]any{claimMaxUses: "3"} }, nil),
		sign(fx.a, func(c *TokenClaims) { c.Extra = map[string]any{"\u212aids": []string{kid2}} }, nil),
		sign(fx.a, func(c *TokenClaims) { c.Extra = map[string]any{"EXP": 1e10} }, nil),
		sign(fx.a, func(c *TokenClaims) { c.KeyIDs, c.ContentIDs = nil, []string{"live-1", "vod-2", "live-1"} }, nil),
		sign(fx.a, func(c *TokenClaims) { c.Extra = map[string]any{"Content_IDs": []string{"live-1"}} }, nil),
		signRaw(f, fx.a.key, `{"alg":"ES256","x5t":"`+fx.a.c.X5T()+`"}`, `{"iss":"`+testIssuer+`","aud":"`+testAudience+`","iat":`+
			fmt.Sprint(testNow.Unix())+`,"exp":`+fmt.Sprint(testNow.Add(time.Minute).Unix())+`,"kids":["`+kid1+`"],"kids":["`+kid2+`"]}`),
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(raw)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("refusal is %T, not *Error: %v", err, err)
			}
			if !slices.Contains(Reasons(), ae.Reason) || ae.Reason == ReasonMissingToken {
				t.Fatalf("undocumented reason %q", ae.Reason)
			}
			if len(raw) >= 32 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error quotes the token: %v", err)
			}
			return
		}

		// Accepted: check it independently of golang-jwt.
		if len(raw) > MaxTokenSize {
			t.Fatalf("accepted a %d-byte token", len(raw))
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %d segments", len(parts))
		}
		hb, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		var h map[string]any
		if err := json.Unmarshal(hb, &h); err != nil || h["alg"] != "ES256" {
			t.Fatalf("accepted header %s", hb)
		}
		cert, ok := keys[c.SigningKey]
		if !ok {
			t.Fatalf("SigningKey %s is not trusted", c.SigningKey)
		}
		if cert.Status(testNow, leeway) != statusValid {
			t.Fatalf("accepted a token signed by a %s certificate", cert.Status(testNow, leeway))
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || len(sig) != 64 {
			t.Fatalf("accepted signature of %d bytes (%v)", len(sig), err)
		}
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(cert.PublicKey, digest[:], r, s) {
			t.Fatal("accepted a signature that does not verify")
		}
		if !testNow.Before(c.ExpiresAt.Add(leeway)) {
			t.Fatalf("accepted exp %v", c.ExpiresAt)
		}
		if c.IssuedAt.IsZero() || c.IssuedAt.After(testNow.Add(leeway)) || c.ExpiresAt.Sub(c.IssuedAt) > maxLifetime {
			t.Fatalf("accepted iat %v exp %v", c.IssuedAt, c.ExpiresAt)
		}
		if c.Issuer != testIssuer && c.Issuer != "https://other-issuer.example/" {
			t.Fatalf("accepted issuer %q", c.Issuer)
		}
		if c.Unbound {
			t.Fatal("unbound without AllowUnbound")
		}
		// One meaning for every reader: no member name twice and none a
		// case variant of a claim or header name, checked with
		// encoding/json's tokenizer rather than the verifier's.
		pb, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		for what, doc := range map[string][]byte{"header": hb, "payload": pb} {
			names := topLevelNames(t, doc)
			for i, n := range names {
				if slices.Contains(names[:i], n) {
					t.Fatalf("accepted a %s naming %q twice", what, n)
				}
				for _, k := range append(slices.Clone(knownClaims), knownHeader...) {
					if n != k && (strings.EqualFold(n, k) || jsonFold(n) == jsonFold(k)) {
						t.Fatalf("accepted a %s with %q, a variant of %q", what, n, k)
					}
				}
			}
		}
		if len(c.ContentIDs) > MaxContentIDs || slices.Contains(c.ContentIDs, "") {
			t.Fatalf("accepted content IDs %q", c.ContentIDs)
		}
		for i, id := range c.ContentIDs {
			if slices.Contains(c.ContentIDs[:i], id) {
				t.Fatalf("content ID %q twice", id)
			}
		}
		if c.MaxUses > 0 && c.TokenDigest != sha256.Sum256([]byte(parts[0]+"."+parts[1])) {
			t.Fatal("TokenDigest is not the digest of the signing input")
		}
	})
}

// topLevelNames lists the member names of the JSON object doc with
// encoding/json's decoder.
func topLevelNames(t *testing.T, doc []byte) []string {
	d := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("accepted a document that is not an object: %v", err)
	}
	var names []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tok.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// TestOIDCKeysBoundToIssuer: with two OpenID Connect issuers and the
// certificate files trusted at once, a key fetched from issuer A verifies
// A's tokens only: a token it signs claiming issuer B, or the files'
// issuer, is 401 wrong_issuer, and the log line names A as the expected
// issuer. The files' certificate still verifies every configured issuer;
// /api/token-trust shows each key's issuer.
func TestOIDCKeysBoundToIssuer(t *testing.T) {
	m := newMaterial(t)
	pa, pb := newOIDCProvider(t), newOIDCProvider(t)
	issuerA, issuerB := pa.srv.URL+"/idp", pb.srv.URL+"/idp"
	signerA, signerB := pa.rotate(t, "key-a"), pb.rotate(t, "key-b")
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db"),
		"--token-oidc-issuer", issuerA, "--token-oidc-issuer", issuerB,
		"--token-issuer", issuerA, "--token-issuer", issuerB, "--token-jwks-refresh", "1h"), nil)
	value := randomKey(t)
	kid := s.createKey(t, value, nil)
	token := func(signer *auth.Signer, keyID, iss string) string {
		now := time.Now()
		c := auth.TokenClaims{Issuer: iss, Audience: testAudience, KeyIDs: []string{kid}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		var tok string
		var err error
		if keyID == "" {
			tok, err = signer.Sign(c)
		} else {
			tok, err = signer.SignWithHeader(c, map[string]any{"kid": keyID})
		}
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name     string
		token    string
		status   int
		expected string // the issuer the refusal's log line expects (the first refusal only)
	}{
		{"issuer A's key, A's token", token(signerA, "key-a", issuerA), 200, ""},
		{"issuer B's key, B's token", token(signerB, "key-b", issuerB), 200, ""},
		{"issuer A's key claiming issuer B", token(signerA, "key-a", issuerB), 401, issuerA},
		{"issuer B's key claiming issuer A", token(signerB, "key-b", issuerA), 401, ""},
		{"issuer A's key claiming the files' issuer", token(signerA, "key-a", testIssuer), 401, ""},
		{"the files' certificate, issuer A", token(m.signer, "", issuerA), 200, ""},
		{"the files' certificate, the files' issuer", token(m.signer, "", testIssuer), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rid := "bind-" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), "'", "")
			h := bearer(tc.token)
			h.Set("X-Request-ID", rid)
			a := do(t, "GET", s.deliveryURL+"/keys/"+kid, h)
			if a.status != tc.status {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tc.status == 200 {
				if string(a.body) != string(value[:]) {
					t.Fatal("another key")
				}
				return
			}
			if p := problemOf(t, a); p["reason"] != "wrong_issuer" {
				t.Fatalf("reason %v", p["reason"])
			}
			if tc.expected == "" {
				return
			}
			// The refusal log is paced per client address: only the first
			// refusal's line is awaited.
			var line string
			waittest.For(t, "the refusal's log line", func() bool {
				for l := range strings.Lines(s.stderr.String()) {
					if strings.Contains(l, `"msg":"token refused"`) && strings.Contains(l, rid) {
						line = l
						return true
					}
				}
				return false
			})
			if !strings.Contains(line, `"iss_expected":["`+tc.expected+`"]`) {
				t.Errorf("log line %s lacks iss_expected [%s]", line, tc.expected)
			}
		})
	}

	a := do(t, "GET", s.adminURL+"/api/token-trust", http.Header{"Authorization": {"Bearer " + adminSecret}})
	var trust struct {
		Keys []struct{ Kind, KeyID, Issuer string } `json:"keys"`
	}
	if err := json.Unmarshal(a.body, &trust); err != nil || a.status != 200 {
		t.Fatalf("token-trust: %d %s", a.status, a.body)
	}
	issuers := map[string]string{}
	for _, k := range trust.Keys {
		issuers[k.Kind+" "+k.KeyID] = k.Issuer
	}
	if len(issuers) != 3 || issuers["oidc key-a"] != issuerA || issuers["oidc key-b"] != issuerB || issuers["file "] != "" {
		t.Errorf("token-trust keys %s", a.body)
	}
}

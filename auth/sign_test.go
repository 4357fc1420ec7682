package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

// decodeSegment decodes one part of a token as JSON.
func decodeSegment(tb testing.TB, token string, i int) map[string]any {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("%d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestSignerClaimsAndHeader(t *testing.T) {
	a := newTestCert(t, "a", testNow, time.Hour)
	tok, err := a.signer().SignWithHeader(TokenClaims{
		Issuer:       testIssuer,
		Audience:     testAudience,
		KeyIDs:       []string{kid1, kid2},
		ContentKeyID: kid3,
		ExpiresAt:    testNow.Add(time.Minute),
		Extra:        map[string]any{"sub": "overridden", "custom": true},
	}, map[string]any{"kid": "k1", "typ": nil})
	if err != nil {
		t.Fatal(err)
	}
	h := decodeSegment(t, tok, 0)
	if h["alg"] != "ES256" || h["x5t"] != a.c.X5T() || h["kid"] != "k1" {
		t.Errorf("header %v", h)
	}
	if _, ok := h["typ"]; ok {
		t.Errorf("typ not removed: %v", h)
	}
	c := decodeSegment(t, tok, 1)
	if c["iss"] != testIssuer || c["aud"] != testAudience || c["sub"] != "overridden" || c["custom"] != true ||
		c[claimContentKeyID] != kid3 || c["exp"] != float64(testNow.Add(time.Minute).Unix()) {
		t.Errorf("claims %v", c)
	}
	if kids, _ := c["kids"].([]any); len(kids) != 2 || kids[0] != kid1 {
		t.Errorf("kids %v", c["kids"])
	}
	for _, k := range []string{"iat", "nbf"} {
		if _, ok := c[k]; ok {
			t.Errorf("zero %s emitted", k)
		}
	}

	plain, err := NewSigner(a.key, nil).Sign(TokenClaims{Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if h := decodeSegment(t, plain, 0); h["x5t"] != nil {
		t.Errorf("x5t without a certificate: %v", h)
	}
	c = decodeSegment(t, plain, 1)
	if _, ok := c["kids"]; ok {
		t.Errorf("empty kids emitted: %v", c)
	}
	if _, ok := c[claimContentKeyID]; ok {
		t.Errorf("empty content key emitted: %v", c)
	}

	if _, err := NewSigner(nil, nil).Sign(TokenClaims{}); err == nil {
		t.Error("signing without a key succeeded")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewSigner(p384, nil).Sign(TokenClaims{}); err == nil {
		t.Error("signing with a P-384 key succeeded")
	}
}

func TestLoadSigner(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(t, nil)
	dir := t.TempDir()
	pkcs8Key := writeFile(t, dir, "a.key", f.a.keyPEM)
	certA := writeFile(t, dir, "a.pem", f.a.certPEM)
	certB := writeFile(t, dir, "b.pem", f.b.certPEM)
	kvA := writeFile(t, dir, "a.json", keyVaultJSON(t, f.a.cert.Raw, "", true))

	ecDER, err := x509.MarshalECPrivateKey(f.a.key)
	if err != nil {
		t.Fatal(err)
	}
	sec1Key := writeFile(t, dir, "a-sec1.key", append(
		pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...))

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	p384Key := writeFile(t, dir, "p384.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384DER}))
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaKeyFile := writeFile(t, dir, "rsa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}))
	garbledKey := writeFile(t, dir, "garbled.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-bytes")}))

	for _, tt := range []struct {
		name, key, cert string
		x5t             bool
	}{
		{"PKCS#8 key with PEM certificate", pkcs8Key, certA, true},
		{"SEC 1 key after EC PARAMETERS, no certificate", sec1Key, "", false},
		{"PKCS#8 key with Key Vault certificate", pkcs8Key, kvA, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSigner(tt.key, tt.cert)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := s.Sign(validClaims())
			if err != nil {
				t.Fatal(err)
			}
			if _, has := decodeSegment(t, tok, 0)["x5t"]; has != tt.x5t {
				t.Errorf("x5t present = %v, want %v", has, tt.x5t)
			}
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.SigningKey != f.a.sha256Hex() {
				t.Errorf("SigningKey %s", c.SigningKey)
			}
		})
	}
	for _, tt := range []struct{ name, key, cert string }{
		{"certificate of another key", pkcs8Key, certB},
		{"P-384 key", p384Key, ""},
		{"RSA key", rsaKeyFile, ""},
		{"garbled key", garbledKey, ""},
		{"certificate file as key", certA, ""},
		{"missing key file", dir + "/nope.key", ""},
		{"missing certificate file", pkcs8Key, dir + "/nope.pem"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSigner(tt.key, tt.cert)
			if err == nil {
				t.Fatal("LoadSigner succeeded")
			}
			if !strings.HasPrefix(err.Error(), "auth: ") || strings.Contains(err.Error(), "secret-bytes") {
				t.Errorf("error %q", err)
			}
		})
	}
}

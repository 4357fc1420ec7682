package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
)

type fakeTrust struct {
	keys    []auth.Certificate
	sources []auth.SourceStatus
}

func (f fakeTrust) Keys() []auth.Certificate     { return f.keys }
func (f fakeTrust) Sources() []auth.SourceStatus { return f.sources }

// TestTokenTrust: GET /api/token-trust lists every trusted key, certificate
// or bare key, with its source, kid, validity and status, and every source
// with its last loads.
func TestTokenTrust(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kvKID := "https://mykeys.vault.azure.net/keys/content-protection-token-certificate/482cc7716df14955862ea73e773156f1"
	trust := fakeTrust{
		keys: []auth.Certificate{
			{Subject: "CN=content-protection-token-certificate", SHA1: [20]byte{1}, SHA256: sha256.Sum256([]byte("a")), PublicKey: &k.PublicKey,
				NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(-30 * time.Minute), Kind: auth.KindKeyVault, KeyID: kvKID, Current: true,
				Source: "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/482cc7716df14955862ea73e773156f1"},
			{PublicKey: &k.PublicKey, Kind: auth.KindOIDC, KeyID: "ec-1", Source: "https://idp.example/keys"},
		},
		sources: []auth.SourceStatus{
			{Kind: auth.KindKeyVault, Name: "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate", Refresh: 10 * time.Minute,
				Keys: 1, LastAttempt: testNow, LastSuccess: testNow.Add(-time.Hour), LastError: "keyvault: 503 ServiceUnavailable", Failures: 3},
			{Kind: auth.KindOIDC, Name: "https://idp.example/", Refresh: 10 * time.Minute, Keys: 1, LastAttempt: testNow, LastSuccess: testNow},
		},
	}
	env := newEnv(t, func(o *testOptions) { o.Trust = trust; o.TokenLeeway = time.Minute })
	r := env.do(t, "GET", "/api/token-trust", secretReader, "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got struct {
		Keys    []map[string]any `json:"keys"`
		Sources []map[string]any `json:"sources"`
	}
	r.json(t, &got)
	if len(got.Keys) != 2 || len(got.Sources) != 2 {
		t.Fatalf("%s", r.body)
	}
	kv, bare := got.Keys[0], got.Keys[1]
	sum := sha256.Sum256([]byte("a"))
	for field, want := range map[string]any{"kind": "keyvault", "keyId": kvKID, "current": true, "status": "expired",
		"sha256": hex.EncodeToString(sum[:]), "x5t": "AQAAAAAAAAAAAAAAAAAAAAAAAAA", "notAfter": testNow.Add(-30 * time.Minute).Format(time.RFC3339),
		"jwkThumbprint": trust.keys[0].JWKThumbprint()} {
		if kv[field] != want {
			t.Errorf("key vault key %s = %v, want %v", field, kv[field], want)
		}
	}
	for field, want := range map[string]any{"kind": "oidc", "keyId": "ec-1", "status": "valid", "notBefore": nil, "notAfter": nil,
		"source": "https://idp.example/keys"} {
		if v, ok := bare[field]; !ok || v != want {
			t.Errorf("bare key %s = %v (present %v), want %v", field, v, ok, want)
		}
	}
	for _, absent := range []string{"x5t", "sha256", "subject", "current"} {
		if _, ok := bare[absent]; ok {
			t.Errorf("bare key has %s", absent)
		}
	}
	if s := got.Sources[0]; s["healthy"] != false || s["failures"] != float64(3) || s["refresh"] != "10m0s" || !strings.Contains(s["lastError"].(string), "503") {
		t.Errorf("source %v", s)
	}
	if s := got.Sources[1]; s["healthy"] != true || s["lastError"] != nil {
		t.Errorf("source %v", s)
	}
	lines := auditLines(t, env.audit.String())
	if l := lines[len(lines)-1]; l["operation"] != "token-trust.list" || l["result"] != "ok" {
		t.Errorf("audit %v", l)
	}
	// None configured: empty lists.
	env = newEnv(t, nil)
	if r := env.do(t, "GET", "/api/token-trust", secretReader, ""); strings.TrimSpace(string(r.body)) != `{"keys":[],"sources":[]}` {
		t.Errorf("no trust: %s", r.body)
	}
}

package amsapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// protectionPair is a test protection certificate and key, generated once:
// RSA-2048 generation is slow under -race.
var protectionPair = sync.OnceValues(func() (*x509.Certificate, *rsa.PrivateKey) {
	certPEM, keyPEM, err := ams.GenerateProtectionCertificate(rand.Reader, "keydelivery test protection", time.Now(), time.Hour)
	if err != nil {
		panic(err)
	}
	cert, key, err := ams.ParseProtectionKeyPair(certPEM, keyPEM)
	if err != nil {
		panic(err)
	}
	return cert, key
})

// otherPair is a second, unrelated protection pair.
var otherPair = sync.OnceValues(func() (*x509.Certificate, *rsa.PrivateKey) {
	certPEM, keyPEM, err := ams.GenerateProtectionCertificate(rand.Reader, "another protection", time.Now(), time.Hour)
	if err != nil {
		panic(err)
	}
	cert, key, err := ams.ParseProtectionKeyPair(certPEM, keyPEM)
	if err != nil {
		panic(err)
	}
	return cert, key
})

// newAMSEnv is newRealEnv with the test protection pair.
func newAMSEnv(t *testing.T) (*testEnv, *keystore.Keys) {
	t.Helper()
	cert, key := protectionPair()
	return newRealEnv(t, func(o *testOptions) { o.ProtectionCert, o.ProtectionKey = cert, key })
}

// amsBody is a POST /api/ContentKeys body for key and kid, encrypted to pub.
func amsBody(t *testing.T, pub *rsa.PublicKey, thumbprint string, kid keystore.KeyID, key [16]byte, extra map[string]any) string {
	t.Helper()
	enc, err := ams.EncryptContentKey(nil, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{
		"Id": "nb:kid:UUID:" + kid.String(), "ContentKeyType": 4, "EncryptedContentKey": enc,
		"ProtectionKeyId": thumbprint, "ProtectionKeyType": 0, "Checksum": playready.Checksum(key, kid), "Name": "movie-1080p",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

const verboseJSON = "application/json;odata=verbose"

// TestAMSEncryptedContentKey is the client's path end to end: the
// thumbprint and the certificate from the server, the key encrypted to
// it, the checksum, POST, and the stored key read back.
func TestAMSEncryptedContentKey(t *testing.T) {
	env, keys := newAMSEnv(t)
	cert, _ := protectionPair()

	r := env.do(t, "GET", "/api/GetProtectionKeyId?contentKeyType=0", secretReader, "")
	var fn struct{ Value string }
	r.json(t, &fn)
	if r.status != 200 || fn.Value != ams.ProtectionKeyID(cert) || len(fn.Value) != 40 {
		t.Fatalf("GetProtectionKeyId: %d %s", r.status, r.body)
	}
	thumb := fn.Value
	r = env.do(t, "GET", "/api/GetProtectionKey?ProtectionKeyId='"+strings.ToLower(thumb)+"'", secretReader, "")
	r.json(t, &fn)
	der, err := base64.StdEncoding.DecodeString(fn.Value)
	if r.status != 200 || err != nil {
		t.Fatalf("GetProtectionKey: %d %s", r.status, r.body)
	}
	got, err := x509.ParseCertificate(der)
	if err != nil || ams.ProtectionKeyID(got) != thumb {
		t.Fatalf("certificate: %v", err)
	}

	kid, _ := keystore.ParseKeyID(kid1)
	var key [16]byte
	copy(key[:], "0123456789abcdef")
	body := amsBody(t, got.PublicKey.(*rsa.PublicKey), thumb, kid, key, map[string]any{"AuthorizationPolicyId": "nb:ckpid:UUID:1"})
	r = env.do(t, "POST", "/api/ContentKeys", secretWriter, body)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if loc := r.header.Get("Location"); loc != "/api/ContentKeys('nb%3Akid%3AUUID%3A"+kid1+"')" {
		t.Errorf("Location %q", loc)
	}
	var e map[string]any
	r.json(t, &e)
	want := map[string]any{
		"Id": "nb:kid:UUID:" + kid1, "ContentKeyType": 4.0, "EncryptedContentKey": nil, "Name": "movie-1080p",
		"ProtectionKeyId": thumb, "ProtectionKeyType": 0.0, "Checksum": playready.Checksum(key, kid), "AuthorizationPolicyId": "nb:ckpid:UUID:1",
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %v, want %v", k, e[k], v)
		}
	}
	if _, ok := e["__metadata"]; ok || len(e) != 10 {
		t.Errorf("plain entity %s", r.body)
	}
	for _, k := range []string{"Created", "LastModified"} {
		if _, err := time.Parse(time.RFC3339Nano, e[k].(string)); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	stored, err := keys.Get(context.Background(), kid)
	if err != nil || stored.Value != key || stored.Method != keystore.CreatedImport || stored.Type != keystore.EnvelopeEncryption || stored.Name != "movie-1080p" {
		t.Fatalf("stored %+v %v", stored, err)
	}
	var sent map[string]string
	_ = json.Unmarshal([]byte(body), &sent)
	noSecrets(t, env, r.body, base64.StdEncoding.EncodeToString(key[:]), sent["EncryptedContentKey"], "0123456789abcdef")
	if ops := auditOperations(t, env); !strings.HasSuffix(ops, "ams.contentkeys.create:started,ams.contentkeys.create:ok") {
		t.Errorf("audit %s", ops)
	}
	// AuthorizationPolicyId is stored and returned (issue 16; it was
	// echoed by the create only).
	r = env.do(t, "GET", "/api/ContentKeys('nb:kid:UUID:"+kid1+"')", secretReader, "")
	r.json(t, &e)
	if r.status != 200 || e["AuthorizationPolicyId"] != "nb:ckpid:UUID:1" || e["Checksum"] != playready.Checksum(key, kid) {
		t.Errorf("get: %d %s", r.status, r.body)
	}
	if stored.AuthorizationPolicyID != "nb:ckpid:UUID:1" {
		t.Errorf("stored policy %q", stored.AuthorizationPolicyID)
	}

	// The same KID with the same key again (a retried create) is 200 with
	// the stored entity; with another key it is 409. The stored key stays.
	r = env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, cert.PublicKey.(*rsa.PublicKey), thumb, kid, key, nil))
	r.json(t, &e)
	if r.status != 200 || e["Id"] != "nb:kid:UUID:"+kid1 || e["Checksum"] != playready.Checksum(key, kid) {
		t.Errorf("repeat with the same key: %d %s", r.status, r.body)
	}
	r = env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, cert.PublicKey.(*rsa.PublicKey), thumb, kid, [16]byte{1}, nil))
	if p := r.problem(t); r.status != 409 || p.Reason != reasonExists || p.KID != kid1 {
		t.Errorf("repeat with another key: %d %s", r.status, r.body)
	}
	if again, _ := keys.Get(context.Background(), kid); again.Value != key {
		t.Error("the stored key changed")
	}
}

// TestAMSSeedSample: the seed's own sample body shape (ContentKeyType 1,
// ProtectionKeyType 1, verbose media types) and the REST tutorial's
// (numbers as strings) are accepted.
func TestAMSSeedSample(t *testing.T) {
	env, keys := newAMSEnv(t)
	cert, _ := protectionPair()
	pub := cert.PublicKey.(*rsa.PublicKey)
	thumb := ams.ProtectionKeyID(cert)
	for i, extra := range []map[string]any{
		{"ContentKeyType": 1, "ProtectionKeyType": 1, "Name": nil},
		{"ContentKeyType": "1", "ProtectionKeyType": "0", "Name": "ContentKey"},
		{"ContentKeyType": nil, "ProtectionKeyType": nil, "AuthorizationPolicyId": nil, "Created": "0001-01-01T00:00:00", "LastModified": nil},
	} {
		var kid keystore.KeyID
		_, _ = rand.Read(kid[:])
		key := [16]byte{byte(i + 1), 2, 3}
		r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, pub, thumb, kid, key, extra),
			"Content-Type", verboseJSON, "Accept", verboseJSON, "DataServiceVersion", "3.0", "x-ms-version", "2.11")
		if r.status != 201 {
			t.Fatalf("%d: %d %s", i, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "odata=verbose") {
			t.Errorf("%d: Content-Type %q", i, ct)
		}
		var v struct {
			D contentKey `json:"d"`
		}
		r.json(t, &v)
		if v.D.Metadata == nil || v.D.Metadata.Type != amsContentKeyType || v.D.Metadata.URI != entityPath(kid) || v.D.ID != amsID(kid) || v.D.ProtectionKeyType != 0 {
			t.Errorf("%d: verbose entity %s", i, r.body)
		}
		stored, err := keys.Get(context.Background(), kid)
		wantType := keystore.StorageEncryption
		if extra["ContentKeyType"] == nil {
			wantType = keystore.CommonEncryption
		}
		if err != nil || stored.Value != key || stored.Type != wantType {
			t.Errorf("%d: stored %+v %v", i, stored, err)
		}
	}
	// A verbose {"d": {...}} request body is unwrapped.
	var kid keystore.KeyID
	_, _ = rand.Read(kid[:])
	r := env.do(t, "POST", "/api/ContentKeys", secretWriter, `{"d":`+amsBody(t, pub, thumb, kid, [16]byte{9}, nil)+`}`)
	if r.status != 201 {
		t.Errorf("wrapped body: %d %s", r.status, r.body)
	}
}

// TestAMSCreateRefusals: each bad body is refused with its reason and
// nothing is stored.
func TestAMSCreateRefusals(t *testing.T) {
	env, keys := newAMSEnv(t)
	cert, _ := protectionPair()
	other, _ := otherPair()
	pub := cert.PublicKey.(*rsa.PublicKey)
	thumb := ams.ProtectionKeyID(cert)
	kid, _ := keystore.ParseKeyID(kid1)
	key := [16]byte{0xee, 0x52, 1}
	short, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key[:15], nil)
	for _, c := range []struct {
		name   string
		body   string
		status int
		reason string
	}{
		{"checksum mismatch", amsBody(t, pub, thumb, kid, key, map[string]any{"Checksum": playready.Checksum([16]byte{1}, kid)}), 400, "checksum_mismatch"},
		{"checksum of another KID", amsBody(t, pub, thumb, kid, key, map[string]any{"Id": seedKID1}), 400, "checksum_mismatch"},
		{"non-canonical checksum", amsBody(t, pub, thumb, kid, key, map[string]any{"Checksum": strings.TrimRight(playready.Checksum(key, kid), "=")}), 400, "checksum_mismatch"},
		{"wrong ProtectionKeyId", amsBody(t, pub, ams.ProtectionKeyID(other), kid, key, nil), 400, "unknown_protection_key"},
		{"encrypted to another certificate", amsBody(t, other.PublicKey.(*rsa.PublicKey), thumb, kid, key, nil), 400, "cannot_decrypt"},
		{"tampered EncryptedContentKey", amsBody(t, pub, thumb, kid, key, map[string]any{"EncryptedContentKey": base64.StdEncoding.EncodeToString(make([]byte, 256))}), 400, "cannot_decrypt"},
		{"EncryptedContentKey not base64", amsBody(t, pub, thumb, kid, key, map[string]any{"EncryptedContentKey": "!!!"}), 400, "invalid_EncryptedContentKey"},
		{"15-byte content key", amsBody(t, pub, thumb, kid, key, map[string]any{"EncryptedContentKey": base64.StdEncoding.EncodeToString(short)}), 400, "invalid_content_key_length"},
		{"all-zero key", amsBody(t, pub, thumb, kid, [16]byte{}, nil), 400, "invalid_key"},
		{"missing Id", amsBody(t, pub, thumb, kid, key, map[string]any{"Id": nil}), 400, "missing_field"},
		{"missing Checksum", amsBody(t, pub, thumb, kid, key, map[string]any{"Checksum": nil}), 400, "missing_field"},
		{"missing EncryptedContentKey", amsBody(t, pub, thumb, kid, key, map[string]any{"EncryptedContentKey": ""}), 400, "missing_field"},
		{"missing ProtectionKeyId", amsBody(t, pub, thumb, kid, key, map[string]any{"ProtectionKeyId": nil}), 400, "missing_field"},
		{"bad Id", amsBody(t, pub, thumb, kid, key, map[string]any{"Id": "nb:kid:UUID:nope"}), 400, reasonInvalidKID},
		{"ContentKeyType 3", amsBody(t, pub, thumb, kid, key, map[string]any{"ContentKeyType": 3}), 400, "invalid_ContentKeyType"},
		{"ContentKeyType name", amsBody(t, pub, thumb, kid, key, map[string]any{"ContentKeyType": "EnvelopeEncryption"}), 400, "invalid_ContentKeyType"},
		{"ProtectionKeyType 2", amsBody(t, pub, thumb, kid, key, map[string]any{"ProtectionKeyType": 2}), 400, "invalid_ProtectionKeyType"},
		{"unknown member", amsBody(t, pub, thumb, kid, key, map[string]any{"ContentKey": "x"}), 400, "unknown_field"},
		{"member in the wrong case", amsBody(t, pub, thumb, kid, key, map[string]any{"Id": nil, "id": kid1}), 400, "unknown_field"},
		{"long name", amsBody(t, pub, thumb, kid, key, map[string]any{"Name": strings.Repeat("n", 4001)}), 400, "invalid_name"}, // the AMS maximum is 4000 (issue 16; it was 256 bytes)
		{"AuthorizationPolicyId as number", amsBody(t, pub, thumb, kid, key, map[string]any{"AuthorizationPolicyId": 1}), 400, "invalid_AuthorizationPolicyId"},
		{"not an object", `[]`, 400, "invalid_body"},
		{"empty body", ``, 400, "missing_field"},
	} {
		r := env.do(t, "POST", "/api/ContentKeys", secretWriter, c.body)
		if r.status != c.status {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
			continue
		}
		if p := r.problem(t); p.Reason != c.reason {
			t.Errorf("%s: reason %q, want %q (%s)", c.name, p.Reason, c.reason, r.body)
		}
		if strings.Contains(string(r.body), playready.Checksum(key, kid)) {
			t.Errorf("%s: the answer gives the expected checksum away", c.name)
		}
	}
	if ks, err := keys.List(context.Background(), keystore.KeyID{}, 10); err != nil || len(ks) != 0 {
		t.Errorf("refused creates stored %d keys (%v)", len(ks), err)
	}
	if strings.Contains(auditOperations(t, env), "started") {
		t.Errorf("a refused create was started: %s", auditOperations(t, env))
	}
	// Roles: reader and exporter cannot create.
	for _, secret := range []string{secretReader, secretExporter} {
		r := env.do(t, "POST", "/api/ContentKeys", secret, amsBody(t, pub, thumb, kid, key, nil))
		if p := r.problem(t); r.status != 403 || p.Reason != reasonRole {
			t.Errorf("create as %s: %d %s", secret, r.status, r.body)
		}
	}
}

// TestAMSNotConfigured: without a protection pair, the routes that need it
// answer 501 not_configured naming the flags; the others work.
func TestAMSNotConfigured(t *testing.T) {
	env, _ := newRealEnv(t, nil)
	cert, _ := protectionPair()
	kid, _ := keystore.ParseKeyID(kid1)
	for _, target := range []string{"/api/GetProtectionKeyId?contentKeyType=0", "/api/GetProtectionKey?ProtectionKeyId='AB'"} {
		r := env.do(t, "GET", target, secretReader, "")
		if p := r.problem(t); r.status != 501 || p.Code != codeNotConfigured || !strings.Contains(p.Detail, "--protection-cert") {
			t.Errorf("%s: %d %s", target, r.status, r.body)
		}
	}
	r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert), kid, [16]byte{1}, nil))
	if p := r.problem(t); r.status != 501 || p.Code != codeNotConfigured || p.Reason != "protection_key_not_configured" {
		t.Errorf("create: %d %s", r.status, r.body)
	}
	r = env.do(t, "GET", "/api/ContentKeys", secretReader, "")
	if r.status != 200 || string(r.body) != "{\"value\":[]}\n" {
		t.Errorf("list: %d %q", r.status, r.body)
	}
	// A listed key shows no ProtectionKeyId without a certificate.
	env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`"}`)
	r = env.do(t, "GET", "/api/ContentKeys('"+kid1+"')", secretReader, "")
	var e map[string]any
	r.json(t, &e)
	if v, ok := e["ProtectionKeyId"]; r.status != 200 || !ok || v != nil {
		t.Errorf("get: %d %s", r.status, r.body)
	}
}

func TestAMSOptions(t *testing.T) {
	cert, key := protectionPair()
	_, otherKey := otherPair()
	for name, o := range map[string]Options{
		"cert without key":    {ProtectionCert: cert},
		"key without cert":    {ProtectionKey: key},
		"key of another pair": {ProtectionCert: cert, ProtectionKey: otherKey},
	} {
		p, err := plane.New(plane.Options{Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if err := Register(p, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAMSProtectionFunctions: the shapes and refusals of GetProtectionKeyId
// and GetProtectionKey.
func TestAMSProtectionFunctions(t *testing.T) {
	env, _ := newAMSEnv(t)
	cert, _ := protectionPair()
	thumb := ams.ProtectionKeyID(cert)
	der := base64.StdEncoding.EncodeToString(cert.Raw)
	for _, c := range []struct {
		target, accept string
		status         int
		want           string // body, or problem reason
	}{
		{"/api/GetProtectionKeyId?contentKeyType=4", "", 200, `{"value":"` + thumb + `"}`},
		{"/api/GetProtectionKeyId?ContentKeyType=1", verboseJSON, 200, `{"d":{"GetProtectionKeyId":"` + thumb + `"}}`},
		{"/API/GetProtectionKeyId?contentKeyType=0", "", 200, `{"value":"` + thumb + `"}`},
		{"/api/GetProtectionKeyId", "", 400, "missing_parameter"},
		{"/api/GetProtectionKeyId?contentKeyType=7", "", 400, "invalid_contentKeyType"},
		{"/api/GetProtectionKeyId?contentKeyType=x", "", 400, "invalid_contentKeyType"},
		{"/api/GetProtectionKey?ProtectionKeyId='" + thumb + "'", "", 200, `{"value":"` + der + `"}`},
		{"/api/GetProtectionKey?ProtectionKeyId=%27" + strings.ToLower(thumb) + "%27", verboseJSON, 200, `{"d":{"GetProtectionKey":"` + der + `"}}`},
		{"/api/GetProtectionKey?protectionKeyId=" + thumb, "", 200, `{"value":"` + der + `"}`},
		{"/api/GetProtectionKey?ProtectionKeyId='7D9BB04D9D0A4A24800CADBFEF232689E048F69C'", "", 404, "unknown_protection_key"},
		{"/api/GetProtectionKey?ProtectionKeyId='" + thumb, "", 400, "invalid_ProtectionKeyId"},
		{"/api/GetProtectionKey", "", 400, "missing_parameter"},
	} {
		var hdr []string
		if c.accept != "" {
			hdr = []string{"Accept", c.accept}
		}
		r := env.do(t, "GET", c.target, secretReader, "", hdr...)
		if r.status != c.status {
			t.Errorf("%s: %d %s", c.target, r.status, r.body)
			continue
		}
		if c.status == 200 {
			if got := strings.TrimSpace(string(r.body)); got != c.want {
				t.Errorf("%s: %s, want %s", c.target, got, c.want)
			}
			continue
		}
		if p := r.problem(t); p.Reason != c.want {
			t.Errorf("%s: reason %q, want %q", c.target, p.Reason, c.want)
		}
	}
}

// TestAMSRoutes: get, list, asset list, delete and GetKeyDeliveryUrl over
// keys created through the native API, with raw and percent-encoded IDs.
func TestAMSRoutes(t *testing.T) {
	env, keys := newAMSEnv(t)
	for _, b := range []string{
		`{"id":"` + kid1 + `","name":"a","key":"` + keyB64 + `","assets":["nb:cid:UUID:asset-1","movie/2"]}`,
		`{"id":"` + seedKID1 + `","name":"b","type":0,"assets":["nb:cid:UUID:asset-1"]}`,
		`{"id":"` + seedKID2 + `","name":"c"}`,
	} {
		if r := env.do(t, "POST", "/api/keys", secretWriter, b); r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	kid, _ := keystore.ParseKeyID(kid1)
	var key [16]byte
	_, _ = base64.StdEncoding.Decode(key[:], []byte(keyB64))
	sum := playready.Checksum(key, kid)

	for _, target := range []string{
		"/api/ContentKeys('nb:kid:UUID:" + kid1 + "')",
		"/api/ContentKeys(%27nb%3Akid%3AUUID%3A" + kid1 + "%27)",
		"/api/ContentKeys%28%27nb%3Akid%3AUUID%3A" + kid1 + "%27%29",
		"/api/ContentKeys%28%27nb:kid:UUID:" + kid1 + "%27%29",
		"/api/ContentKeys('" + strings.ToUpper(kid1) + "')",
		"/api/ContentKeys('%7B" + kid1 + "%7D')",
		"/API/ContentKeys('nb:kid:UUID:" + kid1 + "')",
	} {
		r := env.do(t, "GET", target, secretReader, "")
		var e contentKey
		r.json(t, &e)
		if r.status != 200 || e.ID != "nb:kid:UUID:"+kid1 || e.Checksum != sum || e.Name != "a" || e.ContentKeyType != 4 || e.EncryptedContentKey != nil {
			t.Errorf("%s: %d %s", target, r.status, r.body)
		}
		if strings.Contains(string(r.body), keyB64) {
			t.Errorf("%s: the answer holds the key", target)
		}
	}
	for _, c := range []struct {
		target string
		status int
		reason string
	}{
		{"/api/ContentKeys('" + seedKID1 + "-00')", 400, reasonInvalidKID},
		{"/api/ContentKeys('nb:kid:UUID:" + kid1 + ")", 400, "invalid_odata_key"},
		{"/api/ContentKeys(" + kid1 + ")", 400, "invalid_odata_key"},
		{"/api/ContentKeys(%2527" + kid1 + "%2527)", 400, "invalid_odata_key"},
		{"/api/ContentKeys('00000000-0000-4000-8000-000000000000')", 404, reasonUnknownKey},
		{"/api/ContentKeys('" + kid1 + "')?$expand=ContentKeyAuthorizationPolicy", 400, "unsupported_query_option"}, // $select is supported since issue 16
		{"/api/Assets('x')", 404, reasonNoRoute},
		{"/api/contentkeys('" + kid1 + "')", 404, reasonNoRoute},
		{"/api/nothing", 404, reasonNoRoute},
	} {
		r := env.do(t, "GET", c.target, secretReader, "")
		if p := r.problem(t); r.status != c.status || p.Reason != c.reason {
			t.Errorf("%s: %d %s, want %d %s", c.target, r.status, r.body, c.status, c.reason)
		}
	}
	// A static route's path under another method stays 405.
	if r := env.do(t, "DELETE", "/api/keys", secretAdmin, ""); r.status != 405 {
		t.Errorf("DELETE /api/keys: %d %s", r.status, r.body)
	}

	list := func(target string, hdr ...string) []contentKey {
		t.Helper()
		r := env.do(t, "GET", target, secretReader, "", hdr...)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", target, r.status, r.body)
		}
		var plain struct {
			Value []contentKey `json:"value"`
		}
		var verbose struct {
			D struct {
				Results []contentKey `json:"results"`
			} `json:"d"`
		}
		if len(hdr) > 0 {
			r.json(t, &verbose)
			return verbose.D.Results
		}
		r.json(t, &plain)
		return plain.Value
	}
	ids := func(es []contentKey) string {
		var s []string
		for _, e := range es {
			s = append(s, strings.TrimPrefix(e.ID, "nb:kid:UUID:"))
		}
		return strings.Join(s, ",")
	}
	// KID order: kid1 (0a4f...), seedKID2 (9d8d...), seedKID1 (d83c...).
	all := kid1 + "," + seedKID2 + "," + seedKID1
	if got := ids(list("/api/ContentKeys")); got != all {
		t.Errorf("list %s, want %s", got, all)
	}
	vl := list("/api/ContentKeys", "Accept", "application/json; odata=verbose")
	if ids(vl) != all || vl[0].Metadata == nil || vl[0].Checksum != sum {
		t.Errorf("verbose list %+v", vl)
	}
	if got := ids(list("/api/ContentKeys?$top=1&$skip=1")); got != seedKID2 {
		t.Errorf("paged list %s", got)
	}
	if got := ids(list("/api/ContentKeys?$skip=3")); got != "" {
		t.Errorf("list past the end %s", got)
	}
	for _, q := range []string{"$top=0", "$top=1001", "$skip=-1", "$filter=Name%20gt%20'a'", "$orderby=Id"} { // $filter with eq is supported since issue 16
		r := env.do(t, "GET", "/api/ContentKeys?"+q, secretReader, "")
		if r.status != 400 {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	if got := ids(list("/api/Assets('nb:cid:UUID:asset-1')/ContentKeys")); got != kid1+","+seedKID1 {
		t.Errorf("asset list %s", got)
	}
	if got := ids(list("/api/Assets(%27nb%3Acid%3AUUID%3Aasset-1%27)/ContentKeys?$top=1", "Accept", verboseJSON)); got != kid1 {
		t.Errorf("encoded asset list %s", got)
	}
	if got := ids(list("/api/Assets('movie%2F2')/ContentKeys")); got != kid1 {
		t.Errorf("asset with a slash %s", got)
	}
	if got := ids(list("/api/Assets('none')/ContentKeys")); got != "" {
		t.Errorf("asset without keys %s", got)
	}
	if r := env.do(t, "GET", "/api/Assets('a%20b')/ContentKeys", secretReader, ""); r.status != 400 {
		t.Errorf("bad asset ID: %d %s", r.status, r.body)
	}

	// GetKeyDeliveryUrl for each AMS delivery type.
	for _, c := range []struct {
		body, want string
	}{
		{`{"keyDeliveryType":1}`, "https://keys.example.com/playready/license"},
		{`{"keyDeliveryType":2}`, "https://keys.example.com/keys/" + kid1},
		{`{"keyDeliveryType":"3"}`, "https://keys.example.com/widevine/license?kid=" + kid1},
		{`{"keyDeliveryType":4}`, "https://keys.example.com/fairplay/license?kid=" + kid1},
	} {
		r := env.do(t, "POST", "/api/ContentKeys('nb:kid:UUID:"+kid1+"')/GetKeyDeliveryUrl", secretReader, c.body)
		if got := strings.TrimSpace(string(r.body)); r.status != 200 || got != `{"value":"`+c.want+`"}` {
			t.Errorf("%s: %d %s", c.body, r.status, r.body)
		}
	}
	r := env.do(t, "POST", "/api/ContentKeys%28%27nb%3Akid%3AUUID%3A"+kid1+"%27%29/GetKeyDeliveryUrl", secretReader, `{"keyDeliveryType":2}`, "Accept", verboseJSON)
	if got := strings.TrimSpace(string(r.body)); r.status != 200 || got != `{"d":{"GetKeyDeliveryUrl":"https://keys.example.com/keys/`+kid1+`"}}` {
		t.Errorf("verbose delivery URL: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		body, reason string
		status       int
	}{
		{`{"keyDeliveryType":0}`, "invalid_keyDeliveryType", 400},
		{`{"keyDeliveryType":5}`, "invalid_keyDeliveryType", 400},
		{`{"keyDeliveryType":"x"}`, "invalid_keyDeliveryType", 400},
		{`{}`, "missing_field", 400},
		{`{"keyDeliveryType":2,"x":1}`, "unknown_field", 400},
	} {
		r := env.do(t, "POST", "/api/ContentKeys('"+kid1+"')/GetKeyDeliveryUrl", secretReader, c.body)
		if p := r.problem(t); r.status != c.status || p.Reason != c.reason {
			t.Errorf("%s: %d %s", c.body, r.status, r.body)
		}
	}
	r = env.do(t, "POST", "/api/ContentKeys('00000000-0000-4000-8000-000000000000')/GetKeyDeliveryUrl", secretReader, `{"keyDeliveryType":2}`)
	if r.status != 404 {
		t.Errorf("unknown key delivery URL: %d %s", r.status, r.body)
	}

	// Delete: soft, 204, then gone from the AMS view, restorable natively.
	for _, secret := range []string{secretReader, secretExporter} {
		if r := env.do(t, "DELETE", "/api/ContentKeys('nb:kid:UUID:"+kid1+"')", secret, ""); r.status != 403 {
			t.Errorf("delete as %s: %d", secret, r.status)
		}
	}
	r = env.do(t, "DELETE", "/api/ContentKeys(%27nb%3Akid%3AUUID%3A"+kid1+"%27)", secretWriter, "")
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if _, err := keys.Get(context.Background(), kid); !errors.Is(err, keystore.ErrDeleted) {
		t.Errorf("after delete: %v", err)
	}
	if m, err := keys.Metadata(context.Background(), kid); err != nil || !m.Deleted() {
		t.Errorf("not a soft delete: %+v %v", m, err)
	}
	for _, c := range [][2]string{
		{"GET", "/api/ContentKeys('" + kid1 + "')"},
		{"DELETE", "/api/ContentKeys('" + kid1 + "')"},
		{"POST", "/api/ContentKeys('" + kid1 + "')/GetKeyDeliveryUrl"},
	} {
		r := env.do(t, c[0], c[1], secretWriter, `{"keyDeliveryType":2}`)
		if p := r.problem(t); r.status != 404 || p.Reason != "deleted" {
			t.Errorf("%s %s after delete: %d %s", c[0], c[1], r.status, r.body)
		}
	}
	if got := ids(list("/api/ContentKeys")); got != seedKID2+","+seedKID1 {
		t.Errorf("list after delete %s", got)
	}
	if got := ids(list("/api/ContentKeys?$skip=1")); got != seedKID1 {
		t.Errorf("skip counts live keys only: %s", got)
	}
	if got := ids(list("/api/Assets('nb:cid:UUID:asset-1')/ContentKeys")); got != seedKID1 {
		t.Errorf("asset list after delete %s", got)
	}
	if r := env.do(t, "POST", "/api/keys/"+kid1+"/restore", secretWriter, ""); r.status != 200 {
		t.Fatalf("restore: %d %s", r.status, r.body)
	}
	if got := ids(list("/api/ContentKeys")); got != all {
		t.Errorf("list after restore %s", got)
	}
	if r := env.do(t, "DELETE", "/api/ContentKeys('00000000-0000-4000-8000-000000000000')", secretWriter, ""); r.status != 404 {
		t.Errorf("delete unknown: %d", r.status)
	}
	ops := auditOperations(t, env)
	for _, want := range []string{"ams.contentkeys.get:ok", "ams.contentkeys.list:ok", "ams.assets.contentkeys.list:ok",
		"ams.contentkeys.delivery-url:ok", "ams.contentkeys.delete:started,ams.contentkeys.delete:ok", "ams.contentkeys.delete:forbidden"} {
		if !strings.Contains(ops, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	noSecrets(t, env, nil, keyB64)
}

// TestAMSDeliveryURLNotConfigured: GetKeyDeliveryUrl without --public-url.
func TestAMSDeliveryURLNotConfigured(t *testing.T) {
	env, _ := newRealEnv(t, func(o *testOptions) { o.PublicURL = "" })
	env.do(t, "POST", "/api/keys", secretWriter, `{"id":"`+kid1+`"}`)
	r := env.do(t, "POST", "/api/ContentKeys('"+kid1+"')/GetKeyDeliveryUrl", secretReader, `{"keyDeliveryType":2}`)
	if p := r.problem(t); r.status != 501 || p.Code != codeNotConfigured || p.Reason != "public_url_not_configured" {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// TestAMSAuditFailsClosed: a create whose audit record cannot be written is
// not done.
func TestAMSAuditFailsClosed(t *testing.T) {
	w := &failWriter{}
	env, keys := newRealEnv(t, func(o *testOptions) {
		o.ProtectionCert, o.ProtectionKey = protectionPair()
		o.Audit = audit.New(w, nil)
	})
	cert, _ := protectionPair()
	kid, _ := keystore.ParseKeyID(kid1)
	r := env.do(t, "POST", "/api/ContentKeys", secretWriter, amsBody(t, cert.PublicKey.(*rsa.PublicKey), ams.ProtectionKeyID(cert), kid, [16]byte{7}, nil))
	if p := r.problem(t); r.status != 503 || p.Reason != reasonAudit {
		t.Errorf("%d %s", r.status, r.body)
	}
	if _, err := keys.Metadata(context.Background(), kid); !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("stored without an audit record: %v", err)
	}
}

// FuzzAMSCreateBody: no body makes POST /api/ContentKeys panic or answer
// 5xx, and whatever is accepted verifies: the stored key's checksum is the
// one sent.
func FuzzAMSCreateBody(f *testing.F) {
	cert, key := protectionPair()
	thumb := ams.ProtectionKeyID(cert)
	kid, _ := keystore.ParseKeyID(kid1)
	k := [16]byte{1, 2, 3}
	enc, _ := ams.EncryptContentKey(nil, &key.PublicKey, k)
	good := `{"Id":"nb:kid:UUID:` + kid1 + `","EncryptedContentKey":"` + enc + `","ProtectionKeyId":"` + thumb + `","Checksum":"` + playready.Checksum(k, kid) + `"}`
	for _, s := range []string{good, ``, `{}`, `{"d":{}}`, `{"d":` + good + `}`, `{"Id":null,"ContentKeyType":"1"}`, `{"ProtectionKeyType":"x"}`, `[1]`} {
		f.Add(s)
	}
	keys := newRealKeys(f)
	env := newEnvWith(f, keys, cert, key)
	f.Fuzz(func(t *testing.T, body string) {
		r := env.do(t, "POST", "/api/ContentKeys", secretWriter, body)
		if r.status >= 500 {
			t.Fatalf("%d for %q: %s", r.status, body, r.body)
		}
		if r.status == 201 {
			var got contentKey
			r.json(t, &got)
			id, err := keystore.ParseKeyID(got.ID)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := keys.Get(context.Background(), id)
			if err != nil || playready.VerifyChecksum(stored.Value, id, got.Checksum) != nil || got.EncryptedContentKey != nil {
				t.Fatalf("accepted %q but stored %v %v", body, stored.ID, err)
			}
			_, _ = keys.Delete(context.Background(), id)
			_ = keys.Purge(context.Background(), id)
		}
	})
}

// newEnvWith is newEnv over keys with a protection pair.
func newEnvWith(t testing.TB, keys *keystore.Keys, cert *x509.Certificate, key *rsa.PrivateKey) *testEnv {
	return newEnv(t, func(o *testOptions) { o.Keys, o.ProtectionCert, o.ProtectionKey = keys, cert, key })
}

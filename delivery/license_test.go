package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/delivery"
	"github.com/keydelivery/keydelivery/internal/authtest"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
)

// env is a delivery plane over real parts: an ES256 verifier trusting a
// fresh certificate, and sealed keys in a real bbolt file.
type env struct {
	h      http.Handler
	v      *auth.Verifier
	keys   *keystore.Keys
	signer *auth.Signer
	reg    *prometheus.Registry
}

func newEnv(t *testing.T, o delivery.Options) *env {
	t.Helper()
	m := authtest.New(t, auth.Options{})
	v, signer := m.Verifier, m.Signer
	var err error
	e := &env{v: v, keys: keystest.New(t, keystore.Options{}), signer: signer, reg: prometheus.NewRegistry()}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Verifier == nil {
		o.Verifier = v
	}
	o.Keys, o.Registerer = e.keys, e.reg
	if e.h, err = delivery.New(o); err != nil {
		t.Fatal(err)
	}
	return e
}

// key stores a random key and returns it.
func (e *env) key(t *testing.T) keystore.Key {
	t.Helper()
	var k keystore.Key
	if _, err := rand.Read(k.ID[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(k.Value[:]); err != nil {
		t.Fatal(err)
	}
	k.Type = keystore.CommonEncryption
	if _, err := e.keys.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

func (e *env) token(t *testing.T, keys ...keystore.Key) string {
	t.Helper()
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.ID.String()
	}
	tok, err := e.signer.Sign(auth.TokenClaims{Issuer: "iss", Audience: "aud", KeyIDs: kids, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) post(path, token, body string, header ...string) reply {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
}

type problem struct {
	Code   string   `json:"code"`
	Reason string   `json:"reason"`
	Detail string   `json:"detail"`
	KIDs   []string `json:"kids"`
}

func (r reply) problem(t *testing.T) problem {
	t.Helper()
	var p problem
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, body %s", ct, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	return p
}

var b64url = base64.RawURLEncoding

func ckRequest(typ string, keys ...keystore.Key) string {
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = b64url.EncodeToString(k.ID[:])
	}
	b, _ := json.Marshal(map[string]any{"kids": kids, "type": typ})
	return string(b)
}

// assertNoKeyMaterial fails if any key's bytes appear in body, in any
// usual encoding.
func assertNoKeyMaterial(t *testing.T, body []byte, keys ...keystore.Key) {
	t.Helper()
	for _, k := range keys {
		for _, enc := range []string{b64url.EncodeToString(k.Value[:]), base64.StdEncoding.EncodeToString(k.Value[:]), hex.EncodeToString(k.Value[:])} {
			if bytes.Contains(bytes.ToLower(body), bytes.ToLower([]byte(enc))) {
				t.Fatalf("key material in the answer: %s", body)
			}
		}
		if bytes.Contains(body, k.Value[:]) {
			t.Fatalf("raw key bytes in the answer")
		}
	}
}

func TestClearKeyLicense(t *testing.T) {
	e := newEnv(t, delivery.Options{})
	audio, video := e.key(t), e.key(t)
	tok := e.token(t, audio, video)

	r := e.post("/clearkey/license", tok, ckRequest("temporary", video, audio), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if bytes.ContainsRune(r.body, '=') {
		t.Errorf("padding in the license (Chromium refuses it): %s", r.body)
	}
	var lic struct {
		Keys []struct {
			Kty, Kid, K string
		}
		Type string
	}
	if err := json.Unmarshal(r.body, &lic); err != nil {
		t.Fatal(err)
	}
	if lic.Type != "temporary" || len(lic.Keys) != 2 {
		t.Fatalf("license %s", r.body)
	}
	for i, want := range []keystore.Key{video, audio} {
		got := lic.Keys[i]
		if got.Kty != "oct" || got.Kid != b64url.EncodeToString(want.ID[:]) || got.K != b64url.EncodeToString(want.Value[:]) {
			t.Errorf("key %d: %+v, want kid %x", i, got, want.ID)
		}
	}

	// A missing type means temporary; padded and standard-alphabet KIDs
	// (older players) are read; a duplicate KID is answered once.
	padded := base64.URLEncoding.EncodeToString(audio.ID[:])
	std := base64.StdEncoding.EncodeToString(audio.ID[:])
	r = e.post("/clearkey/license", tok, `{"kids":["`+padded+`","`+std+`"]}`)
	if r.status != 200 || bytes.Count(r.body, []byte(`"kty"`)) != 1 || !bytes.Contains(r.body, []byte(`"type":"temporary"`)) {
		t.Errorf("padded/standard KIDs: %d %s", r.status, r.body)
	}

	// The token in the query string (Safari-style players) works too.
	r = e.post("/clearkey/license?token="+tok, "", ckRequest("temporary", audio))
	if r.status != 200 {
		t.Errorf("token in query: %d %s", r.status, r.body)
	}
}

// TestClearKeyRefusesWholeRequest: a license covers every requested key or
// none; the refusal names the KIDs at fault and carries no key material.
func TestClearKeyRefusesWholeRequest(t *testing.T) {
	e := newEnv(t, delivery.Options{})
	audio, video, other := e.key(t), e.key(t), e.key(t)
	tok := e.token(t, audio, video)

	r := e.post("/clearkey/license", tok, ckRequest("temporary", audio, other, video))
	if r.status != 403 {
		t.Fatalf("ungranted KID: %d %s", r.status, r.body)
	}
	if p := r.problem(t); p.Reason != "key_not_granted" || len(p.KIDs) != 1 || p.KIDs[0] != other.ID.String() {
		t.Errorf("problem %+v", p)
	}
	assertNoKeyMaterial(t, r.body, audio, video, other)

	var unknown keystore.Key
	unknown.ID = keystore.KeyID{0xde, 0xad}
	r = e.post("/clearkey/license", e.token(t, audio, unknown), ckRequest("temporary", audio, unknown))
	if r.status != 404 {
		t.Fatalf("unknown KID: %d %s", r.status, r.body)
	}
	if p := r.problem(t); p.Reason != "unknown_key" || len(p.KIDs) != 1 || p.KIDs[0] != unknown.ID.String() {
		t.Errorf("problem %+v", p)
	}
	assertNoKeyMaterial(t, r.body, audio)

	// A deleted key is unknown to players, whole request refused.
	if _, err := e.keys.Delete(context.Background(), video.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.post("/clearkey/license", tok, ckRequest("temporary", audio, video)); r.status != 404 {
		t.Errorf("deleted KID: %d %s", r.status, r.body)
	}

	// Bad tokens: 401 with WWW-Authenticate, whatever the body.
	for name, tk := range map[string]string{"garbage": "x.y.z", "none": ""} {
		r := e.post("/clearkey/license", tk, ckRequest("temporary", audio))
		if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s token: %d %v", name, r.status, r.header)
		}
		assertNoKeyMaterial(t, r.body, audio)
	}
}

func TestClearKeyBadRequests(t *testing.T) {
	e := newEnv(t, delivery.Options{BodyLimit: 4096})
	k := e.key(t)
	tok := e.token(t, k)
	var many []keystore.Key
	for i := 0; i < 33; i++ {
		var x keystore.Key
		x.ID[0], x.ID[1] = 1, byte(i)
		many = append(many, x)
	}
	for _, c := range []struct {
		name, body string
		status     int
		reason     string
	}{
		{"not JSON", `kids=abc`, 400, "invalid_body"},
		{"kids not an array", `{"kids":"abc"}`, 400, "invalid_body"},
		{"no kids", `{"kids":[],"type":"temporary"}`, 400, "missing_kid"},
		{"kids absent", `{"type":"temporary"}`, 400, "missing_kid"},
		{"short KID", `{"kids":["AAAA"]}`, 400, "invalid_kid"},
		{"not base64", `{"kids":["!!!!!!!!!!!!!!!!!!!!!!"]}`, 400, "invalid_kid"},
		{"33 KIDs", ckRequest("temporary", many...), 400, "too_many_kids"},
		{"unknown type", ckRequest("forever", k), 400, "invalid_session_type"},
		{"persistent", ckRequest("persistent-license", k), 403, "persistent_license_disabled"},
		{"too large", `{"kids":["` + strings.Repeat("A", 5000) + `"]}`, 413, "body_too_large"},
	} {
		r := e.post("/clearkey/license", tok, c.body)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
			continue
		}
		if p := r.problem(t); p.Reason != c.reason || p.Detail == "" {
			t.Errorf("%s: %+v, want reason %s", c.name, p, c.reason)
		}
	}
	// GET is not a license request.
	req := httptest.NewRequest("GET", "/clearkey/license", nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 405 {
		t.Errorf("GET: %d", rec.Code)
	}

	// Persistent licenses when enabled.
	p := newEnv(t, delivery.Options{PersistentLicenses: true, MaxLicenseKIDs: 2})
	pk := p.key(t)
	r := p.post("/clearkey/license", p.token(t, pk), ckRequest("persistent-license", pk))
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"type":"persistent-license"`)) {
		t.Errorf("persistent enabled: %d %s", r.status, r.body)
	}
	if r := p.post("/clearkey/license", p.token(t, pk), ckRequest("temporary", many[:3]...)); r.status != 400 {
		t.Errorf("MaxLicenseKIDs 2, asked 3: %d", r.status)
	}
}

func TestClearKeyCORS(t *testing.T) {
	e := newEnv(t, delivery.Options{CORSOrigins: []string{"https://player.example.com"}})
	k := e.key(t)
	// dash.js sends credentials whenever it sets an Authorization header:
	// the origin must be echoed with Allow-Credentials, never "*".
	req := httptest.NewRequest("OPTIONS", "/clearkey/license", nil)
	req.Header.Set("Origin", "https://player.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	h := rec.Header()
	if rec.Code != 204 || h.Get("Access-Control-Allow-Origin") != "https://player.example.com" ||
		h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %d %v", rec.Code, h)
	}
	r := e.post("/clearkey/license", e.token(t, k), ckRequest("temporary", k), "Origin", "https://player.example.com")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://player.example.com" || r.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("license: %d %v", r.status, r.header)
	}
	r = e.post("/clearkey/license", e.token(t, k), ckRequest("temporary", k), "Origin", "https://evil.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin allowed: %v", r.header)
	}
}

// playReadyChallenge is a PlayReady SOAP AcquireLicense challenge whose
// WRMHEADER names kids (GUIDs as PlayReady writes them: little-endian).
func playReadyChallenge(version string, kids ...keystore.KeyID) string {
	var kidXML strings.Builder
	for _, id := range kids {
		le := [16]byte{id[3], id[2], id[1], id[0], id[5], id[4], id[7], id[6]}
		copy(le[8:], id[8:])
		v := base64.StdEncoding.EncodeToString(le[:])
		switch version {
		case "4.0.0.0":
			kidXML.WriteString("<KID>" + v + "</KID>")
		default:
			kidXML.WriteString(`<KID ALGID="AESCTR" VALUE="` + v + `"></KID>`)
		}
	}
	data := "<DATA><PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO>" + kidXML.String() + "<LA_URL>https://keys.example.com/PlayReady/</LA_URL></DATA>"
	if version != "4.0.0.0" {
		data = "<DATA><PROTECTINFO><KIDS>" + kidXML.String() + "</KIDS></PROTECTINFO></DATA>"
	}
	return `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>` +
		`<AcquireLicense xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols"><challenge><Challenge xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols/messages">` +
		`<LA xmlns="http://schemas.microsoft.com/DRM/2007/03/protocols" Id="SignedData" xml:space="preserve"><Version>1</Version><ContentHeader>` +
		`<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="` + version + `">` + data + `</WRMHEADER>` +
		`</ContentHeader><CLIENTINFO><CLIENTVERSION>10.0.16384.10011</CLIENTVERSION></CLIENTINFO></LA></Challenge></challenge></AcquireLicense></soap:Body></soap:Envelope>`
}

// TestLicenseStubs: the stubs run every check, then say plainly that no
// issuer is configured, naming the entitled keys and never their values.
func TestLicenseStubs(t *testing.T) {
	e := newEnv(t, delivery.Options{})
	k1, k2, other := e.key(t), e.key(t), e.key(t)
	tok := e.token(t, k1, k2)
	for _, c := range []struct {
		path, body string
		want       []keystore.Key
	}{
		{"/playready/license?kid=" + k1.ID.String(), "", []keystore.Key{k1}},
		{"/PlayReady/", playReadyChallenge("4.0.0.0", k1.ID), []keystore.Key{k1}},
		{"/PlayReady", playReadyChallenge("4.3.0.0", k2.ID, k1.ID), []keystore.Key{k2, k1}},
		{"/widevine/license?kid=" + k1.ID.String() + "&kid=" + k2.ID.String(), "\x08\x01", []keystore.Key{k1, k2}},
		{"/Widevine/?KID=nb:kid:UUID:" + k2.ID.String(), "challenge", []keystore.Key{k2}},
		{"/fairplay/license?kid=" + k1.ID.String() + "," + k2.ID.String(), "spc=AAAA", []keystore.Key{k1, k2}},
		{"/FairPlay/?kid=" + k1.ID.String(), "spc=AAAA", []keystore.Key{k1}},
	} {
		r := e.post(c.path, tok, c.body)
		if r.status != 200 || r.header.Get(delivery.StubHeader) != "stub" {
			t.Errorf("%s: %d %v %s", c.path, r.status, r.header, r.body)
			continue
		}
		var a struct {
			System   string
			Licensed bool
			Issuer   string
			Message  string
			KIDs     []string
		}
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatal(err)
		}
		if a.Licensed || a.Issuer != "stub" || !strings.Contains(a.Message, "no "+a.System+" license issuer is configured") || len(a.KIDs) != len(c.want) {
			t.Errorf("%s: %s", c.path, r.body)
			continue
		}
		for i, k := range c.want {
			if a.KIDs[i] != k.ID.String() {
				t.Errorf("%s: kids %v", c.path, a.KIDs)
			}
		}
		assertNoKeyMaterial(t, r.body, k1, k2)
	}

	for _, c := range []struct {
		path, body, token string
		status            int
		reason            string
	}{
		{"/playready/license?kid=" + k1.ID.String(), "", "bad", 401, "malformed"},
		{"/widevine/license?kid=" + k1.ID.String() + "&kid=" + other.ID.String(), "", tok, 403, "key_not_granted"},
		{"/PlayReady/", playReadyChallenge("4.0.0.0", other.ID), tok, 403, "key_not_granted"},
		{"/fairplay/license?kid=" + keystore.KeyID{9}.String(), "", e.token(t, keystore.Key{ID: keystore.KeyID{9}}), 404, "unknown_key"},
		{"/widevine/license", "challenge", tok, 400, "missing_kid"},
		{"/fairplay/license?kid=nope", "", tok, 400, "invalid_kid"},
		{"/PlayReady/", "<not xml", tok, 400, "invalid_challenge"},
		{"/PlayReady/", playReadyChallenge("4.0.0.0"), tok, 400, "missing_kid"},
	} {
		r := e.post(c.path, c.token, c.body)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.path, r.status, c.status, r.body)
			continue
		}
		if p := r.problem(t); p.Reason != c.reason {
			t.Errorf("%s: reason %q, want %q", c.path, p.Reason, c.reason)
		}
		if r.header.Get(delivery.StubHeader) != "" {
			t.Errorf("%s: a refusal reached the issuer", c.path)
		}
	}
}

// vendorProxy is what a vendor integration looks like from outside this
// package: it forwards the challenge, with the keys, to a license server.
type vendorProxy struct{ url string }

func (p vendorProxy) Issue(ctx context.Context, r *delivery.LicenseRequest) (*delivery.License, error) {
	var body bytes.Buffer
	body.WriteString(string(r.System) + "|" + r.Claims.Subject + "|")
	for _, k := range r.Keys {
		body.WriteString(hex.EncodeToString(k.ID[:]) + ":" + hex.EncodeToString(k.Value[:]) + ";")
	}
	body.Write(r.Challenge)
	req, err := http.NewRequestWithContext(ctx, "POST", p.url, &body)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == 400:
		return nil, &delivery.LicenseError{Status: 400, Reason: "challenge_rejected", Detail: "the license server rejected the challenge"}
	case resp.StatusCode != 200:
		return nil, errors.New("vendor said " + resp.Status + ": " + string(b))
	}
	return &delivery.License{ContentType: "application/octet-stream", Body: b, Header: http.Header{"X-Vendor": {"yes"},
		"cache-control": {"max-age=3600"}, "Access-Control-Allow-Origin": {"*"}}}, nil
}

// TestLicenseIssuerPlugIn: an issuer written outside the package gets the
// entitled keys and the challenge, and its answer and refusals reach the
// player; its failures become 502 without their text.
func TestLicenseIssuerPlugIn(t *testing.T) {
	var seen string
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = string(b)
		switch {
		case strings.HasSuffix(seen, "bad-challenge"):
			w.WriteHeader(400)
		case strings.HasSuffix(seen, "explode"):
			http.Error(w, "vendor internal secret detail", 500)
		default:
			w.Write([]byte("LICENSE-BYTES"))
		}
	}))
	defer vendor.Close()
	e := newEnv(t, delivery.Options{LicenseIssuers: map[delivery.System]delivery.LicenseIssuer{delivery.Widevine: vendorProxy{vendor.URL}}})
	k := e.key(t)
	tok := e.token(t, k)

	r := e.post("/widevine/license?kid="+k.ID.String(), tok, "CHALLENGE")
	if r.status != 200 || string(r.body) != "LICENSE-BYTES" || r.header.Get("X-Vendor") != "yes" || r.header.Get(delivery.StubHeader) != "" {
		t.Fatalf("issued: %d %v %q", r.status, r.header, r.body)
	}
	// The issuer's headers pass, but for caching and CORS, which stay the
	// plane's: a license is never cached.
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("issuer headers overrode the plane's: %v", r.header)
	}
	if want := "widevine||" + hex.EncodeToString(k.ID[:]) + ":" + hex.EncodeToString(k.Value[:]) + ";CHALLENGE"; seen != want {
		t.Errorf("the issuer got %q, want %q", seen, want)
	}
	r = e.post("/widevine/license?kid="+k.ID.String(), tok, "bad-challenge")
	if p := r.problem(t); r.status != 400 || p.Reason != "challenge_rejected" {
		t.Errorf("issuer refusal: %d %+v", r.status, p)
	}
	r = e.post("/widevine/license?kid="+k.ID.String(), tok, "explode")
	if p := r.problem(t); r.status != 502 || p.Code != "license_issuer_failed" || bytes.Contains(r.body, []byte("secret detail")) {
		t.Errorf("issuer failure: %d %s", r.status, r.body)
	}
	// The other systems keep the stub.
	if r := e.post("/playready/license?kid="+k.ID.String(), tok, ""); r.status != 200 || r.header.Get(delivery.StubHeader) != "stub" {
		t.Errorf("playready: %d %v", r.status, r.header)
	}
	// An issuer for a system without an endpoint is a configuration error.
	_, err := delivery.New(delivery.Options{Log: slog.Default(), Verifier: e.v, Keys: e.keys, Registerer: prometheus.NewRegistry(),
		LicenseIssuers: map[delivery.System]delivery.LicenseIssuer{"primetime": vendorProxy{}}})
	if err == nil || !strings.Contains(err.Error(), "primetime") {
		t.Errorf("unknown system: %v", err)
	}
}

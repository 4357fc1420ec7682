package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
)

// TestContentTokenThroughRun: keys made by SPEKE for a live content with
// two key periods are delivered to one content_ids token, through the real
// server and its caches; a key of another content, the same key deleted,
// and the same key purged get one answer, byte for byte, at the key
// endpoints and in a ClearKey request that mixes a granted KID with it.
func TestContentTokenThroughRun(t *testing.T) {
	m := newMaterial(t)
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db"), "--public-url", "https://keys.example.com"), nil)

	const kid0, kid1 = "3b9c46ea-0001-4583-9d8e-00f253ce7fa1", "3b9c46ea-0002-4583-9d8e-00f253ce7fa2"
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" contentId="live-channel-1" version="2.3">
  <ContentKeyList>
    <ContentKey kid="` + kid0 + `" commonEncryptionScheme="cbcs"/>
    <ContentKey kid="` + kid1 + `" commonEncryptionScheme="cbcs"/>
  </ContentKeyList>
  <DRMSystemList>
    <DRMSystem kid="` + kid0 + `" systemId="3ea8778f-7742-4bf9-b18b-e834b2acbd47"><HLSSignalingData playlist="media"/></DRMSystem>
    <DRMSystem kid="` + kid1 + `" systemId="3ea8778f-7742-4bf9-b18b-e834b2acbd47"><HLSSignalingData playlist="media"/></DRMSystem>
  </DRMSystemList>
  <ContentKeyPeriodList><ContentKeyPeriod id="p0" index="0"/><ContentKeyPeriod id="p1" index="1"/></ContentKeyPeriodList>
  <ContentKeyUsageRuleList>
    <ContentKeyUsageRule kid="` + kid0 + `" intendedTrackType="ALL"><KeyPeriodFilter periodId="p0"/></ContentKeyUsageRule>
    <ContentKeyUsageRule kid="` + kid1 + `" intendedTrackType="ALL"><KeyPeriodFilter periodId="p1"/></ContentKeyUsageRule>
  </ContentKeyUsageRuleList>
</CPIX>`
	req, _ := http.NewRequest(http.MethodPost, s.adminURL+"/speke/v2", strings.NewReader(doc))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("X-Speke-Version", "2.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("SPEKE: %d %s", resp.StatusCode, body)
	}
	values := map[string][]byte{}
	for _, m := range regexp.MustCompile(`(?s)<ContentKey kid="([^"]+)"[^>]*>.*?<pskc:PlainValue>([^<]+)</pskc:PlainValue>`).FindAllStringSubmatch(string(body), -1) {
		values[m[1]], _ = base64.StdEncoding.DecodeString(m[2])
	}
	if len(values[kid0]) != 16 || len(values[kid1]) != 16 {
		t.Fatalf("SPEKE answer keys %v in %s", slices.Collect(maps.Keys(values)), body)
	}
	other := s.createKey(t, randomKey(t), map[string]any{"assets": []string{"vod-1"}})

	now := time.Now()
	tok, err := m.signer.Sign(auth.TokenClaims{Issuer: testIssuer, Audience: testAudience, ContentIDs: []string{"live-channel-1"},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second from the token and key caches
		for _, kid := range []string{kid0, kid1} {
			for _, u := range []string{"/keys/" + kid, "/?kid=" + kid} {
				if a := do(t, "GET", s.deliveryURL+u, bearer(tok)); a.status != 200 || !bytes.Equal(a.body, values[kid]) {
					t.Fatalf("GET %s: %d %s", u, a.status, a.body)
				}
			}
		}
	}
	ck := func(kids ...string) string {
		var parts []string
		for _, k := range kids {
			raw, _ := hex.DecodeString(strings.ReplaceAll(k, "-", ""))
			parts = append(parts, `"`+base64.RawURLEncoding.EncodeToString(raw)+`"`)
		}
		return `{"kids":[` + strings.Join(parts, ",") + `],"type":"temporary"}`
	}
	send := func(method, path, body string) answer {
		t.Helper()
		req, _ := http.NewRequest(method, s.deliveryURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Request-ID", "same-request")
		req.Header.Set("Origin", "https://player.example.com")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		resp.Header.Del("Date")
		return answer{resp.StatusCode, resp.Header, b}
	}
	if a := send("POST", "/clearkey/license", ck(kid0, kid1)); a.status != 200 || strings.Count(string(a.body), `"kty":"oct"`) != 2 {
		t.Fatalf("ClearKey for both periods: %d %s", a.status, a.body)
	}
	collect := func() map[string]answer {
		out := map[string]answer{}
		out["GET /keys/{kid}"] = send("GET", "/keys/"+other, "")
		out["GET /?kid="] = send("GET", "/?kid="+other, "")
		out["ClearKey, mixed kids"] = send("POST", "/clearkey/license", ck(kid0, other))
		out["Widevine, mixed kids"] = send("POST", "/widevine/license?kid="+kid1+"&kid="+other, "challenge")
		return out
	}
	before := collect()
	for name, a := range before {
		p := problemOf(t, a)
		if a.status != 403 || p["reason"] != "key_not_granted" || p["request_id"] != "same-request" {
			t.Fatalf("%s, a key of another content: %d %s", name, a.status, a.body)
		}
		if kids, ok := p["kids"].([]any); ok && !slices.Equal(kids, []any{other}) {
			t.Errorf("%s: kids %v, want only %s", name, kids, other)
		}
	}
	admin := http.Header{"Authorization": {"Bearer " + adminSecret}}
	for _, step := range []string{"", "?purge=true"} {
		if a := do(t, "DELETE", s.adminURL+"/api/keys/"+other+step, admin); a.status != 200 && a.status != 204 {
			t.Fatalf("DELETE %s: %d %s", step, a.status, a.body)
		}
		for name, a := range collect() {
			b := before[name]
			if a.status != b.status || !bytes.Equal(a.body, b.body) || !maps.EqualFunc(a.header, b.header, slices.Equal) {
				t.Errorf("%s after DELETE%s: %d %v %s\nbefore (another content): %d %v %s", name, step, a.status, a.header, a.body, b.status, b.header, b.body)
			}
		}
	}
	if a := do(t, "GET", s.adminURL+"/api/keys/"+other, admin); a.status != 404 {
		t.Fatalf("the purged key: %d %s", a.status, a.body)
	}
}

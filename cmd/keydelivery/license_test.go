package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// post sends body to rawURL with header and returns the answer.
func post(t *testing.T, rawURL, body string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b.Bytes()}
}

// exerciseLicenses asks the real server for a ClearKey license for two
// keys (audio and video) and for the license stubs, through the store the
// server runs on, and checks the refusals.
func exerciseLicenses(t *testing.T, s *server, m material) {
	t.Helper()
	audioKey, videoKey := randomKey(t), randomKey(t)
	audio := s.createKey(t, audioKey, map[string]any{"type": "CommonEncryption"})
	video := s.createKey(t, videoKey, map[string]any{"type": "CommonEncryption"})
	tok := m.token(t, audio, video)
	b64url := base64.RawURLEncoding
	kidOf := func(kid string) string {
		return b64url.EncodeToString(hexBytes(t, strings.ReplaceAll(kid, "-", "")))
	}
	body := `{"kids":["` + kidOf(video) + `","` + kidOf(audio) + `"],"type":"temporary"}`

	a := post(t, s.deliveryURL+"/clearkey/license", body, http.Header{"Authorization": {"Bearer " + tok},
		"Content-Type": {"application/json"}, "Origin": {"https://player.example.com"}})
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "https://player.example.com" || a.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("clearkey license: %d %v %s", a.status, a.header, a.body)
	}
	want := `{"keys":[{"kty":"oct","kid":"` + kidOf(video) + `","k":"` + b64url.EncodeToString(videoKey[:]) + `"},` +
		`{"kty":"oct","kid":"` + kidOf(audio) + `","k":"` + b64url.EncodeToString(audioKey[:]) + `"}],"type":"temporary"}`
	if string(a.body) != want {
		t.Fatalf("clearkey license\n got %s\nwant %s", a.body, want)
	}

	// A token for the audio key alone gets no license at all.
	a = post(t, s.deliveryURL+"/clearkey/license", body, bearer(m.token(t, audio)))
	if p := problemOf(t, a); a.status != 403 || p["reason"] != "key_not_granted" || !strings.Contains(string(a.body), video) {
		t.Fatalf("partial grant: %d %s", a.status, a.body)
	}
	if bytes.Contains(a.body, []byte(b64url.EncodeToString(audioKey[:]))) {
		t.Fatal("a refusal carries key material")
	}
	// Token in the query string; a bad token.
	if a := post(t, s.deliveryURL+"/clearkey/license?token="+tok, body, nil); a.status != 200 {
		t.Fatalf("clearkey token in query: %d %s", a.status, a.body)
	}
	if a := post(t, s.deliveryURL+"/clearkey/license", body, bearer(tok[:len(tok)-4]+"AAAA")); a.status != 401 {
		t.Fatalf("clearkey bad signature: %d %s", a.status, a.body)
	}

	// The stubs: entitled keys named, no key material, marked by a header.
	for _, path := range []string{"/playready/license?kid=" + audio, "/Widevine/?kid=" + video, "/fairplay/license?kid=" + audio + "," + video} {
		a := post(t, s.deliveryURL+path, "challenge", bearer(tok))
		var stub struct {
			Licensed bool
			KIDs     []string
		}
		if a.status != 200 || a.header.Get("X-KeyDelivery-License-Issuer") != "stub" || json.Unmarshal(a.body, &stub) != nil || stub.Licensed || len(stub.KIDs) == 0 {
			t.Fatalf("stub %s: %d %v %s", path, a.status, a.header, a.body)
		}
		for _, k := range [][16]byte{audioKey, videoKey} {
			if bytes.Contains(a.body, []byte(b64url.EncodeToString(k[:]))) || bytes.Contains(a.body, []byte(b64(k[:]))) {
				t.Fatalf("stub %s carries key material", path)
			}
		}
	}
	if a := post(t, s.deliveryURL+"/widevine/license?kid="+video, "", bearer(m.token(t, audio))); a.status != 403 {
		t.Fatalf("stub, key not granted: %d %s", a.status, a.body)
	}
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
)

// TestSPEKEThroughRun: the real server answers a SPEKE v2 request from a
// packager credential sent as HTTP Basic, with the HLS AES-128 signaling
// under --public-url; the key it created is delivered to a player whose
// token names it, and the server refuses the packager everything else.
func TestSPEKEThroughRun(t *testing.T) {
	m := newMaterial(t)
	const packagerSecret = "kda_packager-secret-for-run"
	line, err := credentials.PackagerLine("encoder-1", packagerSecret, []string{"live-*"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.credsFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(line + "\n")
	f.Close()
	s := start(t, m.args("bolt:"+filepath.Join(m.dir, "keys.db"), "--public-url", "https://keys.example.com", "--widevine-provider", "kd-test"), nil)

	const kid = "0d9c7a5e-1111-4a2b-8c3d-4e5f60718293"
	doc := `<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX contentId="live-1" version="2.3" xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
<cpix:ContentKeyList><cpix:ContentKey kid="` + kid + `" commonEncryptionScheme="cbcs"/></cpix:ContentKeyList>
<cpix:DRMSystemList><cpix:DRMSystem kid="` + kid + `" systemId="3ea8778f-7742-4bf9-b18b-e834b2acbd47"><cpix:HLSSignalingData playlist="media"/><cpix:HLSSignalingData playlist="master"/></cpix:DRMSystem></cpix:DRMSystemList>
<cpix:ContentKeyUsageRuleList><cpix:ContentKeyUsageRule kid="` + kid + `" intendedTrackType="ALL"/></cpix:ContentKeyUsageRuleList>
</cpix:CPIX>`
	post := func(doc string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, s.adminURL+"/speke/v2", strings.NewReader(doc))
		req.SetBasicAuth("encoder-1", packagerSecret)
		req.Header.Set("Content-Type", "application/xml")
		req.Header.Set("X-Speke-Version", "2.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	st, h, body := post(doc)
	if st != 200 || h.Get("X-Speke-Version") != "2.0" || !strings.HasPrefix(h.Get("X-Speke-User-Agent"), "keydelivery/") {
		t.Fatalf("%d %v %s", st, h, body)
	}
	pv := regexp.MustCompile(`<pskc:PlainValue>([^<]+)</pskc:PlainValue>`).FindStringSubmatch(body)
	if pv == nil {
		t.Fatalf("no PlainValue in %s", body)
	}
	value, _ := base64.StdEncoding.DecodeString(pv[1])
	media := regexp.MustCompile(`<cpix:HLSSignalingData playlist="media">([^<]+)<`).FindStringSubmatch(body)
	tag, _ := base64.StdEncoding.DecodeString(media[1])
	if string(tag) != `#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/keys/`+kid+`"` {
		t.Fatalf("media playlist signaling %s", tag)
	}
	a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(m.token(t, kid)))
	if a.status != 200 || !bytes.Equal(a.body, value) {
		t.Fatalf("the player got %d, a different key: %v", a.status, !bytes.Equal(a.body, value))
	}
	if st, _, body := post(strings.Replace(doc, "live-1", "vod-1", 1)); st != 403 || !strings.Contains(body, `content "vod-1"`) {
		t.Fatalf("another content: %d %s", st, body)
	}
	req, _ := http.NewRequest(http.MethodGet, s.adminURL+"/api/keys/"+kid, nil)
	req.SetBasicAuth("encoder-1", packagerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("the packager's Basic credential on /api/: %d", resp.StatusCode)
	}
	meta := do(t, "GET", s.adminURL+"/api/keys/"+kid, http.Header{"Authorization": {"Bearer " + adminSecret}})
	if meta.status != 200 || !strings.Contains(string(meta.body), `"assets":["live-1"]`) || !strings.Contains(string(meta.body), `"trackType":"ALL"`) {
		t.Fatalf("the key's metadata: %d %s", meta.status, meta.body)
	}
	if strings.Contains(s.stderr.String(), pv[1]) || strings.Contains(s.stderr.String(), packagerSecret) {
		t.Fatal("the log holds the key or the secret")
	}
}

// TestCPIXRecipientFlags: --check-config loads the CPIX recipient pair and
// refuses one that is not a matching RSA pair of at least 2048 bits.
func TestCPIXRecipientFlags(t *testing.T) {
	m := newMaterial(t)
	write := func(name string, bits int) (string, string) {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		cert, key := filepath.Join(m.dir, name+".crt"), filepath.Join(m.dir, name+".key")
		os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
		return cert, key
	}
	good, goodKey := write("recipient", 2048)
	small, smallKey := write("small", 1024)
	base := append(m.args("bolt:"+filepath.Join(m.dir, "keys.db")), "--check-config")
	var out, errOut syncBuffer
	if err := run(t.Context(), append(base, "--cpix-recipient-cert", good, "--cpix-recipient-key", goodKey), func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("a good pair: %v", err)
	}
	for name, args := range map[string][]string{
		"1024 bits":  {"--cpix-recipient-cert", small, "--cpix-recipient-key", smallKey},
		"mismatched": {"--cpix-recipient-cert", good, "--cpix-recipient-key", smallKey},
	} {
		if err := run(t.Context(), append(base, args...), func(string) string { return "" }, &out, &errOut); err == nil || !strings.Contains(err.Error(), "CPIX recipient") && !strings.Contains(err.Error(), "--cpix-recipient-cert") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

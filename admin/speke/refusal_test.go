package speke

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/internal/admintest"
	"github.com/keydelivery/keydelivery/keystore"
)

// TestRefusals: every refusal is plain text with the status and message the
// SPEKE documentation gives (MediaPackage's error responses are 422), or one
// in the same style; never a 500 for a bad document; nothing is stored; each
// is audited once, as invalid. The cases follow AWS's verification suite's
// negative cases (an empty body, a wrong version, each mandatory element
// and attribute removed, FairPlay with cenc, a shared key beside separate
// ones, a KeyPeriodFilter naming no period).
func TestRefusals(t *testing.T) {
	base := readTestdata(t, "preset-video3-audio2.xml")
	shared := readTestdata(t, "hls-aes128-rotation.xml")
	remove := func(doc, pattern string) string { return regexp.MustCompile(pattern).ReplaceAllString(doc, "") }
	for _, c := range []struct {
		name, doc string
		hdr       []string
		status    int
		text      string
	}{
		{"empty body", "", nil, 400, "Invalid CPIX document: empty document: no root element"},
		{"not XML", "<cpix:CPIX", nil, 400, "Invalid CPIX document: not well-formed XML"},
		{"DTD", `<!DOCTYPE x [<!ENTITY e "x">]><x/>`, nil, 400, "Invalid CPIX document: DTDs are not allowed"},
		{"no SPEKE version", base, []string{"X-Speke-Version", ""}, 422, "Unsupported SPEKE version"},
		{"SPEKE version 1.0", base, []string{"X-Speke-Version", "1.0"}, 422, "Unsupported SPEKE version"},
		{"JSON", base, []string{"Content-Type", "application/json"}, 415, "Unsupported Content-Type"},
		{"not CPIX", "<x/>", nil, 422, "Invalid CPIX document: the root element must be CPIX"},
		{"no contentId", strings.Replace(base, `contentId="film-2026"`, "", 1), nil, 422, "Missing CPIX@contentId"},
		{"no version", strings.Replace(base, `version="2.3"`, "", 1), nil, 422, "Missing CPIX@version"},
		{"CPIX 2.2", strings.Replace(base, `version="2.3"`, `version="2.2"`, 1), nil, 422, "Unsupported CPIX@version"},
		{"CPIX 2.4 with SPEKE 2.0", strings.Replace(base, `version="2.3"`, `version="2.4"`, 1), nil, 422, "Unsupported CPIX@version"},
		{"content ID with a space", strings.Replace(base, `contentId="film-2026"`, `contentId="a b"`, 1), nil, 422, `Invalid CPIX@contentId "a b"`},
		{"signed", strings.Replace(base, "</cpix:CPIX>", `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></cpix:CPIX>`, 1), nil, 422, "Signed CPIX documents are not supported"},
		{"no ContentKeyList", remove(base, `(?s)<cpix:ContentKeyList>.*</cpix:ContentKeyList>`), nil, 422, "Missing ContentKeyList"},
		{"no ContentKey", remove(base, `<cpix:ContentKey kid[^>]*></cpix:ContentKey>`), nil, 422, "ContentKeyList holds no ContentKey"},
		{"no DRMSystemList", remove(base, `(?s)<cpix:DRMSystemList>.*</cpix:DRMSystemList>`), nil, 422, "Missing DRMSystemList"},
		{"no DRMSystem", remove(base, `(?s)<cpix:DRMSystem .*?</cpix:DRMSystem>`), nil, 422, "DRMSystemList holds no DRMSystem"},
		{"no ContentKeyUsageRuleList", remove(base, `(?s)<cpix:ContentKeyUsageRuleList>.*</cpix:ContentKeyUsageRuleList>`), nil, 422, "Missing ContentKeyUsageRuleList"},
		{"no ContentKeyUsageRule", remove(base, `(?s)<cpix:ContentKeyUsageRule .*?</cpix:ContentKeyUsageRule>`), nil, 422, "ContentKeyUsageRuleList holds no ContentKeyUsageRule"},
		{"ContentKey without kid", strings.Replace(base, `<cpix:ContentKey kid="6a1c2e10-0001-4c4e-9267-120b0d762801"`, `<cpix:ContentKey`, 1), nil, 422, "Missing ContentKey@kid"},
		{"ContentKey without scheme", strings.Replace(base, `kid="6a1c2e10-0002-4c4e-9267-120b0d762802" commonEncryptionScheme="cbcs"`, `kid="6a1c2e10-0002-4c4e-9267-120b0d762802"`, 1), nil, 422,
			"Missing ContentKey@commonEncryptionScheme for KID 6a1c2e10-0002-4c4e-9267-120b0d762802"},
		{"mixed schemes", strings.Replace(base, `kid="6a1c2e10-0004-4c4e-9267-120b0d762804" commonEncryptionScheme="cbcs"`, `kid="6a1c2e10-0004-4c4e-9267-120b0d762804" commonEncryptionScheme="cenc"`, 1), nil, 422,
			"Non compliant ContentKey@commonEncryptionScheme combination"},
		{"FairPlay with cenc", strings.ReplaceAll(base, `commonEncryptionScheme="cbcs"`, `commonEncryptionScheme="cenc"`), nil, 422, "Non compliant ContentKey@commonEncryptionScheme combination"},
		{"unknown scheme", strings.ReplaceAll(base, `commonEncryptionScheme="cbcs"`, `commonEncryptionScheme="xyz"`), nil, 422, `Unsupported ContentKey@commonEncryptionScheme "xyz"`},
		{"bad kid", strings.Replace(base, `kid="6a1c2e10-0001-4c4e-9267-120b0d762801" commonEncryptionScheme`, `kid="nope" commonEncryptionScheme`, 1), nil, 422, `Invalid ContentKey@kid "nope"`},
		{"duplicate kid", strings.Replace(base, `6a1c2e10-0002-4c4e-9267-120b0d762802" commonEncryptionScheme`, `6a1c2e10-0001-4c4e-9267-120b0d762801" commonEncryptionScheme`, 1), nil, 422, "Duplicate ContentKey@kid 6a1c2e10-0001-4c4e-9267-120b0d762801"},
		{"bad explicitIV", strings.Replace(base, `commonEncryptionScheme="cbcs"></cpix:ContentKey>`, `commonEncryptionScheme="cbcs" explicitIV="AAAA"></cpix:ContentKey>`, 1), nil, 422, "Invalid ContentKey@explicitIV"},
		{"a key given", strings.Replace(base, `commonEncryptionScheme="cbcs"></cpix:ContentKey>`, `commonEncryptionScheme="cbcs"><cpix:Data><pskc:Secret><pskc:PlainValue>AAAAAAAAAAAAAAAAAAAAAA==</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey>`, 1), nil, 422, "ContentKey 6a1c2e10-0001-4c4e-9267-120b0d762801 already holds a key value"},
		{"DRMSystem without systemId", strings.Replace(base, ` systemId="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"`, "", 1), nil, 422, "Missing DRMSystem@systemId for KID 6a1c2e10-0001-4c4e-9267-120b0d762801"},
		{"DRMSystem without kid", strings.Replace(base, `<cpix:DRMSystem kid="6a1c2e10-0001-4c4e-9267-120b0d762801"`, `<cpix:DRMSystem`, 1), nil, 422, "Missing DRMSystem@kid"},
		{"DRMSystem naming no key", strings.Replace(base, `<cpix:DRMSystem kid="6a1c2e10-0001-4c4e-9267-120b0d762801"`, `<cpix:DRMSystem kid="6a1c2e10-0009-4c4e-9267-120b0d762809"`, 1), nil, 422, "DRMSystem@kid 6a1c2e10-0009-4c4e-9267-120b0d762809 names no ContentKey"},
		{"unknown system", strings.Replace(base, `systemId="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"`, `systemId="80a6be7e-1448-4c37-9e70-d5aebe04c8d2"`, 1), nil, 422, `Unsupported DRMSystem@systemId "80a6be7e-1448-4c37-9e70-d5aebe04c8d2" for KID 6a1c2e10-0001-4c4e-9267-120b0d762801`},
		{"rule without kid", strings.Replace(base, `<cpix:ContentKeyUsageRule kid="6a1c2e10-0001-4c4e-9267-120b0d762801"`, `<cpix:ContentKeyUsageRule`, 1), nil, 422, "Missing ContentKeyUsageRule@kid"},
		{"rule without track type", strings.Replace(base, ` intendedTrackType="SD"`, "", 1), nil, 422, "Missing ContentKeyUsageRule@intendedTrackType for KID 6a1c2e10-0001-4c4e-9267-120b0d762801"},
		{"unknown track type", strings.Replace(base, `intendedTrackType="SD"`, `intendedTrackType="8K"`, 1), nil, 422, `Unsupported ContentKeyUsageRule@intendedTrackType "8K"`},
		{"a key without a rule", remove(base, `(?s)<cpix:ContentKeyUsageRule kid="6a1c2e10-0005-4c4e-9267-120b0d762805".*?</cpix:ContentKeyUsageRule>`), nil, 422, "No ContentKeyUsageRule for KID 6a1c2e10-0005-4c4e-9267-120b0d762805"},
		{"period naming nothing", strings.Replace(base, `<cpix:KeyPeriodFilter periodId="keyPeriod_0"/>`, `<cpix:KeyPeriodFilter periodId="keyPeriod_9"/>`, 1), nil, 422, `KeyPeriodFilter@periodId "keyPeriod_9" of KID 6a1c2e10-0001-4c4e-9267-120b0d762801 names no ContentKeyPeriod`},
		{"period without index", strings.Replace(base, ` index="0"`, "", 1), nil, 422, `Missing ContentKeyPeriod@index for ContentKeyPeriod "keyPeriod_0"`},
		{"period with a bad index", strings.Replace(base, ` index="0"`, ` index="-1"`, 1), nil, 422, `Invalid ContentKeyPeriod@index "-1"`},
		{"period with a bad start", strings.Replace(base, ` index="0"`, ` index="0" start="yesterday"`, 1), nil, 422, `Invalid ContentKeyPeriod@start "yesterday"`},
		{"duplicate track type", strings.Replace(base, `intendedTrackType="HD"`, `intendedTrackType="SD"`, 1), nil, 422, "Non compliant encryption contract: intendedTrackType SD is used by more than one key in key period 0"},
		{"video keys of no preset", strings.Replace(base, `intendedTrackType="UHD"`, `intendedTrackType="HD2"`, 1), nil, 422, "Non compliant encryption contract: the video keys SD, HD, HD2 in key period 0 form no SPEKE v2 video preset"},
		{"audio keys of no preset", strings.Replace(base, `intendedTrackType="MULTICHANNEL_AUDIO"`, `intendedTrackType="AUDIO"`, 1), nil, 422, "Non compliant encryption contract: the audio keys STEREO_AUDIO, AUDIO in key period 0 form no SPEKE v2 audio preset"},
		{"a shared key beside separate ones", strings.Replace(base, `intendedTrackType="STEREO_AUDIO"`, `intendedTrackType="ALL"`, 1), nil, 422,
			"Non compliant encryption contract: the SHARED key (intendedTrackType ALL) must be the only key in key period 0, not beside SD, HD, UHD, MULTICHANNEL_AUDIO"},
		{"two shared keys in one period", strings.Replace(shared, `periodId="p42"`, `periodId="p41"`, 1), nil, 422, "Non compliant encryption contract: intendedTrackType ALL is used by more than one key in key period 41"},
		{"one key, two rules", strings.Replace(base, `<cpix:ContentKeyUsageRule kid="6a1c2e10-0002-4c4e-9267-120b0d762802"`, `<cpix:ContentKeyUsageRule kid="6a1c2e10-0001-4c4e-9267-120b0d762801"`, 1), nil, 422, "ContentKey 6a1c2e10-0001-4c4e-9267-120b0d762801 has more than one ContentKeyUsageRule"},
		{"bad delivery data", strings.Replace(base, `<cpix:ContentKeyList>`, `<cpix:DeliveryDataList><cpix:DeliveryData><cpix:DeliveryKey/></cpix:DeliveryData></cpix:DeliveryDataList><cpix:ContentKeyList>`, 1), nil, 422, "Invalid DeliveryData 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newEnv(t, nil)
			r := env.post(t, c.doc, c.hdr...)
			if r.Status != c.status || !strings.HasPrefix(string(r.Body), c.text) || !strings.HasSuffix(string(r.Body), "\n") {
				t.Fatalf("%d %q\nwant %d %q", r.Status, r.Body, c.status, c.text)
			}
			if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" || r.Header.Get("X-Speke-User-Agent") == "" {
				t.Errorf("headers %v", r.Header)
			}
			if ids, _ := env.keys.List(context.Background(), keystore.KeyID{}, 10); len(ids) != 0 {
				t.Errorf("a refused request stored %d keys", len(ids))
			}
			recs := admintest.AuditLines(t, env.Audit.String())
			if len(recs) != 1 || recs[0]["result"] != "invalid" || recs[0]["operation"] != "speke.v2" {
				t.Errorf("audit %v", recs)
			}
		})
	}
}

// TestCredentials: a packager may call SPEKE with Bearer or Basic (its
// name and secret), a limited packager only for its content IDs; the other
// roles but admin are refused (packager is the one role for SPEKE). That a
// packager may do nothing else of the admin API is checked for every route
// by the admin package's OpenAPI role test.
func TestCredentials(t *testing.T) {
	env := newEnv(t, nil)
	req := readTestdata(t, "hls-aes128-rotation.xml")
	basic := func(name, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(name+":"+secret))
	}
	send := func(secret, auth, doc string) admintest.Response {
		h := []string{"Content-Type", "application/xml", "X-Speke-Version", "2.0"}
		if auth != "" {
			h = append(h, "Authorization", auth)
		}
		return env.Do(t, http.MethodPost, Path, secret, doc, h...)
	}
	for _, c := range []struct {
		name, secret, auth string
		doc                string
		status             int
	}{
		{"packager, bearer", admintest.SecretPackager, "", req, 200},
		{"packager, basic", "", basic(admintest.PackagerName, admintest.SecretPackager), req, 200},
		{"packager, basic with another name", "", basic("packager-live", admintest.SecretPackager), req, 401},
		{"admin", admintest.SecretAdmin, "", req, 200},
		{"writer", admintest.SecretWriter, "", req, 403},
		{"exporter", admintest.SecretExporter, "", req, 403},
		{"reader", admintest.SecretReader, "", req, 403},
		{"no credential", "", "", req, 401},
		{"limited packager, its content", admintest.SecretLimitedPackager, "", req, 200},
		{"limited packager, other content", admintest.SecretLimitedPackager, "", strings.Replace(req, "live-channel-1", "vod-1", 1), 403},
	} {
		r := send(c.secret, c.auth, c.doc)
		if r.Status != c.status {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
		}
		if r.Status >= 400 && r.Header.Get("Content-Type") != "text/plain; charset=UTF-8" {
			t.Errorf("%s: a refusal in %s", c.name, r.Header.Get("Content-Type"))
		}
		if r.Status == 401 && len(r.Header.Values("WWW-Authenticate")) != 2 {
			t.Errorf("%s: WWW-Authenticate %v", c.name, r.Header.Values("WWW-Authenticate"))
		}
	}
	if r := send(admintest.SecretLimitedPackager, "", strings.Replace(req, "live-channel-1", "vod-1", 1)); string(r.Body) != "This credential may not ask for the keys of content \"vod-1\"\n" {
		t.Errorf("content refusal %q", r.Body)
	}
}

// TestOtherContent: a KID stored for another content, or deleted, is
// refused, and its key never answered.
func TestOtherContent(t *testing.T) {
	env := newEnv(t, nil)
	req := readTestdata(t, "hls-aes128-rotation.xml")
	ctx := context.Background()
	id := mustKID(t, "3b9c46ea-0001-4583-9d8e-00f253ce7fa1")
	if _, err := env.keys.Create(ctx, keystore.Key{ID: id, Assets: []string{"another-content"}}); err != nil {
		t.Fatal(err)
	}
	r := env.post(t, req)
	if r.Status != 422 || string(r.Body) != "ContentKey 3b9c46ea-0001-4583-9d8e-00f253ce7fa1 belongs to another content: a KID is used for one content only\n" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// Keys created by hand under the content are answered.
	env2 := newEnv(t, nil)
	k, err := env2.keys.Create(ctx, keystore.Key{ID: id, Assets: []string{"live-channel-1"}})
	if err != nil {
		t.Fatal(err)
	}
	keys := plainKeys(t, answerTree(t, env2.post(t, req)))
	if !bytes.Equal(keys[id.String()], k.Value[:]) {
		t.Fatal("a key stored under the content was not the one answered")
	}
	// The request asks for an IV (explicitIV="") of a key stored without
	// one: it gets one, the same each time.
	ivs := map[string]bool{}
	for range 2 {
		root := answerTree(t, env2.post(t, req))
		ck := root.Child(nsCPIX, elContentKeyList).ChildElements(nsCPIX, elContentKey)[0]
		iv, _ := ck.AttrValue("explicitIV")
		if raw, err := base64.StdEncoding.DecodeString(iv); err != nil || len(raw) != 16 {
			t.Fatalf("explicitIV %q", iv)
		}
		ivs[iv] = true
	}
	if len(ivs) != 1 {
		t.Fatalf("the IV changed between two identical requests: %v", ivs)
	}
	if _, err := env2.keys.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r := env2.post(t, req); r.Status != 422 || !strings.HasPrefix(string(r.Body), "ContentKey 3b9c46ea-0001-4583-9d8e-00f253ce7fa1 is deleted") {
		t.Fatalf("deleted: %d %s", r.Status, r.Body)
	}
}

func TestNoPublicURL(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.PublicURL = "" })
	r := env.post(t, readTestdata(t, "hls-aes128-rotation.xml"))
	if r.Status != 501 || !strings.HasPrefix(string(r.Body), "This server has no --public-url") {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// Widevine needs no URL.
	doc := strings.Replace(readTestdata(t, "cenc-clearkey.xml"), `systemId="1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"><cpix:PSSH/><cpix:ContentProtectionData/>`, `systemId="edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"><cpix:PSSH/>`, 2)
	doc = regexp.MustCompile(`(?s)<cpix:DRMSystem kid="e94a731b-0001-4b76-9821-0f9689b8f9a1" systemId="(e2719d58|edef8ba9|9a04f079).*?</cpix:DRMSystem>`).ReplaceAllString(doc, "")
	if r := env.post(t, doc); r.Status != 200 {
		t.Fatalf("Widevine only: %d %s", r.Status, r.Body)
	}
}

// recipient makes an RSA key and a self-signed certificate for it.
func recipient(t *testing.T, bits int) (*rsa.PrivateKey, []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "packager"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, der
}

func deliveryDataList(der ...[]byte) string {
	var b strings.Builder
	b.WriteString(`<cpix:DeliveryDataList>`)
	for i, d := range der {
		b.WriteString(`<cpix:DeliveryData id="recipient-` + string(rune('1'+i)) + `"><cpix:DeliveryKey><ds:X509Data xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Certificate>` +
			base64.StdEncoding.EncodeToString(d) + `</ds:X509Certificate></ds:X509Data></cpix:DeliveryKey></cpix:DeliveryData>`)
	}
	b.WriteString(`</cpix:DeliveryDataList>`)
	return b.String()
}

// TestEncryptedAnswer: with DeliveryData naming recipients, every content
// key goes encrypted (AES-256-CBC under one document key, HMAC-SHA512
// ValueMAC under a MAC key, both wrapped with RSA-OAEP for each recipient)
// and no PlainValue is sent; each recipient decrypts the stored keys.
func TestEncryptedAnswer(t *testing.T) {
	env := newEnv(t, nil)
	k1, der1 := recipient(t, 2048)
	k2, der2 := recipient(t, 3072)
	doc := strings.Replace(readTestdata(t, "preset-video3-audio2.xml"), "<cpix:ContentKeyList>", deliveryDataList(der1, der2)+"<cpix:ContentKeyList>", 1)
	r := env.post(t, doc)
	root := answerTree(t, r)
	if strings.Contains(string(r.Body), "PlainValue") {
		t.Fatal("an encrypted answer holds a PlainValue")
	}
	dds := root.Child(nsCPIX, elDeliveryDataList).ChildElements(nsCPIX, elDeliveryData)
	for i, priv := range []*rsa.PrivateKey{k1, k2} {
		dd := dds[i]
		names := []string{}
		for _, c := range dd.Elements() {
			names = append(names, c.Local)
		}
		if strings.Join(names, ",") != "DeliveryKey,DocumentKey,MACMethod" {
			t.Fatalf("DeliveryData children %v", names)
		}
		dk := dd.Child(nsCPIX, "DocumentKey")
		if alg, _ := dk.AttrValue("Algorithm"); alg != cpix.AlgAES256CBC {
			t.Errorf("DocumentKey@Algorithm %q", alg)
		}
		ev := dk.Child(nsCPIX, "Data").Child(cpix.NamespacePSKC, "Secret").Child(cpix.NamespacePSKC, "EncryptedValue")
		if alg, _ := ev.Child(cpix.NamespaceXMLEnc, "EncryptionMethod").AttrValue("Algorithm"); alg != cpix.AlgRSAOAEP {
			t.Errorf("document key wrapped with %q", alg)
		}
		wk, _ := base64.StdEncoding.DecodeString(ev.Child(cpix.NamespaceXMLEnc, "CipherData").Child(cpix.NamespaceXMLEnc, "CipherValue").Text())
		mm := dd.Child(nsCPIX, "MACMethod")
		if alg, _ := mm.AttrValue("Algorithm"); alg != cpix.AlgHMACSHA512 {
			t.Errorf("MACMethod@Algorithm %q", alg)
		}
		wm, _ := base64.StdEncoding.DecodeString(mm.Child(nsCPIX, "Key").Child(cpix.NamespaceXMLEnc, "CipherData").Child(cpix.NamespaceXMLEnc, "CipherValue").Text())
		docKey, err := cpix.UnwrapDocumentKey(priv, wk, wm)
		if err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
		for _, ck := range root.Child(nsCPIX, elContentKeyList).ChildElements(nsCPIX, elContentKey) {
			kid, _ := ck.AttrValue("kid")
			secret := ck.Child(nsCPIX, elData).Child(cpix.NamespacePSKC, "Secret")
			cev := secret.Child(cpix.NamespacePSKC, "EncryptedValue")
			cv, _ := base64.StdEncoding.DecodeString(cev.Child(cpix.NamespaceXMLEnc, "CipherData").Child(cpix.NamespaceXMLEnc, "CipherValue").Text())
			mac, _ := base64.StdEncoding.DecodeString(secret.Child(cpix.NamespacePSKC, "ValueMAC").Text())
			if len(cv) != 48 || len(mac) != 64 {
				t.Fatalf("CipherValue %d bytes, ValueMAC %d", len(cv), len(mac))
			}
			v, err := docKey.Decrypt(cv, mac)
			stored, gerr := env.keys.Get(context.Background(), mustKID(t, kid))
			if err != nil || gerr != nil || !bytes.Equal(v, stored.Value[:]) {
				t.Fatalf("key %s: %v %v", kid, err, gerr)
			}
			cv[20] ^= 1
			if _, err := docKey.Decrypt(cv, mac); err != cpix.ErrMAC {
				t.Errorf("a changed CipherValue: %v", err)
			}
		}
	}
	_, small := recipient(t, 1024)
	doc = strings.Replace(readTestdata(t, "preset-video3-audio2.xml"), "<cpix:ContentKeyList>", deliveryDataList(small)+"<cpix:ContentKeyList>", 1)
	if r := env.post(t, doc); r.Status != 422 || !strings.Contains(string(r.Body), "at least 2048 bits") {
		t.Fatalf("a 1024-bit recipient: %d %s", r.Status, r.Body)
	}
}

// presetDocument writes a MediaPackage-style request for a video and an
// audio preset (nil: UNENCRYPTED; "SHARED" as the video preset: one ALL
// key), over periods key periods (0: no ContentKeyPeriodList), with
// Widevine and PlayReady, encrypted to der when it is not nil.
func presetDocument(t *testing.T, video, audio []string, periods int, der []byte) (string, int) {
	t.Helper()
	var keys, systems, rules, periodList strings.Builder
	n := 0
	groups := max(periods, 1)
	for p := 0; p < groups; p++ {
		if periods > 0 {
			fmt.Fprintf(&periodList, `<cpix:ContentKeyPeriod id="kp%d" index="%d"/>`, p, 100+p)
		}
		for _, tt := range append(append([]string(nil), video...), audio...) {
			n++
			kid := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
			fmt.Fprintf(&keys, `<cpix:ContentKey kid="%s" commonEncryptionScheme="cenc"/>`, kid)
			for _, sys := range []string{systemWidevine, systemPlayReady} {
				fmt.Fprintf(&systems, `<cpix:DRMSystem kid="%s" systemId="%s"><cpix:PSSH/><cpix:ContentProtectionData/></cpix:DRMSystem>`, kid, sys)
			}
			filter := ""
			if periods > 0 {
				filter = fmt.Sprintf(`<cpix:KeyPeriodFilter periodId="kp%d"/>`, p)
			}
			fmt.Fprintf(&rules, `<cpix:ContentKeyUsageRule kid="%s" intendedTrackType="%s">%s</cpix:ContentKeyUsageRule>`, kid, tt, filter)
		}
	}
	doc := `<cpix:CPIX contentId="presets" version="2.3" xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">`
	if der != nil {
		doc += deliveryDataList(der)
	}
	doc += "<cpix:ContentKeyList>" + keys.String() + "</cpix:ContentKeyList><cpix:DRMSystemList>" + systems.String() + "</cpix:DRMSystemList>"
	if periods > 0 {
		doc += "<cpix:ContentKeyPeriodList>" + periodList.String() + "</cpix:ContentKeyPeriodList>"
	}
	return doc + "<cpix:ContentKeyUsageRuleList>" + rules.String() + "</cpix:ContentKeyUsageRuleList></cpix:CPIX>", n
}

// TestEveryPreset: every combination of the SPEKE v2 presets the
// documentation allows (eight video presets or UNENCRYPTED, three audio
// presets or UNENCRYPTED, not both UNENCRYPTED; and SHARED) is answered,
// alternately with and without key rotation and with and without content
// key encryption; both UNENCRYPTED is a request with no key, refused.
func TestEveryPreset(t *testing.T) {
	_, der := recipient(t, 2048)
	combos := [][2][]string{{{"ALL"}, nil}}
	for _, v := range append([][]string{nil}, videoPresets...) {
		for _, a := range append([][]string{nil}, audioPresets...) {
			if v != nil || a != nil {
				combos = append(combos, [2][]string{v, a})
			}
		}
	}
	if len(combos) != 36 {
		t.Fatalf("%d combinations", len(combos))
	}
	for i, c := range combos {
		periods, encrypt := 0, []byte(nil)
		if i%2 == 1 {
			periods = 2
		}
		if i/2%2 == 1 {
			encrypt = der
		}
		env := newEnv(t, nil)
		doc, n := presetDocument(t, c[0], c[1], periods, encrypt)
		r := env.post(t, doc)
		root := answerTree(t, r)
		got := len(root.Child(nsCPIX, elContentKeyList).ChildElements(nsCPIX, elContentKey))
		plain := strings.Count(string(r.Body), "PlainValue>") / 2
		if got != n || (encrypt == nil) != (plain == n) || encrypt != nil && plain != 0 {
			t.Errorf("video %v audio %v, %d periods, encrypted %v: %d keys answered of %d, %d in the clear", c[0], c[1], periods, encrypt != nil, got, n, plain)
		}
	}
	env := newEnv(t, nil)
	doc, _ := presetDocument(t, nil, nil, 0, nil)
	if r := env.post(t, doc); r.Status != 422 {
		t.Errorf("both UNENCRYPTED: %d %s", r.Status, r.Body)
	}
}

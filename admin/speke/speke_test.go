package speke

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/internal/admintest"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
	"github.com/keydelivery/keydelivery/pssh"
)

const publicURL = "https://keys.example.com"

type testEnv struct {
	*admintest.Env
	keys *keystore.Keys
}

// newEnv is a plane with the SPEKE API over a real key store on bbolt.
func newEnv(t *testing.T, mod func(*Options)) *testEnv {
	t.Helper()
	keys := keystest.New(t, keystore.Options{})
	o := Options{PublicURL: publicURL + "/", WidevineProvider: "keydelivery-test", UserAgent: "keydelivery-test/1"}
	if mod != nil {
		mod(&o)
	}
	env := admintest.New(t, keys, nil, func(p *plane.Plane) error { return Register(p, o) })
	return &testEnv{Env: env, keys: keys}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// post sends a SPEKE v2 request as MediaPackage does (application/xml,
// X-Speke-Version 2.0) with the packager's secret; hdr adds or replaces
// headers.
func (e *testEnv) post(t *testing.T, doc string, hdr ...string) admintest.Response {
	t.Helper()
	h := append([]string{"Content-Type", "application/xml", "X-Speke-Version", "2.0"}, hdr...)
	return e.Do(t, http.MethodPost, Path, admintest.SecretPackager, doc, h...)
}

func answerTree(t *testing.T, r admintest.Response) *cpix.Element {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	root, err := cpix.ParseTree(bytes.NewReader(r.Body), 1<<20)
	if err != nil {
		t.Fatalf("the answer is not XML: %v\n%s", err, r.Body)
	}
	return root
}

func mustKID(t *testing.T, s string) keystore.KeyID {
	t.Helper()
	id, err := keystore.ParseKeyID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// plainKeys reads the PlainValue of every ContentKey of an answer.
func plainKeys(t *testing.T, root *cpix.Element) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, ck := range root.Child(nsCPIX, elContentKeyList).ChildElements(nsCPIX, elContentKey) {
		kid, _ := ck.AttrValue("kid")
		data := ck.ChildElements(nsCPIX, elData)
		if len(data) != 1 {
			t.Fatalf("ContentKey %s has %d Data", kid, len(data))
		}
		pv := data[0].Child(cpix.NamespacePSKC, "Secret").Child(cpix.NamespacePSKC, "PlainValue")
		if pv == nil {
			t.Fatalf("ContentKey %s has no PlainValue", kid)
		}
		v, err := base64.StdEncoding.DecodeString(pv.Text())
		if err != nil || len(v) != 16 {
			t.Fatalf("ContentKey %s PlainValue %q", kid, pv.Text())
		}
		out[kid] = v
	}
	return out
}

// drmSystems returns the DRMSystem elements of an answer, by "kid systemId".
func drmSystems(root *cpix.Element) map[string]*cpix.Element {
	out := map[string]*cpix.Element{}
	for _, d := range root.Child(nsCPIX, elDRMSystemList).ChildElements(nsCPIX, elDRMSystem) {
		kid, _ := d.AttrValue("kid")
		sys, _ := d.AttrValue("systemId")
		out[kid+" "+sys] = d
	}
	return out
}

func decoded(t *testing.T, el *cpix.Element) string {
	t.Helper()
	if el == nil {
		t.Fatal("missing element")
	}
	b, err := base64.StdEncoding.DecodeString(el.Text())
	if err != nil || len(b) == 0 {
		t.Fatalf("%s is not base64: %q", el.Local, el.Text())
	}
	return string(b)
}

func hlsData(t *testing.T, d *cpix.Element, playlist string) string {
	t.Helper()
	for _, h := range d.ChildElements(nsCPIX, elHLSSignaling) {
		if p, _ := h.AttrValue("playlist"); p == playlist {
			return decoded(t, h)
		}
	}
	t.Fatalf("no HLSSignalingData for the %s playlist", playlist)
	return ""
}

// elementNames lists the qualified names of every element of a tree.
func elementNames(e *cpix.Element, out map[string]int) map[string]int {
	out["{"+e.Space+"}"+e.Local]++
	for _, c := range e.Elements() {
		elementNames(c, out)
	}
	return out
}

// TestPresetRequest: a MediaPackage-style request for PRESET-VIDEO-3 and
// PRESET-AUDIO-2 with Widevine, PlayReady and FairPlay is answered as AWS's
// verification suite checks: 200 with application/xml, X-Speke-Version 2.0
// and X-Speke-User-Agent; every element and attribute of the request kept
// (a vendor's included); a PlainValue per key; the signaling of each
// system; keys stored under the content with their track type and period.
func TestPresetRequest(t *testing.T) {
	env := newEnv(t, nil)
	req := readTestdata(t, "preset-video3-audio2.xml")
	r := env.post(t, req)
	root := answerTree(t, r)
	if ct := r.Header.Get("Content-Type"); ct != "application/xml" || r.Header.Get("X-Speke-Version") != "2.0" || r.Header.Get("X-Speke-User-Agent") != "keydelivery-test/1" {
		t.Fatalf("headers %v", r.Header)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("an answer with keys is cacheable: %v", r.Header)
	}
	reqTree, _ := cpix.ParseTree(strings.NewReader(req), 1<<20)
	want, got := elementNames(reqTree, map[string]int{}), elementNames(root, map[string]int{})
	for name, n := range want {
		removed := 0
		if name == "{"+nsCPIX+"}PSSH" {
			removed = 1 // FairPlay's
		}
		if got[name] < n-removed {
			t.Errorf("the answer has %d %s, the request %d", got[name], name, n)
		}
	}
	for _, a := range []string{"contentId", "version"} {
		if v, _ := root.AttrValue(a); v == "" {
			t.Errorf("CPIX@%s lost", a)
		}
	}
	if !strings.Contains(string(r.Body), `v:trace="t-1"`) || !strings.Contains(string(r.Body), "<v:Note>kept as sent</v:Note>") ||
		!strings.Contains(string(r.Body), "<!-- Widevine -->") {
		t.Errorf("the vendor's attribute, element or comment was lost:\n%s", r.Body)
	}
	keys := plainKeys(t, root)
	if len(keys) != 5 {
		t.Fatalf("%d keys", len(keys))
	}
	for _, ck := range root.Child(nsCPIX, elContentKeyList).ChildElements(nsCPIX, elContentKey) {
		if s, _ := ck.AttrValue("commonEncryptionScheme"); s != "cbcs" {
			t.Errorf("commonEncryptionScheme %q", s)
		}
	}
	ctx := context.Background()
	trackTypes := map[string]string{"01": "SD", "02": "HD", "03": "UHD", "04": "STEREO_AUDIO", "05": "MULTICHANNEL_AUDIO"}
	for kid, v := range keys {
		k, err := env.keys.Get(ctx, mustKID(t, kid))
		if err != nil || !bytes.Equal(k.Value[:], v) {
			t.Fatalf("stored key %s: %v", kid, err)
		}
		if !slices.Equal(k.Assets, []string{"film-2026"}) || k.TrackType != trackTypes[kid[11:13]] || k.Period == nil || k.Period.Index != 0 ||
			k.Method != keystore.CreatedRandom || k.Type != keystore.CommonEncryption {
			t.Errorf("stored key %s: %+v", kid, k)
		}
	}
	sys := drmSystems(root)

	// Widevine: the PSSH box (version 0) with the Widevine header.
	wv := sys["6a1c2e10-0001-4c4e-9267-120b0d762801 "+systemWidevine]
	psshBytes, _ := base64.StdEncoding.DecodeString(wv.Child(nsCPIX, elPSSH).Text())
	box, _, err := pssh.Parse(psshBytes)
	if err != nil || box.Version != 0 || box.SystemID != pssh.Widevine {
		t.Fatalf("Widevine PSSH %+v %v", box, err)
	}
	wd, err := pssh.ParseWidevineData(box.Data)
	cbcs, _ := pssh.FourCC("cbcs")
	if err != nil || len(wd.KeyIDs) != 1 || wd.KeyIDs[0] != mustKID(t, "6a1c2e10-0001-4c4e-9267-120b0d762801") ||
		wd.Provider != "keydelivery-test" || string(wd.ContentID) != "film-2026" || wd.ProtectionScheme != cbcs {
		t.Fatalf("Widevine header %+v %v", wd, err)
	}
	if cpd := decoded(t, wv.Child(nsCPIX, elContentProtection)); cpd != `<cenc:pssh xmlns:cenc="urn:mpeg:cenc:2013">`+base64.StdEncoding.EncodeToString(psshBytes)+`</cenc:pssh>` {
		t.Errorf("Widevine ContentProtectionData %s", cpd)
	}
	media := hlsData(t, wv, "media")
	if !strings.HasPrefix(media, "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,"+base64.StdEncoding.EncodeToString(psshBytes)+"\",KEYID=0x6A1C2E1000014C4E9267120B0D762801") ||
		!strings.HasSuffix(media, `KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",KEYFORMATVERSIONS="1"`) {
		t.Errorf("Widevine media playlist signaling %s", media)
	}
	if master := hlsData(t, wv, "master"); master != strings.Replace(media, "#EXT-X-KEY:", "#EXT-X-SESSION-KEY:", 1) {
		t.Errorf("Widevine master playlist signaling %s", master)
	}

	// PlayReady: a 4.3 header (cbcs: AESCBC) with this server's LA_URL.
	pr := sys["6a1c2e10-0002-4c4e-9267-120b0d762802 "+systemPlayReady]
	psshBytes, _ = base64.StdEncoding.DecodeString(pr.Child(nsCPIX, elPSSH).Text())
	box, _, err = pssh.Parse(psshBytes)
	if err != nil || box.SystemID != pssh.PlayReady {
		t.Fatalf("PlayReady PSSH %+v %v", box, err)
	}
	header, err := playready.ObjectHeader(box.Data)
	g := playready.GUID(mustKID(t, "6a1c2e10-0002-4c4e-9267-120b0d762802"))
	if err != nil || !strings.Contains(header, `version="4.3.0.0"`) || !strings.Contains(header, `<KID ALGID="AESCBC" VALUE="`+base64.StdEncoding.EncodeToString(g[:])+`"></KID>`) ||
		!strings.Contains(header, "<LA_URL>"+publicURL+"/playready/license</LA_URL>") {
		t.Fatalf("PlayReady header %s %v", header, err)
	}
	if ss := pr.Child(nsCPIX, elSmoothStreaming).Text(); ss != base64.StdEncoding.EncodeToString(box.Data) {
		t.Errorf("SmoothStreamingProtectionHeaderData %s", ss)
	}
	if cpd := decoded(t, pr.Child(nsCPIX, elContentProtection)); !strings.HasPrefix(cpd, `<mspr:pro xmlns:mspr="urn:microsoft:playready">`+base64.StdEncoding.EncodeToString(box.Data)+`</mspr:pro><cenc:pssh`) {
		t.Errorf("PlayReady ContentProtectionData %s", cpd)
	}
	if m := hlsData(t, pr, "media"); !strings.Contains(m, `URI="data:text/plain;charset=UTF-16;base64,`+base64.StdEncoding.EncodeToString(box.Data)+`"`) || !strings.Contains(m, `KEYFORMAT="com.microsoft.playready"`) {
		t.Errorf("PlayReady HLS signaling %s", m)
	}

	// FairPlay: skd:// URI with the KID, no PSSH.
	fp := sys["6a1c2e10-0003-4c4e-9267-120b0d762803 "+systemFairPlay]
	if fp.Child(nsCPIX, elPSSH) != nil || fp.Child(nsCPIX, elContentProtection) != nil {
		t.Errorf("FairPlay kept a PSSH")
	}
	if m := hlsData(t, fp, "media"); m != `#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://keys.example.com/fairplay/license?kid=6a1c2e10-0003-4c4e-9267-120b0d762803",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"` {
		t.Errorf("FairPlay media signaling %s", m)
	}

	// The same request again answers the same keys, creating nothing.
	again := plainKeys(t, answerTree(t, env.post(t, req)))
	for kid, v := range keys {
		if !bytes.Equal(again[kid], v) {
			t.Errorf("the second answer changed key %s", kid)
		}
	}
	recs := admintest.AuditLines(t, env.Audit.String())
	if len(recs) != 4 || recs[0]["result"] != "started" || recs[1]["result"] != "ok" || recs[0]["operation"] != "speke.v2" ||
		recs[1]["credential"] != admintest.PackagerName || len(recs[1]["kids"].([]any)) != 5 {
		t.Errorf("audit records %v", recs)
	}
	for _, v := range keys {
		for _, where := range []string{env.Audit.String(), env.Log.String()} {
			if strings.Contains(where, base64.StdEncoding.EncodeToString(v)) || strings.Contains(where, hex.EncodeToString(v)) {
				t.Fatal("key material in the log or the audit log")
			}
		}
	}
}

// TestRotationHLSAES128: two key periods, a key each, recorded with their
// period index; the HLS AES-128 signaling names this server's /keys/{kid}
// and the IV: the one the request asked the key provider for (empty
// explicitIV) is generated and stored, the one it gave is kept.
func TestRotationHLSAES128(t *testing.T) {
	env := newEnv(t, nil)
	root := answerTree(t, env.post(t, readTestdata(t, "hls-aes128-rotation.xml")))
	if root.Prefix != "" || !strings.Contains(root.Elements()[0].Local, "ContentKeyList") {
		t.Fatalf("the default-namespace form was not kept")
	}
	keys := plainKeys(t, root)
	sys := drmSystems(root)
	ctx := context.Background()
	for i, kid := range []string{"3b9c46ea-0001-4583-9d8e-00f253ce7fa1", "3b9c46ea-0002-4583-9d8e-00f253ce7fa2"} {
		k, err := env.keys.Get(ctx, mustKID(t, kid))
		if err != nil || !bytes.Equal(k.Value[:], keys[kid]) || k.Period == nil || k.Period.Index != uint64(41+i) || k.TrackType != "ALL" ||
			k.Type != keystore.EnvelopeEncryption || len(k.IV) != 16 {
			t.Fatalf("stored key %s: %+v %v", kid, k, err)
		}
		if i == 1 && base64.StdEncoding.EncodeToString(k.IV) != "xUryiK6gkPEqXjIm27GQqA==" {
			t.Errorf("the request's IV was not stored")
		}
		var ck *cpix.Element
		for _, c := range root.Child(nsCPIX, elContentKeyList).Elements() {
			if v, _ := c.AttrValue("kid"); v == kid {
				ck = c
			}
		}
		if iv, _ := ck.AttrValue("explicitIV"); iv != base64.StdEncoding.EncodeToString(k.IV) {
			t.Errorf("explicitIV %q, stored %x", iv, k.IV)
		}
		d := sys[kid+" "+systemHLSAES128]
		want := fmt.Sprintf(`#EXT-X-KEY:METHOD=AES-128,URI="%s/keys/%s",IV=0x%X`, publicURL, kid, k.IV)
		if m := hlsData(t, d, "media"); m != want {
			t.Errorf("media %s\nwant  %s", m, want)
		}
		if m := hlsData(t, d, "master"); m != strings.Replace(want, "EXT-X-KEY", "EXT-X-SESSION-KEY", 1) {
			t.Errorf("master %s", m)
		}
		if u := d.Child(nsCPIX, elURIExtXKey); u != nil && decoded(t, u) != publicURL+"/keys/"+kid {
			t.Errorf("URIExtXKey %s", decoded(t, u))
		}
	}
	ids, err := env.keys.ListAsset(ctx, "live-channel-1", keystore.KeyID{}, 10)
	if err != nil || len(ids) != 2 {
		t.Fatalf("the content's keys: %v %v", ids, err)
	}
}

// TestClearKey: the W3C common PSSH (version 1, the KID, no data) and this
// server's ClearKey license URL as DASH-IF Laurl; ClearKey has no HLS
// signaling (removed). PlayReady with cenc is a 4.0 header with CHECKSUM.
func TestClearKey(t *testing.T) {
	env := newEnv(t, nil)
	root := answerTree(t, env.post(t, readTestdata(t, "cenc-clearkey.xml")))
	keys := plainKeys(t, root)
	sys := drmSystems(root)
	kid := "e94a731b-0001-4b76-9821-0f9689b8f9a1"
	common := sys[kid+" "+systemCommon]
	b, _ := base64.StdEncoding.DecodeString(common.Child(nsCPIX, elPSSH).Text())
	box, _, err := pssh.Parse(b)
	if err != nil || box.Version != 1 || box.SystemID != pssh.Common || len(box.KIDs) != 1 || box.KIDs[0] != mustKID(t, kid) || len(box.Data) != 0 {
		t.Fatalf("common PSSH %+v %v", box, err)
	}
	la := publicURL + "/clearkey/license"
	if cpd := decoded(t, common.Child(nsCPIX, elContentProtection)); !strings.HasPrefix(cpd, `<cenc:pssh xmlns:cenc="urn:mpeg:cenc:2013">`) ||
		!strings.Contains(cpd, `<dashif:Laurl xmlns:dashif="https://dashif.org/CPS">`+la+`</dashif:Laurl>`) {
		t.Errorf("common ContentProtectionData %s", cpd)
	}
	ck := sys[kid+" "+systemClearKey]
	if cpd := decoded(t, ck.Child(nsCPIX, elContentProtection)); strings.Contains(cpd, "pssh") || !strings.Contains(cpd, `Lic_type="EME-1.0">`+la+`</clearkey:Laurl>`) {
		t.Errorf("ClearKey ContentProtectionData %s", cpd)
	}
	if ck.Child(nsCPIX, elHLSSignaling) != nil {
		t.Errorf("ClearKey kept an HLSSignalingData")
	}
	pr := sys[kid+" "+systemPlayReady]
	b, _ = base64.StdEncoding.DecodeString(pr.Child(nsCPIX, elPSSH).Text())
	box, _, _ = pssh.Parse(b)
	header, _ := playready.ObjectHeader(box.Data)
	var value [16]byte
	copy(value[:], keys[kid])
	if !strings.Contains(header, `version="4.0.0.0"`) || !strings.Contains(header, "<CHECKSUM>"+playready.Checksum(value, mustKID(t, kid))+"</CHECKSUM>") {
		t.Errorf("PlayReady cenc header %s", header)
	}
}

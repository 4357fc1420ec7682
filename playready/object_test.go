package playready

import (
	"encoding/hex"
	"strings"
	"testing"
)

func mustKID(t *testing.T, s string) [16]byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("kid %q", s)
	}
	return [16]byte(b)
}

// TestHeaderXML: one AESCTR key is a 4.0.0.0 header in Shaka Packager's
// exact form (kPlayHeaderObject_4_0 with LA_URL as the extra header data);
// AESCBC keys and several keys are 4.3.0.0, attributes in alphabetical
// order, no CHECKSUM for AESCBC.
func TestHeaderXML(t *testing.T) {
	kid := mustKID(t, "00112233-4455-6677-8899-aabbccddeeff")
	key := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	guid := "MyIRAFVEd2aImaq7zN3u/w==" // base64 of 33 22 11 00 55 44 77 66 88 99 aa bb cc dd ee ff
	la := "https://keys.example.com/playready/license"
	x, err := (&Header{Keys: []HeaderKey{{KID: kid, Key: key}}, AlgID: AESCTR, LAURL: la}).XML()
	want := `<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.0.0.0"><DATA>` +
		`<PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO><KID>` + guid + `</KID><CHECKSUM>` + Checksum(key, kid) +
		`</CHECKSUM><LA_URL>` + la + `</LA_URL></DATA></WRMHEADER>`
	if err != nil || x != want {
		t.Fatalf("%v\n%s\nwant\n%s", err, x, want)
	}
	x, err = (&Header{Keys: []HeaderKey{{KID: kid, Key: key}}, AlgID: AESCBC, LAURL: la}).XML()
	want = `<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.3.0.0"><DATA><PROTECTINFO><KIDS>` +
		`<KID ALGID="AESCBC" VALUE="` + guid + `"></KID></KIDS></PROTECTINFO><LA_URL>` + la + `</LA_URL></DATA></WRMHEADER>`
	if err != nil || x != want {
		t.Fatalf("%v\n%s\nwant\n%s", err, x, want)
	}
	kid2 := mustKID(t, "ffeeddcc-bbaa-9988-7766-554433221100")
	x, err = (&Header{Keys: []HeaderKey{{KID: kid, Key: key}, {KID: kid2, Key: key}}, AlgID: AESCTR}).XML()
	if err != nil || !strings.Contains(x, `version="4.3.0.0"`) || !strings.Contains(x, `<KID ALGID="AESCTR" CHECKSUM="`+Checksum(key, kid)+`" VALUE="`+guid+`"></KID>`) || strings.Contains(x, "LA_URL") {
		t.Fatalf("%v %s", err, x)
	}
	for name, h := range map[string]Header{
		"no keys":      {AlgID: AESCTR},
		"bad algid":    {Keys: []HeaderKey{{KID: kid}}, AlgID: "COCKTAIL"},
		"relative url": {Keys: []HeaderKey{{KID: kid}}, AlgID: AESCTR, LAURL: "/license"},
		"url with &":   {Keys: []HeaderKey{{KID: kid}}, AlgID: AESCTR, LAURL: "https://x/?a=1&b=2"},
	} {
		if _, err := h.XML(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestObject: the PlayReady Object's layout (§2) and its header read back
// by HeaderKIDs, the reader license requests use.
func TestObject(t *testing.T) {
	kid := mustKID(t, "00112233-4455-6677-8899-aabbccddeeff")
	for _, alg := range []string{AESCTR, AESCBC} {
		h := &Header{Keys: []HeaderKey{{KID: kid, Key: [16]byte{9}}}, AlgID: alg, LAURL: "https://k.example/playready/license"}
		pro, err := h.Object()
		if err != nil {
			t.Fatal(err)
		}
		x, _ := h.XML()
		if len(pro) != 10+2*len(x) || pro[0] != byte(len(pro)) || pro[4] != 1 || pro[6] != 1 || pro[8] != byte(2*len(x)) || pro[10] != '<' || pro[11] != 0 {
			t.Fatalf("%s: layout % x", alg, pro[:12])
		}
		back, err := ObjectHeader(pro)
		if err != nil || back != x {
			t.Fatalf("%s: ObjectHeader %q %v", alg, back, err)
		}
		ids, err := HeaderKIDs([]byte(back))
		if err != nil || len(ids) != 1 || ids[0] != kid {
			t.Fatalf("%s: HeaderKIDs %v %v", alg, ids, err)
		}
	}
	if _, err := ObjectHeader([]byte{1, 2, 3}); err == nil {
		t.Error("a malformed object read")
	}
}

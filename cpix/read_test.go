package cpix

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

const testMax = 1 << 20

func mustKID(t testing.TB, s string) [16]byte {
	t.Helper()
	id, ok := parseKID(s)
	if !ok {
		t.Fatalf("bad test KID %q", s)
	}
	return id
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad test base64 %q", s)
	}
	return b
}

func readFile(t testing.TB, name string) *Document {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Read(f, testMax)
	if err != nil {
		t.Fatalf("Read(%s): %v", name, err)
	}
	return d
}

func readString(s string) (*Document, error) {
	return Read(strings.NewReader(s), testMax)
}

// readErr reads s and insists on a *ReadError.
func readErr(t *testing.T, s string) *ReadError {
	t.Helper()
	d, err := readString(s)
	if err == nil {
		t.Fatalf("Read accepted the document: %+v", d)
	}
	var re *ReadError
	if !errors.As(err, &re) {
		t.Fatalf("Read error %v (%T), want *ReadError", err, err)
	}
	if d != nil {
		t.Errorf("Read returned a document with an error")
	}
	return re
}

func sameKey(a, b Key) bool {
	return a.KID == b.KID && bytes.Equal(a.Value, b.Value) && bytes.Equal(a.IV, b.IV) &&
		a.CommonEncryptionScheme == b.CommonEncryptionScheme
}

func checkKeys(t *testing.T, got, want []Key) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameKey(got[i], want[i]) {
			t.Errorf("key %d: got kid %s scheme %q iv %x, want kid %s scheme %q iv %x (or values differ)",
				i, formatKID(got[i].KID), got[i].CommonEncryptionScheme, got[i].IV,
				formatKID(want[i].KID), want[i].CommonEncryptionScheme, want[i].IV)
		}
		if (got[i].IV == nil) != (want[i].IV == nil) {
			t.Errorf("key %d: IV nil = %v, want %v", i, got[i].IV == nil, want[i].IV == nil)
		}
	}
}

// The seed's example (the import API's application/cpix+xml request, in the
// default-namespace form) must import.
func TestReadSeed(t *testing.T) {
	d := readFile(t, "testdata/seed-002.xml")
	zero := make([]byte, 16)
	checkKeys(t, d.Keys, []Key{
		{KID: mustKID(t, "d83cb192-1135-4c4e-9267-120b0d762856"), Value: zero, IV: zero},
		{KID: mustKID(t, "9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb"), Value: zero, IV: zero},
	})
	if d.ContentID != "" || d.Version != "" {
		t.Errorf("ContentID %q Version %q, want both empty", d.ContentID, d.Version)
	}
	if got := d.Keys[0].KID; got != [16]byte{0xd8, 0x3c, 0xb1, 0x92, 0x11, 0x35, 0x4c, 0x4e, 0x92, 0x67, 0x12, 0x0b, 0x0d, 0x76, 0x28, 0x56} {
		t.Errorf("KID bytes %x are not in RFC 9562 order", got)
	}
}

// A full CPIX 2.3 document: the keys are read, DRM signalling, periods,
// usage rules, history, comments and PIs are ignored. (The signature it
// used to carry is in cpix-2.3-signed.xml: a signed document is refused.)
func TestReadFull23(t *testing.T) {
	d := readFile(t, "testdata/cpix-2.3-full.xml")
	if d.ContentID != "urn:example:asset:big-buck-bunny" || d.Version != "2.3" {
		t.Errorf("ContentID %q Version %q", d.ContentID, d.Version)
	}
	checkKeys(t, d.Keys, []Key{
		{KID: mustKID(t, "e94a731b-7870-4b76-9821-0f9689b8f9a3"), Value: mustB64(t, "BgjyJ1Q1grS2d+wUqgRBiw=="),
			IV: mustB64(t, "7+nSKl9GSibm1Atwr3aRmg=="), CommonEncryptionScheme: "cbcs"},
		// Upper-case kid; PlainValue with white space around it.
		{KID: mustKID(t, "561bc01e-148f-458a-b6bd-2c33a6b29696"), Value: mustB64(t, "w4dKQgRFmklSBCKMoDW0Og=="),
			CommonEncryptionScheme: "cenc"},
		// CDATA; dependsOnKey ignored.
		{KID: mustKID(t, "3b9c46ea-df07-4583-9d8e-00f253ce7fa0"), Value: mustB64(t, "LjykqwkzoSzTUvDY2uBsfQ=="),
			IV: mustB64(t, "xUryiK6gkPEqXjIm27GQqA==")},
	})
}

func TestReadPrefixed24(t *testing.T) {
	d := readFile(t, "testdata/cpix-2.4-prefixed.xml")
	if d.ContentID != "abc123" || d.Version != "2.4" {
		t.Errorf("ContentID %q Version %q", d.ContentID, d.Version)
	}
	checkKeys(t, d.Keys, []Key{
		{KID: mustKID(t, "221b3f71-59ef-4e9b-9959-cead3307573d"), Value: mustB64(t, "xUryiK6gkPEqXjIm27GQqA=="),
			IV: mustB64(t, "SE0QMx0jkF3U3XOa6bl+qw=="), CommonEncryptionScheme: "cbcs"},
	})
}

const (
	kidA = "d83cb192-1135-4c4e-9267-120b0d762856"
	kidB = "9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeeb"
	// Secret-looking values the problem messages must never repeat.
	valA = "q83vEjRWeJCrze8SNFZ4kA=="
	valB = "EjRWeJCrze8SNFZ4kKvN7w=="
	ivA  = "ABEiM0RVZneImaq7zN3u/w=="
)

// defaultDoc wraps content keys in a default-namespace CPIX root.
func defaultDoc(rootAttrs, keys string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"` + rootAttrs + `>
<ContentKeyList>` + keys + `</ContentKeyList>
</CPIX>`
}

// prefixedDoc does the same with prefix p for CPIX and q for PSKC.
func prefixedDoc(p, q, rootAttrs, keys string) string {
	keys = strings.NewReplacer("<ContentKey", "<"+p+":ContentKey", "</ContentKey", "</"+p+":ContentKey",
		"<Data", "<"+p+":Data", "</Data", "</"+p+":Data",
		"pskc:", q+":").Replace(keys)
	return `<?xml version="1.0" encoding="UTF-8"?>
<` + p + `:CPIX xmlns:` + p + `="urn:dashif:org:cpix" xmlns:` + q + `="urn:ietf:params:xml:ns:keyprov:pskc"` + rootAttrs + `>
<` + p + `:ContentKeyList>` + keys + `</` + p + `:ContentKeyList>
</` + p + `:CPIX>`
}

func key(kid, attrs, value string) string {
	return `<ContentKey kid="` + kid + `"` + attrs + `><Data><pskc:Secret><pskc:PlainValue>` + value +
		`</pskc:PlainValue></pskc:Secret></Data></ContentKey>`
}

func TestReadVersionsAndForms(t *testing.T) {
	keys := key(kidA, ` explicitIV="`+ivA+`"`, valA) + key(kidB, ` commonEncryptionScheme="cenc"`, valB)
	want := []Key{
		{KID: mustKID(t, kidA), Value: mustB64(t, valA), IV: mustB64(t, ivA)},
		{KID: mustKID(t, kidB), Value: mustB64(t, valB), CommonEncryptionScheme: "cenc"},
	}
	for _, v := range []string{"", "2.0", "2.1", "2.2", "2.3", "2.3.1", "2.4"} {
		attrs := ""
		if v != "" {
			attrs = ` version="` + v + `"`
		}
		forms := map[string]string{
			"default":      defaultDoc(attrs, keys),
			"cpix-prefix":  prefixedDoc("cpix", "pskc", attrs, keys),
			"other-prefix": prefixedDoc("c", "k", attrs, keys),
		}
		for form, doc := range forms {
			t.Run(fmt.Sprintf("v%s/%s", v, form), func(t *testing.T) {
				d, err := readString(doc)
				if err != nil {
					t.Fatal(err)
				}
				if d.Version != v {
					t.Errorf("Version %q, want %q", d.Version, v)
				}
				checkKeys(t, d.Keys, want)
			})
		}
	}
}

// Names are matched by namespace URI: a default namespace switched half way
// down, or a CPIX namespace bound to a prefix inside a default-namespace
// document, read the same.
func TestReadNamespaceResolution(t *testing.T) {
	docs := map[string]string{
		"pskc-as-default": `<CPIX xmlns="urn:dashif:org:cpix"><ContentKeyList><ContentKey kid="` + kidA + `"><Data>` +
			`<Secret xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><PlainValue>` + valA + `</PlainValue></Secret>` +
			`</Data></ContentKey></ContentKeyList></CPIX>`,
		"redeclared-inside": `<x:CPIX xmlns:x="urn:dashif:org:cpix"><ContentKeyList xmlns="urn:dashif:org:cpix">` +
			`<y:ContentKey xmlns:y="urn:dashif:org:cpix" kid="` + kidA + `"><Data><p:Secret xmlns:p="urn:ietf:params:xml:ns:keyprov:pskc">` +
			`<p:PlainValue>` + valA + `</p:PlainValue></p:Secret></Data></y:ContentKey></ContentKeyList></x:CPIX>`,
		"bom": "\ufeff" + defaultDoc("", key(kidA, "", valA)),
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			d, err := readString(doc)
			if err != nil {
				t.Fatal(err)
			}
			checkKeys(t, d.Keys, []Key{{KID: mustKID(t, kidA), Value: mustB64(t, valA)}})
		})
	}
}

func TestReadEmptyKeyList(t *testing.T) {
	for _, doc := range []string{
		defaultDoc("", ""),
		`<CPIX xmlns="urn:dashif:org:cpix" contentId="x"/>`,
	} {
		d, err := readString(doc)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Keys) != 0 {
			t.Errorf("got %d keys", len(d.Keys))
		}
	}
}

type want struct {
	index  int
	reason string
}

// Every bad document is refused with all of its problems in one error, and
// no problem text repeats a key value or IV.
func TestReadBadDocuments(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []want
	}{
		{"missing kid", defaultDoc("", `<ContentKey><Data><pskc:Secret><pskc:PlainValue>`+valA+`</pskc:PlainValue></pskc:Secret></Data></ContentKey>`),
			[]want{{0, ReasonMissingKID}}},
		{"kid in braces", defaultDoc("", key("{"+kidA+"}", "", valA)), []want{{0, ReasonInvalidKID}}},
		{"kid without hyphens", defaultDoc("", key(strings.ReplaceAll(kidA, "-", ""), "", valA)), []want{{0, ReasonInvalidKID}}},
		{"kid as AMS id", defaultDoc("", key("nb:kid:UUID:"+kidA, "", valA)), []want{{0, ReasonInvalidKID}}},
		{"kid not hex", defaultDoc("", key("g83cb192-1135-4c4e-9267-120b0d762856", "", valA)), []want{{0, ReasonInvalidKID}}},
		{"kid empty", defaultDoc("", key("", "", valA)), []want{{0, ReasonInvalidKID}}},
		{"kid with spaces", defaultDoc("", key(" "+kidA, "", valA)), []want{{0, ReasonInvalidKID}}},
		{"duplicate kid, case differs", defaultDoc("", key(kidA, "", valA)+key(strings.ToUpper(kidA), "", valB)),
			[]want{{1, ReasonDuplicateKID}}},
		{"missing PlainValue", defaultDoc("", `<ContentKey kid="`+kidA+`"/>`), []want{{0, ReasonMissingValue}}},
		{"empty Secret", defaultDoc("", `<ContentKey kid="`+kidA+`"><Data><pskc:Secret/></Data></ContentKey>`), []want{{0, ReasonMissingValue}}},
		{"Data in the PSKC namespace", defaultDoc("", `<ContentKey kid="`+kidA+`"><pskc:Data><pskc:Secret><pskc:PlainValue>`+valA+`</pskc:PlainValue></pskc:Secret></pskc:Data></ContentKey>`),
			[]want{{0, ReasonMissingValue}}},
		{"Secret without namespace", `<c:CPIX xmlns:c="urn:dashif:org:cpix"><c:ContentKeyList><c:ContentKey kid="` + kidA + `"><c:Data><Secret><PlainValue>` + valA + `</PlainValue></Secret></c:Data></c:ContentKey></c:ContentKeyList></c:CPIX>`,
			[]want{{0, ReasonMissingValue}}},
		{"EncryptedValue", defaultDoc("", `<ContentKey kid="`+kidA+`"><Data><pskc:Secret><pskc:EncryptedValue><CipherData/></pskc:EncryptedValue></pskc:Secret></Data></ContentKey>`),
			[]want{{0, ReasonEncryptedValueUnsupported}}},
		{"PlainValue not base64", defaultDoc("", key(kidA, "", "not*base64!")), []want{{0, ReasonInvalidBase64}}},
		{"PlainValue stray bits", defaultDoc("", key(kidA, "", "q83vEjRWeJCrze8SNFZ4kB==")), []want{{0, ReasonInvalidBase64}}},
		{"PlainValue without padding", defaultDoc("", key(kidA, "", strings.TrimRight(valA, "="))), []want{{0, ReasonInvalidBase64}}},
		{"PlainValue URL alphabet", defaultDoc("", key(kidA, "", "-_-_-_-_-_-_-_-_-_-_-w==")), []want{{0, ReasonInvalidBase64}}},
		{"PlainValue broken by a newline", defaultDoc("", key(kidA, "", valA[:12]+"\n"+valA[12:])), []want{{0, ReasonInvalidBase64}}},
		{"PlainValue with an element inside", defaultDoc("", key(kidA, "", valA[:12]+"<b/>"+valA[12:])), []want{{0, ReasonInvalidStructure}}},
		{"PlainValue 8 bytes", defaultDoc("", key(kidA, "", "EjRWeJCrze8=")), []want{{0, ReasonInvalidKeyLength}}},
		{"PlainValue 32 bytes", defaultDoc("", key(kidA, "", "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=")), []want{{0, ReasonInvalidKeyLength}}},
		{"PlainValue empty", defaultDoc("", key(kidA, "", "")), []want{{0, ReasonInvalidKeyLength}}},
		{"two PlainValues", defaultDoc("", `<ContentKey kid="`+kidA+`"><Data><pskc:Secret><pskc:PlainValue>`+valA+`</pskc:PlainValue><pskc:PlainValue>`+valB+`</pskc:PlainValue></pskc:Secret></Data></ContentKey>`),
			[]want{{0, ReasonInvalidStructure}}},
		{"explicitIV not base64", defaultDoc("", key(kidA, ` explicitIV="%%%"`, valA)), []want{{0, ReasonInvalidBase64}}},
		{"explicitIV non-canonical", defaultDoc("", key(kidA, ` explicitIV="ABEiM0RVZneImaq7zN3u/x=="`, valA)), []want{{0, ReasonInvalidBase64}}},
		{"explicitIV 8 bytes", defaultDoc("", key(kidA, ` explicitIV="ABEiM0RVZnc="`, valA)), []want{{0, ReasonInvalidIVLength}}},
		{"explicitIV empty", defaultDoc("", key(kidA, ` explicitIV=""`, valA)), []want{{0, ReasonInvalidIVLength}}},
		{"unknown scheme", defaultDoc("", key(kidA, ` commonEncryptionScheme="rot13"`, valA)), []want{{0, ReasonInvalidScheme}}},
		{"scheme in the wrong case", defaultDoc("", key(kidA, ` commonEncryptionScheme="CENC"`, valA)), []want{{0, ReasonInvalidScheme}}},
		{"repeated kid attribute", defaultDoc("", `<ContentKey kid="`+kidA+`" kid="`+kidB+`"><Data><pskc:Secret><pskc:PlainValue>`+valA+`</pskc:PlainValue></pskc:Secret></Data></ContentKey>`),
			[]want{{0, ReasonDuplicateAttribute}}},
		{"unsupported version", defaultDoc(` version="3.0"`, key(kidA, "", valA)), []want{{-1, ReasonUnsupportedVersion}}},
		{"version 1.0", defaultDoc(` version="1.0"`, key(kidA, "", valA)), []want{{-1, ReasonUnsupportedVersion}}},
		{"two ContentKeyLists", `<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><ContentKeyList>` + key(kidA, "", valA) +
			`</ContentKeyList><ContentKeyList>` + key(kidB, "", valB) + `</ContentKeyList></CPIX>`,
			[]want{{-1, ReasonInvalidStructure}}},
		{"unqualified ContentKey in a prefixed document", `<c:CPIX xmlns:c="urn:dashif:org:cpix"><c:ContentKeyList><ContentKey kid="` + kidA + `"/></c:ContentKeyList></c:CPIX>`,
			[]want{{-1, ReasonUnexpectedElement}}},
		{"many problems at once", defaultDoc(` version="9"`,
			key(kidA, "", valA)+ // fine
				key("nope", ` explicitIV="AAAA"`, valB)+ // bad kid and IV length
				key(kidA, "", "EjRWeJCrze8=")+ // duplicate kid and short value
				`<ContentKey kid="`+kidB+`"><Data><pskc:Secret><pskc:EncryptedValue/></pskc:Secret></Data></ContentKey>`+
				`<ContentKey/>`+
				key("9d8d2d6a-ec64-40d2-ab4d-f12f17aeeeec", ` explicitIV="`+ivA+`" commonEncryptionScheme="xyz"`, valB[:23])),
			[]want{
				{-1, ReasonUnsupportedVersion},
				{1, ReasonInvalidKID}, {1, ReasonInvalidIVLength},
				{2, ReasonDuplicateKID}, {2, ReasonInvalidKeyLength},
				{3, ReasonEncryptedValueUnsupported},
				{4, ReasonMissingKID}, {4, ReasonMissingValue},
				{5, ReasonInvalidScheme}, {5, ReasonInvalidBase64},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := readErr(t, tt.doc)
			var got []want
			for _, p := range re.Problems {
				got = append(got, want{p.Index, p.Reason})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("problems %v, want %v\n%v", got, tt.want, re)
			}
			assertNoSecrets(t, re, tt.doc)
		})
	}
}

// secretsIn collects the PlainValue texts and explicitIV values of doc.
func secretsIn(doc string) []string {
	var out []string
	for _, pair := range [][2]string{{"PlainValue>", "</"}, {`explicitIV="`, `"`}} {
		rest := doc
		for {
			i := strings.Index(rest, pair[0])
			if i < 0 {
				break
			}
			rest = rest[i+len(pair[0]):]
			j := strings.Index(rest, pair[1])
			if j < 0 {
				break
			}
			if s := strings.TrimSpace(rest[:j]); len(s) >= 4 {
				out = append(out, s)
			}
			rest = rest[j:]
		}
	}
	return append(out, valA, valB, ivA)
}

func assertNoSecrets(t *testing.T, re *ReadError, doc string) {
	t.Helper()
	texts := []string{re.Error()}
	for _, p := range re.Problems {
		texts = append(texts, p.Detail, p.String())
		if p.Detail == "" {
			t.Errorf("problem %+v has no detail", p)
		}
	}
	for _, s := range secretsIn(doc) {
		for _, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("message %q repeats key material %q", text, s)
			}
		}
	}
}

func TestProblemKIDIsClipped(t *testing.T) {
	long := strings.Repeat("é", 100)
	re := readErr(t, defaultDoc("", key(long, "", valA)))
	if got := re.Problems[0].KID; got != strings.Repeat("é", 64) {
		t.Errorf("KID %q (%d runes), want the first 64 characters", got, len([]rune(got)))
	}
}

func TestReadErrorListsAtMostTen(t *testing.T) {
	var keys strings.Builder
	for i := 0; i < 25; i++ {
		keys.WriteString(key(fmt.Sprintf("bad-%d", i), "", valA))
	}
	re := readErr(t, defaultDoc("", keys.String()))
	if len(re.Problems) != 25 {
		t.Fatalf("%d problems, want 25", len(re.Problems))
	}
	msg := re.Error()
	if !strings.Contains(msg, "25 problems") || !strings.Contains(msg, "and 15 more") || strings.Contains(msg, "bad-10") {
		t.Errorf("Error() = %q", msg)
	}
}

// Documents refused as a whole.
func TestReadRefusesDocument(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		reason string
	}{
		{"empty", "", ReasonMalformedXML},
		{"only white space", " \n\t", ReasonMalformedXML},
		{"not XML", "this is not XML", ReasonMalformedXML},
		{"JSON", `[{"Id":"` + kidA + `","Data":"` + valA + `"}]`, ReasonMalformedXML},
		{"truncated", defaultDoc("", key(kidA, "", valA))[:200], ReasonMalformedXML},
		{"mismatched tags", `<CPIX xmlns="urn:dashif:org:cpix"><ContentKeyList></CPIX>`, ReasonMalformedXML},
		{"undefined entity", `<CPIX xmlns="urn:dashif:org:cpix" contentId="&xxe;"/>`, ReasonMalformedXML},
		{"unbound prefix is not CPIX", `<cpix:CPIX/>`, ReasonNotCPIX},
		{"root without namespace", `<CPIX><ContentKeyList/></CPIX>`, ReasonNotCPIX},
		{"root in another namespace", `<CPIX xmlns="urn:dashif:org:cpix:2.3"/>`, ReasonNotCPIX},
		{"wrong root element", `<ContentKeyList xmlns="urn:dashif:org:cpix"/>`, ReasonNotCPIX},
		{"PSKC root", `<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc" Version="1.0"/>`, ReasonNotCPIX},
		{"two roots", defaultDoc("", "") + `<CPIX xmlns="urn:dashif:org:cpix"/>`, ReasonMalformedXML},
		{"text after the root", defaultDoc("", "") + `trailing`, ReasonMalformedXML},
		{"DOCTYPE", `<?xml version="1.0"?><!DOCTYPE CPIX><CPIX xmlns="urn:dashif:org:cpix"/>`, ReasonDTDNotAllowed},
		{"billion laughs", `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<CPIX xmlns="urn:dashif:org:cpix" contentId="&lol2;"/>`, ReasonDTDNotAllowed},
		{"external entity", `<?xml version="1.0"?><!DOCTYPE CPIX [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><CPIX xmlns="urn:dashif:org:cpix" contentId="&xxe;"/>`, ReasonDTDNotAllowed},
		{"directive inside an ignored element", `<CPIX xmlns="urn:dashif:org:cpix"><DRMSystemList><!ENTITY x "y"></DRMSystemList></CPIX>`, ReasonDTDNotAllowed},
		{"ISO-8859-1", `<?xml version="1.0" encoding="ISO-8859-1"?><CPIX xmlns="urn:dashif:org:cpix"/>`, ReasonUnsupportedEncoding},
		{"invalid UTF-8", "<CPIX xmlns=\"urn:dashif:org:cpix\" contentId=\"\xff\"/>", ReasonMalformedXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := readErr(t, tt.doc)
			if len(re.Problems) != 1 || re.Problems[0].Reason != tt.reason || re.Problems[0].Index != -1 {
				t.Fatalf("problems %+v, want one document-level %s", re.Problems, tt.reason)
			}
			if tt.reason == ReasonDTDNotAllowed && !strings.Contains(re.Error(), "DTDs are not allowed") {
				t.Errorf("Error() = %q, want it to say DTDs are not allowed", re.Error())
			}
			assertNoSecrets(t, re, tt.doc)
		})
	}
}

// A syntax error's message may echo document text; the problem must not.
func TestMalformedDoesNotEchoDocument(t *testing.T) {
	doc := `<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><ContentKeyList><ContentKey kid="` + kidA +
		`"><Data><pskc:Secret><pskc:PlainValue>&` + strings.TrimRight(valA, "=") + `</pskc:PlainValue></pskc:Secret></Data></ContentKey></ContentKeyList></CPIX>`
	re := readErr(t, doc)
	if re.Problems[0].Reason != ReasonMalformedXML {
		t.Fatalf("problems %+v", re.Problems)
	}
	if strings.Contains(re.Error(), strings.TrimRight(valA, "=")[:8]) {
		t.Errorf("Error() %q echoes the document", re.Error())
	}
}

// spaceReader yields an endless run of spaces and counts what it gave.
type spaceReader struct{ n int64 }

func (s *spaceReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = ' '
	}
	s.n += int64(len(b))
	return len(b), nil
}

func TestReadTooLarge(t *testing.T) {
	doc := defaultDoc("", key(kidA, "", valA)+key(kidB, "", valB))
	if _, err := Read(strings.NewReader(doc), int64(len(doc))); err != nil {
		t.Fatalf("document of exactly max bytes: %v", err)
	}
	for _, max := range []int64{1, 100, int64(len(doc)) - 1} {
		if _, err := Read(strings.NewReader(doc), max); !errors.Is(err, ErrTooLarge) {
			t.Errorf("max %d: err %v, want ErrTooLarge", max, err)
		}
	}
	// White space after the root still counts, and an endless body is cut
	// off at max+1 bytes rather than read into memory.
	const max = 64 << 10
	sr := &spaceReader{}
	r := io.MultiReader(strings.NewReader(doc), sr)
	if _, err := Read(r, max); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if total := int64(len(doc)) + sr.n; total > max+1+32<<10 {
		t.Errorf("read %d bytes for a limit of %d", total, max)
	}
	endless := io.MultiReader(strings.NewReader(`<CPIX xmlns="urn:dashif:org:cpix"><ContentKeyList>`), sr)
	if _, err := Read(endless, max); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless body: err %v, want ErrTooLarge", err)
	}
	if _, err := Read(strings.NewReader(doc), 0); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("max 0: err %v, want a usage error", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestReadReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(`<CPIX xmlns="urn:dashif:org:cpix"><ContentKeyList>`), failingReader{boom})
	_, err := Read(r, testMax)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want it to wrap the reader's error", err)
	}
	var re *ReadError
	if errors.As(err, &re) {
		t.Errorf("a reader failure is not a document problem: %v", err)
	}
}

func TestReadEncrypted(t *testing.T) {
	f, err := os.Open("testdata/encrypted.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Read(f, testMax)
	var re *ReadError
	if !errors.As(err, &re) {
		t.Fatalf("err %v, want *ReadError", err)
	}
	if len(re.Problems) != 1 || re.Problems[0].Reason != ReasonEncryptedValueUnsupported || re.Problems[0].KID != "ae611d2b-fd97-4ba3-824a-aea70e627986" {
		t.Fatalf("problems %+v", re.Problems)
	}
	if !strings.Contains(re.Problems[0].Detail, "not supported") {
		t.Errorf("detail %q should say encrypted CPIX is not supported", re.Problems[0].Detail)
	}
}

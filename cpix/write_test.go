package cpix

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func randomKeys(rng *rand.Rand, n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		k := &keys[i]
		for j := range k.KID {
			k.KID[j] = byte(rng.UintN(256))
		}
		k.Value = make([]byte, KeySize)
		for j := range k.Value {
			k.Value[j] = byte(rng.UintN(256))
		}
		if rng.UintN(2) == 0 {
			k.IV = make([]byte, KeySize)
			for j := range k.IV {
				k.IV[j] = byte(rng.UintN(256))
			}
		}
		if s := rng.UintN(uint(len(schemes)) + 1); s < uint(len(schemes)) {
			k.CommonEncryptionScheme = schemes[s]
		}
	}
	return keys
}

func roundTrip(t testing.TB, d *Document) *Document {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, d); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("Read of Write's output: %v\n%s", err, buf.Bytes())
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	contentIDs := []string{"", "asset-1", `a "quoted" <tag> & 'apostrophe'`, "tab\there\nnewline\r\ncrlf", "ünïcødé ☃ 𝄞", "  spaces  "}
	for i, n := range []int{0, 1, 2, 17, 500} {
		d := &Document{ContentID: contentIDs[i%len(contentIDs)], Version: "2.1", Keys: randomKeys(rng, n)}
		got := roundTrip(t, d)
		if got.ContentID != d.ContentID {
			t.Errorf("ContentID %q, want %q", got.ContentID, d.ContentID)
		}
		if got.Version != WriteVersion {
			t.Errorf("Version %q, want %q", got.Version, WriteVersion)
		}
		checkKeys(t, got.Keys, d.Keys)
	}
	for _, id := range contentIDs {
		if got := roundTrip(t, &Document{ContentID: id}); got.ContentID != id {
			t.Errorf("ContentID %q came back as %q", id, got.ContentID)
		}
	}
}

// Reading the seed and writing it again gives the same keys.
func TestSeedRewrite(t *testing.T) {
	d := readFile(t, "testdata/seed-002.xml")
	checkKeys(t, roundTrip(t, d).Keys, d.Keys)
}

// Write's output is fixed: compare with the golden file (go test -update
// rewrites it).
func TestWriteGolden(t *testing.T) {
	d := &Document{ContentID: "asset & co", Keys: []Key{
		{KID: mustKID(t, kidA), Value: mustB64(t, valA), IV: mustB64(t, ivA), CommonEncryptionScheme: "cbcs"},
		{KID: mustKID(t, strings.ToUpper(kidB)), Value: mustB64(t, valB)},
	}}
	var buf bytes.Buffer
	if err := Write(&buf, d); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/golden-write.xml"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Write output differs from %s (go test -update rewrites it):\n%s", golden, buf.Bytes())
	}
	var again bytes.Buffer
	if err := Write(&again, d); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Errorf("Write is not deterministic (err %v)", err)
	}
	out := buf.String()
	for _, s := range []string{
		`<CPIX xmlns="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:enc="http://www.w3.org/2001/04/xmlenc#" contentId="asset &amp; co" version="2.3">`,
		`<ContentKey kid="` + kidA + `" explicitIV="` + ivA + `" commonEncryptionScheme="cbcs">`,
		`<ContentKey kid="` + kidB + `">`,
		`<pskc:PlainValue>` + valA + `</pskc:PlainValue>`,
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %s", s)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	good := func() Key {
		return Key{KID: mustKID(t, kidA), Value: make([]byte, 16)}
	}
	tests := []struct {
		name string
		d    *Document
	}{
		{"nil document", nil},
		{"short value", &Document{Keys: []Key{{KID: mustKID(t, kidA), Value: make([]byte, 15)}}}},
		{"no value", &Document{Keys: []Key{{KID: mustKID(t, kidA)}}}},
		{"long IV", &Document{Keys: []Key{{KID: mustKID(t, kidA), Value: make([]byte, 16), IV: make([]byte, 17)}}}},
		{"unknown scheme", &Document{Keys: []Key{{KID: mustKID(t, kidA), Value: make([]byte, 16), CommonEncryptionScheme: "x\"y"}}}},
		{"duplicate KID", &Document{Keys: []Key{good(), good()}}},
		{"contentId not UTF-8", &Document{ContentID: "\xff", Keys: []Key{good()}}},
		{"contentId with a control character", &Document{ContentID: "a\x00b", Keys: []Key{good()}}},
		{"contentId with U+FFFE", &Document{ContentID: "a\uFFFEb", Keys: []Key{good()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.d); err == nil {
				t.Fatalf("Write accepted it:\n%s", buf.Bytes())
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before failing", buf.Len())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteWriterError(t *testing.T) {
	d := &Document{Keys: randomKeys(rand.New(rand.NewPCG(3, 4)), 3)}
	if err := Write(failingWriter{}, d); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err %v, want the writer's error", err)
	}
}

// An IV that is empty but not nil is written as no IV.
func TestWriteEmptyIV(t *testing.T) {
	d := &Document{Keys: []Key{{KID: mustKID(t, kidA), Value: make([]byte, 16), IV: []byte{}}}}
	if got := roundTrip(t, d); got.Keys[0].IV != nil {
		t.Errorf("IV %x, want nil", got.Keys[0].IV)
	}
}

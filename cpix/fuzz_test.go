package cpix

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRead: Read never panics; whatever it accepts, Write writes and Read
// reads back to the same ContentID and keys (Version becomes WriteVersion);
// whatever it refuses, it refuses with a *ReadError or ErrTooLarge whose
// text repeats no PlainValue of the input.
func FuzzRead(f *testing.F) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		defaultDoc(` version="2.4" contentId="c&amp;d"`, key(kidA, ` explicitIV="`+ivA+`" commonEncryptionScheme="cbcs"`, valA)+key(kidB, "", valB)),
		prefixedDoc("x", "y", "", key(kidA, "", valA)),
		defaultDoc("", key(kidA, "", valA)+key(kidA, "", valB)),
		defaultDoc("", key("nope", ` explicitIV="AA=="`, "EjRWeJCrze8=")),
		`<!DOCTYPE x><CPIX xmlns="urn:dashif:org:cpix"/>`,
		`<CPIX/>`,
		"",
	} {
		f.Add([]byte(s))
	}
	const max = 64 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Read(bytes.NewReader(data), max)
		if err != nil {
			if d != nil {
				t.Fatalf("document and error together")
			}
			var re *ReadError
			switch {
			case errors.Is(err, ErrTooLarge):
				if len(data) <= max {
					t.Fatalf("ErrTooLarge for %d bytes", len(data))
				}
			case errors.As(err, &re):
				if len(re.Problems) == 0 {
					t.Fatalf("ReadError without problems")
				}
				msg := re.Error()
				for _, s := range secretsIn(string(data)) {
					if len(s) >= 16 && strings.Contains(msg, s) && !strings.Contains(kidsIn(re), s) {
						t.Fatalf("error %q repeats PlainValue/explicitIV text %q", msg, s)
					}
				}
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		for _, k := range d.Keys {
			if len(k.Value) != KeySize || (k.IV != nil && len(k.IV) != KeySize) {
				t.Fatalf("accepted a key with value %d bytes, IV %d bytes", len(k.Value), len(k.IV))
			}
		}
		var buf bytes.Buffer
		if err := Write(&buf, d); err != nil {
			t.Fatalf("Write of an accepted document: %v", err)
		}
		d2, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("Read of Write's output: %v\n%s", err, buf.Bytes())
		}
		if d2.ContentID != d.ContentID || d2.Version != WriteVersion || len(d2.Keys) != len(d.Keys) {
			t.Fatalf("round trip: contentId %q→%q, version %q, %d→%d keys", d.ContentID, d2.ContentID, d2.Version, len(d.Keys), len(d2.Keys))
		}
		for i := range d.Keys {
			if !sameKey(d.Keys[i], d2.Keys[i]) || (d.Keys[i].IV == nil) != (d2.Keys[i].IV == nil) {
				t.Fatalf("round trip changed key %d", i)
			}
		}
	})
}

// kidsIn joins the KIDs the problems quote as written: an input may put the
// same text in a kid as in a PlainValue, and the kid is quoted by design.
func kidsIn(re *ReadError) string {
	var b strings.Builder
	for _, p := range re.Problems {
		b.WriteString(p.KID)
		b.WriteByte('\n')
	}
	return b.String()
}

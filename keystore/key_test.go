package keystore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

func TestParseKeyID(t *testing.T) {
	const canon = "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	good := []string{
		canon,
		strings.ToUpper(canon),
		"0A4f6E08-b4e5-4A25-9c4b-6E3E4a2c1d7f",
		"{" + canon + "}",
		"{" + strings.ToUpper(canon) + "}",
		strings.ReplaceAll(canon, "-", ""),
		strings.ToUpper(strings.ReplaceAll(canon, "-", "")),
		"nb:kid:UUID:" + canon,
		"nb:kid:UUID:" + strings.ToUpper(canon),
		"NB:KID:UUID:" + canon,
	}
	for _, s := range good {
		id, err := keystore.ParseKeyID(s)
		if err != nil {
			t.Errorf("ParseKeyID(%q): %v", s, err)
			continue
		}
		if id.String() != canon {
			t.Errorf("ParseKeyID(%q) = %s, want %s", s, id, canon)
		}
	}
	bad := map[string]string{
		"empty":              "",
		"short":              canon[:35],
		"long":               canon + "0",
		"non hex":            "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7g",
		"hyphens misplaced":  "0a4f6e0-8b4e5-4a25-9c4b-6e3e4a2c1d7f",
		"open brace only":    "{" + canon,
		"braces no hyphens":  "{" + strings.ReplaceAll(canon, "-", "") + "}",
		"urn":                "urn:uuid:" + canon,
		"other prefix":       "nb:kid:GUID:" + canon,
		"double prefix":      "nb:kid:UUID:nb:kid:UUID:" + canon,
		"spaces":             " " + canon,
		"trailing newline":   canon + "\n",
		"31 hex":             strings.ReplaceAll(canon, "-", "")[:31],
		"path traversal":     "../../../../etc/passwd",
		"plus sign in hex":   "+a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f",
		"unicode":            "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7é",
		"hyphens everywhere": "------------------------------------",
	}
	for name, s := range bad {
		if _, err := keystore.ParseKeyID(s); !errors.Is(err, keystore.ErrInvalidKeyID) {
			t.Errorf("%s: ParseKeyID(%q) = %v, want ErrInvalidKeyID", name, s, err)
		}
	}
}

func TestKeyIDText(t *testing.T) {
	id, err := keystore.ParseKeyID("0A4F6E08B4E54A259C4B6E3E4A2C1D7F")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := id.MarshalText()
	var back keystore.KeyID
	if err := back.UnmarshalText(b); err != nil || back != id {
		t.Fatalf("text round trip: %s, %v", back, err)
	}
	if id[0] != 0x0a || id[15] != 0x7f {
		t.Fatalf("byte order: %x", id)
	}
}

func FuzzParseKeyID(f *testing.F) {
	for _, s := range []string{"0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "{0A4F6E08-B4E5-4A25-9C4B-6E3E4A2C1D7F}",
		"0a4f6e08b4e54a259c4b6e3e4a2c1d7f", "nb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "", "{}", "nb:kid:UUID:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := keystore.ParseKeyID(s)
		if err != nil {
			if !errors.Is(err, keystore.ErrInvalidKeyID) {
				t.Fatalf("error %v does not wrap ErrInvalidKeyID", err)
			}
			return
		}
		// Whatever is accepted has one canonical form that parses back to it.
		c := id.String()
		if len(c) != 36 || strings.ToLower(c) != c {
			t.Fatalf("canonical form %q", c)
		}
		again, err := keystore.ParseKeyID(c)
		if err != nil || again != id {
			t.Fatalf("canonical %q does not round-trip: %v", c, err)
		}
		// The accepted input names the same hex digits as the canonical form.
		digits := strings.NewReplacer("-", "", "{", "", "}", "").Replace(strings.ToLower(strings.TrimPrefix(strings.ToLower(s), "nb:kid:uuid:")))
		if digits != strings.ReplaceAll(c, "-", "") {
			t.Fatalf("input %q parsed as %s", s, c)
		}
	})
}

func TestContentKeyType(t *testing.T) {
	for in, want := range map[string]keystore.ContentKeyType{"4": keystore.EnvelopeEncryption, "envelopeencryption": keystore.EnvelopeEncryption, "CommonEncryption": keystore.CommonEncryption, "1": keystore.StorageEncryption} {
		got, err := keystore.ParseContentKeyType(in)
		if err != nil || got != want {
			t.Errorf("ParseContentKeyType(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"3", "UrlEncryption", "", "Envelope", "-1", "5"} {
		if _, err := keystore.ParseContentKeyType(in); err == nil {
			t.Errorf("ParseContentKeyType(%q) accepted", in)
		}
	}
	// Every AMS number has its AMS name (from the AMS package's own tests
	// when the type was defined there too); UrlEncryption is defined but
	// never stored.
	for n, name := range []string{"CommonEncryption", "StorageEncryption", "ConfigurationEncryption", "UrlEncryption", "EnvelopeEncryption"} {
		ct := keystore.ContentKeyType(n)
		if ct.String() != name || !ct.Defined() || ct.Valid() != (ct != keystore.URLEncryption) {
			t.Errorf("ContentKeyType(%d): %q defined %v valid %v", n, ct, ct.Defined(), ct.Valid())
		}
	}
	for _, n := range []int{-1, 5, 6} {
		if ct := keystore.ContentKeyType(n); ct.Defined() || ct.Valid() || ct.String() != fmt.Sprintf("ContentKeyType(%d)", n) {
			t.Errorf("ContentKeyType(%d) is defined: %q", n, ct)
		}
	}
}

package ams

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseODataKey(t *testing.T) {
	const id = "nb:kid:UUID:58b522a5-be4e-4988-8958-ee0cdb179273"
	tests := []struct {
		name      string
		segment   string
		entitySet string
		want      string
		wantErr   error
	}{
		{"seed example", "ContentKeys('" + id + "')", "ContentKeys", id, nil},
		{"quotes and colons encoded", "ContentKeys(%27nb%3Akid%3AUUID%3A58b522a5-be4e-4988-8958-ee0cdb179273%27)", "ContentKeys", id, nil},
		{"lower-case escapes", "ContentKeys(%27nb%3akid%3aUUID%3a58b522a5-be4e-4988-8958-ee0cdb179273%27)", "ContentKeys", id, nil},
		{"everything encoded (url.PathEscape)", url.PathEscape("ContentKeys('" + id + "')"), "ContentKeys", id, nil},
		{"only quotes encoded", "ContentKeys(%27" + id + "%27)", "ContentKeys", id, nil},
		{"asset id", "Assets('nb:cid:UUID:1a2b')", "Assets", "nb:cid:UUID:1a2b", nil},
		{"doubled quote is one quote", "Assets('it''s')", "Assets", "it's", nil},
		{"encoded doubled quote", "Assets(%27it%27%27s%27)", "Assets", "it's", nil},
		{"non-ASCII", "Assets('caf%C3%A9')", "Assets", "café", nil},

		{"wrong entity set", "Assets('" + id + "')", "ContentKeys", "", ErrEntitySetMismatch},
		{"entity set case differs", "contentkeys('" + id + "')", "ContentKeys", "", ErrEntitySetMismatch},
		{"missing quotes", "ContentKeys(" + id + ")", "ContentKeys", "", ErrODataKeySyntax},
		{"missing closing quote", "ContentKeys('" + id + ")", "ContentKeys", "", ErrODataKeySyntax},
		{"double quotes", `ContentKeys("` + id + `")`, "ContentKeys", "", ErrODataKeySyntax},
		{"empty key", "ContentKeys('')", "ContentKeys", "", ErrODataKeySyntax},
		{"empty parens", "ContentKeys()", "ContentKeys", "", ErrODataKeySyntax},
		{"no parens", "ContentKeys", "ContentKeys", "", ErrODataKeySyntax},
		{"no closing paren", "ContentKeys('" + id + "'", "ContentKeys", "", ErrODataKeySyntax},
		{"trailing text", "ContentKeys('" + id + "')x", "ContentKeys", "", ErrODataKeySyntax},
		{"trailing path", "ContentKeys('" + id + "')/GetKeyDeliveryUrl", "ContentKeys", "", ErrODataKeySyntax},
		{"lone quote inside", "Assets('it's')", "Assets", "", ErrODataKeySyntax},
		{"named key", "ContentKeys(Id='" + id + "')", "ContentKeys", "", ErrODataKeySyntax},
		{"two keys", "ContentKeys('a','b')", "ContentKeys", "", ErrODataKeySyntax},
		{"bad percent-encoding", "ContentKeys(%2'" + id + "')", "ContentKeys", "", ErrODataKeySyntax},
		{"double encoding", "ContentKeys(%2527" + id + "%2527)", "ContentKeys", "", ErrODataKeySyntax},
		{"control character", "Assets('a%0Ab')", "Assets", "", ErrODataKeySyntax},
		{"NUL", "Assets('a%00b')", "Assets", "", ErrODataKeySyntax},
		{"invalid UTF-8", "Assets('a%FFb')", "Assets", "", ErrODataKeySyntax},
		{"garbage before paren", "../ContentKeys('" + id + "')", "ContentKeys", "", ErrODataKeySyntax},
		{"empty segment", "", "ContentKeys", "", ErrODataKeySyntax},
		{"no entity set given", "ContentKeys('" + id + "')", "", "", ErrODataKeySyntax},
		{"too long", "Assets('" + strings.Repeat("a", MaxODataKeyLen) + "')", "Assets", "", ErrODataKeySyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseODataKey(tt.segment, tt.entitySet)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseODataKey(%q, %q) err = %v, want %v", tt.segment, tt.entitySet, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ParseODataKey(%q, %q) = %q, want %q", tt.segment, tt.entitySet, got, tt.want)
			}
		})
	}
}

func TestParseODataString(t *testing.T) {
	// GetProtectionKey?ProtectionKeyId='THUMBPRINT' after query decoding.
	got, err := ParseODataString("'7D9BB04D9D0A4A24800CADBFEF232689E048F69C'")
	if err != nil || got != "7D9BB04D9D0A4A24800CADBFEF232689E048F69C" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"", "'", "''", "7D9B", "'7D9B", "7D9B'", "'a'b'"} {
		if _, err := ParseODataString(bad); !errors.Is(err, ErrODataKeySyntax) {
			t.Errorf("ParseODataString(%q) err = %v", bad, err)
		}
	}
}

func TestFormatODataKey(t *testing.T) {
	for _, key := range []string{"nb:kid:UUID:58b522a5-be4e-4988-8958-ee0cdb179273", "it's", "''", "a/b?c#d%e"} {
		seg := FormatODataKey("Assets", key)
		forms := []string{url.PathEscape(seg)}
		if !strings.Contains(key, "%") {
			forms = append(forms, seg) // usable unescaped only without '%'
		}
		for _, s := range forms {
			got, err := ParseODataKey(s, "Assets")
			if err != nil || got != key {
				t.Errorf("ParseODataKey(%q) = %q, %v; want %q", s, got, err, key)
			}
		}
	}
}

// FuzzParseODataKey: never panics, and whatever is accepted formats back
// into a segment that parses to the same key.
func FuzzParseODataKey(f *testing.F) {
	for _, s := range []string{
		"ContentKeys('nb:kid:UUID:58b522a5-be4e-4988-8958-ee0cdb179273')",
		"ContentKeys(%27nb%3Akid%3AUUID%3A58b522a5-be4e-4988-8958-ee0cdb179273%27)",
		"ContentKeys('it''s')", "ContentKeys(''')", "ContentKeys(%", "Assets('x')", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, segment string) {
		key, err := ParseODataKey(segment, "ContentKeys")
		if err != nil {
			if key != "" {
				t.Fatalf("key %q returned with error %v", key, err)
			}
			return
		}
		if key == "" {
			t.Fatal("empty key accepted")
		}
		forms := []string{url.PathEscape(FormatODataKey("ContentKeys", key))}
		if !strings.Contains(key, "%") {
			forms = append(forms, FormatODataKey("ContentKeys", key))
		}
		for _, s := range forms {
			again, err := ParseODataKey(s, "ContentKeys")
			if err != nil || again != key {
				t.Fatalf("round trip of %q via %q: %q, %v", key, s, again, err)
			}
		}
	})
}

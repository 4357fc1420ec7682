package ams

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxODataKeyLen bounds the length, in bytes, of an OData key segment (before
// URL decoding) and of the string literal inside it. AMS entity ids are
// Edm.String values of at most 4000 characters.
const MaxODataKeyLen = 4 * MaxEncryptedContentKeyLen

// ParseODataKey extracts the key from an OData key segment such as
// ContentKeys('nb:kid:UUID:58b522a5-be4e-4988-8958-ee0cdb179273') for the
// entity set entitySet ("ContentKeys", "Assets"), and returns the inner
// string; it does not parse it as a KID.
//
// The segment may be percent-encoded, in whole or in part
// (ContentKeys(%27nb%3Akid%3AUUID%3A...%27), ContentKeys%28%27...%27%29); it
// is decoded exactly once, so double encoding is refused. The key must be an
// OData string literal in single quotes, with a quote inside written as two
// quotes. The entity set name is compared exactly (OData names are
// case-sensitive). Errors are ErrEntitySetMismatch for a well-formed segment
// of another entity set and ErrODataKeySyntax for anything else, including
// control characters and invalid UTF-8 in the key.
func ParseODataKey(segment string, entitySet string) (string, error) {
	if entitySet == "" {
		return "", fmt.Errorf("%w: no entity set given", ErrODataKeySyntax)
	}
	if len(segment) > MaxODataKeyLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrODataKeySyntax, MaxODataKeyLen)
	}
	s, err := url.PathUnescape(segment)
	if err != nil {
		return "", fmt.Errorf("%w: bad percent-encoding", ErrODataKeySyntax)
	}
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") || open > len(s)-2 {
		return "", fmt.Errorf("%w: want %s('...')", ErrODataKeySyntax, entitySet)
	}
	if name := s[:open]; name != entitySet {
		if !isODataIdentifier(name) {
			return "", fmt.Errorf("%w: want %s('...')", ErrODataKeySyntax, entitySet)
		}
		return "", fmt.Errorf("%w: want %s, got %s", ErrEntitySetMismatch, entitySet, name)
	}
	return ParseODataString(s[open+1 : len(s)-1])
}

// ParseODataString decodes an OData string literal: single quotes around the
// value, a quote inside written twice. It is what ParseODataKey applies
// inside the parentheses, and what a query option such as
// GetProtectionKey?ProtectionKeyId='THUMBPRINT' carries after URL query
// decoding. The value must be non-empty valid UTF-8 without control
// characters.
func ParseODataString(lit string) (string, error) {
	if len(lit) > MaxODataKeyLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrODataKeySyntax, MaxODataKeyLen)
	}
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return "", fmt.Errorf("%w: key is not a quoted string", ErrODataKeySyntax)
	}
	body := lit[1 : len(lit)-1]
	if body == "" {
		return "", fmt.Errorf("%w: empty key", ErrODataKeySyntax)
	}
	if !utf8.ValidString(body) {
		return "", fmt.Errorf("%w: key is not valid UTF-8", ErrODataKeySyntax)
	}
	var b strings.Builder
	b.Grow(len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\'':
			if i+1 >= len(body) || body[i+1] != '\'' {
				return "", fmt.Errorf("%w: unescaped quote in key", ErrODataKeySyntax)
			}
			i++
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w: control character in key", ErrODataKeySyntax)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// FormatODataKey is the inverse of ParseODataKey, without percent-encoding:
// entitySet('key') with each quote in key doubled. Callers building a URL
// escape the result as a path segment (url.PathEscape); a key containing '%'
// parses back only in that escaped form.
func FormatODataKey(entitySet, key string) string {
	return entitySet + "('" + strings.ReplaceAll(key, "'", "''") + "')"
}

// isODataIdentifier reports whether s looks like an entity set name, so that
// a segment with garbage before "(" is a syntax error, not another entity set.
func isODataIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

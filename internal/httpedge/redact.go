package httpedge

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redaction by value: a credential is recognised by its shape wherever it
// turns up (a path, a query, a header, a body member's name or value, an
// error text), not by the place a well-behaved client would put it, and is
// replaced by Redacted before it reaches a log line, an error body or an
// audit record. The shapes:
//
//   - a JWT: a word holding "eyJ" (the base64url of `{"`, which starts
//     every JOSE header and most payloads), or three base64url segments
//     joined by dots of which the first two have at least 16 characters
//     each (a header and a payload; host names such as
//     player.example.com have shorter labels);
//   - an admin secret: a word holding "kda_" (credentials.SecretPrefix) in
//     any case. A secret an operator chose by hand has no shape and cannot
//     be recognised: the credentials file holds only hashes, and comparing
//     every word with them is not done (it would be a cheap oracle).
//
// A word is a run of characters other than spaces, quotes, brackets and
// the separators of URLs and JSON (/ ? & = , ; : < > ( ) [ ] { } and the
// backslash); it is checked as written and, when it holds '%' or '+',
// percent-decoded as well, so an escaped credential is caught too.

// Redacted replaces a credential.
const Redacted = "REDACTED"

// minSegment is the length of the first two segments of a dotted JWT
// shape without "eyJ".
const minSegment = 16

// isWordByte reports whether c can be part of a word.
func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '"', '\'', '`', '/', '?', '&', '=', ',', ';', ':', '<', '>', '(', ')', '[', ']', '{', '}', '\\':
		return false
	}
	return true
}

// Redact returns s with every word shaped like a credential replaced by
// Redacted. It allocates only when it replaces something.
func Redact(s string) string {
	var b []byte
	last := 0 // bytes of s up to here are in b (when b != nil)
	for i := 0; i < len(s); {
		if !isWordByte(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isWordByte(s[j]) {
			j++
		}
		if credentialWord(s[i:j]) {
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(b, s[last:i]...)
			b = append(b, Redacted...)
			last = j
		}
		i = j
	}
	if b == nil {
		return s
	}
	return string(append(b, s[last:]...))
}

// HasCredential reports whether s holds a word shaped like a credential.
func HasCredential(s string) bool { return Redact(s) != s }

// credentialWord reports whether w (one word) is shaped like a credential,
// as written or percent-decoded.
func credentialWord(w string) bool {
	if credentialShape(w) {
		return true
	}
	if strings.ContainsAny(w, "%+") {
		if u, err := url.QueryUnescape(w); err == nil && u != w {
			// The decoded text may hold separators: check its words.
			return Redact(u) != u
		}
	}
	return false
}

func credentialShape(w string) bool {
	if strings.Contains(w, "eyJ") || containsFold(w, "kda_") {
		return true
	}
	// header.payload.signature, each base64url.
	first, rest, ok := strings.Cut(w, ".")
	if !ok {
		return false
	}
	second, third, ok := strings.Cut(rest, ".")
	return ok && len(first) >= minSegment && len(second) >= minSegment &&
		base64URL(first) && base64URL(second) && base64URL(strings.TrimRight(third, "."))
}

func base64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// containsFold reports whether s contains the ASCII string sub in any case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// Quote is how an answer or a log line may quote client input: redacted,
// cut to n bytes (on a character boundary, marking the cut), with every
// character that is not printable replaced by '?'. It does not add quotes.
func Quote(s string, n int) string {
	s = Redact(s)
	var b strings.Builder
	for i, r := range s {
		if i >= n {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RedactingHandler wraps a slog.Handler so that every string it writes
// (the message, and each attribute's value, in groups too; an error or a
// []string attribute as well) goes through Redact first. The server's
// logger is built with it, so no log line holds a credential whatever code
// wrote it.
func RedactingHandler(h slog.Handler) slog.Handler { return redacting{h} }

type redacting struct{ h slog.Handler }

func (r redacting) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redacting) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redacting) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redacting{r.h.WithAttrs(red)}
}

func (r redacting) WithGroup(name string) slog.Handler { return redacting{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Redact(v.String()))
	case slog.KindGroup:
		as := v.Group()
		red := make([]any, len(as))
		for i, g := range as {
			red[i] = redactAttr(g)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Redact(x.Error()))
		case []string:
			red := make([]string, len(x))
			for i, s := range x {
				red[i] = Redact(s)
			}
			return slog.Any(a.Key, red)
		case interface{ String() string }:
			return slog.String(a.Key, Redact(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

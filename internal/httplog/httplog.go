// Package httplog holds what both HTTP planes need to log requests safely:
// request IDs and request URIs with credentials redacted. It knows nothing
// of echo, so it can serve both edges without spreading the framework.
package httplog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// NewRequestID returns a random 24-hex-digit request ID.
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RequestID returns incoming when it is a short plain token a client may
// use to correlate (at most 64 letters, digits, '-', '_' or '.'), and a new
// random ID otherwise, so a caller cannot inject text into the logs.
func RequestID(incoming string) string {
	if len(incoming) == 0 || len(incoming) > 64 {
		return NewRequestID()
	}
	for _, c := range incoming {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return NewRequestID()
		}
	}
	return incoming
}

// CredentialParam reports whether a query parameter name may carry a
// credential: token or access_token, in any case.
func CredentialParam(name string) bool {
	return strings.EqualFold(name, "token") || strings.EqualFold(name, "access_token")
}

// RedactedURI is u's path and query with the value of every credential
// parameter (see CredentialParam; the name is unescaped first, so
// to%6Ben is caught too) replaced by REDACTED. A parameter longer than 100
// bytes is redacted whole, whatever its name: a token pasted without a name
// must not reach a log either.
func RedactedURI(u *url.URL) string {
	if u.RawQuery == "" {
		return u.EscapedPath()
	}
	parts := strings.Split(u.RawQuery, "&")
	for i, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		switch {
		case len(name) > 32 || len(p) > 100 && !CredentialParam(name):
			parts[i] = "REDACTED"
		case CredentialParam(name):
			parts[i] = strings.ToLower(name) + "=REDACTED"
		}
	}
	return u.EscapedPath() + "?" + strings.Join(parts, "&")
}

// Request is what an access-log line says about one request.
type Request struct {
	ID       string
	Method   string
	Route    string // the route template, never the raw path
	URL      *url.URL
	Status   int
	Duration time.Duration
	Remote   string
	Reason   string // the refusal reason, if any
	Err      error  // the internal error, if any (never holds a token)
}

// Log writes one access-log line for r, at Warn for 5xx and Info
// otherwise, with extra attributes appended. The URI is redacted.
func Log(ctx context.Context, log *slog.Logger, msg string, r Request, extra ...slog.Attr) {
	attrs := append([]slog.Attr{
		slog.String("request_id", r.ID),
		slog.String("method", r.Method),
		slog.String("route", r.Route),
		slog.String("uri", RedactedURI(r.URL)),
		slog.Int("status", r.Status),
		slog.Duration("duration", r.Duration),
		slog.String("remote", r.Remote),
	}, extra...)
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("err", r.Err.Error()))
	}
	level := slog.LevelInfo
	if r.Status >= 500 {
		level = slog.LevelWarn
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

// RetryAfter is the Retry-After header value for d: whole seconds,
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1))
}

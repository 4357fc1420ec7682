package httpedge

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

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

package httpedge

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// credentialParams are query parameter names that carry a credential, or
// that a client may put one in (matched in any case).
var credentialParams = []string{"token", "access_token", "id_token", "auth", "authorization", "bearer", "secret", "password", "api_key", "apikey", "admin_token"}

// CredentialParam reports whether a query parameter name may carry a
// credential: token, access_token, auth, authorization and the like (see
// credentialParams), in any case.
func CredentialParam(name string) bool {
	for _, p := range credentialParams {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
}

// QueryCredential reports whether a query holds a credential, whatever the
// parameter's name: a credential parameter name (CredentialParam), a name
// or value shaped like a credential (Redact), or a value that starts with
// the Bearer scheme. q holds the decoded names and values.
func QueryCredential(q url.Values) bool {
	for name, vs := range q {
		if CredentialParam(name) || HasCredential(name) {
			return true
		}
		for _, v := range vs {
			if HasCredential(v) || hasBearer(v) {
				return true
			}
		}
	}
	return false
}

// hasBearer reports whether v starts with "Bearer " or "Bearer=" (any
// case).
func hasBearer(v string) bool {
	const scheme = "bearer"
	v = strings.TrimLeft(v, " ")
	return len(v) > len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) && (v[len(scheme)] == ' ' || v[len(scheme)] == '=')
}

// RedactedURI is u's path and query, redacted for a log: the value of
// every credential parameter (see CredentialParam; the name is unescaped
// first, so to%6Ben is caught too) is replaced by REDACTED, and so is any
// word of the path or the query shaped like a credential (Redact), and any
// parameter whose name is longer than 32 bytes or that is longer than 100
// bytes: a token pasted without a name must not reach a log either.
func RedactedURI(u *url.URL) string {
	path := Redact(u.EscapedPath())
	if u.RawQuery == "" {
		return path
	}
	parts := strings.Split(u.RawQuery, "&")
	for i, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		switch {
		case CredentialParam(name):
			parts[i] = strings.ToLower(name) + "=" + Redacted
		case len(name) > 32 || len(p) > 100 || HasCredential(name):
			parts[i] = Redacted
		default:
			parts[i] = Redact(p)
		}
	}
	return path + "?" + strings.Join(parts, "&")
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
// otherwise, with extra attributes appended. The URI and the error text are
// redacted.
func Log(ctx context.Context, log *slog.Logger, msg string, r Request, extra ...slog.Attr) {
	attrs := append([]slog.Attr{
		slog.String("request_id", r.ID),
		slog.String("method", r.Method),
		slog.String("route", r.Route),
		slog.String("uri", RedactedURI(r.URL)),
		slog.Int("status", r.Status),
		slog.Duration("duration", r.Duration),
		slog.String("remote", Redact(r.Remote)),
	}, extra...)
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("err", Redact(r.Err.Error())))
	}
	level := slog.LevelInfo
	if r.Status >= 500 {
		level = slog.LevelWarn
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

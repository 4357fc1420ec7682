package delivery

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
	"github.com/keydelivery/keydelivery/keystore"
)

// claimsError carries, for the refusal log, the verified claims of a token
// refused for what it grants (or for its spent uses) and the KIDs the
// request asked for. It answers as the error it wraps.
type claimsError struct {
	err    error
	claims auth.Claims
	asked  []keystore.KeyID
}

func (e *claimsError) Error() string { return e.err.Error() }
func (e *claimsError) Unwrap() error { return e.err }

// rateLimitError refuses a request whose address has spent a budget: 429
// rate_limited with Retry-After.
type rateLimitError struct {
	limit string // "auth_failures" or "requests"
	wait  time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("delivery: rate limited (%s) for %v", e.limit, e.wait)
}

// usesError refuses the use of a token past its replay limit.
type usesError struct{ max int }

func (e *usesError) Error() string {
	return fmt.Sprintf("delivery: the token's %d uses are spent", e.max)
}

// The refusal log: a line per refused token (at Info, so that a player's
// request ID finds it without --access-log), at most one per client
// address per refusalInterval and refusalRate lines a second overall, each
// counting the refusals since the address's previous line.
const refusalInterval = time.Second

var refusalRate = ratelimit.Limit{Rate: 20, Burst: 100}

// limits builds the budgets and the refusal log's pacing from o.
func (s *server) limits(o Options) error {
	var err error
	if !o.AuthFailures.Off() {
		if s.failures, err = ratelimit.NewTable(o.AuthFailures, o.RateLimitClients, o.Now); err != nil {
			return fmt.Errorf("delivery: auth failure budget: %w", err)
		}
	}
	if !o.Requests.Off() {
		if s.requests, err = ratelimit.NewTable(o.Requests, o.RateLimitClients, o.Now); err != nil {
			return fmt.Errorf("delivery: request budget: %w", err)
		}
	}
	if s.refusals, err = ratelimit.NewTally(refusalInterval, refusalRate, o.RateLimitClients, o.Now); err != nil {
		return fmt.Errorf("delivery: refusal log: %w", err)
	}
	return nil
}

// allowRequest spends one event of the address's request budget, when
// there is one.
func (s *server) allowRequest(c echo.Context) error {
	if s.requests == nil || c.Path() == "/healthz" {
		return nil
	}
	if ok, wait := s.requests.Allow(ratelimit.AddressKey(c.RealIP())); !ok {
		s.metrics.limited("requests")
		return &rateLimitError{limit: "requests", wait: wait}
	}
	return nil
}

// logRefusal writes the line that explains a refused token: the request
// ID, the reason, and the non-secret facts (auth.Facts: the expected and
// received iss and aud, exp and the server time, the certificate asked
// for; the KIDs asked for and granted, and the contents granted). Never
// the token, never key bytes.
// Lines are paced (see refusalInterval); the metric
// keydelivery_token_verifications_total counts every refusal.
func (s *server) logRefusal(c echo.Context, rid, reason string, err error) {
	remote := c.RealIP()
	ok, count := s.refusals.Note(ratelimit.AddressKey(remote))
	if !ok {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", rid),
		slog.String("reason", reason),
		slog.String("remote", remote),
		slog.String("route", c.Path()),
		slog.Int("count", count),
	}
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Facts != nil {
		attrs = append(attrs, factsAttr(ae.Facts))
	}
	var ce *claimsError
	if errors.As(err, &ce) {
		claims := &ce.claims
		attrs = append(attrs, slog.Any("kids_asked", kidStrings(ce.asked, 32)))
		granted := make([]keystore.KeyID, len(claims.KeyIDs))
		for i, id := range claims.KeyIDs {
			granted[i] = keystore.KeyID(id)
		}
		attrs = append(attrs, slog.Any("kids_granted", kidStrings(granted, 32)), slog.Bool("unbound", claims.Unbound),
			slog.String("signing_key", claims.SigningKey))
		if len(claims.ContentIDs) > 0 {
			// The signer's words, redacted like every value from a token.
			contents := make([]string, 0, min(len(claims.ContentIDs), 32))
			for _, id := range claims.ContentIDs[:cap(contents)] {
				contents = append(contents, httpedge.Redact(id))
			}
			attrs = append(attrs, slog.Any("content_ids_granted", contents))
		}
		if claims.MaxUses > 0 {
			attrs = append(attrs, slog.Int("max_uses", claims.MaxUses), slog.Time("exp", claims.ExpiresAt))
		}
	}
	s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "token refused", attrs...)
}

// factsAttr renders auth.Facts, redacted (a value from a token may be
// shaped like a credential).
func factsAttr(f *auth.Facts) slog.Attr {
	as := []any{slog.Time("server_time", f.Now)}
	if f.Thumbprint != "" {
		as = append(as, slog.String("certificate_asked", httpedge.Redact(f.Thumbprint)))
	}
	if f.Verified {
		as = append(as, slog.String("iss", httpedge.Redact(f.Issuer)))
		aud := make([]string, len(f.Audience))
		for i, a := range f.Audience {
			aud[i] = httpedge.Redact(a)
		}
		as = append(as, slog.Any("aud", aud))
		for _, d := range [...]struct {
			name string
			t    time.Time
		}{{"exp", f.ExpiresAt}, {"nbf", f.NotBefore}, {"iat", f.IssuedAt}} {
			if !d.t.IsZero() { // in this order on every line
				as = append(as, slog.Time(d.name, d.t))
			}
		}
	}
	if len(f.ExpectedIssuers) > 0 {
		as = append(as, slog.Any("iss_expected", f.ExpectedIssuers))
	}
	if f.ExpectedAudience != "" {
		as = append(as, slog.String("aud_expected", f.ExpectedAudience))
	}
	return slog.Group("facts", as...)
}

// kidStrings renders at most n KIDs.
func kidStrings(ids []keystore.KeyID, n int) []string {
	out := make([]string, 0, min(len(ids), n))
	for i, id := range ids {
		if i == n {
			break
		}
		out = append(out, id.String())
	}
	return out
}

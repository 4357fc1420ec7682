package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
	"github.com/keydelivery/keydelivery/keystore"
)

type server struct {
	log     *slog.Logger
	verify  verifier
	keys    keySource
	uses    useCounter // nil: tokens with a replay limit are refused
	serving func() bool
	metrics *deliveryMetrics
	retry   string

	issuers      map[System]LicenseIssuer
	issueTimeout time.Duration
	maxKIDs      int
	persistent   bool

	// failures and requests are the per-address budgets (nil: off);
	// refusals paces the log lines of refused tokens.
	failures, requests *ratelimit.Table
	refusals           *ratelimit.Tally
}

func (s *server) healthz(c echo.Context) error {
	if !s.serving() {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// keyByPath serves GET /keys/{kid}, the URI that goes into an HLS
// #EXT-X-KEY:METHOD=AES-128,URI=... tag.
func (s *server) keyByPath(c echo.Context) error {
	raw := c.Param("kid")
	// echo hands over the raw path segment; a KID in braces may arrive
	// percent-encoded.
	if strings.IndexByte(raw, '%') >= 0 {
		if u, err := url.PathUnescape(raw); err == nil {
			raw = u
		}
	}
	return s.serveKey(c, raw)
}

// keyByQuery serves GET and POST /?kid={kid}, the Azure Media Services form.
// The parameter name is matched case-insensitively.
func (s *server) keyByQuery(c echo.Context) error {
	kid, ok := httpedge.QueryFold(c.QueryParams(), "kid")
	if !ok {
		return errMissingKID
	}
	return s.serveKey(c, kid)
}

// serveKey checks the token, the KID and the grant, in that order, then
// answers the 16 key bytes. See grantedKey for how the grant is decided
// without revealing which keys exist.
func (s *server) serveKey(c echo.Context, rawKID string) error {
	claims, err := s.authenticate(c)
	if err != nil {
		return err
	}
	id, err := keystore.ParseKeyID(rawKID)
	if err != nil {
		return err
	}
	key, err := s.grantedKey(c.Request().Context(), &claims, id)
	if errors.Is(err, errNotGranted) {
		return &claimsError{err: err, claims: claims, asked: []keystore.KeyID{id}}
	}
	if err != nil {
		return err
	}
	if err := s.countUse(c, &claims); err != nil {
		clear(key.Value[:])
		return &claimsError{err: err, claims: claims, asked: []keystore.KeyID{id}}
	}
	s.metrics.delivered.Inc()
	h := c.Response().Header()
	h[echo.HeaderContentType] = octetStream
	h[echo.HeaderContentLength] = sixteen
	c.Response().WriteHeader(http.StatusOK)
	// The key goes out through a pooled buffer: a slice of the local copy
	// would escape to the heap (one allocation per request).
	buf := keyBufs.Get().(*[16]byte)
	*buf = key.Value
	_, err = c.Response().Write(buf[:])
	clear(buf[:])
	keyBufs.Put(buf)
	return err
}

var keyBufs = sync.Pool{New: func() any { return new([16]byte) }}

// grantedKey reads the key id if claims grant it, and otherwise refuses
// with errNotGranted (403 key_not_granted).
//
// Security invariant: a refusal never tells the player whether a key
// exists.
//   - A KID the token names (kids, the AMS contentkeyidentifier claim), or
//     an unbound token: granted from the token alone; the key is then
//     read, and a missing one is 404 unknown_key. That answer reveals
//     nothing: the token's issuer chose to grant this KID.
//   - A token with no content_ids claim and a KID it does not name:
//     refused from the token alone, before any lookup, as always.
//   - A KID the token does not name, and a content_ids claim: whether the
//     key belongs to one of the contents is in the key's record, so the
//     key is read first. A key recorded under another content and a key
//     that does not exist (or is deleted) get the same answer, 403
//     key_not_granted, with the same body and headers: the token grants
//     exactly the keys recorded under its contents, and a key that does
//     not exist is recorded under none, so "not granted" is the true
//     answer for both. 404 for both would have been indistinguishable
//     too, but would tell a content token's holder "no such key" about a
//     key that may well exist; and 403 keeps the rule of KID-bound
//     tokens, whose KIDs not listed are 403 whether or not they exist. So
//     404 unknown_key only ever answers a KID the token grants by name.
//
// The KID grant allocates nothing (the hot path for KID-bound tokens); the
// content grant reads the key through the same cache (Key.Assets comes
// with the cached key: no extra store read on a hit) and allocates nothing
// either.
func (s *server) grantedKey(ctx context.Context, claims *auth.Claims, id keystore.KeyID) (keystore.Key, error) {
	if claims.Grants(id) {
		return s.keys.Get(ctx, id)
	}
	if len(claims.ContentIDs) == 0 {
		return keystore.Key{}, errNotGranted
	}
	key, err := s.keys.Get(ctx, id)
	switch {
	case err == nil && claims.GrantsContent(key.Assets):
		return key, nil
	case err == nil:
		clear(key.Value[:])
		return keystore.Key{}, errNotGranted
	case errors.Is(err, keystore.ErrNotFound): // deleted keys too
		return keystore.Key{}, errNotGranted
	}
	return keystore.Key{}, err
}

var (
	octetStream = []string{echo.MIMEOctetStream}
	sixteen     = []string{"16"}
)

// authenticate finds the token in any of the accepted transports and
// verifies it. An address that has spent its budget of failed
// verifications is refused (429) before its token is looked at, so
// forged tokens cost the server no signature check beyond the budget; a
// failed verification spends one event of it (a missing token does not).
func (s *server) authenticate(c echo.Context) (auth.Claims, error) {
	var addr ratelimit.Key
	if s.failures != nil {
		addr = ratelimit.AddressKey(c.RealIP())
		if ok, wait := s.failures.Ready(addr); !ok {
			s.metrics.limited("auth_failures")
			return auth.Claims{}, &rateLimitError{limit: "auth_failures", wait: wait}
		}
	}
	raw, err := bearerToken(c)
	if err != nil {
		s.metrics.verification(err)
		return auth.Claims{}, err
	}
	// The verification is timed by the verifier itself, only when it does
	// the full check: a cache hit costs no clock read.
	claims, err := s.verify.Verify(raw)
	s.metrics.verification(err)
	if err != nil && s.failures != nil {
		s.failures.Charge(addr)
	}
	return claims, err
}

// countUse counts one use of a token that carries a replay limit (the
// maxuses claim), across every server on the store, and refuses the use
// past the limit (403 max_uses_exceeded). A counter that cannot be read
// refuses the request (503): a limited token is never served unlimited.
// Tokens without the claim return at once. It is called once per request
// that would deliver key material, after the grant and the key lookups
// and before the answer: a cached verification counts like any other.
func (s *server) countUse(c echo.Context, claims *auth.Claims) error {
	if claims.MaxUses <= 0 {
		return nil
	}
	if s.uses == nil {
		return fmt.Errorf("delivery: count use: %w", keystore.ErrNoCounters)
	}
	// The counter outlives the token by the largest leeway any verifier
	// allows, so a token accepted late is still counted.
	n, err := s.uses.CountUse(c.Request().Context(), claims.TokenDigest, claims.ExpiresAt.Add(auth.MaxLeeway))
	if err != nil {
		return err
	}
	if n > int64(claims.MaxUses) {
		return &usesError{max: claims.MaxUses}
	}
	return nil
}

// bearerToken returns the token from "Authorization: Bearer <jwt>",
// "Authorization: Bearer=<jwt>" (what AMS player samples send), or the query
// parameter token=<jwt> (itself optionally prefixed "Bearer=" or "Bearer "),
// which Safari's native HLS player needs because it cannot send headers.
func bearerToken(c echo.Context) (string, error) {
	// Direct map access: net/http canonicalizes header names as it reads
	// them, and Header.Get would canonicalize the name again per request.
	if hs := c.Request().Header[echo.HeaderAuthorization]; len(hs) > 0 && hs[0] != "" {
		h := hs[0]
		if t, ok := stripBearer(h); ok && t != "" {
			return t, nil
		}
		return "", &auth.Error{Reason: auth.ReasonMalformed, Err: errors.New("delivery: Authorization header is not \"Bearer <token>\"")}
	}
	if t, ok := httpedge.QueryFold(c.QueryParams(), "token"); ok {
		if stripped, ok := stripBearer(t); ok {
			t = stripped
		}
		if t != "" {
			return t, nil
		}
	}
	return "", &auth.Error{Reason: auth.ReasonMissingToken, Err: errors.New("delivery: no token in the Authorization header or the token query parameter")}
}

// stripBearer removes a leading "Bearer " or "Bearer=" (scheme matched
// case-insensitively).
func stripBearer(s string) (string, bool) {
	const scheme = "bearer"
	if len(s) > len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) && (s[len(scheme)] == ' ' || s[len(scheme)] == '=') {
		return strings.TrimLeft(s[len(scheme)+1:], " "), true
	}
	return s, false
}

// bodyLimit refuses bodies over limit bytes with 413. Requests without a
// body (every GET) pass untouched, at no cost.
func bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.Body == nil || r.Body == http.NoBody {
				return next(c)
			}
			if r.ContentLength > limit {
				return echo.ErrStatusRequestEntityTooLarge
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			return next(c)
		}
	}
}

package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
)

// Public error codes: a stable, documented set (README "Errors").
const (
	codeInvalidToken   = "invalid_token"
	codeForbidden      = "forbidden"
	codeNotFound       = "not_found"
	codeInvalidRequest = "invalid_request"
	codeMethod         = "method_not_allowed"
	codeTooLarge       = "too_large"
	codeUnavailable    = "unavailable"
	codeIssuerFailed   = "license_issuer_failed"
	codeTooMany        = "too_many_requests"
	codeInternal       = "internal"
)

// Reasons that are not auth reasons.
const (
	reasonKeyNotGranted = "key_not_granted"
	reasonInvalidKID    = "invalid_kid"
	reasonMissingKID    = "missing_kid"
	reasonUnknownKey    = "unknown_key"
	reasonStore         = "store_unavailable"
	reasonStoreLost     = "store_lost"
	reasonStoreFull     = "store_full"
	// license requests
	reasonInvalidBody      = "invalid_body"
	reasonSessionType      = "invalid_session_type"
	reasonPersistent       = "persistent_license_disabled"
	reasonTooManyKIDs      = "too_many_kids"
	reasonInvalidChallenge = "invalid_challenge"
	// abuse limits
	reasonRateLimited = "rate_limited"
	reasonMaxUses     = "max_uses_exceeded"
)

var (
	errNotGranted         = errors.New("delivery: the token does not grant this key")
	errMissingKID         = errors.New("delivery: missing kid query parameter")
	errPersistentDisabled = errors.New("delivery: persistent-license sessions are disabled")
)

// requestError is a malformed request: 400 with a reason and a detail
// written for the player's developer.
type requestError struct {
	reason, detail string
	err            error
}

func (e *requestError) Error() string {
	if e.err != nil {
		return "delivery: " + e.reason + ": " + e.err.Error()
	}
	return "delivery: " + e.reason
}

func (e *requestError) Unwrap() error { return e.err }

// kidsError refuses a request for several keys, naming the ones at fault
// (the requester named them itself, so nothing is disclosed).
type kidsError struct {
	err  error // errNotGranted or keystore.ErrNotFound
	kids []keystore.KeyID
}

func (e *kidsError) Error() string { return fmt.Sprintf("%v: %v", e.err, e.kids) }
func (e *kidsError) Unwrap() error { return e.err }

// issuerError is a LicenseIssuer's failure: 502, logged, its text never sent.
type issuerError struct {
	system System
	err    error
}

func (e *issuerError) Error() string {
	return fmt.Sprintf("delivery: %s license issuer: %v", e.system, e.err)
}
func (e *issuerError) Unwrap() error { return e.err }

// classify is the single mapping from errors to HTTP answers. The detail is
// written for a person and never holds a token or key material.
func classify(err error) (status int, code, reason, detail string) {
	var ae *auth.Error
	var he *echo.HTTPError
	var re *requestError
	var le *LicenseError
	var ie *issuerError
	var ke *kidsError
	var rl *rateLimitError
	var ue *usesError
	switch {
	case errors.As(err, &rl):
		if rl.limit == "requests" {
			return http.StatusTooManyRequests, codeTooMany, reasonRateLimited, "this address sends too many requests; retry after the time in Retry-After"
		}
		return http.StatusTooManyRequests, codeTooMany, reasonRateLimited, "too many refused tokens from this address; retry after the time in Retry-After with a valid token"
	case errors.As(err, &ue):
		return http.StatusForbidden, codeForbidden, reasonMaxUses, fmt.Sprintf("this token may be used %d times (its urn:microsoft:azure:mediaservices:maxuses claim) and they are spent: get a new token", ue.max)
	case errors.As(err, &ae):
		return http.StatusUnauthorized, codeInvalidToken, string(ae.Reason), authDetail(ae.Reason)
	case errors.As(err, &re):
		return http.StatusBadRequest, codeInvalidRequest, re.reason, re.detail
	case errors.As(err, &ie):
		return http.StatusBadGateway, codeIssuerFailed, codeIssuerFailed, fmt.Sprintf("the %s license issuer failed; the request ID links this answer to the server's log", ie.system)
	case errors.As(err, &le):
		return le.Status, statusCode(le.Status), le.Reason, le.Detail
	case errors.Is(err, errPersistentDisabled):
		return http.StatusForbidden, codeForbidden, reasonPersistent, `persistent-license sessions are not enabled on this server (--clearkey-persistent-license); request "type":"temporary"`
	case errors.As(err, &ke) && errors.Is(err, errNotGranted):
		return http.StatusForbidden, codeForbidden, reasonKeyNotGranted, "the token does not grant the keys listed in kids: add them to the token's kids claim, or record them under a content of its content_ids claim; no license is issued for part of a request"
	case errors.As(err, &ke) && errors.Is(err, keystore.ErrNotFound):
		return http.StatusNotFound, codeNotFound, reasonUnknownKey, "no key is stored for the key IDs listed in kids; no license is issued for part of a request"
	case errors.Is(err, errNotGranted):
		return http.StatusForbidden, codeForbidden, reasonKeyNotGranted, "the token does not grant this key: add its KID to the token's kids claim or urn:microsoft:azure:mediaservices:contentkeyidentifier, or record the key under a content of its content_ids claim"
	case errors.Is(err, errMissingKID):
		return http.StatusBadRequest, codeInvalidRequest, reasonMissingKID, "the kid query parameter is required, e.g. /?kid=0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"
	case errors.Is(err, keystore.ErrInvalidKeyID):
		return http.StatusBadRequest, codeInvalidRequest, reasonInvalidKID, httpedge.InvalidKIDDetail
	case errors.Is(err, keystore.ErrStoreLost):
		// Checked before ErrNotFound: a key the lost store does not hold
		// may be one it lost, and is not reported missing.
		return http.StatusServiceUnavailable, codeUnavailable, reasonStoreLost, "the key store lost its data and is being restored; retry later"
	case errors.Is(err, keystore.ErrNotFound):
		return http.StatusNotFound, codeNotFound, reasonUnknownKey, "no key with this ID is stored"
	case errors.Is(err, keystore.ErrFull):
		return http.StatusServiceUnavailable, codeUnavailable, reasonStoreFull, "the key store is full; retry shortly"
	case errors.Is(err, keystore.ErrUnavailable), errors.Is(err, context.Canceled):
		// Canceled: the client went away or the server is stopping.
		return http.StatusServiceUnavailable, codeUnavailable, reasonStore, "the key store did not answer in time; retry shortly"
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			return he.Code, codeNotFound, "no_route", "no such endpoint: keys are served at /keys/{kid} and /?kid={kid}, ClearKey licenses at POST /clearkey/license"
		case http.StatusMethodNotAllowed:
			return he.Code, codeMethod, "", "method not allowed on this endpoint"
		case http.StatusRequestEntityTooLarge:
			return he.Code, codeTooLarge, "body_too_large", "the request body is too large"
		}
		if he.Code >= 400 && he.Code < 500 {
			return he.Code, codeInvalidRequest, "", http.StatusText(he.Code)
		}
	}
	return http.StatusInternalServerError, codeInternal, "", "internal error; the request ID links this answer to the server's log"
}

// statusCode is the public code of a 4xx status an issuer chose.
func statusCode(status int) string {
	switch status {
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusRequestEntityTooLarge:
		return codeTooLarge
	}
	return codeInvalidRequest
}

func authDetail(r auth.Reason) string {
	switch r {
	case auth.ReasonMissingToken:
		return "a token is required: send Authorization: Bearer <token>, or ?token=<token> in the URL"
	case auth.ReasonTooLarge:
		return "the token is larger than 8 KiB"
	case auth.ReasonMalformed:
		return "the token is not a well-formed JWT (or a claim has the wrong type)"
	case auth.ReasonUnsupportedAlgorithm:
		return "only ES256 tokens are accepted"
	case auth.ReasonUnknownSigningKey:
		return "the token names a signing certificate (x5t, x5t#S256 or kid) that this server does not trust"
	case auth.ReasonSigningKeyNotValid:
		return "the token's signing certificate is expired or not yet valid"
	case auth.ReasonBadSignature:
		return "the token's signature does not verify with any trusted certificate"
	case auth.ReasonExpired:
		return "the token has expired"
	case auth.ReasonNotYetValid:
		return "the token is not valid yet (nbf or iat is in the future)"
	case auth.ReasonWrongIssuer:
		return "the token's iss is not a trusted issuer"
	case auth.ReasonWrongAudience:
		return "the token's aud does not name this server"
	case auth.ReasonMissingClaim:
		return "the token lacks a required claim (exp; iat when a maximum lifetime is set)"
	case auth.ReasonLifetimeTooLong:
		return "the token's lifetime (exp - iat) is longer than this server allows"
	}
	return "the token was refused"
}

// refusedToken reports whether an answer refuses a token (a missing token
// is not one; a rate-limited request was not looked at).
func refusedToken(status int, reason string) bool {
	switch {
	case status == http.StatusUnauthorized:
		return reason != string(auth.ReasonMissingToken)
	case status == http.StatusForbidden:
		return reason == reasonKeyNotGranted || reason == reasonMaxUses
	}
	return false
}

// handleError renders every error as a problem. It is echo's only error
// handler; echo's default (which can echo err.Error()) is never used.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code, reason, detail := classify(err)
	rid := requestID(c)
	setOutcome(c, reason, err)
	h := c.Response().Header()
	switch status {
	case http.StatusUnauthorized:
		if reason == string(auth.ReasonMissingToken) {
			h.Set("WWW-Authenticate", `Bearer realm="keydelivery"`)
		} else {
			h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="keydelivery", error="invalid_token", error_description=%q`, reason))
		}
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", s.retry)
	case http.StatusTooManyRequests:
		var rl *rateLimitError
		if errors.As(err, &rl) {
			h.Set("Retry-After", httpedge.RetryAfter(rl.wait))
		}
	}
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "request_id", rid, "err", err)
	}
	if status == http.StatusBadGateway {
		s.log.Warn("license issuer failed", "request_id", rid, "err", err)
	}
	if refusedToken(status, reason) {
		s.logRefusal(c, rid, reason, err)
	}
	p := httpedge.NewProblem(status, code, reason, detail)
	p.RequestID = rid
	var ke *kidsError
	if errors.As(err, &ke) {
		p.KIDs = make([]string, len(ke.kids))
		for i, id := range ke.kids {
			p.KIDs[i] = id.String()
		}
	}
	if err := httpedge.WriteProblem(c.Response(), c.Request(), &p); err != nil {
		s.log.Warn("writing error response", "request_id", rid, "err", err)
	}
}

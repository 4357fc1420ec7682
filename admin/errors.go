package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/keystore"
)

// Public error codes: a stable, documented set, shared with package delivery
// where the meaning is the same.
const (
	codeUnauthorized   = "unauthorized"
	codeForbidden      = "forbidden"
	codeNotFound       = "not_found"
	codeInvalidRequest = "invalid_request"
	codeMethod         = "method_not_allowed"
	codeTooLarge       = "too_large"
	codeUnsupported    = "unsupported_media_type"
	codeConflict       = "conflict"
	codeUnavailable    = "unavailable"
	codeNotConfigured  = "not_configured"
	codeInternal       = "internal"
)

// Reasons.
const (
	reasonMissingCredential = "missing_credential"
	reasonInvalidCredential = "invalid_credential"
	reasonTokenInQuery      = "credential_in_query"
	reasonRole              = "role_insufficient"
	reasonInvalidKID        = "invalid_kid"
	reasonUnknownKey        = "unknown_key"
	reasonExists            = "exists"
	reasonStore             = "store_unavailable"
	reasonAudit             = "audit_unavailable"
	reasonNoRoute           = "no_route"
	reasonBodyTooLarge      = "body_too_large"
	reasonNotDeleted        = "not_deleted"
	reasonInvalidAsset      = "invalid_asset"
	reasonUnknownKeySeed    = "unknown_key_seed"
)

// realm is the WWW-Authenticate realm of the admin plane; it differs from the
// delivery plane's, so a client can tell which credential is wanted.
const realm = `Bearer realm="keydelivery-admin"`

var (
	errAuditUnavailable = errors.New("admin: audit record could not be written")
	errTokenInQuery     = errors.New("admin: credential sent in the query string")
)

// authError refuses a request for its credential (401) or its role (403).
type authError struct {
	status int
	reason string
}

func (e *authError) Error() string {
	return fmt.Sprintf("admin: %s (%d)", e.reason, e.status)
}

// requestError is a 400 (or 404, 409, 413, 415, 501) with a reason and a
// detail written for a person. The detail never quotes key material.
type requestError struct {
	status int // 0 means 400
	reason string
	detail string
}

func (e *requestError) Error() string { return "admin: bad request: " + e.reason + ": " + e.detail }

func badRequest(reason, format string, args ...any) error {
	return &requestError{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// keyError ties a store error to the KID it is about, so the answer can name
// the KID without matching error text.
type keyError struct {
	id  keystore.KeyID
	err error
}

func (e *keyError) Error() string { return fmt.Sprintf("admin: key %s: %v", e.id, e.err) }
func (e *keyError) Unwrap() error { return e.err }

// problem is an RFC 9457 problem detail with our extension members.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	Reason    string `json:"reason,omitempty"`
	KID       string `json:"kid,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Problems names each bad entry of a refused import.
	Problems []entryProblem `json:"problems,omitempty"`
	// Conflicts names the KIDs an import found stored with another key;
	// Results is the outcome of every entry of that import.
	Conflicts []string      `json:"conflicts,omitempty"`
	Results   []importedKey `json:"results,omitempty"`
}

// classify is the single mapping from errors to HTTP answers.
func classify(err error) problem {
	var (
		ae *authError
		re *requestError
		ke *keyError
		he *echo.HTTPError
		p  problem
	)
	if errors.As(err, &ke) {
		p.KID = ke.id.String()
	}
	var (
		be *batchError
		ce *conflictError
	)
	switch {
	case errors.As(err, &be):
		p.Status, p.Code, p.Reason, p.Problems = http.StatusBadRequest, codeInvalidRequest, "invalid_entries", be.problems
		p.Detail = fmt.Sprintf("%d entries of the import are invalid (see problems); nothing was imported", len(be.problems))
	case errors.As(err, &ce):
		p.Status, p.Code, p.Reason, p.Conflicts, p.Results = http.StatusConflict, codeConflict, "key_conflict", ce.kids, ce.results
		p.Detail = fmt.Sprintf("KIDs already stored with a different key, or with another content key type, were left untouched (%d, see conflicts); the other keys were imported (see results)", len(ce.kids))
	case errors.As(err, &ae):
		p.Status, p.Reason = ae.status, ae.reason
		if ae.status == http.StatusForbidden {
			p.Code, p.Detail = codeForbidden, "this credential's role does not allow this operation"
		} else {
			p.Code = codeUnauthorized
			p.Detail = "an admin credential is required: send Authorization: Bearer <secret>"
			if ae.reason == reasonInvalidCredential {
				p.Detail = "the admin credential is not valid"
			}
		}
	case errors.Is(err, errTokenInQuery):
		p.Status, p.Code, p.Reason = http.StatusBadRequest, codeInvalidRequest, reasonTokenInQuery
		p.Detail = "admin credentials are accepted only in the Authorization header, never in the URL; treat a secret sent in a URL as leaked"
	case errors.Is(err, errAuditUnavailable):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, reasonAudit
		p.Detail = "the audit record could not be written, so the operation was not done; retry shortly"
	case errors.As(err, &re):
		p.Status, p.Reason, p.Detail = re.status, re.reason, re.detail
		switch re.status {
		case 0:
			p.Status, p.Code = http.StatusBadRequest, codeInvalidRequest
		case http.StatusRequestEntityTooLarge:
			p.Code = codeTooLarge
		case http.StatusUnsupportedMediaType:
			p.Code = codeUnsupported
		case http.StatusNotImplemented:
			p.Code = codeNotConfigured
		case http.StatusNotFound:
			p.Code = codeNotFound
		case http.StatusConflict:
			p.Code = codeConflict
		default:
			p.Code = codeInvalidRequest
		}
	case errors.Is(err, keystore.ErrInvalidKeyID):
		p.Status, p.Code, p.Reason = http.StatusBadRequest, codeInvalidRequest, reasonInvalidKID
		p.Detail = "the key ID must be a UUID such as 0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f (upper case, braces, no hyphens and the nb:kid:UUID: prefix are accepted)"
	case errors.Is(err, keystore.ErrExists):
		p.Status, p.Code, p.Reason = http.StatusConflict, codeConflict, reasonExists
		p.Detail = "a key with this ID is already stored; a stored key is never overwritten"
		if p.KID != "" {
			p.Detail = "a key with ID " + p.KID + " is already stored; a stored key is never overwritten"
		}
	case errors.Is(err, keystore.ErrNotDeleted):
		p.Status, p.Code, p.Reason = http.StatusConflict, codeConflict, reasonNotDeleted
		p.Detail = "the key is not deleted: only a deleted key can be restored or purged (DELETE it first)"
	case errors.Is(err, keystore.ErrInvalidAsset):
		p.Status, p.Code, p.Reason = http.StatusBadRequest, codeInvalidRequest, reasonInvalidAsset
		p.Detail = "an asset ID must be 1 to 256 printable characters without spaces"
	case errors.Is(err, keystore.ErrDeleted):
		p.Status, p.Code, p.Reason = http.StatusNotFound, codeNotFound, "deleted"
		p.Detail = "the key is deleted: restore it first (POST /api/keys/{kid}/restore)"
	case errors.Is(err, keystore.ErrNotFound):
		p.Status, p.Code, p.Reason = http.StatusNotFound, codeNotFound, reasonUnknownKey
		p.Detail = "no key with this ID is stored"
	case errors.Is(err, keystore.ErrUnavailable):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, reasonStore
		p.Detail = "the key store did not answer in time; retry shortly"
	case errors.As(err, &he) && he.Code == http.StatusNotFound:
		p.Status, p.Code, p.Reason = he.Code, codeNotFound, reasonNoRoute
		p.Detail = "no such endpoint"
	case errors.As(err, &he) && he.Code == http.StatusMethodNotAllowed:
		p.Status, p.Code, p.Detail = he.Code, codeMethod, "method not allowed on this endpoint"
	case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
		p.Status, p.Code, p.Reason, p.Detail = he.Code, codeTooLarge, reasonBodyTooLarge, "the request body is too large"
	case errors.As(err, &he) && he.Code >= 400 && he.Code < 500:
		p.Status, p.Code, p.Detail = he.Code, codeInvalidRequest, http.StatusText(he.Code)
	default:
		p.Status, p.Code = http.StatusInternalServerError, codeInternal
		p.Detail = "internal error; the request ID links this answer to the server's log"
	}
	p.Type, p.Title = "about:blank", http.StatusText(p.Status)
	return p
}

// resultOf is the audit and metric result for an operation's error.
func resultOf(err error) string {
	if err == nil {
		return resultOK
	}
	p := classify(err)
	switch {
	case p.Status == http.StatusConflict:
		return resultConflict
	case p.Status == http.StatusNotFound:
		return resultNotFound
	case p.Status == http.StatusUnauthorized:
		return resultUnauthorized
	case p.Status == http.StatusForbidden:
		return resultForbidden
	case p.Status == http.StatusServiceUnavailable:
		return resultUnavailable
	case p.Status >= 400 && p.Status < 500:
		return resultInvalid
	}
	return resultError
}

// handleError renders every error as a problem. It is echo's only error
// handler; echo's default (which can echo err.Error()) is never used.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) && he.Code == http.StatusNotFound {
		if allow := s.methodsOf(c.Request().URL.Path); len(allow) > 0 {
			err = echo.ErrMethodNotAllowed
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
		}
	}
	p := classify(err)
	p.RequestID = c.Response().Header().Get(echo.HeaderXRequestID)
	setOutcome(c, p.Reason, err)
	h := c.Response().Header()
	switch p.Status {
	case http.StatusUnauthorized:
		h.Set(echo.HeaderWWWAuthenticate, realm)
	case http.StatusServiceUnavailable:
		h.Set(echo.HeaderRetryAfter, s.retry)
	case http.StatusInternalServerError:
		s.log.Error("admin request failed", "request_id", p.RequestID, "err", err)
	}
	h.Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	if err := c.JSON(p.Status, p); err != nil {
		s.log.Warn("writing admin error response", "request_id", p.RequestID, "err", err)
	}
}

// methodsOf lists the methods routed for an /api/ path other than the
// group's catch-all: a path the API serves under another method is 405
// with Allow, not 404. Paths outside /api/ are echo's to answer.
func (s *server) methodsOf(path string) []string {
	if s.router == nil || !strings.HasPrefix(path, "/api/") {
		return nil
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		c := s.router.NewContext(nil, nil)
		s.router.Router().Find(m, path, c)
		if r := c.Path(); r != "" && r != "/api/*" && r != "/api" && r != "/api/:contentKeySegment" {
			allow = append(allow, m)
		}
	}
	return allow
}

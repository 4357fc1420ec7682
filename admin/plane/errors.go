package plane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/internal/httpedge"
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
	codeTooMany        = "too_many_requests"
	codeInternal       = "internal"
)

// Reasons the plane answers with; the APIs add their own.
const (
	ReasonMissingCredential = "missing_credential"
	ReasonInvalidCredential = "invalid_credential"
	// ReasonNoCredentials: the server has no admin credential at all (no
	// --admin-credentials-file, or an empty one), so none can match.
	ReasonNoCredentials     = "no_credentials_configured"
	ReasonCredentialInQuery = "credential_in_query"
	ReasonRole              = "role_insufficient"
	ReasonInvalidKID        = "invalid_kid"
	ReasonUnknownKey        = "unknown_key"
	ReasonDeleted           = "deleted"
	ReasonExists            = "exists"
	ReasonStore             = "store_unavailable"
	ReasonAudit             = "audit_unavailable"
	ReasonNoRoute           = "no_route"
	ReasonBodyTooLarge      = "body_too_large"
	ReasonNotDeleted        = "not_deleted"
	ReasonInvalidAsset      = "invalid_asset"
	ReasonRateLimited       = "rate_limited"
	// ReasonNotReplicated: the write was done on the Redis master but its
	// replicas did not confirm it in time (503; send it again).
	ReasonNotReplicated = "not_replicated"
	// ReasonStoreFull: the store refused the write for lack of room (503).
	ReasonStoreFull = "store_full"
	// ReasonStoreLost: the store lost its data; nothing is written until an
	// operator adopts it (503).
	ReasonStoreLost = "store_lost"
)

// realm is the WWW-Authenticate realm of the admin plane; it differs from the
// delivery plane's, so a client can tell which credential is wanted.
// basicRealm is offered too under the prefixes an API protected (Protect),
// whose clients (encoders) often know only Basic.
const (
	realm      = `Bearer realm="keydelivery-admin"`
	basicRealm = `Basic realm="keydelivery-admin", charset="UTF-8"`
)

var (
	errAuditUnavailable = errors.New("plane: audit record could not be written")
	errCredentialInURL  = errors.New("plane: credential sent in the query string")
)

// authError refuses a request for its credential (401) or its role (403).
// A 403 names the operation, the credential's role and the permission the
// operation needs, so its answer can say which roles would do.
type authError struct {
	status int
	reason string
	op     string
	role   credentials.Role
	perm   credentials.Permission
}

func (e *authError) Error() string { return fmt.Sprintf("plane: %s (%d)", e.reason, e.status) }

// rateLimitError refuses a request from an address that has spent its
// budget of failed authentications: 429 rate_limited with Retry-After.
type rateLimitError struct{ wait time.Duration }

func (e *rateLimitError) Error() string { return fmt.Sprintf("plane: rate limited for %v", e.wait) }

// RequestError is a refusal with a status (0 means 400: 404, 409, 413, 415
// and 501 are the others an API uses), a reason, and a detail written for a
// person. The detail never quotes key material or a secret.
type RequestError struct {
	Status int
	Reason string
	Detail string
}

func (e *RequestError) Error() string { return "plane: " + e.Reason + ": " + e.Detail }

// TextError is a refusal an API answers in its protocol's own words: the
// plane writes Text as it is (text/plain; charset=utf-8) with Status and
// Header, and audits it like any refusal of that status (4xx invalid, 401
// unauthorized, 403 forbidden, 404 not found, 409 conflict, 503
// unavailable, other 5xx error). SPEKE answers its errors this way, with
// the messages of the AWS documentation. Reason is the stable code the log
// and the outcome record; Text never quotes key material or a secret.
type TextError struct {
	Status int
	Reason string
	Text   string
	Header [][2]string
}

func (e *TextError) Error() string {
	return fmt.Sprintf("plane: %s (%d): %s", e.Reason, e.Status, e.Text)
}

// Invalid is a 400 RequestError.
func Invalid(reason, format string, args ...any) error {
	return &RequestError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// KeyError ties a store error to the KID it is about, so the answer can name
// the KID without matching error text.
type KeyError struct {
	ID  keystore.KeyID
	Err error
}

func (e *KeyError) Error() string { return fmt.Sprintf("plane: key %s: %v", e.ID, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// OnKey wraps a store error about id (nil stays nil).
func OnKey(id keystore.KeyID, err error) error {
	if err == nil {
		return nil
	}
	return &KeyError{ID: id, Err: err}
}

// EntriesError refuses a whole batch for its bad entries: nothing was
// written (400 invalid_entries). Problems lists at most MaxProblems of
// them (the first); Count is how many there are (0 means len(Problems)).
// The answer carries both, as problems and problemCount.
type EntriesError struct {
	Problems []httpedge.EntryProblem
	Count    int
}

// MaxProblems is the most bad entries an answer lists; the rest are
// counted. A batch of millions of bad entries is answered in a few
// kilobytes.
const MaxProblems = 100

func (e *EntriesError) total() int { return max(e.Count, len(e.Problems)) }

func (e *EntriesError) Error() string {
	return fmt.Sprintf("plane: batch refused: %s", count(e.total(), "bad entry", "bad entries"))
}

// ConflictError reports KIDs stored with a different key: those were left
// untouched, the other entries of the batch were done (409 key_conflict,
// with the outcome of every entry in Results).
type ConflictError struct {
	KIDs    []string
	Results any
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("plane: %s conflict with stored keys", count(len(e.KIDs), "key", "keys"))
}

// NotConfigured is a 501: the server lacks the configuration an operation
// needs; detail says which setting.
func NotConfigured(reason, detail string) error {
	return &RequestError{Status: http.StatusNotImplemented, Reason: reason, Detail: detail}
}

// classify is the single mapping from errors to the admin plane's answers.
func classify(err error) httpedge.Problem {
	var (
		ae *authError
		re *RequestError
		ke *KeyError
		be *EntriesError
		ce *ConflictError
		he *echo.HTTPError
		p  httpedge.Problem
	)
	if errors.As(err, &ke) {
		p.KID = ke.ID.String()
	}
	var rl *rateLimitError
	switch {
	case errors.As(err, &rl):
		p.Status, p.Code, p.Reason = http.StatusTooManyRequests, codeTooMany, ReasonRateLimited
		p.Detail = "too many failed admin authentications from this address; retry after the time in Retry-After with a valid credential"
	case errors.As(err, &be):
		p.Status, p.Code, p.Reason, p.Problems = http.StatusBadRequest, codeInvalidRequest, "invalid_entries", be.Problems
		if len(p.Problems) > MaxProblems {
			p.Problems = p.Problems[:MaxProblems]
		}
		n := be.total()
		p.ProblemCount = n
		p.Detail = fmt.Sprintf("%s of the import %s invalid (see problems); nothing was imported", count(n, "entry", "entries"), plural(n, "is", "are"))
		if n > len(p.Problems) {
			p.Detail = fmt.Sprintf("%s of the import are invalid (the first %d are in problems); nothing was imported", count(n, "entry", "entries"), len(p.Problems))
		}
	case errors.As(err, &ce):
		p.Status, p.Code, p.Reason, p.Conflicts, p.Results = http.StatusConflict, codeConflict, "key_conflict", ce.KIDs, ce.Results
		p.Detail = fmt.Sprintf("%s already stored with a different key, or with another content key type (see Conflict in results), %s left untouched (see conflicts); the other keys were imported", count(len(ce.KIDs), "KID", "KIDs"), plural(len(ce.KIDs), "was", "were"))
	case errors.As(err, &ae):
		p.Status, p.Reason = ae.status, ae.reason
		if ae.status == http.StatusForbidden {
			p.Code, p.Detail = codeForbidden, "this credential's role does not allow this operation"
			if roles := credentials.RolesAllowing(ae.perm); ae.perm != 0 && len(roles) > 0 {
				names := make([]string, len(roles))
				for i, r := range roles {
					names[i] = string(r)
				}
				p.Detail = fmt.Sprintf("this credential's role (%s) does not allow %s: it needs the role %s", ae.role, ae.op, strings.Join(names, " or "))
			}
		} else {
			p.Code = codeUnauthorized
			p.Detail = "an admin credential is required: send Authorization: Bearer <secret>"
			switch ae.reason {
			case ReasonInvalidCredential:
				p.Detail = "the admin credential is not valid"
			case ReasonNoCredentials:
				p.Detail = "no admin credentials are configured on this server: start it with --admin-credentials-file (make a credential with: kdctl adminkey generate)"
			}
		}
	case errors.Is(err, errCredentialInURL):
		p.Status, p.Code, p.Reason = http.StatusBadRequest, codeInvalidRequest, ReasonCredentialInQuery
		p.Detail = "admin credentials are accepted only in the Authorization header, never in the URL; treat a secret sent in a URL as leaked"
	case errors.Is(err, errAuditUnavailable):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, ReasonAudit
		p.Detail = "the audit record could not be written, so the operation was not done; retry shortly"
	case errors.As(err, &re):
		p.Status, p.Reason, p.Detail = re.Status, re.Reason, re.Detail
		switch re.Status {
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
		case http.StatusForbidden:
			p.Code = codeForbidden
		default:
			p.Code = codeInvalidRequest
		}
	case errors.Is(err, keystore.ErrInvalidKeyID):
		p.Status, p.Code, p.Reason = http.StatusBadRequest, codeInvalidRequest, ReasonInvalidKID
		p.Detail = httpedge.InvalidKIDDetail
	case errors.Is(err, keystore.ErrExists):
		p.Status, p.Code, p.Reason = http.StatusConflict, codeConflict, ReasonExists
		p.Detail = "a key with this ID is already stored; a stored key is never overwritten"
		if p.KID != "" {
			p.Detail = "a key with ID " + p.KID + " is already stored; a stored key is never overwritten"
		}
	case errors.Is(err, keystore.ErrNotDeleted):
		p.Status, p.Code, p.Reason = http.StatusConflict, codeConflict, ReasonNotDeleted
		p.Detail = "the key is not deleted: only a deleted key can be restored or purged (DELETE it first)"
	case errors.Is(err, keystore.ErrInvalidAsset):
		p.Status, p.Code, p.Reason = http.StatusBadRequest, codeInvalidRequest, ReasonInvalidAsset
		p.Detail = fmt.Sprintf("an asset ID must be 1 to %d printable characters without spaces", keystore.MaxAssetID)
	case errors.Is(err, keystore.ErrDeleted):
		p.Status, p.Code, p.Reason = http.StatusNotFound, codeNotFound, ReasonDeleted
		p.Detail = "the key is deleted: restore it first (POST /api/keys/{kid}/restore)"
	case errors.Is(err, keystore.ErrNotFound):
		p.Status, p.Code, p.Reason = http.StatusNotFound, codeNotFound, ReasonUnknownKey
		p.Detail = "no key with this ID is stored"
	case errors.Is(err, keystore.ErrStoreLost):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, ReasonStoreLost
		p.Detail = "the key store lost its data (its marker is gone, or it is empty where it held keys): nothing is written into it, and a key it does not hold is not reported missing, until an operator restores it from a backup or adopts it as it is (kdctl store adopt)"
	case errors.Is(err, keystore.ErrNotReplicated):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, ReasonNotReplicated
		p.Detail = "the write was done on the primary but not confirmed by enough replicas in time, so it does not count as done and may be lost in a failover: send the same request again (it is safe to repeat)"
	case errors.Is(err, keystore.ErrFull):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, ReasonStoreFull
		p.Detail = "the key store is full (no space on its disk, or Redis at maxmemory or unable to persist): nothing was written, stored keys stay readable; retry once space is freed"
	case errors.Is(err, keystore.ErrUnavailable):
		p.Status, p.Code, p.Reason = http.StatusServiceUnavailable, codeUnavailable, ReasonStore
		p.Detail = "the key store did not answer in time; retry shortly"
	case errors.As(err, &he) && he.Code == http.StatusNotFound:
		p.Status, p.Code, p.Reason = he.Code, codeNotFound, ReasonNoRoute
		p.Detail = "no such endpoint"
	case errors.As(err, &he) && he.Code == http.StatusMethodNotAllowed:
		p.Status, p.Code, p.Detail = he.Code, codeMethod, "method not allowed on this endpoint"
	case errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge:
		p.Status, p.Code, p.Reason, p.Detail = he.Code, codeTooLarge, ReasonBodyTooLarge, "the request body is too large"
	case errors.As(err, &he) && he.Code >= 400 && he.Code < 500:
		p.Status, p.Code, p.Detail = he.Code, codeInvalidRequest, http.StatusText(he.Code)
	default:
		p.Status, p.Code = http.StatusInternalServerError, codeInternal
		p.Detail = "internal error; the request ID links this answer to the server's log"
	}
	p.Type, p.Title = "about:blank", http.StatusText(p.Status)
	return p
}

// resultOf is the audit result of an operation that ended with err: the
// audit's own word for what happened, decided from the error.
func resultOf(err error) audit.Result {
	var (
		ae *authError
		re *RequestError
		te *TextError
		he *echo.HTTPError
	)
	switch {
	case err == nil:
		return audit.OK
	case errors.As(err, &te):
		return statusResult(te.Status)
	case errors.As(err, &ae) && ae.status == http.StatusForbidden:
		return audit.Forbidden
	case errors.As(err, &ae):
		return audit.Unauthorized
	case errors.Is(err, errAuditUnavailable), errors.Is(err, keystore.ErrUnavailable),
		errors.Is(err, keystore.ErrNotReplicated), errors.Is(err, keystore.ErrStoreLost):
		return audit.Unavailable
	case errors.As(err, new(*ConflictError)):
		return audit.Conflict
	case errors.As(err, new(*EntriesError)), errors.Is(err, errCredentialInURL):
		return audit.Invalid
	case errors.As(err, &re):
		switch re.Status {
		case http.StatusNotFound:
			return audit.NotFound
		case http.StatusConflict:
			return audit.Conflict
		case http.StatusForbidden:
			return audit.Forbidden
		case http.StatusNotImplemented:
			return audit.Error // the server is not configured for it
		}
		return audit.Invalid
	case errors.Is(err, keystore.ErrInvalidKeyID), errors.Is(err, keystore.ErrInvalidAsset):
		return audit.Invalid
	case errors.Is(err, keystore.ErrExists), errors.Is(err, keystore.ErrNotDeleted):
		return audit.Conflict
	case errors.Is(err, keystore.ErrNotFound):
		return audit.NotFound
	case errors.As(err, &he) && he.Code == http.StatusNotFound:
		return audit.NotFound
	case errors.As(err, &he) && he.Code >= 400 && he.Code < 500:
		return audit.Invalid
	case errors.Is(err, context.Canceled):
		return audit.Error
	}
	return audit.Error
}

// statusResult is the audit result of a refusal with an HTTP status, for
// errors an API answers in its own words (TextError).
func statusResult(status int) audit.Result {
	switch {
	case status == http.StatusUnauthorized:
		return audit.Unauthorized
	case status == http.StatusForbidden:
		return audit.Forbidden
	case status == http.StatusNotFound:
		return audit.NotFound
	case status == http.StatusConflict:
		return audit.Conflict
	case status == http.StatusServiceUnavailable:
		return audit.Unavailable
	case status >= 500:
		return audit.Error
	}
	return audit.Invalid
}

// handleError renders every error as a problem, or as plain text under a
// prefix protected with text errors (Protect) and for a TextError. It is
// echo's only error handler; echo's default (which can echo err.Error()) is
// never used.
func (p *Plane) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	h := c.Response().Header()
	var te *TextError
	if errors.As(err, &te) {
		setOutcome(c, te.Reason, err)
		for _, kv := range te.Header {
			h.Set(kv[0], kv[1])
		}
		if te.Status >= 500 {
			p.log.Error("admin request failed", "request_id", h.Get(echo.HeaderXRequestID), "reason", te.Reason, "err", err)
		}
		p.writeText(c, te.Status, te.Text)
		return
	}
	pr := classify(err)
	pr.RequestID = h.Get(echo.HeaderXRequestID)
	setOutcome(c, pr.Reason, err)
	guarded, text := p.guarded(c.Request().URL.Path)
	switch pr.Status {
	case http.StatusUnauthorized:
		h.Set(echo.HeaderWWWAuthenticate, realm)
		if guarded && !isAPI(c.Request().URL.Path) {
			h.Add(echo.HeaderWWWAuthenticate, basicRealm)
		}
	case http.StatusMethodNotAllowed:
		if guarded {
			h.Set(echo.HeaderAllow, allowed(c))
		}
	case http.StatusServiceUnavailable:
		h.Set(echo.HeaderRetryAfter, p.retry)
	case http.StatusTooManyRequests:
		var rl *rateLimitError
		if errors.As(err, &rl) {
			h.Set(echo.HeaderRetryAfter, httpedge.RetryAfter(rl.wait))
		}
	case http.StatusInternalServerError:
		p.log.Error("admin request failed", "request_id", pr.RequestID, "err", err)
	}
	if text {
		p.writeText(c, pr.Status, pr.Detail)
		return
	}
	for _, f := range p.errorBodies {
		if ct, body, ok := f(c.Request(), clientURL(c.Request()), &pr); ok {
			h.Set(echo.HeaderContentType, ct)
			c.Response().WriteHeader(pr.Status)
			if c.Request().Method != http.MethodHead {
				if _, err := c.Response().Write(body); err != nil {
					p.log.Warn("writing admin error response", "request_id", pr.RequestID, "err", err)
				}
			}
			return
		}
	}
	if err := httpedge.WriteProblem(c.Response(), c.Request(), &pr); err != nil {
		p.log.Warn("writing admin error response", "request_id", pr.RequestID, "err", err)
	}
}

// writeText writes a plain-text refusal (one line, newline-terminated).
func (p *Plane) writeText(c echo.Context, status int, text string) {
	if c.Request().Method == http.MethodHead {
		text = ""
	} else if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if err := c.Blob(status, echo.MIMETextPlainCharsetUTF8, []byte(text)); err != nil {
		p.log.Warn("writing admin error response", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err)
	}
}

// allowOrder is the order of the Allow header's methods.
var allowOrder = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowed is the Allow header of a 405 under /api/: the methods the router
// found for the path, in allowOrder, without OPTIONS (the API does not
// answer OPTIONS).
func allowed(c echo.Context) string {
	found, _ := c.Get(echo.ContextKeyHeaderAllow).(string)
	methods := strings.Split(found, ", ")
	var out []string
	for _, m := range allowOrder {
		if slices.Contains(methods, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// count is n and the noun in the number n needs: "1 entry", "2 entries".
func count(n int, one, many string) string { return fmt.Sprintf("%d %s", n, plural(n, one, many)) }

package plane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
)

// Reader is what an operation may read from the key store at any time
// (keystore.Keys). Answers never carry what it returns as key material,
// except where the operation's permission is meant for it (export).
type Reader interface {
	// Metadata returns a key's record with Value zeroed, deleted keys
	// included; ErrNotFound when absent.
	Metadata(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	// Get returns a live key with its material.
	Get(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	List(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Key, error)
	ListAsset(ctx context.Context, asset string, from keystore.KeyID, limit int) ([]keystore.KeyID, error)
	// KeySeed returns a stored key seed, unsealed; ErrNotFound when absent.
	KeySeed(ctx context.Context, id keystore.KeyID) (keystore.KeySeed, error)
	// KeySeeds lists the stored key seeds without the seeds.
	KeySeeds(ctx context.Context) ([]keystore.KeySeed, error)
	// KeyIDsByValue finds the KIDs that keys' values were imported under
	// without a KID of their own (by a keyed hash, never the bytes).
	KeyIDsByValue(ctx context.Context, keys []keystore.Key) ([]keystore.KeyID, []bool, error)
}

// Writer is what an operation may change in the key store, once its started
// record is written (Call.Begin).
type Writer interface {
	Reader
	// Create seals and stores a key; ErrExists if the ID is taken.
	Create(ctx context.Context, k keystore.Key) (keystore.Key, error)
	Delete(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	Restore(ctx context.Context, id keystore.KeyID) (keystore.Key, error)
	Purge(ctx context.Context, id keystore.KeyID) error
	Import(ctx context.Context, keys []keystore.Key) ([]keystore.ImportResult, error)
	// Link adds a key to the keys of an asset; Unlink removes it (both
	// idempotent).
	Link(ctx context.Context, id keystore.KeyID, asset string) (keystore.Key, error)
	Unlink(ctx context.Context, id keystore.KeyID, asset string) (keystore.Key, error)
	// ImportByValue is Import for keys some of which came without a KID
	// (byValue): those are indexed by value first, and may take the KID
	// another import gave the same value (keys[i].ID changes).
	ImportByValue(ctx context.Context, keys []keystore.Key, byValue []bool) ([]keystore.ImportResult, error)
	// CreateKeySeed seals and stores a key seed; ErrExists if the ID is
	// taken (and ErrSameKey too when the same seed is stored).
	CreateKeySeed(ctx context.Context, seed keystore.KeySeed) (keystore.KeySeed, error)
	// ClaimIdempotency binds an idempotency key of the caller scope to a
	// KID and a request fingerprint (keystore.Keys.ClaimIdempotency).
	ClaimIdempotency(ctx context.Context, scope, key string, id keystore.KeyID, fingerprint []byte) (keystore.KeyID, bool, error)
	// Adopt takes the store as it is, on an operator's word
	// (keystore.Keys.Adopt): it returns the store's identity.
	Adopt(ctx context.Context) (string, error)
}

// Keys is the key store the plane hands to operations (keystore.Keys).
type Keys = Writer

// Operation is one admin action: its audit and metric name, the permission
// it needs, and whether it writes (and so is audited as started before it
// changes anything).
type Operation struct {
	Name   string
	Perm   credentials.Permission
	Writes bool
}

// Handler serves one operation: it reads the request from the Call and
// returns the answer, or an error that the plane renders as a problem.
// Everything it does is audited by the plane; it never writes to the
// response itself.
type Handler func(c *Call) (Answer, error)

// Call is one admin request being served by an operation: the request, the
// credential that made it, and the only way to the key store.
type Call struct {
	ec    echo.Context
	p     *Plane
	op    Operation
	cred  credentials.Credential
	kids  []keystore.KeyID
	begun bool // Begin wrote the started record
	// beginFailed: Begin could not write the started record; the refusal
	// is its outcome and no further record is written.
	beginFailed bool
	// warning goes on the audit records (see Warn).
	warning string
}

// Context is the request's context.
func (c *Call) Context() context.Context { return c.ec.Request().Context() }

// Request is the HTTP request, for what the Call has no accessor for.
func (c *Call) Request() *http.Request { return c.ec.Request() }

// Param returns the path parameter name, percent-decoded (a KID in braces,
// or an asset ID, may arrive encoded). A value that is not a valid
// encoding is returned as it is.
func (c *Call) Param(name string) string {
	raw := c.ec.Param(name)
	if strings.IndexByte(raw, '%') >= 0 {
		if u, err := url.PathUnescape(raw); err == nil {
			return u
		}
	}
	return raw
}

// RawParam returns the path parameter name as it appears in the path.
func (c *Call) RawParam(name string) string { return c.ec.Param(name) }

// Query returns the first value of the query parameter name.
func (c *Call) Query(name string) string { return c.ec.QueryParam(name) }

// QueryFold returns the first non-empty value of the query parameter whose
// name is name in any case.
func (c *Call) QueryFold(name string) string {
	v, _ := httpedge.QueryFold(c.ec.QueryParams(), name)
	return v
}

// QueryParams returns every query parameter.
func (c *Call) QueryParams() url.Values { return c.ec.QueryParams() }

// Header returns the request's header name.
func (c *Call) Header(name string) string { return c.ec.Request().Header.Get(name) }

// RequestID is the request's ID (X-Request-ID).
func (c *Call) RequestID() string { return c.ec.Response().Header().Get(echo.HeaderXRequestID) }

// Credential is the credential that made the request.
func (c *Call) Credential() credentials.Credential { return c.cred }

// Keys returns the key store for reading.
func (c *Call) Keys() Reader { return c.p.keys }

// Name sets the keys the outcome record names (a read names what it read).
func (c *Call) Name(kids ...keystore.KeyID) { c.kids = kids }

// Warn notes that the operation does something it was asked to but that
// deserves attention (an import of weak keys): kind is a stable code (a
// metric label: keydelivery_admin_warnings_total{operation,warning}, n
// added), detail a sentence for the audit records that follow (the started
// record, when Warn comes before Begin, and the outcome). It never holds
// key material or a secret.
func (c *Call) Warn(kind string, n int, detail string) {
	c.warning = kind + ": " + detail
	c.p.metrics.warnings.WithLabelValues(c.op.Name, kind).Add(float64(n))
}

// Begin writes the started record of a write operation, naming kids, and
// returns the key store for writing. When the record cannot be written it
// returns an error (503 audit_unavailable) and the operation must not go on:
// nothing unaudited ever changes the store. Begin is for write operations
// only, once per request.
func (c *Call) Begin(kids ...keystore.KeyID) (Writer, error) {
	if !c.op.Writes || c.begun || c.beginFailed {
		return nil, fmt.Errorf("plane: %s: Begin on a read operation or twice", c.op.Name)
	}
	c.kids = kids
	if err := c.p.record(c, audit.Started); err != nil {
		c.beginFailed = true
		return nil, errAuditUnavailable
	}
	c.begun = true
	return c.p.keys, nil
}

// Body returns the request body, refusing (413) more than limit bytes.
func (c *Call) Body(limit int64) io.Reader {
	return http.MaxBytesReader(c.ec.Response(), c.ec.Request().Body, limit)
}

// MediaType is the request's media type (lower case, without parameters),
// "" when absent or malformed.
func (c *Call) MediaType() string {
	mt, _, err := mime.ParseMediaType(c.Header(echo.HeaderContentType))
	if err != nil {
		return ""
	}
	return mt
}

// ReadBody reads the whole body, at most limit bytes: more is 413
// body_too_large, a body cut off is 400 invalid_body.
func (c *Call) ReadBody(limit int64, tooLarge string) ([]byte, error) {
	// A body that declares its length is read into a buffer of that size:
	// io.ReadAll's doubling would hold up to three times the body at once.
	if n := c.ec.Request().ContentLength; n > 0 && n <= limit {
		b := make([]byte, n)
		if _, err := io.ReadFull(c.Body(limit), b); err != nil {
			return nil, Invalid("invalid_body", "the request body could not be read")
		}
		return b, nil
	}
	b, err := io.ReadAll(c.Body(limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Reason: ReasonBodyTooLarge, Detail: tooLarge}
		}
		return nil, Invalid("invalid_body", "the request body could not be read")
	}
	return b, nil
}

// DecodeJSON reads a JSON object body of at most limit bytes into v, a
// pointer to a struct, by exact member names (httpedge.DecodeJSON): an
// empty body is an empty object; a Content-Type other than JSON is 415; an
// unknown member is 400 unknown_field with a detail naming it and saying
// what the body holds (members); a member of the wrong type is 400
// invalid_<member>, explained by the member type's own error when it has
// one. No detail quotes a value.
func (c *Call) DecodeJSON(v any, limit int64, members string) error {
	if ct := c.Header(echo.HeaderContentType); ct != "" {
		if mt := c.MediaType(); mt != "application/json" && mt != "text/json" {
			return &RequestError{Status: http.StatusUnsupportedMediaType, Reason: "unsupported_media_type", Detail: "send the body as application/json"}
		}
	}
	b, err := c.ReadBody(limit, fmt.Sprintf("the request body is larger than %d bytes", limit))
	if err != nil {
		return err
	}
	return BodyError(httpedge.DecodeJSON(b, v), members)
}

// BodyError turns an httpedge.DecodeJSON error into the admin plane's
// answer (see Call.DecodeJSON); members says what the body holds.
func BodyError(err error, members string) error {
	var be *httpedge.BodyError
	if !errors.As(err, &be) {
		return err
	}
	var re *RequestError
	switch {
	case errors.As(err, &re):
		return re // the member's own decoder said it all
	case errors.Is(err, httpedge.ErrUnknownMember):
		return Invalid("unknown_field", "unknown field %q: %s", Truncate(be.Member, 32), members)
	case errors.Is(err, httpedge.ErrDuplicateMember):
		return Invalid("invalid_body", "field %q appears twice", Truncate(be.Member, 32))
	case errors.Is(err, httpedge.ErrMemberType) && be.Want != "":
		return Invalid("invalid_"+be.Member, "field %q must be %s", be.Member, be.Want)
	case errors.Is(err, httpedge.ErrMemberType):
		return Invalid("invalid_"+be.Member, "field %q has the wrong type: %s", be.Member, members)
	case errors.Is(err, httpedge.ErrBodyTrailing):
		return Invalid("invalid_body", "the body must hold exactly one JSON object")
	case errors.Is(err, httpedge.ErrBodySyntax) && be.Offset > 0:
		return Invalid("invalid_body", "the body is not valid JSON (at byte %d)", be.Offset)
	}
	return Invalid("invalid_body", "the body must be a JSON object")
}

// Truncate is how an answer quotes client input: at most n bytes of it
// (marking the cut), credentials redacted and unprintable characters
// replaced (httpedge.Quote).
func Truncate(s string, n int) string { return httpedge.Quote(s, n) }

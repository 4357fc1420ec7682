package plane

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/internal/ratelimit"
)

// opAuthenticate names, in the metrics, refusals that happen before the
// operation is known.
const opAuthenticate = "authenticate"

// Keys of request-scoped values in the echo context.
const (
	outcomeKey    = "kd.outcome"
	credentialKey = "kd.credential"
	operationKey  = "kd.operation"
)

// guardAPI checks the credential of every request under /api/ (and under
// the prefixes an API protected, see Protect), routed or not, before
// anything else: a credential in the URL (a parameter named like one, or any
// name or value shaped like a secret or a token, or starting with "Bearer":
// httpedge.QueryCredential) is refused before it is looked at (URLs end up
// in logs, histories and proxies); an address that spent its budget of
// failed authentications is refused (429) before its credential is looked
// at; and a request without a valid credential is 401, whatever its path,
// so an anonymous caller learns nothing about the API. The credential is
// "Authorization: Bearer <secret>"; under a prefix an API protected
// (SPEKE's /speke/) HTTP Basic too, with the credential's name as the user
// and its secret as the password (many encoders can only send Basic), both
// matching one credential. OPTIONS, which the API does not answer, is 405
// like any other method a path lacks.
func (p *Plane) guardAPI(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if g, _ := p.guarded(r.URL.Path); !g {
			return next(c)
		}
		if httpedge.QueryCredential(c.QueryParams()) {
			return errCredentialInURL
		}
		var addr ratelimit.Key
		if p.failures != nil {
			addr = ratelimit.AddressKey(c.RealIP())
			if ok, wait := p.failures.Ready(addr); !ok {
				p.metrics.limited.Inc()
				return &rateLimitError{wait: wait}
			}
		}
		if p.creds.Len() == 0 {
			// Nothing could match: say so, rather than that the
			// credential sent is wrong.
			p.metrics.operation(opAuthenticate, audit.Unauthorized)
			return &authError{status: http.StatusUnauthorized, reason: ReasonNoCredentials}
		}
		cr, reason := p.authenticate(r.Header.Get(echo.HeaderAuthorization), !isAPI(r.URL.Path))
		if reason != "" {
			return p.authFailed(c, addr, reason)
		}
		c.Set(credentialKey, cr)
		p.extendDeadlines(c)
		if r.Method == http.MethodOptions {
			if _, routed := c.Get(echo.ContextKeyHeaderAllow).(string); routed {
				return echo.ErrMethodNotAllowed
			}
		}
		return next(c)
	}
}

// failureAuditRate bounds the audit records of failed authentications, in
// all (each address has one a second at most).
var failureAuditRate = ratelimit.Limit{Rate: 10, Burst: 20}

// authFailed refuses a request without a valid credential (401): it spends
// one event of the address's budget, counts the failure, and audits it,
// paced (see Options.AuthFailures).
func (p *Plane) authFailed(c echo.Context, addr ratelimit.Key, reason string) error {
	p.metrics.operation(opAuthenticate, audit.Unauthorized)
	if p.failures != nil {
		p.failures.Charge(addr)
	}
	source := httpedge.Redact(c.RealIP())
	if ok, count := p.failureAudit.Note(ratelimit.AddressKey(source)); ok && p.audit != nil {
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		err := p.audit.Write(audit.Record{Credential: "-", Source: source, Operation: opAuthenticate,
			Result: audit.Unauthorized, RequestID: rid, Count: count})
		if err != nil {
			p.metrics.auditFailures.Inc()
			p.log.Error("audit record not written", "request_id", rid, "operation", opAuthenticate, "err", err)
		}
	}
	return &authError{status: http.StatusUnauthorized, reason: reason}
}

// extendDeadlines gives a request whose credential matched the time of an
// admin operation (Options.AuthenticatedTimeout) to send its body and get
// its answer. Only now: the body of a request is never read before its
// credential is checked, so until then the server's short timeouts hold.
func (p *Plane) extendDeadlines(c echo.Context) {
	if p.authTimeout <= 0 {
		return
	}
	rc := http.NewResponseController(c.Response())
	until := time.Now().Add(p.authTimeout)
	// A ResponseWriter without deadlines (a test recorder) keeps none.
	_ = rc.SetReadDeadline(until)
	_ = rc.SetWriteDeadline(until)
}

// authenticate finds the credential of an Authorization header, Bearer or,
// with allowBasic, Basic; reason says why there is none.
func (p *Plane) authenticate(h string, allowBasic bool) (credentials.Credential, string) {
	if secret, ok := bearer(h); ok {
		cr, ok := p.creds.Match(secret)
		if !ok {
			return credentials.Credential{}, ReasonInvalidCredential
		}
		return cr, ""
	}
	name, secret, ok := basic(h)
	if !ok || !allowBasic {
		return credentials.Credential{}, ReasonMissingCredential
	}
	cr, ok := p.creds.Match(secret)
	// The secret is checked first, in constant time; the name is not a
	// secret, but a wrong one must fail just the same.
	if !ok || subtle.ConstantTimeCompare([]byte(cr.Name), []byte(name)) != 1 {
		return credentials.Credential{}, ReasonInvalidCredential
	}
	return cr, ""
}

// bearer returns the secret of "Bearer <secret>" (scheme in any case).
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	s := strings.TrimSpace(h[len(scheme):])
	return s, s != ""
}

// basic returns the user and password of "Basic <base64(user:password)>"
// (RFC 7617; scheme in any case), both non-empty.
func basic(h string) (user, password string, ok bool) {
	const scheme = "basic "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(scheme):]))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(b), ":")
	return user, password, ok && user != "" && password != ""
}

// serve wraps an operation, chosen by sel: it checks the credential's role,
// runs the handler, audits the outcome exactly once, and only then writes the
// answer.
func (p *Plane) serve(sel func(*Call) (Operation, Handler)) echo.HandlerFunc {
	return func(ec echo.Context) error {
		cr, _ := ec.Get(credentialKey).(credentials.Credential)
		c := &Call{ec: ec, p: p, cred: cr}
		op, h := sel(c)
		c.op = op
		ec.Set(operationKey, op)
		if !cr.Role.Allows(op.Perm) {
			return p.conclude(c, Answer{}, &authError{status: http.StatusForbidden, reason: ReasonRole, op: op.Name, role: cr.Role, perm: op.Perm})
		}
		a, err := h(c)
		return p.conclude(c, a, err)
	}
}

// conclude audits the outcome err of the call's operation, counts it, and
// writes the answer a (or returns err for the error handler). When the
// outcome record cannot be written, a call that changed nothing (no Begin)
// and succeeded is answered with 503 instead of its result, so nothing is
// disclosed unaudited; a change already made keeps its answer, since its
// started record is in the log, and the loss is logged and counted.
func (p *Plane) conclude(c *Call, a Answer, err error) error {
	result := resultOf(err)
	if !c.beginFailed {
		if aerr := p.record(c, result); aerr != nil && err == nil && !c.begun {
			err, result = errAuditUnavailable, audit.Unavailable
		}
	}
	p.metrics.operation(c.op.Name, result)
	if err != nil {
		a.discard()
		return err
	}
	return a.write(c.ec)
}

// record writes one audit record of the call's operation.
func (p *Plane) record(c *Call, result audit.Result) error {
	r := audit.Record{
		Credential: c.cred.Name,
		Source:     httpedge.Redact(c.ec.RealIP()),
		Operation:  c.op.Name,
		Result:     result,
		RequestID:  c.RequestID(),
		KIDs:       make([]string, len(c.kids)),
		Warning:    c.warning,
	}
	for i, id := range c.kids {
		r.KIDs[i] = id.String()
	}
	err := p.audit.Write(r)
	if err != nil {
		p.metrics.auditFailures.Inc()
		p.log.Error("audit record not written", "request_id", r.RequestID, "operation", r.Operation, "result", string(result), "err", err)
	}
	return err
}

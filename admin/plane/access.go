package plane

import (
	"net/http"
	"strings"

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

// guardAPI checks the credential of every request under /api/, routed or
// not, before anything else: a credential in the URL (a parameter named like
// one, or any name or value shaped like a secret or a token, or starting
// with "Bearer": httpedge.QueryCredential) is refused before it is looked
// at (URLs end up in logs, histories and proxies), and a request
// without a valid "Authorization: Bearer <secret>" is 401, whatever its
// path, so an anonymous caller learns nothing about the API. OPTIONS, which
// the API does not answer, is 405 like any other method a path lacks.
func (p *Plane) guardAPI(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if !isAPI(r.URL.Path) {
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
		secret, ok := bearer(r.Header.Get(echo.HeaderAuthorization))
		if !ok {
			return p.authFailed(c, addr, ReasonMissingCredential)
		}
		cr, ok := p.creds.Match(secret)
		if !ok {
			return p.authFailed(c, addr, ReasonInvalidCredential)
		}
		c.Set(credentialKey, cr)
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

// bearer returns the secret of "Bearer <secret>" (scheme in any case).
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	s := strings.TrimSpace(h[len(scheme):])
	return s, s != ""
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

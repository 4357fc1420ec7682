package admin

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/internal/httpedge"

	"github.com/keydelivery/keydelivery/keystore"
)

// operation is one admin action: its audit and metric name, the permission
// it needs, and whether it changes the store (and so is audited before it is
// done).
type operation struct {
	name    string
	perm    permission
	mutates bool
}

var (
	opKeysCreate       = operation{name: "keys.create", perm: permWrite, mutates: true}
	opKeysGet          = operation{name: "keys.get", perm: permRead}
	opCertificatesList = operation{name: "token-certificates.list", perm: permRead}
	opKeysList         = operation{name: "keys.list", perm: permRead}
	opAssetKeysList    = operation{name: "assets.keys.list", perm: permRead}
	opKeysImport       = operation{name: "keys.import", perm: permWrite, mutates: true}
	opKeysExport       = operation{name: "keys.export", perm: permExport}
	opKeysDelete       = operation{name: "keys.delete", perm: permWrite, mutates: true}
	opKeysRestore      = operation{name: "keys.restore", perm: permWrite, mutates: true}
	opKeysPurge        = operation{name: "keys.purge", perm: permPurge, mutates: true}
	opKeysDeliveryURL  = operation{name: "keys.delivery-url", perm: permRead}
	opOpenAPI          = operation{name: "openapi.get", perm: permRead}

	// Key seeds are as sensitive as every key that can be derived from
	// them: only an admin creates one. Any role may read their metadata
	// (never the seed).
	opKeySeedsCreate = operation{name: "keyseeds.create", perm: permAdminOnly, mutates: true}
	opKeySeedsList   = operation{name: "keyseeds.list", perm: permRead}
	opKeySeedsGet    = operation{name: "keyseeds.get", perm: permRead}

	// The Azure Media Services v2 compatibility routes (ams.go).
	opAMSCreate          = operation{name: "ams.contentkeys.create", perm: permWrite, mutates: true}
	opAMSList            = operation{name: "ams.contentkeys.list", perm: permRead}
	opAMSGet             = operation{name: "ams.contentkeys.get", perm: permRead}
	opAMSAssetList       = operation{name: "ams.assets.contentkeys.list", perm: permRead}
	opAMSDelete          = operation{name: "ams.contentkeys.delete", perm: permWrite, mutates: true}
	opAMSDeliveryURL     = operation{name: "ams.contentkeys.delivery-url", perm: permRead}
	opAMSProtectionKeyID = operation{name: "ams.protection-key-id.get", perm: permRead}
	opAMSProtectionKey   = operation{name: "ams.protection-key.get", perm: permRead}

	operations = []operation{opKeysCreate, opKeysGet, opCertificatesList, opKeysList, opAssetKeysList,
		opKeysImport, opKeysExport, opKeysDelete, opKeysRestore, opKeysPurge, opKeysDeliveryURL, opOpenAPI,
		opKeySeedsCreate, opKeySeedsList, opKeySeedsGet,
		opAMSCreate, opAMSList, opAMSGet, opAMSAssetList, opAMSDelete, opAMSDeliveryURL,
		opAMSProtectionKeyID, opAMSProtectionKey}
)

// permAdminOnly is the permission only RoleAdmin holds: purge, and the
// creation of key seeds.
const permAdminOnly = permPurge

// opAuthenticate names refusals that happen before the operation is known.
const opAuthenticate = "authenticate"

// rejectQueryCredential refuses a request with a credential in the URL: URLs
// end up in logs, histories and proxies, so admin secrets travel only in the
// Authorization header. The request is refused before the value is looked
// at, so no credential is ever checked from a URL.
func rejectQueryCredential(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		for name := range c.Request().URL.Query() {
			if httpedge.CredentialParam(name) {
				return errTokenInQuery
			}
		}
		return next(c)
	}
}

// authenticate finds the credential that the Authorization header's bearer
// secret belongs to, or refuses with 401.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		secret, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			s.metrics.operation(opAuthenticate, resultUnauthorized)
			return &authError{status: http.StatusUnauthorized, reason: reasonMissingCredential}
		}
		cr, ok := s.creds.match(secret)
		if !ok {
			s.metrics.operation(opAuthenticate, resultUnauthorized)
			return &authError{status: http.StatusUnauthorized, reason: reasonInvalidCredential}
		}
		c.Set(credentialKey, cr)
		return next(c)
	}
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

// allow admits the request to op if the authenticated credential's role
// grants op's permission; a refusal is audited and answered with 403.
func (s *server) allow(op operation) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(operationKey, op)
			cr, _ := c.Get(credentialKey).(credential)
			if cr.role.permissions()&op.perm == 0 {
				return s.conclude(c, nil, &authError{status: http.StatusForbidden, reason: reasonRole}, false)
			}
			return next(c)
		}
	}
}

// record writes one audit record for the current request's operation.
func (s *server) record(c echo.Context, kids []keystore.KeyID, result string) error {
	cr, _ := c.Get(credentialKey).(credential)
	op, _ := c.Get(operationKey).(operation)
	r := auditRecord{
		Credential: cr.name,
		Source:     c.RealIP(),
		Operation:  op.name,
		Result:     result,
		RequestID:  c.Response().Header().Get(echo.HeaderXRequestID),
		KIDs:       make([]string, len(kids)),
	}
	for i, id := range kids {
		r.KIDs[i] = id.String()
	}
	err := s.audit.write(r)
	if err != nil {
		s.metrics.auditFailures.Inc()
		s.log.Error("audit record not written", "request_id", r.RequestID, "operation", op.name, "result", result, "err", err)
	}
	return err
}

// begin audits a mutating operation as started. It must succeed before
// anything is changed: if the record cannot be written the operation is
// refused with 503 and not done.
func (s *server) begin(c echo.Context, kids []keystore.KeyID) error {
	if err := s.record(c, kids, resultStarted); err != nil {
		op, _ := c.Get(operationKey).(operation)
		s.metrics.operation(op.name, resultUnavailable)
		return errAuditUnavailable
	}
	return nil
}

// conclude audits the outcome err of the current operation and returns the
// error to answer with. done says whether the operation already changed
// the store. When the record cannot be written, a read (or anything not yet
// done) that succeeded is answered with 503 instead of its result, so
// nothing is disclosed unaudited; a change already made keeps its answer,
// since its "started" record is in the log, and the loss is logged.
func (s *server) conclude(c echo.Context, kids []keystore.KeyID, err error, done bool) error {
	result := resultOf(err)
	if aerr := s.record(c, kids, result); aerr != nil && err == nil && !done {
		err, result = errAuditUnavailable, resultUnavailable
	}
	op, _ := c.Get(operationKey).(operation)
	s.metrics.operation(op.name, result)
	return err
}

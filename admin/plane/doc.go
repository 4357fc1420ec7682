// Package plane is the admin listener of keydelivery: one echo instance on
// which the admin APIs are mounted as siblings (the native API in package
// admin, the Azure Media Services v2 API in admin/amsapi, SPEKE in
// admin/speke), with what they
// share: the probes (/healthz, /readyz, /metrics), the admin credential
// check, the operation wrapper that authorises and audits every action, the
// one table from errors to problems and audit results, the request IDs, the
// metrics and the access log, and a small pre-router that lets an API
// rewrite its own URL spellings into ordinary routes before routing.
//
// # Operations
//
// Every route of an API is an Operation (a name for the audit log and the
// metrics, the credentials.Permission it needs, and whether it writes)
// served by a Handler. The plane wraps each one: it checks the credential's
// role, runs the handler, writes the outcome to the audit log exactly once,
// with the audit's own result word (audit.Result, decided from the error,
// not from an HTTP status), counts it, and only then writes the answer. A
// read whose outcome record cannot be written answers 503 instead of its
// result, so nothing is disclosed unaudited.
//
// A handler reaches the key store only through its Call: Keys gives the
// read methods; the write methods come only from Begin, which first writes
// the "started" record and refuses (503 audit_unavailable) when it cannot.
// So an operation that is not wrapped cannot reach the store, and a write
// cannot happen before its started record: the structure, not a protocol of
// hand-placed calls, keeps the audit log complete.
//
// # Trust boundary
//
// The admin plane listens on its own listener, on loopback or an internal
// network only. Everything under /api/ needs an admin credential,
// "Authorization: Bearer <secret>", checked against the hashes of a
// credentials file (package credentials); unknown paths under /api/ answer
// 401 to a caller without one, so an anonymous caller learns nothing about
// the API. An API may put another prefix behind the same check (Protect:
// SPEKE's /speke/), where HTTP Basic with the credential's name and secret
// is accepted too and refusals may be plain text; an API answers its own
// protocol's errors as they are with a TextError. A credential in the URL
// is refused before it is looked at. No request body is read before the
// credential has matched, and only then does a request get the admin
// plane's long deadlines (Options.AuthenticatedTimeout): a client without a
// credential is held to the server's short ones, so it cannot keep a
// connection by sending its body slowly.
// Answers never carry key material except where an operation exists to hand
// keys out (the export, with its own permission); audit records and log
// lines never hold a secret or key bytes.
//
// echo (github.com/labstack/echo/v4) is used here and in the API packages
// only; no echo type appears in this package's exported API.
package plane

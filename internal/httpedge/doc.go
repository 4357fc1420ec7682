// Package httpedge is the one place for the HTTP conventions both planes
// share, the delivery plane (package delivery) and the admin plane (package
// admin and its siblings): RFC 9457 problem bodies and how they are
// written, request IDs, the outcome a handler leaves for the access log,
// Cache-Control: no-store, Retry-After, case-insensitive query parameters,
// the access-log line with credentials redacted, and the strict decoding of
// request bodies (JSON members matched by exact name, unknown and duplicate
// members refused, canonical base64).
//
// It knows nothing of echo: the planes adapt their framework to it, so the
// conventions stay the same when the framework changes. Each plane keeps its
// own table from errors to problems (delivery/errors.go, admin/plane); what
// is shared here is the shape of the answer, not its meaning.
//
// Nothing here logs or echoes a credential or key material: RedactedURI
// removes token-shaped query values, and the body decoder's errors name a
// member, never quote a value.
package httpedge

// Package admin is the administrative HTTP plane of keydelivery: the API that
// operators, packagers and the kdctl client use to put content keys into the
// server and to look at them, plus the probes and metrics an orchestrator
// scrapes.
//
// Routes (the full contract is admin/openapi.json, served at
// GET /api/openapi.json and checked against these routes by a test):
//
//	GET    /healthz                      liveness, no credential
//	GET    /readyz                       runs every Options.Checks, no credential
//	GET    /metrics                      Options.Metrics, no credential
//	POST   /api/keys                     create one key (writer)
//	POST   /api/keys/import              import JSON or CPIX (writer); also /api/Import/ContentKeys
//	POST   /api/keys/export              CPIX 2.3 with the keys in the clear (exporter)
//	GET    /api/keys                     list, paged by cursor (reader)
//	GET    /api/keys/{kid}               one key's metadata (reader)
//	DELETE /api/keys/{kid}               soft delete (writer); ?purge=true destroys a deleted key (admin)
//	POST   /api/keys/{kid}/restore       undo a soft delete (writer)
//	GET    /api/keys/{kid}/delivery-url  the URL a player uses (reader)
//	GET    /api/assets/{assetId}/keys    an asset's keys (reader)
//	GET    /api/token-certificates       the trusted token-signing certificates (reader)
//	GET    /api/openapi.json             this API's OpenAPI document (reader)
//	POST   /api/keyseeds                 store a PlayReady key seed (admin)
//	GET    /api/keyseeds                 list key seeds, metadata only (reader)
//	GET    /api/keyseeds/{id}            one key seed's metadata (reader)
//
// Azure Media Services v2 compatibility (ams.go), in the AMS REST shapes
// (plain JSON, or the OData verbose {"d": ...} wrapper when the request
// asks for odata=verbose), also reachable under /API/:
//
//	POST   /api/ContentKeys                               create from EncryptedContentKey (writer)
//	GET    /api/ContentKeys                               list, $top/$skip (reader)
//	GET    /api/ContentKeys('ID')                         one key (reader)
//	DELETE /api/ContentKeys('ID')                         soft delete (writer)
//	POST   /api/ContentKeys('ID')/GetKeyDeliveryUrl       the URL a player uses (reader)
//	GET    /api/Assets('ASSETID')/ContentKeys             an asset's keys (reader)
//	GET    /api/GetProtectionKeyId?contentKeyType=N       the protection certificate's thumbprint (reader)
//	GET    /api/GetProtectionKey?ProtectionKeyId='T'      the protection certificate (reader)
//
// The OData key segments (ContentKeys('...'), Assets('...')) are matched by
// one-segment route parameters and parsed by the handlers, so they are
// accepted raw or percent-encoded; a one-segment path that is not such a
// segment answers as an unknown route.
//
// Every answer carries Cache-Control: no-store and an X-Request-ID. Every
// error is an RFC 9457 problem (application/problem+json) with a stable
// "code", a "reason" and the "request_id" that ties it to the server's log.
//
// # Trust boundary
//
// The admin plane listens on its own listener, on loopback or an internal
// network only, never on the public delivery listener. Everything under
// /api/ needs an admin credential, "Authorization: Bearer <secret>", checked
// against the SHA-256 hashes of a credentials file (see [Credentials]); the
// secret is accepted only in that header, never in the URL. A delivery token
// is never an admin credential and an admin credential never fetches a key on
// the delivery plane: the two are checked by different code against
// different material.
//
// Every admin action is written to the audit log (see [Audit]) with the
// credential's name, never its secret and never key bytes. A mutating action
// is recorded as "started" before it is done, and is refused with 503 if
// that record cannot be written: nothing unaudited ever changes the store.
// Answers never carry key material, except the export, which exists to
// hand keys to packagers and needs the exporter role. Key seeds, from which
// keys can be derived, are never answered at all, and only an admin stores
// one. The AMS routes never answer EncryptedContentKey either: the content
// key only travels inwards, encrypted to the server's RSA protection
// certificate (Options.ProtectionCert).
//
// # Dependencies
//
// echo (github.com/labstack/echo/v4) is used inside this package only; no
// echo type appears in its exported API, so replacing echo touches nothing
// outside it. admin imports keystore, auth (for certificate descriptions),
// metrics, cpix and ams (the AMS and PlayReady codecs), and never a
// concrete store.
package admin

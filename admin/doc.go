// Package admin is the native admin API of keydelivery: what operators and
// kdctl use to put content keys into the server and to look at them. It is
// one of the APIs mounted on the admin listener (package admin/plane), the
// siblings being the Azure Media Services v2 API (admin/amsapi).
//
// Routes (the full contract is admin/openapi.json, served at
// GET /api/openapi.json and checked against the routes by a test):
//
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
//	GET    /api/token-trust              every trusted token key and trust source (reader)
//	GET    /api/openapi.json             this API's OpenAPI document (reader)
//	POST   /api/keyseeds                 store a PlayReady key seed (admin)
//	GET    /api/keyseeds                 list key seeds, metadata only (reader)
//	GET    /api/keyseeds/{id}            one key seed's metadata (reader)
//
// Each route is a plane.Operation: the plane authenticates, authorises and
// audits it, and the operation reaches the key store only through its
// plane.Call. Request bodies are decoded one way, into structs by exact
// member names, unknown members refused (httpedge.DecodeJSON).
//
// Answers never carry key material, except the export, which exists to hand
// keys to packagers and needs the exporter role. Key seeds, from which keys
// can be derived, are never answered at all, and only an admin stores one.
//
// admin imports the plane, keystore, auth (for certificate descriptions),
// cpix and playready, and never a concrete store nor a sibling API.
package admin

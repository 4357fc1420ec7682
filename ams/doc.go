// Package ams holds the Azure Media Services (AMS) v2 compatibility
// primitives the admin plane needs: the PlayReady key-seed content-key
// derivation, the AMS ContentKey checksum, the RSA-OAEP (SHA-1) wrapping of
// EncryptedContentKey under the server's X.509 protection certificate, the
// protection certificate itself (thumbprint, dev-mode generation, loading),
// the AMS content key and key delivery type numbers, and the OData key
// segment syntax of URLs such as ContentKeys('nb:kid:UUID:...').
//
// The package is a dependency-free codec in the sense of the project's style
// guide: it imports the standard library only and no package of this module,
// so admin, cmd/keydelivery and cmd/kdctl can all use it without creating an
// import cycle. It speaks no HTTP: callers map its sentinel errors to status
// codes.
//
// Trust boundary: every input here (seeds, KIDs, EncryptedContentKey values,
// checksums, OData segments, PEM files) may come from an admin client or from
// disk. The functions validate lengths and syntax, never panic on malformed
// input, and never put key material (content keys, seeds, plaintexts,
// private keys) into error strings. Clearing of temporary buffers is
// best-effort only: Go gives no guarantee that copies do not survive in
// memory.
//
// Byte order: KIDs enter and leave this package in RFC 9562 (big-endian)
// order, the order of the textual UUID. The PlayReady and AMS algorithms are
// defined over .NET's Guid.ToByteArray(), whose first three fields are
// little-endian; GUIDBytes converts, and the functions that need it convert
// internally.
package ams

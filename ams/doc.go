// Package ams holds the Azure Media Services (AMS) v2 compatibility
// primitives the AMS API (admin/amsapi) needs: the RSA-OAEP (SHA-1) wrapping
// of EncryptedContentKey under the server's X.509 protection certificate,
// the protection certificate itself (thumbprint, dev-mode generation,
// loading), the key delivery type numbers of GetKeyDeliveryUrl, and the OData
// key segment syntax of URLs such as ContentKeys('nb:kid:UUID:...'). The
// content key type is keystore.ContentKeyType; the PlayReady algorithms AMS
// used (key seeds, the ContentKey checksum, the GUID byte order) are in
// package playready.
//
// The package is a dependency-free codec in the sense of the project's style
// guide: it imports the standard library only and no package of this module,
// so admin, cmd/keydelivery and cmd/kdctl can all use it without creating an
// import cycle. It speaks no HTTP: callers map its sentinel errors to status
// codes.
//
// Trust boundary: every input here (EncryptedContentKey values, OData
// segments, PEM files) may come from an admin client or from disk. The
// functions validate lengths and syntax, never panic on malformed input, and
// never put key material (content keys, plaintexts, private keys) into error
// strings. Clearing of temporary buffers is best-effort only: Go gives no
// guarantee that copies do not survive in memory.
package ams

// Package playready holds the PlayReady concepts the server needs, in one
// place: the byte order PlayReady (and .NET's Guid.ToByteArray) writes a KID
// in, the PlayReady key seed and the content keys derived from it, the key
// checksum (the CHECKSUM of a PlayReady header's KID, which Azure Media
// Services also used as its ContentKey Checksum), the reader of the KIDs
// in the PlayReady header (WRMHEADER) of a license challenge, and the writer
// of PlayReady headers (4.0.0.0 and 4.3.0.0) and PlayReady Objects that
// SPEKE answers carry.
//
// It is a dependency-free codec in the sense of the project's style guide:
// it imports the standard library only and no package of this module, so
// the admin plane, the delivery plane and kdctl can all use it.
//
// Byte order: KIDs enter and leave this package in RFC 9562 (big-endian)
// order, the order of the textual UUID and of CENC and CPIX. PlayReady
// defines its algorithms over the little-endian GUID layout; GUID converts,
// and the functions that need it convert internally.
//
// Trust boundary: seeds, KIDs, checksums and challenges may come from an
// admin client or a player. The functions validate lengths and syntax, never
// panic on malformed input, and never put key material (content keys, seeds)
// into error strings. Clearing temporary buffers is best effort only.
package playready

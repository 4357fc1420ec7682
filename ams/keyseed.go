package ams

import (
	"crypto/sha256"
	"fmt"
)

// KeySeedLen is the number of key-seed bytes the PlayReady algorithm uses.
// Longer seeds are truncated to this length; shorter ones are refused.
const KeySeedLen = 30

// GUIDBytes returns the 16 bytes of a UUID (given in RFC 9562 big-endian
// order) in .NET Guid.ToByteArray() order: the first three fields (4, 2 and 2
// bytes) are byte-reversed, the last 8 bytes are unchanged. The conversion is
// its own inverse.
//
// For example Guid("00112233-4455-6677-8899-aabbccddeeff").ToByteArray() is
// 33 22 11 00 55 44 77 66 88 99 aa bb cc dd ee ff.
func GUIDBytes(uuid [16]byte) [16]byte {
	g := uuid
	g[0], g[1], g[2], g[3] = uuid[3], uuid[2], uuid[1], uuid[0]
	g[4], g[5] = uuid[5], uuid[4]
	g[6], g[7] = uuid[7], uuid[6]
	return g
}

// KeyFromSeed derives a content key from a PlayReady key seed and a KID, by
// the "PlayReady Key Seed" algorithm Microsoft publishes
// (https://learn.microsoft.com/en-us/playready/specifications/playready-key-seed,
// GeneratePlayReadyContentKey), which Azure Media Services, the PlayReady
// Server SDK and the PlayReady test server use:
//
//	s = seed[0:30]; k = Guid.ToByteArray(kid)
//	A = SHA-256(s ‖ k)
//	B = SHA-256(s ‖ k ‖ s)
//	C = SHA-256(s ‖ k ‖ s ‖ k)
//	key[i] = A[i] ^ A[i+16] ^ B[i] ^ B[i+16] ^ C[i] ^ C[i+16], i = 0..15
//
// kid is in RFC 9562 byte order; KeyFromSeed converts it with GUIDBytes. The
// seed must be at least 30 bytes; only the first 30 are used, as the
// specification says. The error never contains seed bytes.
func KeyFromSeed(seed []byte, kid [16]byte) ([16]byte, error) {
	var key [16]byte
	if len(seed) < KeySeedLen {
		return key, fmt.Errorf("%w: got %d bytes", ErrKeySeedTooShort, len(seed))
	}
	g := GUIDBytes(kid)

	// buf = s ‖ k ‖ s ‖ k; A, B and C hash its prefixes of 46, 76 and 92 bytes.
	var buf [2 * (KeySeedLen + 16)]byte
	copy(buf[0:], seed[:KeySeedLen])
	copy(buf[KeySeedLen:], g[:])
	copy(buf[KeySeedLen+16:], seed[:KeySeedLen])
	copy(buf[2*KeySeedLen+16:], g[:])
	a := sha256.Sum256(buf[:KeySeedLen+16])
	b := sha256.Sum256(buf[:2*KeySeedLen+16])
	c := sha256.Sum256(buf[:])
	for i := range key {
		key[i] = a[i] ^ a[i+16] ^ b[i] ^ b[i+16] ^ c[i] ^ c[i+16]
	}
	// Best-effort: the buffers hold the seed and seed-derived values.
	clear(buf[:])
	clear(a[:])
	clear(b[:])
	clear(c[:])
	return key, nil
}

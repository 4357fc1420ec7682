package playready

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// SeedSize is the size of a PlayReady key seed: the number of seed bytes
// the key derivation uses. It is the one definition of the key seed's size
// in this module: the admin API, the key store's callers and kdctl use it.
const SeedSize = 30

// ErrSeedTooShort means a key seed shorter than SeedSize.
var ErrSeedTooShort = errors.New("playready: key seed shorter than 30 bytes")

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
// kid is in RFC 9562 byte order; KeyFromSeed converts it with GUID. The
// seed must be at least 30 bytes; only the first 30 are used, as the
// specification says. The error never contains seed bytes.
func KeyFromSeed(seed []byte, kid [16]byte) ([16]byte, error) {
	var key [16]byte
	if len(seed) < SeedSize {
		return key, fmt.Errorf("%w: got %d bytes", ErrSeedTooShort, len(seed))
	}
	g := GUID(kid)

	// buf = s ‖ k ‖ s ‖ k; A, B and C hash its prefixes of 46, 76 and 92 bytes.
	var buf [2 * (SeedSize + 16)]byte
	copy(buf[0:], seed[:SeedSize])
	copy(buf[SeedSize:], g[:])
	copy(buf[SeedSize+16:], seed[:SeedSize])
	copy(buf[2*SeedSize+16:], g[:])
	a := sha256.Sum256(buf[:SeedSize+16])
	b := sha256.Sum256(buf[:2*SeedSize+16])
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

// Package keystore defines content keys, their identifiers, the Store
// contract that every storage backend implements, and the sealing barrier
// that keeps key material encrypted at rest.
//
// Trust boundary: a Store is untrusted storage (like Vault's physical
// backends). Everything a Store persists about a key's material is sealed
// with AES-256-GCM under a key-encryption key (KEK) from a Keyring, with the
// KID and the KEK ID bound as additional data, so a value copied to another
// KID, or opened under the wrong KEK, fails instead of yielding garbage.
// Sealing lives here, not in a backend, so every backend shares it. Keys
// hands out material already unsealed; nothing in this package logs it.
//
// Backends live in subpackages (boltstore, redisstore) and are checked by
// one conformance suite (storetest). This package imports no package of
// ours and knows nothing of HTTP.
package keystore

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
// # Kinds of sealed values
//
// Three kinds of value are sealed: content keys, key seeds and KEK check
// values (sealKind in seal.go; a new kind is one more constant). A value's
// additional data binds its kind, the name of its slot (the KID, the key
// seed's ID, the KEK ID) and the KEK ID, each of fixed size or
// length-prefixed, after a prefix that names the format (format 2). So a
// value opens only from the slot it was sealed for: copied into another
// key, into a key seed, or into a KEK's check value, it fails with
// ErrSealed. A check value also opens only under the KEK it checks.
//
// Format 1, written before kinds were separated, bound a bare label: a
// KID, "keyseed/<ID>" or "kek-check/<KEK ID>". The check label of a
// 6-character KEK ID is 16 bytes, the bytes of some KID, so that KEK's check
// value, copied into that key, opened as the key. Format 1 values still
// open, so stores written in format 1 keep working, except in exactly that
// case (the rule, and why it is exact, are next to the code: confusedV1 in
// seal.go). Nothing writes format 1 any more. The rule stays for as long as
// a format 1 value may exist anywhere: storage is untrusted and can be
// handed an old value, or a backup, at any time.
//
// # Upgrading stored values
//
// A value is rewritten in format 2 when it is next written, where the Store
// contract has a write for it:
//
//   - A content key, on its next Delete or Restore (an Update of the
//     store). Keys opens the format 1 value as that key, seals the key again
//     under the same KEK, checks that the new value opens to the same key,
//     and writes it in the same atomic update. The Store contract allows
//     exactly this change of a stored Sealed value (CheckUpdate: format 1 to
//     format 2, the same KEK ID, the same length), and the conformance suite
//     checks it on every backend. A value that does not open as that key
//     (its KEK gone, tampered, or another kind's value) is written back as
//     it was, so an upgrade never makes a value open that did not.
//   - Key seeds and KEK check values are meta values, which the contract
//     makes create-only: they have no next write, and stay in format 1.
//     Rewriting them would take a new Store capability (compare-and-swap of
//     a meta value) and would make a server of an older version refuse to
//     start on the store (its check values would no longer open), for no
//     gain in safety: the format 1 rule is needed anyway, and seeds were
//     never confusable (their labels have another length and prefix).
//
// Format 2 is one-way: a server older than format 2 cannot open the values
// a newer one wrote (new keys and key seeds, upgraded keys, the check value
// of a KEK it had not seen).
//
// # What the store records besides keys
//
// Meta values, create-only: key seeds ("keyseed/<ID>"), one check value
// per KEK a server started with ("kek-check/<KEK ID>": VerifyKEKs and
// CheckKEKs refuse a KEK that differs from the recorded one, and a keyring
// lacking a recorded KEK that stored values are still sealed under), and
// the value index of keys imported without a KID ("keyhash/<KEK ID>/<HMAC>",
// valueindex.go: a keyed hash of the key bytes, never the bytes).
//
// Backends live in subpackages (boltstore, redisstore) and are checked by
// one conformance suite (storetest). This package imports no package of
// ours and knows nothing of HTTP.
package keystore

package keystore

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// A KEK is one key-encryption key of a Keyring.
type kek struct {
	id   string
	aead cipher.AEAD
	// index keys the hashes of content keys imported without a KID
	// (valueindex.go): derived from the KEK, so the index says nothing
	// without it.
	index []byte
}

// Keyring holds the key-encryption keys. The first one seals new values;
// every one opens values sealed under its ID, so a KEK can be rotated by
// putting a new line first and keeping the old ones. A Keyring is immutable
// and safe for concurrent use.
type Keyring struct {
	primary *kek
	byID    map[string]*kek
	rand    io.Reader
}

// LoadKeyring reads a KEK file (see ParseKeyring).
func LoadKeyring(path string, rand io.Reader) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: read kek file: %w", err)
	}
	kr, err := ParseKeyring(b, rand)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return kr, nil
}

// ParseKeyring parses KEK lines "ID BASE64": ID is 1 to 64 characters of
// letters, digits, '.', '_' or '-', BASE64 is 32 random bytes in standard
// base64. Blank lines and lines starting with '#' are ignored. The first KEK
// is the one new values are sealed with. rand supplies the nonces.
func ParseKeyring(text []byte, rand io.Reader) (*Keyring, error) {
	kr := &Keyring{byID: map[string]*kek{}, rand: rand}
	sc := bufio.NewScanner(bytes.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("keystore: kek line %d: want \"ID BASE64\"", line)
		}
		if !validKEKID(f[0]) {
			return nil, fmt.Errorf("keystore: kek line %d: id %q must be 1 to 64 letters, digits, '.', '_' or '-'", line, f[0])
		}
		raw, err := base64.StdEncoding.Strict().DecodeString(f[1])
		if err != nil || len(raw) != KEKSize {
			return nil, fmt.Errorf("keystore: kek line %d (%s): want %d bytes in standard base64", line, f[0], KEKSize)
		}
		if _, dup := kr.byID[f[0]]; dup {
			return nil, fmt.Errorf("keystore: kek line %d: id %q appears twice", line, f[0])
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("keystore: kek %s: %w", f[0], err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keystore: kek %s: %w", f[0], err)
		}
		k := &kek{id: f[0], aead: aead, index: indexKey(raw)}
		kr.byID[k.id] = k
		if kr.primary == nil {
			kr.primary = k
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keystore: kek file: %w", err)
	}
	if kr.primary == nil {
		return nil, errors.New("keystore: kek file holds no key (generate one with: kdctl kek generate)")
	}
	return kr, nil
}

func validKEKID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// GenerateKEKLine returns a new KEK file line "ID BASE64" with 32 bytes from rand.
func GenerateKEKLine(rand io.Reader, id string) (string, error) {
	if !validKEKID(id) {
		return "", fmt.Errorf("keystore: kek id %q must be 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	var b [KEKSize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("keystore: generate kek: %w", err)
	}
	return id + " " + base64.StdEncoding.EncodeToString(b[:]), nil
}

// PrimaryID returns the ID of the KEK that seals new values.
func (kr *Keyring) PrimaryID() string { return kr.primary.id }

// IDs returns the IDs of every KEK, primary first.
func (kr *Keyring) IDs() []string {
	ids := []string{kr.primary.id}
	for id := range kr.byID {
		if id != kr.primary.id {
			ids = append(ids, id)
		}
	}
	return ids
}

// The formats of a sealed value, its first byte. Both lay a value out the
// same way: version(1) | len(kekID)(1) | kekID | nonce(12) | ciphertext+tag.
// They differ in the additional data the ciphertext is bound to.
const (
	// sealV1 bound a bare label (a KID, "keyseed/<ID>", "kek-check/<KEK
	// ID>") and the KEK ID. Labels of different kinds can coincide, so
	// v1 values are still opened, under the rule of confusedV1, but never
	// written.
	sealV1 = 1
	// sealV2 binds the value's kind, its slot's name and the KEK ID, each
	// unambiguously (see appendAAD). Every value is written in v2.
	sealV2 = 2
)

// The additional data of a sealed value starts with its format's prefix.
// The two differ at byte 12, so no v1 additional data equals a v2 one, and
// a value whose version byte was changed fails to open.
const (
	aadPrefixV1 = "keydelivery/key/v1\x00"
	aadPrefixV2 = "keydelivery/sealed/v2\x00"
)

// A sealKind is what a sealed value is. A v2 value binds its kind in its
// additional data, so a value of one kind never opens as another, whatever
// the names. The numbers are part of the stored format: never reuse or
// renumber one. A new kind is one new constant (and a slot constructor
// below); it has no v1 form, so only v2 values of it ever open.
type sealKind byte

const (
	kindContentKey sealKind = 1 // name: the KID's 16 bytes
	kindKeySeed    sealKind = 2 // name: the key seed ID's 16 bytes
	kindKEKCheck   sealKind = 3 // name: the KEK ID; sealed under that KEK only
	kindBlob       sealKind = 4 // name: the SHA-256 of the blob's name (SealBlob)
)

// A slot is where a sealed value belongs: its kind, and the name of the one
// value of that kind it holds (at most 255 bytes: KIDs are 16, KEK IDs at
// most 64). Values are sealed to a slot and opened from one, never with a
// raw label, so no caller can build another kind's additional data.
type slot struct {
	kind sealKind
	name []byte
}

// keySlot is the slot of the content key id.
func keySlot(id *KeyID) slot { return slot{kindContentKey, id[:]} }

// keySeedSlot is the slot of the key seed id.
func keySeedSlot(id *KeyID) slot { return slot{kindKeySeed, id[:]} }

// kekCheckSlot is the slot of the check value of the KEK kekID.
func kekCheckSlot(kekID string) slot { return slot{kindKEKCheck, []byte(kekID)} }

// blobSlot is the slot of the opaque value named name.
func blobSlot(name string) slot {
	sum := sha256.Sum256([]byte(name))
	return slot{kindBlob, sum[:]}
}

// SealBlob seals an opaque value under the primary KEK, bound to its name
// and to its kind (a blob never opens as a key, nor under another name):
// for what the server keeps in a store that is not trusted with secrets
// besides keys, such as the ACME account and certificate keys shared
// through Redis.
func (kr *Keyring) SealBlob(name string, plaintext []byte) ([]byte, error) {
	return kr.seal(blobSlot(name), plaintext)
}

// OpenBlob opens a value SealBlob sealed for name, under any KEK of the
// keyring; errors wrap ErrSealed.
func (kr *Keyring) OpenBlob(name string, sealed []byte) ([]byte, error) {
	n := kr.plaintextSize(sealed)
	if n < 0 {
		return nil, fmt.Errorf("%w: not a sealed value under a kek of the kek file", ErrSealed)
	}
	out := make([]byte, n)
	if err := kr.open(blobSlot(name), sealed, out); err != nil {
		return nil, err
	}
	return out, nil
}

// aadLen is the length of the additional data of a value of format v in s,
// sealed under kekID, or -1 when s's kind has no such format.
func (s slot) aadLen(v byte, kekID string) int {
	if v == sealV2 {
		return len(aadPrefixV2) + 3 + len(s.name) + len(kekID)
	}
	n := len(aadPrefixV1) + 1 + len(kekID)
	switch s.kind {
	case kindContentKey:
		return n + len(s.name)
	case kindKeySeed:
		return n + len(keySeedPrefix) + 36
	case kindKEKCheck:
		return n + len(kekCheckPrefix) + len(s.name)
	}
	return -1
}

// appendAAD appends the additional data of a value of format v in s, sealed
// under kekID (s.aadLen(v, kekID) bytes).
//
// v2: aadPrefixV2 | kind(1) | len(name)(1) | name | len(kekID)(1) | kekID.
// After the prefix every part is one byte or length-prefixed, so the bytes
// decode to exactly one (kind, name, KEK ID): no two slots, and no two
// KEKs, share additional data.
//
// v1: aadPrefixV1 | label | 0 | kekID, with the label v1 gave s's kind.
func (s slot) appendAAD(b []byte, v byte, kekID string) []byte {
	if v == sealV2 {
		b = append(b, aadPrefixV2...)
		b = append(b, byte(s.kind), byte(len(s.name)))
		b = append(b, s.name...)
		b = append(b, byte(len(kekID)))
		return append(b, kekID...)
	}
	b = append(b, aadPrefixV1...)
	switch s.kind {
	case kindContentKey:
		b = append(b, s.name...)
	case kindKeySeed:
		b = append(b, keySeedPrefix...)
		b = KeyID(s.name).appendTo(b)
	case kindKEKCheck:
		b = append(b, kekCheckPrefix...)
		b = append(b, s.name...)
	}
	b = append(b, 0)
	return append(b, kekID...)
}

// confusedV1 reports whether a v1 value sealed under kekID, opened from s,
// may have been written for a slot of another kind: open refuses it.
//
// Security invariant: a v1 value opens only from a slot of the kind it was
// written for. The rule is exact. v1 additional data is aadPrefixV1 | label
// | 0 | kekID; a KEK ID holds no 0 byte, so the last 0 splits it, and it
// fixes (label, KEK ID). The v1 labels were: a content key's 16 KID bytes;
// a key seed's "keyseed/" and its 36-character UUID (44 bytes); a KEK check
// value's "kek-check/" and its KEK ID, always sealed under that same KEK. A
// seed label is never 16 bytes long and never starts with "kek-check/"
// (byte 2 differs), so seeds are never confused. A KID label equals a check
// label exactly when the KID's bytes are "kek-check/" and a 6-character KEK
// ID, and the value is sealed under that KEK: then the check value of that
// KEK would open as the key. That is the one case refused. (The reverse,
// such a key's v1 value copied into that KEK's check slot, does open there:
// it proves what the check checks, that this KEK opens values sealed under
// it; as a key it never opens.)
func (s slot) confusedV1(kekID string) bool {
	return s.kind == kindContentKey && len(s.name) == len(kekCheckPrefix)+len(kekID) &&
		string(s.name[:len(kekCheckPrefix)]) == kekCheckPrefix && string(s.name[len(kekCheckPrefix):]) == kekID
}

// seal encrypts plaintext under the primary KEK, in v2, for slot s.
func (kr *Keyring) seal(s slot, plaintext []byte) ([]byte, error) {
	return kr.sealWith(kr.primary, s, plaintext)
}

func (kr *Keyring) sealWith(k *kek, s slot, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := io.ReadFull(kr.rand, nonce); err != nil {
		return nil, fmt.Errorf("keystore: seal: nonce: %w", err)
	}
	return sealTo(make([]byte, 0, sealedSize(k, len(plaintext))), k, nonce, s, plaintext, nil), nil
}

// sealedSize is the length of plaintextLen bytes sealed under k.
func sealedSize(k *kek, plaintextLen int) int {
	return 2 + len(k.id) + k.aead.NonceSize() + plaintextLen + k.aead.Overhead()
}

// sealTo writes the sealed form into dst, which must be empty with
// sealedSize capacity: version, KEK ID length, KEK ID, nonce, then the
// ciphertext of plaintext with s's v2 additional data (built in adBuf,
// which it may reuse). The one writer of the format.
func sealTo(dst []byte, k *kek, nonce []byte, s slot, plaintext, adBuf []byte) []byte {
	dst = append(dst, sealV2, byte(len(k.id)))
	dst = append(dst, k.id...)
	dst = append(dst, nonce...)
	return k.aead.Seal(dst, dst[len(dst)-len(nonce):], plaintext, s.appendAAD(adBuf[:0], sealV2, k.id))
}

// sealParallelMin is the smallest batch sealKeys spreads over the CPUs.
const sealParallelMin = 2048

// sealKeys is seal for a batch: each key's value under the primary KEK,
// in its slot, in the same layout. The nonces are read from the
// keyring's random source in one read, in order, by the calling goroutine
// (the source need not be safe for concurrent use); a large batch is then
// sealed on every CPU but one. The results share one allocation. out[j] is the
// sealed value of keys[pos[j]]; a nil pos means every key in order.
func (kr *Keyring) sealKeys(keys []Key, pos []int) ([][]byte, error) {
	k := kr.primary
	ns := k.aead.NonceSize()
	size := sealedSize(k, len(Key{}.Value))
	n := len(keys)
	if pos != nil {
		n = len(pos)
	}
	at := func(j int) *Key {
		if pos == nil {
			return &keys[j]
		}
		return &keys[pos[j]]
	}
	nonces := make([]byte, n*ns)
	if _, err := io.ReadFull(kr.rand, nonces); err != nil {
		return nil, fmt.Errorf("keystore: seal: nonce: %w", err)
	}
	buf := make([]byte, n*size)
	out := make([][]byte, n)
	sealRange := func(lo, hi int) {
		ad := make([]byte, 0, 128) // reused: the additional data of every key fits
		for j := lo; j < hi; j++ {
			key := at(j)
			out[j] = sealTo(buf[j*size:j*size:(j+1)*size], k, nonces[j*ns:(j+1)*ns], keySlot(&key.ID), key.Value[:], ad)
		}
	}
	// Every processor but one: the delivery plane keeps one (see
	// importWorkers).
	workers := min(runtime.GOMAXPROCS(0)-1, n/(sealParallelMin/2))
	if workers <= 1 {
		sealRange(0, n)
		return out, nil
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		wg.Go(func() { sealRange(lo, min(lo+per, n)) })
	}
	wg.Wait()
	return out, nil
}

// open decrypts sealed, a value of either format that must belong in slot
// s, into out, which its plaintext must fill exactly. It allocates once (the
// additional data and the plaintext share a buffer, cleared before it
// returns), so that out can live on the caller's stack.
func (kr *Keyring) open(s slot, sealed, out []byte) error {
	if len(sealed) < 2 || (sealed[0] != sealV1 && sealed[0] != sealV2) {
		return fmt.Errorf("%w: unknown format", ErrSealed)
	}
	v, n := sealed[0], int(sealed[1])
	if len(sealed) < 2+n {
		return fmt.Errorf("%w: truncated", ErrSealed)
	}
	k, ok := kr.byID[string(sealed[2:2+n])]
	if !ok {
		return fmt.Errorf("%w: sealed under kek %q, which is not in the kek file", ErrSealed, string(sealed[2:2+n]))
	}
	// A check value proves its own KEK: sealed under another one (which
	// only a value of another kind can be), it proves nothing.
	if s.kind == kindKEKCheck && string(s.name) != k.id {
		return fmt.Errorf("%w: kek %q check value sealed under kek %q", ErrSealed, string(s.name), k.id)
	}
	if v == sealV1 && s.confusedV1(k.id) {
		return fmt.Errorf("%w: a format-1 value under kek %q in the key whose id is that kek's check label", ErrSealed, k.id)
	}
	rest := sealed[2+n:]
	ns := k.aead.NonceSize()
	adLen := s.aadLen(v, k.id)
	if adLen < 0 {
		return fmt.Errorf("%w: format %d has no values of this kind", ErrSealed, v)
	}
	if len(rest) < ns+k.aead.Overhead() {
		return fmt.Errorf("%w: truncated", ErrSealed)
	}
	buf := make([]byte, 0, adLen+len(rest)-ns-k.aead.Overhead())
	ad := s.appendAAD(buf, v, k.id)
	plain, err := k.aead.Open(ad[len(ad):], rest[:ns], rest[ns:], ad)
	if err != nil {
		return fmt.Errorf("%w: kek %q: authentication failed (wrong kek, tampered value, or value moved from another key or kind)", ErrSealed, k.id)
	}
	defer clear(plain)
	if len(plain) != len(out) {
		return fmt.Errorf("%w: sealed value has %d bytes, want %d", ErrSealed, len(plain), len(out))
	}
	copy(out, plain)
	return nil
}

// plaintextSize is the size of what sealed opens to (the same in both
// formats), or -1 when it is not a value under a KEK of the keyring.
func (kr *Keyring) plaintextSize(sealed []byte) int {
	if len(sealed) < 2 || len(sealed) < 2+int(sealed[1]) {
		return -1
	}
	n := int(sealed[1])
	k, ok := kr.byID[string(sealed[2:2+n])]
	if !ok {
		return -1
	}
	return max(len(sealed)-2-n-k.aead.NonceSize()-k.aead.Overhead(), -1)
}

// upgrade returns sealed, a value of an older format that opens from slot s
// to size bytes, sealed again in the current format under the same KEK,
// after checking that the new value opens to the same plaintext. ok is
// false when sealed needs no upgrade or cannot be upgraded (it does not
// open, or its KEK is gone): it is then left as it is.
func (kr *Keyring) upgrade(s slot, sealed []byte, size int) (_ []byte, ok bool) {
	if len(sealed) < 2 || sealed[0] != sealV1 || len(sealed) < 2+int(sealed[1]) {
		return nil, false
	}
	k := kr.byID[string(sealed[2:2+int(sealed[1])])]
	if k == nil {
		return nil, false
	}
	plain := make([]byte, 2*size)
	defer clear(plain)
	was, now := plain[:size], plain[size:]
	if kr.open(s, sealed, was) != nil {
		return nil, false
	}
	resealed, err := kr.sealWith(k, s, was)
	if err != nil || kr.open(s, resealed, now) != nil || subtle.ConstantTimeCompare(was, now) != 1 {
		return nil, false
	}
	return resealed, true
}

// sealUpgrade reports whether after is before sealed again in a newer
// format under the same KEK, as Keyring.upgrade makes it: the one change of
// a stored value CheckUpdate allows. The plaintext is not visible here;
// Keys checked that it is unchanged before writing.
func sealUpgrade(before, after []byte) bool {
	if len(before) < 2 || len(after) != len(before) || before[0] != sealV1 || after[0] != sealV2 {
		return false
	}
	n := 2 + int(before[1])
	return len(before) >= n && bytes.Equal(before[1:n], after[1:n])
}

// sealedKEKID returns the ID of the KEK a sealed value (of either format)
// names, read from its clear header, or "" when the value is too short to
// have one. It says nothing about whether the value opens.
func sealedKEKID(sealed []byte) string {
	if len(sealed) < 2 || len(sealed) < 2+int(sealed[1]) {
		return ""
	}
	return string(sealed[2 : 2+int(sealed[1])])
}

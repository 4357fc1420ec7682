package keystore

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
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

// sealVersion is the first byte of every sealed value.
const sealVersion = 1

// aadPrefix starts the additional data of every sealed key. The AAD binds a
// sealed value to its KID and KEK ID: moving it to another KID, or relabelling
// its KEK, makes it fail to open.
const aadPrefix = "keydelivery/key/v1\x00"

// A KEK is one key-encryption key of a Keyring.
type kek struct {
	id   string
	aead cipher.AEAD
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
		k := &kek{id: f[0], aead: aead}
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

// seal encrypts plaintext under the primary KEK, bound to label.
// Layout: version(1) | len(kekID)(1) | kekID | nonce(12) | ciphertext+tag.
func (kr *Keyring) seal(label, plaintext []byte) ([]byte, error) {
	return kr.sealWith(kr.primary, label, plaintext)
}

func (kr *Keyring) sealWith(k *kek, label, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := io.ReadFull(kr.rand, nonce); err != nil {
		return nil, fmt.Errorf("keystore: seal: nonce: %w", err)
	}
	return sealTo(make([]byte, 0, sealedSize(k, len(plaintext))), k, nonce, label, plaintext, nil), nil
}

// sealedSize is the length of plaintextLen bytes sealed under k.
func sealedSize(k *kek, plaintextLen int) int {
	return 2 + len(k.id) + k.aead.NonceSize() + plaintextLen + k.aead.Overhead()
}

// sealTo writes the sealed form into dst, which must be empty with
// sealedSize capacity: version, KEK ID length, KEK ID, nonce, then the
// ciphertext of plaintext with the label and KEK ID as additional data
// (built in adBuf, which it may reuse). The one writer of the format.
func sealTo(dst []byte, k *kek, nonce, label, plaintext, adBuf []byte) []byte {
	dst = append(dst, sealVersion, byte(len(k.id)))
	dst = append(dst, k.id...)
	dst = append(dst, nonce...)
	return k.aead.Seal(dst, dst[len(dst)-len(nonce):], plaintext, appendAAD(adBuf[:0], label, k.id))
}

// sealParallelMin is the smallest batch sealKeys spreads over the CPUs.
const sealParallelMin = 2048

// sealKeys is seal for a batch: each key's value under the primary KEK,
// bound to its ID, in the same layout. The nonces are read from the
// keyring's random source in one read, in order, by the calling goroutine
// (the source need not be safe for concurrent use); a large batch is then
// sealed on every CPU. The results share one allocation.
func (kr *Keyring) sealKeys(keys []Key) ([][]byte, error) {
	k := kr.primary
	ns := k.aead.NonceSize()
	size := sealedSize(k, len(Key{}.Value))
	nonces := make([]byte, len(keys)*ns)
	if _, err := io.ReadFull(kr.rand, nonces); err != nil {
		return nil, fmt.Errorf("keystore: seal: nonce: %w", err)
	}
	buf := make([]byte, len(keys)*size)
	out := make([][]byte, len(keys))
	sealRange := func(lo, hi int) {
		ad := make([]byte, 0, 64) // reused: the additional data of every key fits
		for i := lo; i < hi; i++ {
			out[i] = sealTo(buf[i*size:i*size:(i+1)*size], k, nonces[i*ns:(i+1)*ns], keys[i].ID[:], keys[i].Value[:], ad)
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(keys)/(sealParallelMin/2))
	if workers <= 1 {
		sealRange(0, len(keys))
		return out, nil
	}
	var wg sync.WaitGroup
	per := (len(keys) + workers - 1) / workers
	for lo := 0; lo < len(keys); lo += per {
		wg.Go(func() { sealRange(lo, min(lo+per, len(keys))) })
	}
	wg.Wait()
	return out, nil
}

// open decrypts what seal produced for the same label into dst (appending).
func (kr *Keyring) open(dst, label, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: unknown format", ErrSealed)
	}
	n := int(sealed[1])
	if len(sealed) < 2+n {
		return nil, fmt.Errorf("%w: truncated", ErrSealed)
	}
	id := string(sealed[2 : 2+n])
	k, ok := kr.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: sealed under kek %q, which is not in the kek file", ErrSealed, id)
	}
	rest := sealed[2+n:]
	ns := k.aead.NonceSize()
	if len(rest) < ns+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: truncated", ErrSealed)
	}
	out, err := k.aead.Open(dst, rest[:ns], rest[ns:], aad(label, id))
	if err != nil {
		return nil, fmt.Errorf("%w: kek %q: authentication failed (wrong kek, tampered value, or value moved from another key)", ErrSealed, id)
	}
	return out, nil
}

func aad(label []byte, kekID string) []byte {
	return appendAAD(make([]byte, 0, len(aadPrefix)+len(label)+1+len(kekID)), label, kekID)
}

func appendAAD(b, label []byte, kekID string) []byte {
	b = append(b, aadPrefix...)
	b = append(b, label...)
	b = append(b, 0)
	return append(b, kekID...)
}

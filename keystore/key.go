package keystore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// KeyID is a content key identifier (KID): a UUID, kept as its 16 bytes in
// RFC 9562 (big-endian) order, which is also the order CENC and CPIX use.
type KeyID [16]byte

// AMSKeyIDPrefix is how Azure Media Services v2 spelled a content key's Id:
// "nb:kid:UUID:" followed by the UUID. ParseKeyID accepts it; the AMS API
// writes it.
const AMSKeyIDPrefix = "nb:kid:UUID:"

// ErrInvalidKeyID is returned by ParseKeyID for anything that is not a KID
// in one of the accepted forms.
var ErrInvalidKeyID = errors.New("keystore: invalid key id")

// ParseKeyID parses a KID written as a UUID in canonical form (upper or lower
// case), in braces, as 32 hex digits without hyphens, or with the AMS
// "nb:kid:UUID:" prefix in front of any of those. Anything else is an error
// wrapping ErrInvalidKeyID.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	in := s
	if len(s) >= len(AMSKeyIDPrefix) && strings.EqualFold(s[:len(AMSKeyIDPrefix)], AMSKeyIDPrefix) {
		s = s[len(AMSKeyIDPrefix):]
	}
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	switch len(s) {
	case 32:
		if _, err := hex.Decode(id[:], []byte(s)); err != nil {
			return KeyID{}, invalidKeyID(in)
		}
		return id, nil
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return KeyID{}, invalidKeyID(in)
		}
		var buf [32]byte
		n := 0
		for i := 0; i < 36; i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				continue
			}
			buf[n] = s[i]
			n++
		}
		if _, err := hex.Decode(id[:], buf[:]); err != nil {
			return KeyID{}, invalidKeyID(in)
		}
		return id, nil
	}
	return KeyID{}, invalidKeyID(in)
}

// invalidKeyID quotes at most quoteKeyID bytes of s, printable ASCII only
// (anything else is '?'), so that the error, which may reach a log, cannot
// carry a credential or a long value pasted where a KID belongs.
func invalidKeyID(s string) error {
	const quoteKeyID = 16
	b := make([]byte, 0, quoteKeyID+3)
	for i := 0; i < len(s) && i < quoteKeyID; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	if len(s) > quoteKeyID {
		b = append(b, "..."...)
	}
	return fmt.Errorf("%w %q: want a UUID such as 0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f (braces, no hyphens and the nb:kid:UUID: prefix are accepted)", ErrInvalidKeyID, b)
}

// String returns the canonical form: lower-case, hyphenated.
func (id KeyID) String() string {
	var b [36]byte
	id.appendTo(b[:0])
	return string(b[:])
}

func (id KeyID) appendTo(b []byte) []byte {
	const digits = "0123456789abcdef"
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[c>>4], digits[c&0x0f])
	}
	return b
}

// AppendText implements encoding.TextAppender with the canonical form.
func (id KeyID) AppendText(b []byte) ([]byte, error) { return id.appendTo(b), nil }

// MarshalText implements encoding.TextMarshaler with the canonical form.
func (id KeyID) MarshalText() ([]byte, error) { return id.appendTo(make([]byte, 0, 36)), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseKeyID.
func (id *KeyID) UnmarshalText(b []byte) error {
	v, err := ParseKeyID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ContentKeyType is the Azure Media Services v2 content key type number: the
// ContentKeyType of the AMS ContentKey REST entity and of the AMS .NET SDK's
// ContentKeyType enum (Azure/azure-sdk-for-media-services,
// src/net/Client/ContentKeyType.cs). It is the one definition of the type in
// this module: the key records, the native admin API and the AMS API use it.
type ContentKeyType int

// The AMS v2 ContentKeyType values.
const (
	CommonEncryption        ContentKeyType = 0 // CENC (PlayReady, Widevine); the AMS default
	StorageEncryption       ContentKeyType = 1
	ConfigurationEncryption ContentKeyType = 2
	// URLEncryption is defined by AMS for its own internal use: it names a
	// type, but no key is ever stored with it (Valid is false).
	URLEncryption      ContentKeyType = 3
	EnvelopeEncryption ContentKeyType = 4 // AES-128 envelope (HLS)
)

var contentKeyTypeNames = map[ContentKeyType]string{
	CommonEncryption:        "CommonEncryption",
	StorageEncryption:       "StorageEncryption",
	ConfigurationEncryption: "ConfigurationEncryption",
	URLEncryption:           "UrlEncryption",
	EnvelopeEncryption:      "EnvelopeEncryption",
}

// Valid reports whether a key can be stored with type t: one of the AMS
// numbers other than URLEncryption.
func (t ContentKeyType) Valid() bool {
	_, ok := contentKeyTypeNames[t]
	return ok && t != URLEncryption
}

// Defined reports whether AMS defines t, URLEncryption included.
func (t ContentKeyType) Defined() bool { _, ok := contentKeyTypeNames[t]; return ok }

// String returns the AMS name of t ("EnvelopeEncryption"), or
// "ContentKeyType(n)" for a number AMS does not define.
func (t ContentKeyType) String() string {
	if n, ok := contentKeyTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("ContentKeyType(%d)", int(t))
}

// ParseContentKeyType accepts the number or the name (in any case) of a
// type a key can be stored with (see Valid).
func ParseContentKeyType(s string) (ContentKeyType, error) {
	for t, n := range contentKeyTypeNames {
		if t.Valid() && (strings.EqualFold(s, n) || s == fmt.Sprint(int(t))) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("keystore: unknown content key type %q (want 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption)", s)
}

// CreationMethod says how a key came to be, in the import API's numbering.
type CreationMethod int

// The creation methods.
const (
	CreatedRandom  CreationMethod = 0
	CreatedKeySeed CreationMethod = 1
	CreatedImport  CreationMethod = 2
)

// String returns the method's name.
func (m CreationMethod) String() string {
	switch m {
	case CreatedRandom:
		return "Random"
	case CreatedKeySeed:
		return "KeySeed"
	case CreatedImport:
		return "Import"
	}
	return fmt.Sprintf("CreationMethod(%d)", int(m))
}

// Key is a content key with its material in the clear. It exists only in
// memory; a Store holds it as a sealed Record.
type Key struct {
	ID        KeyID
	Value     [16]byte // the AES-128 content key
	IV        []byte   // nil, or 16 bytes
	Name      string
	Type      ContentKeyType
	Method    CreationMethod
	Created   time.Time
	Updated   time.Time
	DeletedAt time.Time // zero unless soft-deleted
	Assets    []string  // asset IDs the key belongs to
	// Period is the key period the key was made for (SPEKE key rotation),
	// nil when none; TrackType is the CPIX intendedTrackType it was made
	// for ("VIDEO", "SD", "STEREO_AUDIO", ...), "" when none. Both are set
	// at creation and never change.
	Period    *KeyPeriod
	TrackType string
	// AuthorizationPolicyID is the AMS ContentKey's AuthorizationPolicyId
	// ("" when none).
	AuthorizationPolicyID string
}

// KeyPeriod is a CPIX ContentKeyPeriod: its index, and the time it covers
// when the packager said (zero times when not).
type KeyPeriod struct {
	Index      uint64
	Start, End time.Time
}

// Equal reports whether p and q describe the same period (both nil, or the
// same index and times).
func (p *KeyPeriod) Equal(q *KeyPeriod) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Index == q.Index && p.Start.Equal(q.Start) && p.End.Equal(q.End)
}

// MaxTrackType is the longest track type, in bytes.
const MaxTrackType = 64

// ErrInvalidTrackType: a track type that is too long or not printable
// ASCII without spaces.
var ErrInvalidTrackType = errors.New("keystore: invalid track type")

// ValidateTrackType checks a track type: empty, or 1 to MaxTrackType bytes
// of printable ASCII other than space.
func ValidateTrackType(s string) error {
	if len(s) > MaxTrackType {
		return fmt.Errorf("%w: at most %d bytes", ErrInvalidTrackType, MaxTrackType)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("%w: only printable ASCII, no spaces", ErrInvalidTrackType)
		}
	}
	return nil
}

// WeakValue reports whether v is a weak key: one byte repeated (all zero,
// for example). Such a value is what a bug or a placeholder writes, not a
// key; the server never makes one (RandomValue) and imports one only with
// a warning.
func WeakValue(v *[16]byte) bool {
	for _, b := range v[1:] {
		if b != v[0] {
			return false
		}
	}
	return true
}

// RandomValue reads a key from rand, drawing again in the (2^-120) case
// that it is weak: the rule that no generated key is weak is kept
// explicitly, not left to chance.
func RandomValue(rand io.Reader) ([16]byte, error) {
	var v [16]byte
	for {
		if _, err := io.ReadFull(rand, v[:]); err != nil {
			return v, err
		}
		if !WeakValue(&v) {
			return v, nil
		}
	}
}

// Deleted reports whether the key is soft-deleted.
func (k *Key) Deleted() bool { return !k.DeletedAt.IsZero() }

package admin

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
)

// maxKeyBody caps the body of POST /api/keys.
const maxKeyBody = 64 << 10

// maxNameBytes caps a key's name.
const maxNameBytes = 256

// createBody is the body of POST /api/keys. Every member is optional.
type createBody struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Type      typeField `json:"type"`
	Key       string    `json:"key"`
	KeySeedID string    `json:"keySeedId"`
	KeySeed   string    `json:"keySeed"`
	IV        string    `json:"iv"`
	Assets    []string  `json:"assets"`
}

const createMembers = "the accepted fields are id, name, type, key, keySeedId, keySeed, iv, assets"

// typeField is the "type" member: an AMS content key type number (4) or
// name ("EnvelopeEncryption"), or either as a string; EnvelopeEncryption
// when absent, null or "".
type typeField struct {
	set bool
	t   keystore.ContentKeyType
}

var errBadType = plane.Invalid("invalid_type", "field \"type\" must be a content key type: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption (number or name)")

// UnmarshalJSON reads the member; its errors are the answer.
func (f *typeField) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "null" || s == `""` {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if len(s) < 2 || strings.ContainsAny(s[1:len(s)-1], `"\`) {
			return errBadType
		}
		s = s[1 : len(s)-1]
	}
	t, err := keystore.ParseContentKeyType(s)
	if err != nil {
		return errBadType
	}
	f.set, f.t = true, t
	return nil
}

// get is the type given, or EnvelopeEncryption.
func (f typeField) get() keystore.ContentKeyType {
	if !f.set {
		return keystore.EnvelopeEncryption
	}
	return f.t
}

// keyMetadata is how the API shows a key: never its material.
type keyMetadata struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Type           int        `json:"type"`
	TypeName       string     `json:"typeName"`
	CreationMethod string     `json:"creationMethod"`
	Created        time.Time  `json:"created"`
	Updated        time.Time  `json:"updated"`
	DeletedAt      *time.Time `json:"deletedAt,omitempty"`
	Assets         []string   `json:"assets,omitempty"`
	// Period and TrackType: what a packager made the key for (SPEKE).
	Period    *periodMetadata `json:"period,omitempty"`
	TrackType string          `json:"trackType,omitempty"`
}

// periodMetadata is a key's SPEKE key period.
type periodMetadata struct {
	Index uint64     `json:"index"`
	Start *time.Time `json:"start,omitempty"`
	End   *time.Time `json:"end,omitempty"`
}

func metadataOf(k *keystore.Key) keyMetadata {
	m := keyMetadata{
		ID:             k.ID.String(),
		Name:           k.Name,
		Type:           int(k.Type),
		TypeName:       k.Type.String(),
		CreationMethod: k.Method.String(),
		Created:        k.Created.UTC(),
		Updated:        k.Updated.UTC(),
		Assets:         k.Assets,
		TrackType:      k.TrackType,
	}
	if p := k.Period; p != nil {
		m.Period = &periodMetadata{Index: p.Index}
		if !p.Start.IsZero() {
			s := p.Start.UTC()
			m.Period.Start = &s
		}
		if !p.End.IsZero() {
			e := p.End.UTC()
			m.Period.End = &e
		}
	}
	if k.Deleted() {
		d := k.DeletedAt.UTC()
		m.DeletedAt = &d
	}
	return m
}

// createAnswer is the answer of POST /api/keys: the key's metadata, and
// "status":"unchanged" when the key was stored already as asked (200); a
// key created now (201) has no status member, as before.
type createAnswer struct {
	keyMetadata
	Status string `json:"status,omitempty"`
}

// statusUnchanged is the status of a create that found the key it asked
// for stored already.
const statusUnchanged = "unchanged"

// IdempotencyKeyHeader names the header that makes a create of a random
// key retry-safe.
const IdempotencyKeyHeader = "Idempotency-Key"

// reasonIdempotencyReused refuses an idempotency key sent before with a
// different request.
const reasonIdempotencyReused = "idempotency_key_reused"

// createKey serves POST /api/keys: it creates a key with a random value,
// imports the one given, or derives it from a key seed (stored, keySeedId,
// or inline, keySeed), and answers 201 with its metadata. A stored key is
// never overwritten. Every create is safe to
// send again:
//
//   - When the ID is taken by the key asked for (the same value, type, IV
//     and assets: a retried import or derivation), the answer is 200 with
//     "status":"unchanged". Any other stored key is 409: a real conflict.
//   - A random key is asked for again by the same request, which cannot
//     name the value: with an Idempotency-Key header the first attempt
//     binds the key to a KID in the store (for keystore.IdempotencyTTL),
//     and a retry with the same key and body answers that KID's key (200
//     unchanged, or 201 if the first attempt stopped before storing it).
//     The same key with another body is 422 idempotency_key_reused. The
//     header is ignored on creates that give or derive their value.
func (a *api) createKey(c *plane.Call) (plane.Answer, error) {
	k, fp, err := a.parseCreate(c)
	defer clear(k.Value[:]) // best effort: Go may have copied it
	if err != nil {
		return plane.Answer{}, err
	}
	idem := c.Header(IdempotencyKeyHeader)
	if k.Method != keystore.CreatedRandom {
		idem = ""
	}
	if len(idem) > keystore.MaxIdempotencyKey || strings.ContainsFunc(idem, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return plane.Answer{}, plane.Invalid("invalid_idempotency_key", "the Idempotency-Key header must be 1 to %d printable ASCII characters", keystore.MaxIdempotencyKey)
	}
	keys, err := c.Begin(k.ID)
	if err != nil {
		return plane.Answer{}, err
	}
	retry := false
	if idem != "" {
		id, first, err := keys.ClaimIdempotency(c.Context(), c.Credential().Name, idem, k.ID, fp)
		if errors.Is(err, keystore.ErrIdempotencyMismatch) {
			return plane.Answer{}, &plane.RequestError{Status: http.StatusUnprocessableEntity, Reason: reasonIdempotencyReused,
				Detail: "this Idempotency-Key was sent before with a different request: use a new key for a new request"}
		}
		if err != nil {
			return plane.Answer{}, plane.OnKey(k.ID, err)
		}
		if !first {
			retry, k.ID = true, id
			c.Name(id)
		}
	}
	stored, err := keys.Create(c.Context(), k)
	clear(stored.Value[:])
	if errors.Is(err, keystore.ErrSameKey) || (retry && errors.Is(err, keystore.ErrExists)) {
		// Stored already, as asked: by this request's earlier attempt.
		meta, merr := keys.Metadata(c.Context(), k.ID)
		if merr != nil {
			return plane.Answer{}, plane.OnKey(k.ID, merr)
		}
		return plane.JSON(http.StatusOK, createAnswer{metadataOf(&meta), statusUnchanged}).With("Location", "/api/keys/"+k.ID.String()), nil
	}
	if err != nil {
		return plane.Answer{}, plane.OnKey(k.ID, err)
	}
	return plane.JSON(http.StatusCreated, metadataOf(&stored)).With("Location", "/api/keys/"+stored.ID.String()), nil
}

// parseCreate reads and checks the body of POST /api/keys. At most one of
// key, keySeedId and keySeed is given; the KID is settled first, since a
// key seed derivation needs it. Error details never quote the key, the seed
// or the IV.
//
// fp is the request's fingerprint for an idempotency key: a digest of what
// a create of a random key asks for (the ID given, name, type, IV,
// assets), nothing secret.
func (a *api) parseCreate(c *plane.Call) (k keystore.Key, fp []byte, err error) {
	var b createBody
	defer func() { b.Key, b.KeySeed = "", "" }()
	if err := c.DecodeJSON(&b, maxKeyBody, createMembers); err != nil {
		return keystore.Key{}, nil, err
	}
	k, err = a.buildCreate(c, &b)
	if err != nil {
		return k, nil, err
	}
	return k, fingerprint(&b, k.Type), nil
}

// fingerprint is the digest of what a create of a random key asks for, for
// its idempotency key: the ID given (or none), name, type, IV and assets.
func fingerprint(b *createBody, typ keystore.ContentKeyType) []byte {
	h := sha256.New()
	for _, part := range append([]string{b.ID, b.Name, typ.String(), b.IV}, b.Assets...) {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return h.Sum(nil)
}

// buildCreate turns a create body into the key to create.
func (a *api) buildCreate(c *plane.Call, b *createBody) (keystore.Key, error) {
	var k keystore.Key
	var err error
	// KID: any form ParseKeyID accepts; a random UUIDv4 when absent.
	if b.ID == "" {
		if k.ID, err = newUUIDv4(a.rand); err != nil {
			return k, err
		}
	} else if k.ID, err = keystore.ParseKeyID(b.ID); err != nil {
		return k, err
	}
	k.Name = b.Name
	if err := checkName(k.Name); err != nil {
		return k, err
	}
	k.Type = b.Type.get()
	given := 0
	for _, v := range []string{b.Key, b.KeySeedID, b.KeySeed} {
		if v != "" {
			given++
		}
	}
	// Key: imported when given, derived from a key seed when one is named
	// or given, else random.
	switch {
	case given > 1:
		return k, plane.Invalid("conflicting_fields", "give at most one of \"key\", \"keySeedId\" and \"keySeed\"")
	case b.Key != "":
		if err := decode16(k.Value[:], "key", b.Key); err != nil {
			return k, err
		}
		if k.Value == ([16]byte{}) {
			return k, plane.Invalid("invalid_key", "an all-zero key is refused: it is not a key")
		}
		if keystore.WeakValue(&k.Value) {
			return k, plane.Invalid("invalid_key", "a key that is one byte repeated is refused: it is not a key (import it if you must, with a warning)")
		}
		k.Method = keystore.CreatedImport
	case b.KeySeedID != "" || b.KeySeed != "":
		if k.Value, err = keyFromSeed(c, k.ID, b.KeySeedID, b.KeySeed); err != nil {
			return k, err
		}
		if keystore.WeakValue(&k.Value) {
			// About 2^-120 for a random seed: a seed made to derive one.
			clear(k.Value[:])
			return k, plane.Invalid("invalid_key", "the key seed derives a weak key (one byte repeated) for this KID; use another seed or KID")
		}
		k.Method = keystore.CreatedKeySeed
	default:
		if k.Value, err = keystore.RandomValue(a.rand); err != nil {
			return k, fmt.Errorf("admin: generate key: %w", err)
		}
		k.Method = keystore.CreatedRandom
	}
	if b.IV != "" {
		k.IV = make([]byte, 16)
		if err := decode16(k.IV, "iv", b.IV); err != nil {
			return k, err
		}
	}
	k.Assets = b.Assets
	for _, as := range k.Assets {
		if err := keystore.ValidateAsset(as); err != nil {
			return k, err
		}
	}
	return k, nil
}

// decode16 decodes s, which must be exactly 16 bytes in canonical standard
// base64, into dst. Non-canonical spellings of the same bytes (stray
// padding bits, line breaks) are refused, so one key has one spelling.
func decode16(dst []byte, field, s string) error {
	if httpedge.DecodeBase64(dst, s) != nil {
		return plane.Invalid("invalid_"+field, "field %q must be exactly 16 bytes in canonical standard base64 (24 characters ending in \"==\")", field)
	}
	return nil
}

// checkName checks a key's name: at most maxNameBytes of UTF-8 text without
// control characters.
func checkName(name string) error {
	if len(name) > maxNameBytes {
		return plane.Invalid("invalid_name", "field \"name\" must be at most %d bytes", maxNameBytes)
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return plane.Invalid("invalid_name", "field \"name\" must be UTF-8 text without control characters")
	}
	return nil
}

// newUUIDv4 returns a random (version 4) UUID.
func newUUIDv4(rand io.Reader) (keystore.KeyID, error) {
	var id keystore.KeyID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("admin: generate key id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id, nil
}

// kidParam parses the {kid} path parameter, percent-encoded or not.
func kidParam(c *plane.Call) (keystore.KeyID, error) { return keystore.ParseKeyID(c.Param("kid")) }

// getKey serves GET /api/keys/{kid}: the key's metadata, deleted keys
// included (with deletedAt), never its material.
func (a *api) getKey(c *plane.Call) (plane.Answer, error) {
	id, err := kidParam(c)
	if err != nil {
		return plane.Answer{}, err
	}
	c.Name(id)
	k, err := c.Keys().Metadata(c.Context(), id)
	clear(k.Value[:])
	if err != nil {
		return plane.Answer{}, plane.OnKey(id, err)
	}
	return plane.JSON(http.StatusOK, metadataOf(&k)), nil
}

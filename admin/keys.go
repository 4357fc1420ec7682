package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/keystore"
)

// maxKeyBody caps the body of POST /api/keys.
const maxKeyBody = 64 << 10

// maxNameBytes caps a key's name.
const maxNameBytes = 256

// keyFields are the fields POST /api/keys accepts; any other is refused.
var keyFields = []string{"id", "name", "type", "key", "keySeedId", "keySeed", "iv", "assets"}

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
	}
	if k.Deleted() {
		d := k.DeletedAt.UTC()
		m.DeletedAt = &d
	}
	return m
}

// createKey serves POST /api/keys: it creates a key with a random value,
// imports the one given, or derives it from a key seed (stored, keySeedId,
// or inline, keySeed), and answers 201 with its metadata. A stored key is
// never overwritten: a taken ID is 409, whatever value is stored under it,
// so the answer says nothing about the stored value.
func (s *server) createKey(c echo.Context) error {
	k, err := s.parseCreate(c)
	if err != nil {
		clear(k.Value[:])
		return s.conclude(c, nil, err, false)
	}
	defer clear(k.Value[:]) // best effort: Go may have copied it
	kids := []keystore.KeyID{k.ID}
	if err := s.begin(c, kids); err != nil {
		return err
	}
	stored, err := s.keys.Create(c.Request().Context(), k)
	clear(stored.Value[:])
	if err != nil {
		err = &keyError{id: k.ID, err: err}
	}
	if err := s.conclude(c, kids, err, true); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/keys/"+stored.ID.String())
	return c.JSON(http.StatusCreated, metadataOf(&stored))
}

// parseCreate reads and checks the body of POST /api/keys. Every field is
// optional; a missing or empty one takes its default. At most one of key,
// keySeedId and keySeed is given; the KID is settled first, since a key
// seed derivation needs it. Error details never quote the key, the seed or
// the IV.
func (s *server) parseCreate(c echo.Context) (keystore.Key, error) {
	fields, err := readObject(c, maxKeyBody)
	if err != nil {
		return keystore.Key{}, err
	}
	for name := range fields {
		if !slices.Contains(keyFields, name) {
			return keystore.Key{}, badRequest("unknown_field", "unknown field %q: the accepted fields are %s", truncate(name, 64), strings.Join(keyFields, ", "))
		}
	}
	str := func(name string) (string, error) {
		var v string
		raw, ok := fields[name]
		if !ok {
			return "", nil
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", badRequest("invalid_"+name, "field %q must be a string", name)
		}
		return v, nil
	}
	var k keystore.Key
	// KID: any form ParseKeyID accepts; a random UUIDv4 when absent.
	id, err := str("id")
	if err != nil {
		return k, err
	}
	if id == "" {
		if k.ID, err = newUUIDv4(s.rand); err != nil {
			return k, err
		}
	} else if k.ID, err = keystore.ParseKeyID(id); err != nil {
		return k, err
	}
	if k.Name, err = str("name"); err != nil {
		return k, err
	}
	if err := checkName(k.Name); err != nil {
		return k, err
	}
	if k.Type, err = parseType(fields["type"]); err != nil {
		return k, err
	}
	// Key: imported when given, derived from a key seed when one is named
	// or given, else random.
	b64, err := str("key")
	if err != nil {
		return k, err
	}
	seedID, err := str("keySeedId")
	if err != nil {
		return k, err
	}
	inlineSeed, err := str("keySeed")
	if err != nil {
		return k, err
	}
	given := 0
	for _, v := range []string{b64, seedID, inlineSeed} {
		if v != "" {
			given++
		}
	}
	switch {
	case given > 1:
		return k, badRequest("conflicting_fields", "give at most one of \"key\", \"keySeedId\" and \"keySeed\"")
	case b64 != "":
		if err := decode16(k.Value[:], "key", b64); err != nil {
			return k, err
		}
		if k.Value == ([16]byte{}) {
			return k, badRequest("invalid_key", "an all-zero key is refused: it is not a key")
		}
		k.Method = keystore.CreatedImport
	case seedID != "" || inlineSeed != "":
		if k.Value, err = s.keyFromSeed(c.Request().Context(), k.ID, seedID, inlineSeed); err != nil {
			return k, err
		}
		k.Method = keystore.CreatedKeySeed
	default:
		if _, err := io.ReadFull(s.rand, k.Value[:]); err != nil {
			return k, fmt.Errorf("admin: generate key: %w", err)
		}
		k.Method = keystore.CreatedRandom
	}
	if b64, err = str("iv"); err != nil {
		return k, err
	}
	if b64 != "" {
		k.IV = make([]byte, 16)
		if err := decode16(k.IV, "iv", b64); err != nil {
			return k, err
		}
	}
	if raw, ok := fields["assets"]; ok && string(bytes.TrimSpace(raw)) != "null" {
		if err := json.Unmarshal(raw, &k.Assets); err != nil {
			return k, badRequest("invalid_assets", "field \"assets\" must be an array of asset IDs")
		}
		for _, a := range k.Assets {
			if err := keystore.ValidateAsset(a); err != nil {
				return k, err
			}
		}
	}
	return k, nil
}

// readObject reads a JSON object body of at most limit bytes into its
// members. An empty body is an empty object.
func readObject(c echo.Context, limit int64) (map[string]json.RawMessage, error) {
	r := c.Request()
	if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: "unsupported_media_type",
				detail: "send the body as application/json"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: "body_too_large",
				detail: fmt.Sprintf("the request body is larger than %d bytes", limit)}
		}
		return nil, badRequest("invalid_body", "the request body could not be read")
	}
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) == 0 {
		return fields, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		detail := "the body must be a JSON object"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			detail = fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset)
		}
		return nil, badRequest("invalid_body", "%s", detail)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("invalid_body", "the body must hold exactly one JSON object")
	}
	return fields, nil
}

// parseType reads "type": an AMS content key type number (4) or name
// ("EnvelopeEncryption"), or either as a string; EnvelopeEncryption when
// absent or null.
func parseType(raw json.RawMessage) (keystore.ContentKeyType, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return keystore.EnvelopeEncryption, nil
	}
	bad := badRequest("invalid_type", "field \"type\" must be a content key type: 0 CommonEncryption, 1 StorageEncryption, 2 ConfigurationEncryption or 4 EnvelopeEncryption (number or name)")
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, bad
		}
		if s == "" {
			return keystore.EnvelopeEncryption, nil
		}
		t, err := keystore.ParseContentKeyType(s)
		if err != nil {
			return 0, bad
		}
		return t, nil
	}
	var n int
	if json.Unmarshal(raw, &n) != nil || !keystore.ContentKeyType(n).Valid() {
		return 0, bad
	}
	return keystore.ContentKeyType(n), nil
}

// decode16 decodes s, which must be exactly 16 bytes in canonical standard
// base64, into dst. Non-canonical spellings of the same bytes (stray
// padding bits, line breaks) are refused, so one key has one spelling.
func decode16(dst []byte, field, s string) error {
	bad := badRequest("invalid_"+field, "field %q must be exactly 16 bytes in canonical standard base64 (24 characters ending in \"==\")", field)
	if len(s) != base64.StdEncoding.EncodedLen(16) {
		return bad
	}
	var buf [18]byte
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	if err != nil || n != 16 || base64.StdEncoding.EncodeToString(buf[:n]) != s {
		clear(buf[:])
		return bad
	}
	copy(dst, buf[:16])
	clear(buf[:])
	return nil
}

func checkName(name string) error {
	if len(name) > maxNameBytes {
		return badRequest("invalid_name", "field \"name\" must be at most %d bytes", maxNameBytes)
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return badRequest("invalid_name", "field \"name\" must be UTF-8 text without control characters")
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// getKey serves GET /api/keys/{kid}: the key's metadata, deleted keys
// included (with deletedAt), never its material.
func (s *server) getKey(c echo.Context) error {
	id, err := kidParam(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	k, err := s.keys.Metadata(c.Request().Context(), id)
	clear(k.Value[:])
	if err != nil {
		err = &keyError{id: id, err: err}
	}
	if err := s.conclude(c, []keystore.KeyID{id}, err, false); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, metadataOf(&k))
}

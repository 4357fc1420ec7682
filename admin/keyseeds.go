package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// keySeedFields are the fields POST /api/keyseeds accepts.
var keySeedFields = []string{"id", "name", "seed"}

// keySeedMetadata is how the API shows a key seed: never the seed itself.
type keySeedMetadata struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

func keySeedMetadataOf(s *keystore.KeySeed) keySeedMetadata {
	return keySeedMetadata{ID: s.ID.String(), Name: s.Name, Created: s.Created.UTC()}
}

// createKeySeed serves POST /api/keyseeds (role admin): it stores a
// PlayReady key seed, given or random, sealed like a key, and answers 201
// with its metadata. The seed never appears in an answer, a log line or an
// audit record; a taken ID is 409 and the stored seed is untouched.
func (s *server) createKeySeed(c echo.Context) error {
	seed, err := s.parseKeySeed(c)
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	defer clear(seed.Seed) // best effort: Go may have copied it
	ids := []keystore.KeyID{seed.ID}
	if err := s.begin(c, ids); err != nil {
		return err
	}
	stored, err := s.keys.CreateKeySeed(c.Request().Context(), seed)
	clear(stored.Seed)
	if errors.Is(err, keystore.ErrExists) {
		err = &requestError{status: http.StatusConflict, reason: reasonExists,
			detail: "a key seed with ID " + seed.ID.String() + " is already stored; a stored seed is never overwritten"}
	}
	if err := s.conclude(c, ids, err, true); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/keyseeds/"+stored.ID.String())
	return c.JSON(http.StatusCreated, keySeedMetadataOf(&stored))
}

// parseKeySeed reads the body of POST /api/keyseeds: "id" (a KID form;
// random UUIDv4 when absent), "name", "seed" (standard base64 of 30 bytes;
// random when absent).
func (s *server) parseKeySeed(c echo.Context) (keystore.KeySeed, error) {
	var seed keystore.KeySeed
	fields, err := readObject(c, maxKeyBody)
	if err != nil {
		return seed, err
	}
	for name := range fields {
		if !slices.Contains(keySeedFields, name) {
			return seed, badRequest("unknown_field", "unknown field %q: the accepted fields are %s", truncate(name, 64), strings.Join(keySeedFields, ", "))
		}
	}
	id, err := stringField(fields, "id")
	if err != nil {
		return seed, err
	}
	if id == "" {
		if seed.ID, err = newUUIDv4(s.rand); err != nil {
			return seed, err
		}
	} else if seed.ID, err = keystore.ParseKeyID(id); err != nil {
		return seed, err
	}
	if seed.Name, err = stringField(fields, "name"); err != nil {
		return seed, err
	}
	if err := checkName(seed.Name); err != nil {
		return seed, err
	}
	b64, err := stringField(fields, "seed")
	if err != nil {
		return seed, err
	}
	if b64 == "" {
		seed.Seed = make([]byte, playready.SeedSize)
		if _, err := io.ReadFull(s.rand, seed.Seed); err != nil {
			return seed, fmt.Errorf("admin: generate key seed: %w", err)
		}
		return seed, nil
	}
	if seed.Seed, err = decodeKeySeed("seed", b64); err != nil {
		return seed, err
	}
	return seed, nil
}

// stringField reads a string member of a JSON object; absent or null is "".
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", badRequest("invalid_"+name, "field %q must be a string", name)
	}
	return v, nil
}

// isNull reports whether a JSON value is null.
func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// decodeKeySeed decodes a key seed: exactly 30 bytes in canonical standard
// base64 (40 characters). Non-canonical spellings and an all-zero seed are
// refused. The error never quotes the value.
func decodeKeySeed(field, b64 string) ([]byte, error) {
	bad := badRequest("invalid_"+field, "field %q must be exactly %d bytes in canonical standard base64 (%d characters)",
		field, playready.SeedSize, base64.StdEncoding.EncodedLen(playready.SeedSize))
	if len(b64) != base64.StdEncoding.EncodedLen(playready.SeedSize) {
		return nil, bad
	}
	buf := make([]byte, playready.SeedSize+2)
	n, err := base64.StdEncoding.Strict().Decode(buf, []byte(b64))
	if err != nil || n != playready.SeedSize || base64.StdEncoding.EncodeToString(buf[:n]) != b64 {
		clear(buf)
		return nil, bad
	}
	seed := buf[:n]
	if !slices.ContainsFunc(seed, func(b byte) bool { return b != 0 }) {
		return nil, badRequest("invalid_"+field, "an all-zero key seed is refused: it is not a secret")
	}
	return seed, nil
}

// keyFromSeed derives the content key of kid from a stored key seed
// (keySeedID) or an inline one (inline, never stored), by the PlayReady key
// seed algorithm. An unknown stored seed is 400 unknown_key_seed: the route
// exists, the reference in the body does not.
func (s *server) keyFromSeed(ctx context.Context, kid keystore.KeyID, keySeedID, inline string) ([16]byte, error) {
	var seed []byte
	if keySeedID != "" {
		id, err := keystore.ParseKeyID(keySeedID)
		if err != nil {
			return [16]byte{}, badRequest("invalid_keySeedId", "field \"keySeedId\" must be the ID of a stored key seed (a UUID, see GET /api/keyseeds)")
		}
		stored, err := s.keys.KeySeed(ctx, id)
		if errors.Is(err, keystore.ErrNotFound) {
			return [16]byte{}, badRequest(reasonUnknownKeySeed, "no key seed with ID %s is stored (create one with POST /api/keyseeds)", id)
		}
		if err != nil {
			return [16]byte{}, err
		}
		seed = stored.Seed
	} else {
		var err error
		if seed, err = decodeKeySeed("keySeed", inline); err != nil {
			return [16]byte{}, err
		}
	}
	defer clear(seed)
	key, err := playready.KeyFromSeed(seed, kid)
	if err != nil {
		// Unreachable: stored and inline seeds are playready.SeedSize bytes.
		return [16]byte{}, fmt.Errorf("admin: derive key %s: %w", kid, err)
	}
	return key, nil
}

// listKeySeeds serves GET /api/keyseeds: the metadata of every stored key
// seed, never a seed.
func (s *server) listKeySeeds(c echo.Context) error {
	seeds, err := s.keys.KeySeeds(c.Request().Context())
	if err := s.conclude(c, nil, err, false); err != nil {
		return err
	}
	out := struct {
		KeySeeds []keySeedMetadata `json:"keySeeds"`
	}{KeySeeds: make([]keySeedMetadata, len(seeds))}
	for i := range seeds {
		clear(seeds[i].Seed)
		out.KeySeeds[i] = keySeedMetadataOf(&seeds[i])
	}
	return c.JSON(http.StatusOK, out)
}

// getKeySeed serves GET /api/keyseeds/{id}: one key seed's metadata.
func (s *server) getKeySeed(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return s.conclude(c, nil, err, false)
	}
	seed, err := s.keys.KeySeed(c.Request().Context(), id)
	clear(seed.Seed)
	seed.Seed = nil
	if errors.Is(err, keystore.ErrNotFound) {
		err = &requestError{status: http.StatusNotFound, reason: reasonUnknownKeySeed, detail: "no key seed with this ID is stored"}
	}
	if err := s.conclude(c, []keystore.KeyID{id}, err, false); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, keySeedMetadataOf(&seed))
}

package admin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// reasonUnknownKeySeed refuses a reference to a key seed that is not stored.
const reasonUnknownKeySeed = "unknown_key_seed"

// keySeedBody is the body of POST /api/keyseeds.
type keySeedBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Seed string `json:"seed"`
}

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
// audit record; a taken ID is 409 and the stored seed is untouched, unless
// it holds the seed given (a retried create): 200, "status":"unchanged".
func (a *api) createKeySeed(c *plane.Call) (plane.Answer, error) {
	seed, err := a.parseKeySeed(c)
	defer clear(seed.Seed) // best effort: Go may have copied it
	if err != nil {
		return plane.Answer{}, err
	}
	keys, err := c.Begin(seed.ID)
	if err != nil {
		return plane.Answer{}, err
	}
	stored, err := keys.CreateKeySeed(c.Context(), seed)
	clear(stored.Seed)
	if errors.Is(err, keystore.ErrSameKey) {
		// The same seed under the ID: a retried create.
		meta, err := keys.KeySeed(c.Context(), seed.ID)
		clear(meta.Seed)
		if err != nil {
			return plane.Answer{}, err
		}
		return plane.JSON(http.StatusOK, keySeedAnswer{keySeedMetadataOf(&meta), statusUnchanged}).With("Location", "/api/keyseeds/"+seed.ID.String()), nil
	}
	if errors.Is(err, keystore.ErrExists) {
		err = &plane.RequestError{Status: http.StatusConflict, Reason: plane.ReasonExists,
			Detail: "a key seed with ID " + seed.ID.String() + " is already stored; a stored seed is never overwritten"}
	}
	if err != nil {
		return plane.Answer{}, err
	}
	return plane.JSON(http.StatusCreated, keySeedMetadataOf(&stored)).With("Location", "/api/keyseeds/"+stored.ID.String()), nil
}

// keySeedAnswer is the answer of POST /api/keyseeds that found the same
// seed stored under the ID already: the metadata and "status":"unchanged"
// (200).
type keySeedAnswer struct {
	keySeedMetadata
	Status string `json:"status"`
}

// parseKeySeed reads the body of POST /api/keyseeds: "id" (a KID form;
// random UUIDv4 when absent), "name", "seed" (standard base64 of
// playready.SeedSize bytes; random when absent).
func (a *api) parseKeySeed(c *plane.Call) (keystore.KeySeed, error) {
	var seed keystore.KeySeed
	var b keySeedBody
	defer func() { b.Seed = "" }()
	if err := c.DecodeJSON(&b, maxKeyBody, "the accepted fields are id, name, seed"); err != nil {
		return seed, err
	}
	var err error
	if b.ID == "" {
		if seed.ID, err = newUUIDv4(a.rand); err != nil {
			return seed, err
		}
	} else if seed.ID, err = keystore.ParseKeyID(b.ID); err != nil {
		return seed, err
	}
	seed.Name = b.Name
	if err := checkName(seed.Name); err != nil {
		return seed, err
	}
	if b.Seed == "" {
		seed.Seed = make([]byte, playready.SeedSize)
		if _, err := io.ReadFull(a.rand, seed.Seed); err != nil {
			return seed, fmt.Errorf("admin: generate key seed: %w", err)
		}
		return seed, nil
	}
	if seed.Seed, err = decodeKeySeed("seed", b.Seed); err != nil {
		return seed, err
	}
	return seed, nil
}

// decodeKeySeed decodes a key seed: exactly playready.SeedSize bytes in
// canonical standard base64. Non-canonical spellings and an all-zero seed
// are refused. The error never quotes the value.
func decodeKeySeed(field, b64 string) ([]byte, error) {
	seed := make([]byte, playready.SeedSize)
	if httpedge.DecodeBase64(seed, b64) != nil {
		return nil, plane.Invalid("invalid_"+field, "field %q must be exactly %d bytes in canonical standard base64 (%d characters)",
			field, playready.SeedSize, (playready.SeedSize+2)/3*4)
	}
	if !slices.ContainsFunc(seed, func(b byte) bool { return b != 0 }) {
		return nil, plane.Invalid("invalid_"+field, "an all-zero key seed is refused: it is not a secret")
	}
	return seed, nil
}

// keyFromSeed derives the content key of kid from a stored key seed
// (keySeedID, read from the store) or an inline one (inline, never stored),
// by the PlayReady key seed algorithm. An unknown stored seed is 400
// unknown_key_seed: the route exists, the reference in the body does not.
func keyFromSeed(c *plane.Call, kid keystore.KeyID, keySeedID, inline string) ([16]byte, error) {
	var seed []byte
	if keySeedID != "" {
		id, err := keystore.ParseKeyID(keySeedID)
		if err != nil {
			return [16]byte{}, plane.Invalid("invalid_keySeedId", "field \"keySeedId\" must be the ID of a stored key seed (a UUID, see GET /api/keyseeds)")
		}
		stored, err := c.Keys().KeySeed(c.Context(), id)
		if errors.Is(err, keystore.ErrNotFound) {
			return [16]byte{}, plane.Invalid(reasonUnknownKeySeed, "no key seed with ID %s is stored (create one with POST /api/keyseeds)", id)
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
		// A stored seed of another size: not one this server stored.
		return [16]byte{}, fmt.Errorf("admin: derive key %s: %w", kid, err)
	}
	return key, nil
}

// listKeySeeds serves GET /api/keyseeds: the metadata of every stored key
// seed, never a seed.
func (a *api) listKeySeeds(c *plane.Call) (plane.Answer, error) {
	seeds, err := c.Keys().KeySeeds(c.Context())
	if err != nil {
		return plane.Answer{}, err
	}
	out := struct {
		KeySeeds []keySeedMetadata `json:"keySeeds"`
	}{KeySeeds: make([]keySeedMetadata, len(seeds))}
	for i := range seeds {
		clear(seeds[i].Seed)
		out.KeySeeds[i] = keySeedMetadataOf(&seeds[i])
	}
	return plane.JSON(http.StatusOK, out), nil
}

// getKeySeed serves GET /api/keyseeds/{id}: one key seed's metadata.
func (a *api) getKeySeed(c *plane.Call) (plane.Answer, error) {
	id, err := keystore.ParseKeyID(c.Param("id"))
	if err != nil {
		return plane.Answer{}, err
	}
	c.Name(id)
	seed, err := c.Keys().KeySeed(c.Context(), id)
	clear(seed.Seed)
	seed.Seed = nil
	if errors.Is(err, keystore.ErrNotFound) {
		err = &plane.RequestError{Status: http.StatusNotFound, Reason: reasonUnknownKeySeed, Detail: "no key seed with this ID is stored"}
	}
	if err != nil {
		return plane.Answer{}, err
	}
	return plane.JSON(http.StatusOK, keySeedMetadataOf(&seed)), nil
}

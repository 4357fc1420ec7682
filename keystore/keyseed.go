package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// KeySeedSize is the size of a PlayReady key seed.
const KeySeedSize = 30

// KeySeed is a PlayReady key seed: keys are derived from it and a KID. Like
// a content key it is stored sealed and handed out only unsealed in memory.
type KeySeed struct {
	ID      KeyID
	Seed    []byte // KeySeedSize bytes; nil in metadata
	Name    string
	Created time.Time
}

const keySeedPrefix = "keyseed/"

type keySeedJSON struct {
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"`
}

// CreateKeySeed seals and stores a key seed. When seed.Seed is nil, a random
// one is generated. A stored seed is never overwritten: ErrExists.
func (k *Keys) CreateKeySeed(ctx context.Context, seed KeySeed) (KeySeed, error) {
	if seed.Seed == nil {
		if k.rand == nil {
			return KeySeed{}, errors.New("keystore: key seed: no value and no random source")
		}
		seed.Seed = make([]byte, KeySeedSize)
		if _, err := io.ReadFull(k.rand, seed.Seed); err != nil {
			return KeySeed{}, fmt.Errorf("keystore: key seed: generate: %w", err)
		}
	}
	if len(seed.Seed) != KeySeedSize {
		return KeySeed{}, fmt.Errorf("keystore: key seed %s: must be %d bytes, got %d", seed.ID, KeySeedSize, len(seed.Seed))
	}
	name := keySeedPrefix + seed.ID.String()
	sealed, err := k.ring.seal(keySeedSlot(&seed.ID), seed.Seed)
	if err != nil {
		return KeySeed{}, err
	}
	seed.Created = k.now().UTC()
	b, err := json.Marshal(keySeedJSON{Name: seed.Name, Created: seed.Created, Sealed: sealed})
	if err != nil {
		return KeySeed{}, err
	}
	err = k.call(ctx, opCreateMeta, func(ctx context.Context) error { return k.store.CreateMeta(ctx, name, b) })
	if err != nil {
		return KeySeed{}, fmt.Errorf("keystore: key seed %s: %w", seed.ID, err)
	}
	return seed, nil
}

// KeySeed returns the key seed id, unsealed, or ErrNotFound.
func (k *Keys) KeySeed(ctx context.Context, id KeyID) (KeySeed, error) {
	name := keySeedPrefix + id.String()
	var b []byte
	err := k.call(ctx, opGetMeta, func(ctx context.Context) (err error) {
		b, err = k.store.GetMeta(ctx, name)
		return err
	})
	if err != nil {
		return KeySeed{}, fmt.Errorf("keystore: key seed %s: %w", id, err)
	}
	var j keySeedJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return KeySeed{}, fmt.Errorf("keystore: key seed %s: decode: %w", id, err)
	}
	seed := make([]byte, KeySeedSize)
	if err := k.ring.open(keySeedSlot(&id), j.Sealed, seed); err != nil {
		return KeySeed{}, fmt.Errorf("keystore: key seed %s: %w", id, err)
	}
	return KeySeed{ID: id, Seed: seed, Name: j.Name, Created: j.Created}, nil
}

// KeySeeds lists the stored key seeds, metadata only (Seed is nil).
func (k *Keys) KeySeeds(ctx context.Context) ([]KeySeed, error) {
	var names []string
	err := k.call(ctx, opListMeta, func(ctx context.Context) (err error) {
		names, err = k.store.ListMeta(ctx, keySeedPrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]KeySeed, 0, len(names))
	for _, n := range names {
		id, err := ParseKeyID(strings.TrimPrefix(n, keySeedPrefix))
		if err != nil {
			continue
		}
		s, err := k.KeySeed(ctx, id)
		if err != nil {
			return nil, err
		}
		clear(s.Seed)
		s.Seed = nil
		out = append(out, s)
	}
	return out, nil
}

package keystore

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxKeySeed is the largest key seed Keys stores, in bytes.
const MaxKeySeed = 64

// KeySeed is a PlayReady key seed: keys are derived from it and a KID. Like
// a content key it is stored sealed and handed out only unsealed in memory.
// Its size and the derivation are PlayReady's (package playready); to Keys a
// seed is a secret of 1 to MaxKeySeed bytes.
type KeySeed struct {
	ID      KeyID
	Seed    []byte // nil in metadata
	Name    string
	Created time.Time
}

const keySeedPrefix = "keyseed/"

type keySeedJSON struct {
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"`
}

// CreateKeySeed seals and stores a key seed, which the caller generated or
// was given. A stored seed is never overwritten: ErrExists.
//
// When the same seed is stored under the ID already (a retried create), the
// error wraps ErrSameKey as well.
func (k *Keys) CreateKeySeed(ctx context.Context, seed KeySeed) (KeySeed, error) {
	if err := k.writable(); err != nil {
		return KeySeed{}, err
	}
	if len(seed.Seed) == 0 || len(seed.Seed) > MaxKeySeed {
		return KeySeed{}, fmt.Errorf("keystore: key seed %s: must be 1 to %d bytes, got %d", seed.ID, MaxKeySeed, len(seed.Seed))
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
	if errors.Is(err, ErrExists) {
		// The seed asked for is stored already (a retried create): say so.
		if stored, rerr := k.KeySeed(ctx, seed.ID); rerr == nil {
			same := subtle.ConstantTimeCompare(stored.Seed, seed.Seed) == 1
			clear(stored.Seed)
			if same {
				return KeySeed{}, fmt.Errorf("keystore: key seed %s: %w: %w", seed.ID, ErrExists, ErrSameKey)
			}
		}
	}
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
	// A seed's size is its own (1 to MaxKeySeed bytes): read it from the
	// sealed value; open checks the value whatever it says.
	seed := make([]byte, min(max(k.ring.plaintextSize(j.Sealed), 0), MaxKeySeed))
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

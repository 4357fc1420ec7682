package keystore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"
)

// DefaultTimeout bounds every store call when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Options configures Keys. Zero values take the documented defaults.
type Options struct {
	// Timeout bounds each store call (default DefaultTimeout). A call that
	// runs out of time fails with ErrUnavailable, never with ErrNotFound.
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand supplies generated key material (default: none; Create then
	// requires the caller to set Key.Value). Use crypto/rand.Reader.
	Rand io.Reader
}

// Keys is the barrier between callers and a Store: it seals key material on
// the way in, opens it on the way out, and puts a deadline on every call.
// It is safe for concurrent use.
type Keys struct {
	store   Store
	ring    *Keyring
	timeout time.Duration
	now     func() time.Time
	rand    io.Reader
}

// NewKeys returns a Keys over store, sealing with ring.
func NewKeys(store Store, ring *Keyring, o Options) *Keys {
	k := &Keys{store: store, ring: ring, timeout: o.Timeout, now: o.Now, rand: o.Rand}
	if k.timeout <= 0 {
		k.timeout = DefaultTimeout
	}
	if k.now == nil {
		k.now = time.Now
	}
	return k
}

// call runs f with the store deadline and turns a missed deadline into
// ErrUnavailable, so a slow store never looks like a missing key.
func (k *Keys) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	err := f(ctx)
	if err != nil && !errors.Is(err, ErrUnavailable) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// record reads the stored record of id within the store deadline.
func (k *Keys) record(ctx context.Context, id KeyID) (r Record, err error) {
	err = k.call(ctx, func(ctx context.Context) error {
		r, err = k.store.Get(ctx, id)
		return err
	})
	return r, err
}

// Get returns the key stored under id with its material unsealed. A
// soft-deleted key is ErrNotFound: it is no longer delivered.
func (k *Keys) Get(ctx context.Context, id KeyID) (Key, error) {
	r, err := k.record(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if !r.DeletedAt.IsZero() {
		return Key{}, fmt.Errorf("%w: %s is deleted", ErrNotFound, id)
	}
	return k.open(id, r)
}

// open unseals r as the key asked for under id. The value is opened with
// the requested id as additional data, never the id the record claims, so
// a record copied whole into another key's slot fails to open.
func (k *Keys) open(id KeyID, r Record) (Key, error) {
	if r.ID != id {
		return Key{}, fmt.Errorf("keystore: key %s: %w: the record stored there is for %s", id, ErrSealed, r.ID)
	}
	key := metadata(r)
	v, err := k.ring.open(key.Value[:0], id[:], r.Sealed)
	if err != nil {
		return Key{}, fmt.Errorf("keystore: key %s: %w", r.ID, err)
	}
	if len(v) != len(key.Value) {
		return Key{}, fmt.Errorf("keystore: key %s: %w: sealed value has %d bytes", r.ID, ErrSealed, len(v))
	}
	return key, nil
}

// Create seals and stores key. When key.Value is all zero and Options.Rand
// is set, a random value is generated (and Method is CreatedRandom). Created
// and Updated are set to now. If the ID is taken, Create returns ErrExists
// and the stored key is untouched; when the stored value is the same as
// key.Value, the error also wraps ErrSameKey, so an import can report an
// idempotent repeat.
func (k *Keys) Create(ctx context.Context, key Key) (Key, error) {
	if key.IV != nil && len(key.IV) != 16 {
		return Key{}, fmt.Errorf("keystore: key %s: iv must be 16 bytes, got %d", key.ID, len(key.IV))
	}
	if key.Value == ([16]byte{}) {
		if k.rand == nil {
			return Key{}, fmt.Errorf("keystore: key %s: no key value and no random source", key.ID)
		}
		if _, err := io.ReadFull(k.rand, key.Value[:]); err != nil {
			return Key{}, fmt.Errorf("keystore: key %s: generate: %w", key.ID, err)
		}
		key.Method = CreatedRandom
	}
	now := k.now().UTC()
	key.Created, key.Updated, key.DeletedAt = now, now, time.Time{}
	sealed, err := k.ring.seal(key.ID[:], key.Value[:])
	if err != nil {
		return Key{}, err
	}
	r := Record{ID: key.ID, Sealed: sealed, IV: key.IV, Name: key.Name, Type: key.Type,
		Method: key.Method, Created: now, Updated: now}
	err = k.call(ctx, func(ctx context.Context) error { return k.store.Create(ctx, r) })
	if errors.Is(err, ErrExists) {
		return Key{}, k.existsError(ctx, key)
	}
	if err != nil {
		return Key{}, err
	}
	return key, nil
}

// ErrSameKey is wrapped (with ErrExists) by Create when the stored key has
// the same value as the one offered.
var ErrSameKey = errors.New("keystore: same key already stored")

func (k *Keys) existsError(ctx context.Context, key Key) error {
	r, err := k.record(ctx, key.ID)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrExists, key.ID)
	}
	stored, err := k.open(key.ID, r)
	if err == nil && subtle.ConstantTimeCompare(stored.Value[:], key.Value[:]) == 1 {
		return fmt.Errorf("%w: %w: %s", ErrExists, ErrSameKey, key.ID)
	}
	return fmt.Errorf("%w: %s holds a different key", ErrExists, key.ID)
}

// kekCheckPrefix names the meta entries that prove which KEK a store was
// written with.
const kekCheckPrefix = "kek-check/"

// CheckKEKs verifies every KEK of the keyring against the store: for a KEK
// ID the store has seen before, the check value written then must open
// (otherwise the file holds a different key under that ID, and CheckKEKs
// refuses rather than serve garbage); for a new ID a check value is written.
func (k *Keys) CheckKEKs(ctx context.Context) error {
	for _, id := range k.ring.IDs() {
		if err := k.checkKEK(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keys) checkKEK(ctx context.Context, id string) error {
	name := kekCheckPrefix + id
	label := []byte(name)
	for attempt := 0; attempt < 2; attempt++ {
		var v []byte
		err := k.call(ctx, func(ctx context.Context) (err error) {
			v, err = k.store.GetMeta(ctx, name)
			return err
		})
		switch {
		case err == nil:
			if _, err := k.ring.open(nil, label, v); err != nil {
				return fmt.Errorf("keystore: kek %q is not the key-encryption key this store was written with: refusing to start (restore the right kek file): %w", id, err)
			}
			return nil
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("keystore: check kek %q: %w", id, err)
		}
		var probe [16]byte
		if k.rand != nil {
			_, _ = io.ReadFull(k.rand, probe[:])
		}
		sealed, err := k.ring.sealWith(k.ring.byID[id], label, probe[:])
		if err != nil {
			return err
		}
		err = k.call(ctx, func(ctx context.Context) error { return k.store.CreateMeta(ctx, name, sealed) })
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrExists) {
			return fmt.Errorf("keystore: record kek %q: %w", id, err)
		}
		// Another instance wrote it first: read it back and check it.
	}
	return fmt.Errorf("keystore: check kek %q: check value keeps changing", id)
}

// Ping reports whether the store answers within the deadline.
func (k *Keys) Ping(ctx context.Context) error {
	return k.call(ctx, k.store.Ping)
}

// Metadata returns what is stored about id without its material (Value is
// zero), soft-deleted keys included, or ErrNotFound.
func (k *Keys) Metadata(ctx context.Context, id KeyID) (Key, error) {
	r, err := k.record(ctx, id)
	if err != nil {
		return Key{}, err
	}
	return metadata(r), nil
}

func metadata(r Record) Key {
	return Key{ID: r.ID, IV: r.IV, Name: r.Name, Type: r.Type, Method: r.Method,
		Created: r.Created, Updated: r.Updated, DeletedAt: r.DeletedAt}
}

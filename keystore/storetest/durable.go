package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

// runDurable runs the checks of the capabilities that make writes
// retry-safe and a lost store noticed.
func runDurable(t *testing.T, h Harness) {
	t.Run("Expiring", func(t *testing.T) { testExpiring(t, h) })
	t.Run("IdempotencyKeys", func(t *testing.T) { testIdempotency(t, h) })
	t.Run("SameKeyAgain", func(t *testing.T) { testSameKeyAgain(t, h) })
	t.Run("StoreMarker", func(t *testing.T) { testStoreMarker(t, h) })
	t.Run("StoreLost", func(t *testing.T) { testStoreLost(t, h) })
}

func expiring(t *testing.T, s keystore.Store) keystore.Expiring {
	t.Helper()
	ex, ok := s.(keystore.Expiring)
	if !ok {
		t.Fatalf("%T does not implement keystore.Expiring", s)
	}
	return ex
}

// testExpiring: a value is stored once (a second create is ErrExists and
// leaves it), is none of the meta values, and is gone after its time, when
// the name can be created again.
func testExpiring(t *testing.T, h Harness) {
	s := newStore(t, h)
	ex := expiring(t, s)
	if _, err := ex.GetExpiring(ctx(t), "idem/a"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("GetExpiring(absent) = %v, want ErrNotFound", err)
	}
	if err := ex.CreateExpiring(ctx(t), "idem/a", []byte("first"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := ex.CreateExpiring(ctx(t), "idem/a", []byte("second"), time.Hour); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("second CreateExpiring = %v, want ErrExists", err)
	}
	if v, err := ex.GetExpiring(ctx(t), "idem/a"); err != nil || string(v) != "first" {
		t.Fatalf("GetExpiring = %q, %v; want the first value", v, err)
	}
	if _, err := s.GetMeta(ctx(t), "idem/a"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("GetMeta sees an expiring value: %v", err)
	}
	if names, err := s.ListMeta(ctx(t), "idem/"); err != nil || len(names) != 0 {
		t.Fatalf("ListMeta lists expiring values: %v %v", names, err)
	}
	// A value of a millisecond is gone soon; the name is free again.
	if err := ex.CreateExpiring(ctx(t), "idem/short", []byte("x"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waittest.For(t, "the expiring value to expire", func() bool {
		_, err := ex.GetExpiring(ctx(t), "idem/short")
		return errors.Is(err, keystore.ErrNotFound)
	})
	if err := ex.CreateExpiring(ctx(t), "idem/short", []byte("again"), time.Hour); err != nil {
		t.Fatalf("CreateExpiring after expiry: %v", err)
	}
	if v, err := ex.GetExpiring(ctx(t), "idem/short"); err != nil || string(v) != "again" {
		t.Fatalf("GetExpiring after re-create = %q, %v", v, err)
	}
}

// testIdempotency: the first claim of a key binds it; a retry of the same
// request gets the first KID; another request under the same key is
// refused; another caller's key of the same text is its own.
func testIdempotency(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := openedKeys(t, s, NewKeyring(t, "k1"))
	a, b := RandomID(t), RandomID(t)
	got, first, err := keys.ClaimIdempotency(ctx(t), "writer", "req-1", a, []byte("fp1"))
	if err != nil || !first || got != a {
		t.Fatalf("first claim = %s %v %v", got, first, err)
	}
	got, first, err = keys.ClaimIdempotency(ctx(t), "writer", "req-1", b, []byte("fp1"))
	if err != nil || first || got != a {
		t.Fatalf("retry = %s %v %v; want the first KID %s", got, first, err, a)
	}
	if _, _, err := keys.ClaimIdempotency(ctx(t), "writer", "req-1", b, []byte("fp2")); !errors.Is(err, keystore.ErrIdempotencyMismatch) {
		t.Fatalf("another request under the same key = %v, want ErrIdempotencyMismatch", err)
	}
	got, first, err = keys.ClaimIdempotency(ctx(t), "other", "req-1", b, []byte("fp2"))
	if err != nil || !first || got != b {
		t.Fatalf("another caller's key = %s %v %v", got, first, err)
	}
	raw := h.Raw(t, s)
	if bytes.Contains(raw, []byte("req-1")) {
		t.Error("the store holds an idempotency key in the clear; it keeps only a digest")
	}
}

// testSameKeyAgain: creating a stored key again is ErrSameKey only when
// nothing would change: the same value, type, IV and assets.
func testSameKeyAgain(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := openedKeys(t, s, NewKeyring(t, "k1"))
	k := keystore.Key{ID: RandomID(t), Type: keystore.CommonEncryption, IV: bytes.Repeat([]byte{3}, 16), Assets: []string{"film"}, Method: keystore.CreatedImport}
	copy(k.Value[:], "0123456789abcdef")
	if _, err := keys.Create(ctx(t), k); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Create(ctx(t), k); !errors.Is(err, keystore.ErrSameKey) {
		t.Fatalf("the same key again = %v, want ErrSameKey", err)
	}
	for name, change := range map[string]func(*keystore.Key){
		"value":  func(k *keystore.Key) { k.Value[0] ^= 1 },
		"type":   func(k *keystore.Key) { k.Type = keystore.EnvelopeEncryption },
		"iv":     func(k *keystore.Key) { k.IV = bytes.Repeat([]byte{4}, 16) },
		"no iv":  func(k *keystore.Key) { k.IV = nil },
		"assets": func(k *keystore.Key) { k.Assets = []string{"trailer"} },
	} {
		other := k
		change(&other)
		_, err := keys.Create(ctx(t), other)
		if !errors.Is(err, keystore.ErrExists) || errors.Is(err, keystore.ErrSameKey) {
			t.Errorf("another %s = %v, want ErrExists without ErrSameKey", name, err)
		}
	}
}

// openedKeys is a Keys over s, opened (adopting s) as a server does.
func openedKeys(t *testing.T, s keystore.Store, kr *keystore.Keyring) *keystore.Keys {
	t.Helper()
	keys := newKeys(t, s, kr)
	if err := keys.Open(ctx(t), keystore.OpenOptions{Adopt: true}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// testStoreMarker: an empty store is refused unless adopted, and nothing
// is written into it; an adopted store opens again without adopting; a
// store written before markers gets one; a store with some copies of its
// marker gone is refused.
func testStoreMarker(t *testing.T, h Harness) {
	kr := NewKeyring(t, "k1")
	s := newStore(t, h)
	err := newKeys(t, s, kr).Open(ctx(t), keystore.OpenOptions{})
	if !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("Open(empty store) = %v, want ErrStoreLost", err)
	}
	if names, _ := s.ListMeta(ctx(t), ""); len(names) != 0 {
		t.Fatalf("Open of an empty store wrote %v into it", names)
	}
	keys := newKeys(t, s, kr)
	if err := keys.Open(ctx(t), keystore.OpenOptions{Adopt: true}); err != nil {
		t.Fatalf("Open(adopt): %v", err)
	}
	id := keys.StoreID()
	if names, _ := s.ListMeta(ctx(t), "kek-check/"); len(names) != 1 {
		t.Fatalf("adopted store has KEK check values %v", names)
	}
	again := newKeys(t, s, kr)
	if err := again.Open(ctx(t), keystore.OpenOptions{}); err != nil || again.StoreID() != id {
		t.Fatalf("Open(known store) = %v, id %q want %q", err, again.StoreID(), id)
	}
	if err := again.CheckStore(ctx(t)); err != nil {
		t.Fatalf("CheckStore(known store) = %v", err)
	}

	// Written by a version before markers: KEK check values, no marker.
	legacy := newStore(t, h)
	if err := newKeys(t, legacy, kr).CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := newKeys(t, legacy, kr).Open(ctx(t), keystore.OpenOptions{}); err != nil {
		t.Fatalf("Open(store before markers) = %v", err)
	}
	if names, _ := legacy.ListMeta(ctx(t), "store-marker/"); len(names) != 16 {
		t.Fatalf("store before markers got %d marker copies, want 16", len(names))
	}

	// One copy of the marker of this store: the others are gone.
	partial := newStore(t, h)
	v, err := s.GetMeta(ctx(t), "store-marker/07")
	if err != nil {
		t.Fatal(err)
	}
	if err := partial.CreateMeta(ctx(t), "store-marker/07", v); err != nil {
		t.Fatal(err)
	}
	pk := newKeys(t, partial, kr)
	if err := pk.Open(ctx(t), keystore.OpenOptions{}); !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("Open(store with 1 of 16 markers) = %v, want ErrStoreLost", err)
	}
	if names, _ := partial.ListMeta(ctx(t), "kek-check/"); len(names) != 0 {
		t.Fatal("a KEK check value was written into a store that lost data")
	}
	if got, err := pk.Adopt(ctx(t)); err != nil || got != id {
		t.Fatalf("Adopt = %q, %v; want the marker's identity %q", got, err, id)
	}
	if err := pk.CheckStore(ctx(t)); err != nil {
		t.Fatalf("CheckStore after Adopt = %v", err)
	}
}

// swapStore is a Store whose storage can be replaced under a running Keys,
// as a Redis that restarted empty is.
type swapStore struct {
	keystore.Store
	mu sync.Mutex
}

func (s *swapStore) cur() keystore.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store
}

func (s *swapStore) swap(to keystore.Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Store = to
}

func (s *swapStore) Get(ctx context.Context, id keystore.KeyID) (keystore.Record, error) {
	return s.cur().Get(ctx, id)
}
func (s *swapStore) Create(ctx context.Context, r keystore.Record) error {
	return s.cur().Create(ctx, r)
}
func (s *swapStore) GetMeta(ctx context.Context, name string) ([]byte, error) {
	return s.cur().GetMeta(ctx, name)
}
func (s *swapStore) CreateMeta(ctx context.Context, name string, v []byte) error {
	return s.cur().CreateMeta(ctx, name, v)
}
func (s *swapStore) ListMeta(ctx context.Context, prefix string) ([]string, error) {
	return s.cur().ListMeta(ctx, prefix)
}
func (s *swapStore) List(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Record, error) {
	return s.cur().List(ctx, from, limit)
}

// testStoreLost: a store that loses its data under a running Keys is found
// lost by CheckStore; then a key it does not hold is ErrStoreLost, not
// ErrNotFound, and nothing is written into it until it is adopted.
func testStoreLost(t *testing.T, h Harness) {
	kr := NewKeyring(t, "k1")
	orig := newStore(t, h)
	s := &swapStore{Store: orig}
	keys := openedKeys(t, s, kr)
	k, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.CheckStore(ctx(t)); err != nil {
		t.Fatal(err)
	}
	empty := newStore(t, h)
	s.swap(empty)
	if err := keys.CheckStore(ctx(t)); !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("CheckStore(emptied store) = %v, want ErrStoreLost", err)
	}
	if _, err := keys.Get(ctx(t), k.ID); !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("Get of a key the lost store held = %v, want ErrStoreLost", err)
	}
	if _, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)}); !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("Create into a lost store = %v, want ErrStoreLost", err)
	}
	if names, _ := empty.ListMeta(ctx(t), ""); len(names) != 0 {
		t.Fatalf("something was written into the lost store: %v", names)
	}
	// A later Open (a restarted server) refuses it too, and writes nothing.
	if err := newKeys(t, s, kr).Open(ctx(t), keystore.OpenOptions{}); !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("Open(emptied store) = %v, want ErrStoreLost", err)
	}
	if names, _ := empty.ListMeta(ctx(t), ""); len(names) != 0 {
		t.Fatalf("Open wrote %v into the lost store", names)
	}
	// The data is back (restored): the next check clears the state.
	s.swap(orig)
	if err := keys.CheckStore(ctx(t)); err != nil || keys.Lost() != nil {
		t.Fatalf("CheckStore with the data back = %v (lost: %v)", err, keys.Lost())
	}
	if _, err := keys.Get(ctx(t), k.ID); err != nil {
		t.Fatalf("Get with the data back = %v", err)
	}
	// Emptied again, and this time the operator adopts the empty store.
	s.swap(empty)
	if err := keys.CheckStore(ctx(t)); !errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("CheckStore(emptied again) = %v", err)
	}
	if _, err := keys.Adopt(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if keys.Lost() != nil {
		t.Fatal("still lost after Adopt")
	}
	if _, err := keys.Get(ctx(t), k.ID); !errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrStoreLost) {
		t.Fatalf("Get after Adopt of the empty store = %v, want ErrNotFound", err)
	}
	if names, _ := empty.ListMeta(ctx(t), "kek-check/"); len(names) != 1 {
		t.Fatalf("Adopt wrote KEK check values %v", names)
	}
}

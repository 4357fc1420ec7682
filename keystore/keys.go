package keystore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// DefaultTimeout bounds every store call when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Options configures Keys. Zero values take the documented defaults.
type Options struct {
	// Timeout bounds each store call (default DefaultTimeout). A call that
	// runs out of time fails with ErrUnavailable, never with ErrNotFound.
	Timeout time.Duration
	// WriteTimeout bounds each store call that writes (default Timeout):
	// longer where a write also waits for replicas.
	WriteTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand supplies generated key material (default: none; Create then
	// requires the caller to set Key.Value). Use crypto/rand.Reader.
	Rand io.Reader
	// Registerer, when set, receives keydelivery_store_operations_total
	// and keydelivery_store_operation_duration_seconds, labelled with
	// Backend ("bolt", "redis").
	Registerer prometheus.Registerer
	Backend    string
}

// Notifier is an optional Store capability: a store shared by several
// servers tells all of them when a key is deleted, restored or purged, so
// their caches drop it at once.
type Notifier interface {
	// Notify announces that ids changed.
	Notify(ctx context.Context, ids []KeyID) error
	// Listen calls fn for every announced change until ctx ends; fn(id,
	// true) means "anything may have changed" (after a lost connection).
	Listen(ctx context.Context, fn func(id KeyID, all bool)) error
}

// Counter is an optional Store capability: counters shared by every server
// on the store, each forgotten at its expiry. It keeps the replay limit of
// tokens (the maxuses claim): a counter per token, keyed by a digest of
// what the token's signer signed (never by the token), expiring with the
// token.
type Counter interface {
	// CountUse adds one to the counter of digest and returns its new
	// value. A counter that does not exist, or whose expiry has passed,
	// starts at zero with the given expiry (a later call does not move
	// it). It must be atomic: of n concurrent calls on a new counter, the
	// answers are 1 to n.
	CountUse(ctx context.Context, digest [32]byte, expires time.Time) (int64, error)
}

// Compactor is an optional Store capability: it removes from the store's
// files what deletes leave behind, so that a purged key's sealed value does
// not outlive its purge there. Redis: an append-only file rewrite
// (BGREWRITEAOF). bbolt is compacted offline instead (boltstore.Compact,
// kdctl store compact): its free pages keep deleted values until reused.
type Compactor interface {
	// Compact starts or does the compaction; it may return before the
	// store has finished it.
	Compact(ctx context.Context) error
}

// CompactAfterPurges compacts the store (see Compactor) when this Keys
// purged a key since it last did, and reports whether it did. A store
// that is not a Compactor is left alone (false, nil).
func (k *Keys) CompactAfterPurges(ctx context.Context) (bool, error) {
	c, ok := k.store.(Compactor)
	if !ok || !k.purged.Swap(false) {
		return false, nil
	}
	if err := k.call(ctx, opCompact, c.Compact); err != nil {
		k.purged.Store(true) // try again next time
		return false, fmt.Errorf("keystore: compact: %w", err)
	}
	return true, nil
}

// ErrNoCounters: the store has no counters (it is not a Counter), so a
// limit that needs one cannot be kept. It wraps ErrUnavailable: a token
// with a replay limit is refused, never served unlimited.
var ErrNoCounters = fmt.Errorf("%w: the store keeps no counters", ErrUnavailable)

// CountUse adds one to the use counter of a token (see Counter), within
// the store deadline, and returns the new count.
func (k *Keys) CountUse(ctx context.Context, digest [32]byte, expires time.Time) (int64, error) {
	c, ok := k.store.(Counter)
	if !ok {
		return 0, ErrNoCounters
	}
	var n int64
	err := k.call(ctx, opCountUse, func(ctx context.Context) (err error) {
		n, err = c.CountUse(ctx, digest, expires)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("keystore: count use: %w", err)
	}
	return n, nil
}

// Keys is the barrier between callers and a Store: it seals key material on
// the way in, opens it on the way out, and puts a deadline on every call.
// It is safe for concurrent use.
type Keys struct {
	store        Store
	ring         *Keyring
	timeout      time.Duration
	writeTimeout time.Duration
	now          func() time.Time
	rand         io.Reader
	// subs are the change subscribers, copied on write (see Subscribe).
	subs    atomic.Pointer[[]*subscriber]
	mu      sync.Mutex // serialises changes to subs
	metrics *storeMetrics
	// state is what Open and CheckStore found of the store's marker.
	state storeState
	// purged: a key was purged since the last CompactAfterPurges.
	purged atomic.Bool
}

// NewKeys returns a Keys over store, sealing with ring.
func NewKeys(store Store, ring *Keyring, o Options) *Keys {
	k := &Keys{store: store, ring: ring, timeout: o.Timeout, writeTimeout: o.WriteTimeout, now: o.Now, rand: o.Rand,
		metrics: newStoreMetrics(o.Registerer, o.Backend)}
	if k.timeout <= 0 {
		k.timeout = DefaultTimeout
	}
	if k.writeTimeout <= 0 {
		k.writeTimeout = k.timeout
	}
	if k.now == nil {
		k.now = time.Now
	}
	return k
}

// call runs f with the store deadline and turns a missed deadline into
// ErrUnavailable, so a slow store never looks like a missing key.
func (k *Keys) call(ctx context.Context, op storeOp, f func(ctx context.Context) error) error {
	timeout := k.timeout
	if op.writes() {
		timeout = k.writeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if err != nil && !errors.Is(err, ErrUnavailable) && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	k.metrics.observe(op, err, time.Since(start))
	return err
}

// record reads the stored record of id within the store deadline.
func (k *Keys) record(ctx context.Context, id KeyID) (r Record, err error) {
	err = k.call(ctx, opGet, func(ctx context.Context) error {
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
		return Key{}, k.notFound(err)
	}
	if !r.DeletedAt.IsZero() {
		return Key{}, fmt.Errorf("keystore: key %s: %w", id, ErrDeleted)
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
	if err := k.ring.open(keySlot(&id), r.Sealed, key.Value[:]); err != nil {
		return Key{}, fmt.Errorf("keystore: key %s: %w", r.ID, err)
	}
	return key, nil
}

// Create seals and stores key. When key.Value is all zero and Options.Rand
// is set, a random value is generated (and Method is CreatedRandom). Created
// and Updated are set to now. If the ID is taken, Create returns ErrExists
// and the stored key is untouched; when the stored key is the one asked for
// (the same value, content key type, IV and assets), the error also wraps
// ErrSameKey, so that a retried create can answer "unchanged".
func (k *Keys) Create(ctx context.Context, key Key) (Key, error) {
	if err := k.writable(); err != nil {
		return Key{}, err
	}
	if key.IV != nil && len(key.IV) != 16 {
		return Key{}, fmt.Errorf("keystore: key %s: iv must be 16 bytes, got %d", key.ID, len(key.IV))
	}
	for _, a := range key.Assets {
		if err := ValidateAsset(a); err != nil {
			return Key{}, fmt.Errorf("keystore: key %s: %w", key.ID, err)
		}
	}
	if err := ValidateTrackType(key.TrackType); err != nil {
		return Key{}, fmt.Errorf("keystore: key %s: %w", key.ID, err)
	}
	if key.Value == ([16]byte{}) {
		if k.rand == nil {
			return Key{}, fmt.Errorf("keystore: key %s: no key value and no random source", key.ID)
		}
		v, err := RandomValue(k.rand)
		if err != nil {
			return Key{}, fmt.Errorf("keystore: key %s: generate: %w", key.ID, err)
		}
		key.Value = v
		key.Method = CreatedRandom
	}
	now := k.now().UTC()
	key.Created, key.Updated, key.DeletedAt = now, now, time.Time{}
	sealed, err := k.ring.seal(keySlot(&key.ID), key.Value[:])
	if err != nil {
		return Key{}, err
	}
	r := Record{ID: key.ID, Sealed: sealed, IV: key.IV, Name: key.Name, Type: key.Type,
		Method: key.Method, Created: now, Updated: now, Assets: key.Assets, Period: key.Period, TrackType: key.TrackType,
		AuthorizationPolicyID: key.AuthorizationPolicyID}
	err = k.call(ctx, opCreate, func(ctx context.Context) error { return k.store.Create(ctx, r) })
	if errors.Is(err, ErrExists) {
		return Key{}, k.existsError(ctx, key, err)
	}
	if err != nil {
		return Key{}, err
	}
	k.wroteKeys()
	k.changed(ctx, false, key.ID)
	return key, nil
}

// ErrSameKey is wrapped (with ErrExists) by Create when the stored key is
// the one offered: the same value, type, IV and assets.
var ErrSameKey = errors.New("keystore: same key already stored")

// existsError is Create's answer for a taken ID; createErr is the store's
// error, which may carry the stored record (ExistsError), else it is read.
func (k *Keys) existsError(ctx context.Context, key Key, createErr error) error {
	var ee *ExistsError
	r := Record{}
	if errors.As(createErr, &ee) {
		r = ee.Stored
	} else {
		var err error
		if r, err = k.record(ctx, key.ID); err != nil {
			return fmt.Errorf("%w: %s", ErrExists, key.ID)
		}
	}
	if r.Type == key.Type && bytes.Equal(r.IV, key.IV) && slices.Equal(r.Assets, key.Assets) && k.sameValue(key.ID, r, &key.Value) {
		return fmt.Errorf("%w: %w: %s", ErrExists, ErrSameKey, key.ID)
	}
	return fmt.Errorf("%w: %s holds a different key", ErrExists, key.ID)
}

// kekCheckPrefix names the meta entries that prove which KEK a store was
// written with.
const kekCheckPrefix = "kek-check/"

// CheckKEKs verifies every KEK of the keyring against the store, as
// VerifyKEKs does: for a KEK ID the store has seen before, the check value
// written then must open (otherwise the file holds a different key under
// that ID, and CheckKEKs refuses rather than serve garbage), and no stored
// value may be sealed under a KEK the keyring lacks. Then, for each new
// ID, a check value is written.
func (k *Keys) CheckKEKs(ctx context.Context) error { return k.checkKEKs(ctx, "") }

// checkKEKs is CheckKEKs; with marker set (Open, Adopt), a new check value
// is written only after every copy of the store marker marker was found
// again, just before: a store that lost its data meanwhile gets none.
func (k *Keys) checkKEKs(ctx context.Context, marker string) error {
	rep, err := k.VerifyKEKs(ctx)
	if err != nil {
		return err
	}
	for _, id := range rep.New {
		if err := k.checkKEK(ctx, id, marker); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keys) checkKEK(ctx context.Context, id, marker string) error {
	name, check := kekCheckPrefix+id, kekCheckSlot(id)
	for attempt := 0; attempt < 2; attempt++ {
		var v []byte
		err := k.call(ctx, opGetMeta, func(ctx context.Context) (err error) {
			v, err = k.store.GetMeta(ctx, name)
			return err
		})
		switch {
		case err == nil:
			var probe [16]byte
			if err := k.ring.open(check, v, probe[:]); err != nil {
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
		sealed, err := k.ring.sealWith(k.ring.byID[id], check, probe[:])
		if err != nil {
			return err
		}
		if marker != "" {
			if err := k.markersIntact(ctx, marker); err != nil {
				return err
			}
		}
		err = k.call(ctx, opCreateMeta, func(ctx context.Context) error { return k.store.CreateMeta(ctx, name, sealed) })
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

// Change is a change event: the key ID was created, deleted, restored or
// purged, by this Keys or (see Watch) by another server sharing the store;
// All means that anything may have changed (the store's announcements were
// interrupted, so some may have been missed).
type Change struct {
	ID  KeyID
	All bool
}

type subscriber struct{ fn func(Change) }

// Subscribe calls fn with every change event from now on, until the
// returned function is called. fn runs on the goroutine that made or
// received the change and must be quick (a cache invalidation). Safe for
// concurrent use.
func (k *Keys) Subscribe(fn func(Change)) (unsubscribe func()) {
	s := &subscriber{fn: fn}
	k.mu.Lock()
	defer k.mu.Unlock()
	var next []*subscriber
	if cur := k.subs.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, s)
	k.subs.Store(&next)
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		cur := k.subs.Load()
		if cur == nil {
			return
		}
		next := slices.DeleteFunc(slices.Clone(*cur), func(x *subscriber) bool { return x == s })
		k.subs.Store(&next)
	}
}

// publish hands ch to every subscriber.
func (k *Keys) publish(ch Change) {
	if subs := k.subs.Load(); subs != nil {
		for _, s := range *subs {
			s.fn(ch)
		}
	}
}

// Watch relays the changes other servers announce through the store (a
// Notifier store, such as Redis) to the subscribers, until ctx ends. With a
// store that announces nothing it returns nil at once.
func (k *Keys) Watch(ctx context.Context) error {
	n, ok := k.store.(Notifier)
	if !ok {
		return nil
	}
	return n.Listen(ctx, func(id KeyID, all bool) { k.publish(Change{ID: id, All: all}) })
}

// changed tells the subscribers, and with announce the other servers
// through the store, that ids changed. Announcing is best effort: a lost
// announcement is bounded by the caches' TTL.
func (k *Keys) changed(ctx context.Context, announce bool, ids ...KeyID) {
	for _, id := range ids {
		k.publish(Change{ID: id})
	}
	if n, ok := k.store.(Notifier); ok && announce && len(ids) > 0 {
		_ = k.call(ctx, opNotify, func(ctx context.Context) error { return n.Notify(ctx, ids) })
	}
}

// Ping reports whether the store answers within the deadline.
func (k *Keys) Ping(ctx context.Context) error {
	return k.call(ctx, opPing, k.store.Ping)
}

// Metadata returns what is stored about id without its material (Value is
// zero), soft-deleted keys included, or ErrNotFound.
func (k *Keys) Metadata(ctx context.Context, id KeyID) (Key, error) {
	r, err := k.record(ctx, id)
	if err != nil {
		return Key{}, k.notFound(err)
	}
	return metadata(r), nil
}

func metadata(r Record) Key {
	return Key{ID: r.ID, IV: r.IV, Name: r.Name, Type: r.Type, Method: r.Method,
		Created: r.Created, Updated: r.Updated, DeletedAt: r.DeletedAt, Assets: r.Assets,
		Period: r.Period, TrackType: r.TrackType, AuthorizationPolicyID: r.AuthorizationPolicyID}
}

// Errors of the key life cycle.
var (
	// ErrDeleted: the key is soft-deleted. It wraps ErrNotFound, since a
	// deleted key is not delivered.
	ErrDeleted = fmt.Errorf("%w: the key is deleted", ErrNotFound)
	// ErrNotDeleted: restore or purge of a key that is not deleted.
	ErrNotDeleted = errors.New("keystore: key is not deleted")
	// ErrInvalidAsset: an asset ID that is empty, too long or not printable.
	ErrInvalidAsset = errors.New("keystore: invalid asset id")
)

// MaxAssetID is the longest asset ID, in bytes.
const MaxAssetID = 256

// ValidateAsset checks an asset ID: 1 to MaxAssetID bytes of printable
// characters other than space.
func ValidateAsset(a string) error {
	if a == "" || len(a) > MaxAssetID {
		return fmt.Errorf("%w: must be 1 to %d bytes", ErrInvalidAsset, MaxAssetID)
	}
	for _, c := range a {
		if c <= ' ' || c == 0x7f || c == utf8.RuneError {
			return fmt.Errorf("%w: only printable characters, no spaces", ErrInvalidAsset)
		}
	}
	return nil
}

// List returns the metadata (no material) of up to limit keys at or after
// from, in ID order, deleted ones included.
func (k *Keys) List(ctx context.Context, from KeyID, limit int) ([]Key, error) {
	var rs []Record
	err := k.call(ctx, opList, func(ctx context.Context) (err error) {
		rs, err = k.store.List(ctx, from, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Key, len(rs))
	for i, r := range rs {
		out[i] = metadata(r)
	}
	return out, nil
}

// ListAsset returns up to limit IDs of the keys of asset, at or after from.
func (k *Keys) ListAsset(ctx context.Context, asset string, from KeyID, limit int) ([]KeyID, error) {
	if err := ValidateAsset(asset); err != nil {
		return nil, err
	}
	var ids []KeyID
	err := k.call(ctx, opListAsset, func(ctx context.Context) (err error) {
		ids, err = k.store.ListAsset(ctx, asset, from, limit)
		return err
	})
	return ids, err
}

// Link adds id to the keys of asset (ListAsset lists it), keeping the
// assets it has; linking it again changes nothing. A deleted key is
// ErrDeleted. It returns the key's metadata.
func (k *Keys) Link(ctx context.Context, id KeyID, asset string) (Key, error) {
	return k.setAsset(ctx, id, asset, true)
}

// Unlink removes id from the keys of asset; unlinking a key the asset does
// not have changes nothing. It returns the key's metadata.
func (k *Keys) Unlink(ctx context.Context, id KeyID, asset string) (Key, error) {
	return k.setAsset(ctx, id, asset, false)
}

func (k *Keys) setAsset(ctx context.Context, id KeyID, asset string, link bool) (Key, error) {
	if err := k.writable(); err != nil {
		return Key{}, err
	}
	if err := ValidateAsset(asset); err != nil {
		return Key{}, err
	}
	if link {
		m, err := k.Metadata(ctx, id)
		if err != nil {
			return Key{}, err
		}
		if m.Deleted() {
			return Key{}, fmt.Errorf("keystore: key %s: %w", id, ErrDeleted)
		}
	}
	var r Record
	op := opLink
	if !link {
		op = opUnlink
	}
	err := k.call(ctx, op, func(ctx context.Context) (err error) {
		if link {
			r, err = k.store.Link(ctx, id, asset)
		} else {
			r, err = k.store.Unlink(ctx, id, asset)
		}
		return err
	})
	if err != nil {
		return Key{}, err
	}
	k.changed(ctx, true, id)
	return metadata(r), nil
}

// Delete soft-deletes id: it stops being delivered at once and is kept
// until purged. Deleting a deleted key changes nothing.
func (k *Keys) Delete(ctx context.Context, id KeyID) (Key, error) {
	return k.update(ctx, id, func(r *Record) error {
		if r.DeletedAt.IsZero() {
			now := k.now().UTC()
			r.DeletedAt, r.Updated = now, now
		}
		return nil
	})
}

// Restore brings a soft-deleted key back; ErrNotDeleted if it is not deleted.
func (k *Keys) Restore(ctx context.Context, id KeyID) (Key, error) {
	return k.update(ctx, id, func(r *Record) error {
		if r.DeletedAt.IsZero() {
			return fmt.Errorf("%w: %s", ErrNotDeleted, id)
		}
		r.DeletedAt, r.Updated = time.Time{}, k.now().UTC()
		return nil
	})
}

// Purge destroys a soft-deleted key for good; ErrNotDeleted if it is not
// deleted (a live key is never destroyed in one step).
func (k *Keys) Purge(ctx context.Context, id KeyID) error {
	if err := k.writable(); err != nil {
		return err
	}
	err := k.call(ctx, opDelete, func(ctx context.Context) error {
		return k.store.Delete(ctx, id, func(r *Record) error {
			if r.DeletedAt.IsZero() {
				return fmt.Errorf("%w: %s: delete it first", ErrNotDeleted, id)
			}
			return nil
		})
	})
	if err == nil {
		k.purged.Store(true)
		k.changed(ctx, true, id)
	}
	return err
}

// update changes the record of id with fn, in one atomic step of the
// store. A value sealed in an older format is sealed again in the current
// one on the way (the format upgrade of CheckUpdate), after Keyring.upgrade
// checked that it opens as this key and that the new value opens to the
// same key; a value that does not open is written back as it was.
func (k *Keys) update(ctx context.Context, id KeyID, fn func(*Record) error) (Key, error) {
	if err := k.writable(); err != nil {
		return Key{}, err
	}
	var r Record
	err := k.call(ctx, opUpdate, func(ctx context.Context) (err error) {
		r, err = k.store.Update(ctx, id, func(r *Record) error {
			if err := fn(r); err != nil {
				return err
			}
			if r.ID != id {
				return nil
			}
			if sealed, ok := k.ring.upgrade(keySlot(&id), r.Sealed, len(Key{}.Value)); ok {
				r.Sealed = sealed
			}
			return nil
		})
		return err
	})
	if err != nil {
		return Key{}, k.notFound(err)
	}
	k.changed(ctx, true, id)
	return metadata(r), nil
}

// ImportStatus is the outcome for one key of an import.
type ImportStatus int

// Import outcomes.
const (
	Created   ImportStatus = iota // stored now
	Unchanged                     // the same key, of the same type, was already stored
	Conflict                      // a different key (or the same key with another type) is stored under this ID; it was left untouched
)

// String returns "created", "unchanged" or "conflict".
func (s ImportStatus) String() string {
	switch s {
	case Created:
		return "created"
	case Unchanged:
		return "unchanged"
	}
	return "conflict"
}

// ImportResult is one key's outcome: the key as stored (metadata only for
// Unchanged and Conflict) and its status.
type ImportResult struct {
	Key    Key
	Status ImportStatus
	// SameValue, for a Conflict, means the stored key has the same value:
	// only its content key type differs.
	SameValue bool
}

// importChunk is how many keys Import hands the store per CreateBatch
// call. Each call gets its own store deadline (Options.Timeout), so a large
// import is bounded per chunk rather than failing as a whole against a
// deadline meant for one request; within a call the store pipelines (or
// commits one transaction).
const importChunk = 5000

// importWorkers is how many chunks are in flight at once: two, so that the
// store works on one while the next is encoded and sent (with Redis, the
// server's CPU and ours overlap instead of taking turns), but never more
// than the processors less one. An import leaves a processor to the
// delivery plane: on 2 cores, one chunk at a time kept the p99 of key
// requests during a 100,000-key import at 1.7 to 3.9 times its idle value
// (median 3.0 of 11 runs), against 4.4 to 6.7 with two
// (BenchmarkDeliveryDuringImport in cmd/keydelivery), for about 20% less
// import throughput.
func importWorkers() int { return max(1, min(2, runtime.GOMAXPROCS(0)-1)) }

// Import stores keys whose values are given, in batches. Each key is
// created, or found Unchanged (the same value was stored before), or a
// Conflict (a different value is stored: it is never overwritten). The
// caller validates the batch first; a KID given twice is created once, and
// the second is Unchanged or a Conflict. Keys are sealed, sorted by ID and
// handed to the store importChunk at a time, each chunk one CreateBatch
// with its own deadline, importWorkers() at once; the stored records of
// taken IDs come back from CreateBatch itself (ExistsError), so a repeated
// import costs no read per key. A store failure part-way returns an error
// (other chunks may be stored); sending the same batch again completes it.
func (k *Keys) Import(ctx context.Context, keys []Key) ([]ImportResult, error) {
	if err := k.writable(); err != nil {
		return nil, err
	}
	for _, key := range keys {
		if key.IV != nil && len(key.IV) != 16 {
			return nil, fmt.Errorf("keystore: key %s: iv must be 16 bytes, got %d", key.ID, len(key.IV))
		}
		for _, a := range key.Assets {
			if err := ValidateAsset(a); err != nil {
				return nil, fmt.Errorf("keystore: key %s: %w", key.ID, err)
			}
		}
		if err := ValidateTrackType(key.TrackType); err != nil {
			return nil, fmt.Errorf("keystore: key %s: %w", key.ID, err)
		}
	}
	now := k.now().UTC()
	// The chunks go in ID order, so that each chunk is a range of IDs: an
	// ordered store (bbolt) then rewrites only the pages of that range per
	// transaction, not pages all over its tree. The sort is stable, and a
	// chunk never splits the copies of one KID: the first one given is the
	// one created, whatever runs in parallel. Each chunk is sealed here
	// (so the keyring's random source is read by one goroutine) while the
	// workers store the previous ones, and its records are dropped once
	// stored: an import holds the sealed records of the chunks in flight,
	// not of the whole batch.
	order := idOrder(keys)
	out := make([]ImportResult, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(importWorkers())
	for start := 0; start < len(order) && gctx.Err() == nil; {
		end := min(start+importChunk, len(order))
		for end < len(order) && keys[order[end]].ID == keys[order[end-1]].ID {
			end++
		}
		pos := order[start:end]
		rs, err := k.sealChunk(keys, pos, now)
		if err != nil {
			_ = g.Wait()
			return nil, err
		}
		g.Go(func() error { return k.importChunk(gctx, keys, rs, pos, out) })
		start = end
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// idOrder returns the positions of keys in ascending order of ID, equal
// IDs in the order given.
func idOrder(keys []Key) []int {
	type idPos struct {
		hi, lo uint64 // the ID, big-endian: their order is the IDs' byte order
		pos    int
	}
	ps := make([]idPos, len(keys))
	for i := range keys {
		id := keys[i].ID[:]
		ps[i] = idPos{binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:]), i}
	}
	slices.SortFunc(ps, func(a, b idPos) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		if c := cmp.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return cmp.Compare(a.pos, b.pos)
	})
	order := make([]int, len(ps))
	for j, p := range ps {
		order[j] = p.pos
	}
	return order
}

// sealChunk returns the records of keys[pos[j]], sealed.
func (k *Keys) sealChunk(keys []Key, pos []int, now time.Time) ([]Record, error) {
	sealed, err := k.ring.sealKeys(keys, pos)
	if err != nil {
		return nil, err
	}
	rs := make([]Record, len(pos))
	for j, i := range pos {
		key := &keys[i]
		rs[j] = Record{ID: key.ID, Sealed: sealed[j], IV: key.IV, Name: key.Name, Type: key.Type,
			Method: key.Method, Created: now, Updated: now, Assets: key.Assets, Period: key.Period, TrackType: key.TrackType,
			AuthorizationPolicyID: key.AuthorizationPolicyID}
	}
	return rs, nil
}

// importChunk stores one chunk of an import: rs[j] is keys[pos[j]] sealed,
// and out[pos[j]] receives its result. The keys it created are passed to
// the subscribers even when it fails part-way, so no cache keeps "not
// found" for them.
func (k *Keys) importChunk(ctx context.Context, keys []Key, rs []Record, pos []int, out []ImportResult) error {
	var errs []error
	err := k.call(ctx, opCreateBatch, func(ctx context.Context) (err error) {
		errs, err = k.store.CreateBatch(ctx, rs)
		return err
	})
	if err != nil {
		return err
	}
	defer func() {
		for j, err := range errs {
			if err == nil {
				k.wroteKeys()
				k.publish(Change{ID: rs[j].ID})
			}
		}
	}()
	for j, err := range errs {
		i := pos[j]
		var stored *ExistsError
		switch {
		case err == nil:
			out[i] = ImportResult{Key: metadata(rs[j]), Status: Created}
			continue
		case errors.As(err, &stored):
		case errors.Is(err, ErrExists):
			// The store did not hand back the stored record: read it.
			r, err := k.record(ctx, keys[i].ID)
			if err != nil {
				return err
			}
			stored = &ExistsError{ID: keys[i].ID, Stored: r}
		default:
			return fmt.Errorf("keystore: import %s: %w", keys[i].ID, err)
		}
		same := k.sameValue(keys[i].ID, stored.Stored, &keys[i].Value)
		out[i] = ImportResult{Key: metadata(stored.Stored), Status: Conflict, SameValue: same}
		// Unchanged only when nothing would change: the same value and the
		// same content key type (the type is immutable, so a re-import
		// asking for another one is refused, not silently ignored).
		if same && stored.Stored.Type == keys[i].Type {
			out[i].Status = Unchanged
		}
	}
	return nil
}

// sameValue reports whether the record r stored under id opens to value.
// A record that does not open (another KEK, tampered, moved from another
// KID) is not the same value.
func (k *Keys) sameValue(id KeyID, r Record, value *[16]byte) bool {
	stored, err := k.open(id, r)
	same := err == nil && subtle.ConstantTimeCompare(stored.Value[:], value[:]) == 1
	clear(stored.Value[:])
	return same
}

// PurgeDeleted destroys the keys soft-deleted before cutoff (the
// retention period is over), scanning every key. It returns the IDs it
// purged; a key restored or purged elsewhere meanwhile is skipped.
func (k *Keys) PurgeDeleted(ctx context.Context, cutoff time.Time) ([]KeyID, error) {
	var purged []KeyID
	from := KeyID{}
	const page = 500
	for {
		var rs []Record
		err := k.call(ctx, opList, func(ctx context.Context) (err error) {
			rs, err = k.store.List(ctx, from, page)
			return err
		})
		if err != nil {
			return purged, err
		}
		for _, r := range rs {
			if r.DeletedAt.IsZero() || !r.DeletedAt.Before(cutoff) {
				continue
			}
			err := k.call(ctx, opDelete, func(ctx context.Context) error {
				return k.store.Delete(ctx, r.ID, func(cur *Record) error {
					if cur.DeletedAt.IsZero() || !cur.DeletedAt.Before(cutoff) {
						return ErrNotDeleted // restored meanwhile
					}
					return nil
				})
			})
			switch {
			case err == nil:
				purged = append(purged, r.ID)
				k.purged.Store(true)
				k.changed(ctx, true, r.ID)
			case errors.Is(err, ErrNotDeleted), errors.Is(err, ErrNotFound):
			default:
				return purged, err
			}
		}
		if len(rs) < page {
			return purged, nil
		}
		next, ok := rs[len(rs)-1].ID.Next()
		if !ok {
			return purged, nil
		}
		from = next
	}
}

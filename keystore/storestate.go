package keystore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// The store marker: a store records who it is when it is first written, so
// that a store that lost its data is told from a new one.
//
// The marker is markerCopies meta values, "store-marker/00" to
// "store-marker/15", each holding the same identity. On Redis Cluster they
// fall into different slots, so on different masters: a master that comes
// back empty takes some copies with it, and the others show that the store
// is not new. A store holds all of them (a known store), none of them (new,
// or lost whole, or written by a version before markers), or some (lost in
// part).
const (
	markerPrefix = "store-marker/"
	markerCopies = 16
)

// markerValue is the stored marker.
type markerValue struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// storeState is what Keys knows of the store's marker, guarded by mu.
// Open, CheckStore and Adopt hold check while they run, so that they never
// interleave (a check that began before an adoption must not write after
// it); check comes before mu in the lock order.
type storeState struct {
	check sync.Mutex
	mu    sync.Mutex
	// id is the marker's identity once Open or Adopt accepted the store.
	id string
	// heldKeys: the store was seen holding at least one key, so finding
	// it empty means it lost them.
	heldKeys bool
	// lost is set by CheckStore (and Open) when the marker is gone, or the
	// store is empty where it held keys; cleared when the marker is back or
	// an operator adopts the store.
	lost    bool
	lostWhy string
}

// StoreLostError is ErrStoreLost with what was found.
type StoreLostError struct{ Why string }

func (e *StoreLostError) Error() string { return fmt.Sprintf("%v: %s", ErrStoreLost, e.Why) }

// Is reports whether target is ErrStoreLost.
func (e *StoreLostError) Is(target error) bool { return target == ErrStoreLost }

// markers reads every marker copy. It returns the values found (by copy)
// and the first error other than ErrNotFound.
func (k *Keys) markers(ctx context.Context) ([]*markerValue, error) {
	out := make([]*markerValue, markerCopies)
	for i := range out {
		var b []byte
		err := k.call(ctx, opGetMeta, func(ctx context.Context) (err error) {
			b, err = k.store.GetMeta(ctx, markerName(i))
			return err
		})
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("keystore: read store marker: %w", err)
		}
		var m markerValue
		if json.Unmarshal(b, &m) != nil || m.ID == "" {
			return nil, fmt.Errorf("keystore: store marker %s does not decode: the store holds something else under %s", markerName(i), markerPrefix)
		}
		out[i] = &m
	}
	return out, nil
}

func markerName(i int) string { return fmt.Sprintf("%s%02d", markerPrefix, i) }

// markerSummary returns the identity the copies agree on and how many are
// present; an error when they disagree.
func markerSummary(ms []*markerValue) (id string, present int, err error) {
	for _, m := range ms {
		if m == nil {
			continue
		}
		present++
		if id == "" {
			id = m.ID
		} else if m.ID != id {
			return "", present, fmt.Errorf("%w: the store holds the markers of two stores (%s and %s): it was mixed with another store's data", ErrStoreLost, id, m.ID)
		}
	}
	return id, present, nil
}

// holdsData reports whether the store holds any key or KEK check value:
// whether it was written before.
func (k *Keys) holdsData(ctx context.Context) (keys bool, any bool, err error) {
	var rs []Record
	err = k.call(ctx, opList, func(ctx context.Context) (err error) {
		rs, err = k.store.List(ctx, KeyID{}, 1)
		return err
	})
	if err != nil {
		return false, false, fmt.Errorf("keystore: look for keys: %w", err)
	}
	if len(rs) > 0 {
		return true, true, nil
	}
	var names []string
	err = k.call(ctx, opListMeta, func(ctx context.Context) (err error) {
		names, err = k.store.ListMeta(ctx, kekCheckPrefix)
		return err
	})
	if err != nil {
		return false, false, fmt.Errorf("keystore: look for kek check values: %w", err)
	}
	return false, len(names) > 0, nil
}

// writeMarkers writes the missing copies of the marker id.
func (k *Keys) writeMarkers(ctx context.Context, ms []*markerValue, id string) error {
	b, err := json.Marshal(markerValue{ID: id, Created: k.now().UTC()})
	if err != nil {
		return err
	}
	for i, m := range ms {
		if m != nil {
			continue
		}
		err := k.call(ctx, opCreateMeta, func(ctx context.Context) error { return k.store.CreateMeta(ctx, markerName(i), b) })
		if err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("keystore: write store marker: %w", err)
		}
	}
	return nil
}

// OpenOptions says what Open may do to a store without a marker.
type OpenOptions struct {
	// Adopt lets Open take the store as it is: write the marker into a
	// store that has none, or the missing copies into one that lost some,
	// and then the check values of the KEKs. An operator sets it for a new
	// store, or after restoring one from a backup, never as a standing
	// setting: with it, a store that lost its data is taken as new.
	Adopt bool
}

// setLost records that the store was found lost, and returns the error.
func (k *Keys) setLost(why string) error {
	k.state.mu.Lock()
	defer k.state.mu.Unlock()
	k.state.lost, k.state.lostWhy = true, why
	return &StoreLostError{Why: why}
}

// Open checks the store before a server uses it, and then the KEKs
// (CheckKEKs). A store with its marker is known; one without a marker that
// holds keys or KEK check values was written by a version before markers,
// and gets one. Anything else is refused with a *StoreLostError unless
// o.Adopt: an empty store (a new one, or one that lost everything: they
// cannot be told apart), or one that holds some copies of its marker but
// not all (it lost part of its data). So a KEK check value is never written
// into a store that lost its data, unless an operator says so.
//
// A refused store stays refused (Lost) until Adopt, or until CheckStore
// finds it whole again: a server keeps running on it, unready, so that an
// operator can adopt it through the admin API.
func (k *Keys) Open(ctx context.Context, o OpenOptions) error {
	k.state.check.Lock()
	defer k.state.check.Unlock()
	return k.openStore(ctx, o)
}

// openStore is Open with state.check held.
func (k *Keys) openStore(ctx context.Context, o OpenOptions) error {
	ms, err := k.markers(ctx)
	if err != nil {
		return err
	}
	id, present, err := markerSummary(ms)
	if err != nil && !o.Adopt {
		return k.setLost(err.Error())
	}
	hasKeys, written, err := k.holdsData(ctx)
	if err != nil {
		return err
	}
	switch {
	case present == markerCopies:
	case o.Adopt:
		if id == "" {
			if id, err = newMarkerID(k.rand); err != nil {
				return err
			}
		}
		if err := k.writeMarkers(ctx, ms, id); err != nil {
			return err
		}
	case present == 0 && written:
		// Written by a version before markers: it is known, mark it.
		if id, err = newMarkerID(k.rand); err != nil {
			return err
		}
		if err := k.writeMarkers(ctx, ms, id); err != nil {
			return err
		}
	case present == 0:
		return k.setLost("the store holds no keys, no KEK check value and no store marker: if it is a new store, adopt it once (start with --store-adopt, or run kdctl store adopt); if it held keys, restore it from a backup first")
	default:
		return k.setLost(fmt.Sprintf("the store holds %d of the %d copies of its marker: it lost part of its data (a Redis node that came back empty?); restore it, or adopt it as it is (kdctl store adopt)", present, markerCopies))
	}
	if err := k.checkKEKs(ctx, id); err != nil {
		return err
	}
	k.state.mu.Lock()
	k.state.id, k.state.heldKeys, k.state.lost = id, hasKeys, false
	k.state.mu.Unlock()
	return nil
}

func newMarkerID(rand io.Reader) (string, error) {
	if rand == nil {
		return "", errors.New("keystore: no random source for the store marker")
	}
	var b [16]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("keystore: store marker: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// CheckStore checks, again, that the store opened by Open has not lost its
// data: every copy of its marker is there, and it is not empty if it held
// keys. It returns a *StoreLostError when it has (and from then on writes
// are refused and missing keys are reported as ErrStoreLost, until the
// marker is back or the store is adopted), nil when it has not, or the
// store's error when it could not tell (which changes nothing). A server
// calls it every minute.
func (k *Keys) CheckStore(ctx context.Context) error {
	k.state.check.Lock()
	defer k.state.check.Unlock()
	k.state.mu.Lock()
	want, held := k.state.id, k.state.heldKeys
	k.state.mu.Unlock()
	if want == "" {
		// Open refused it (or was not called): try again, without adopting.
		return k.openStore(ctx, OpenOptions{})
	}
	ms, err := k.markers(ctx)
	if err != nil {
		return err
	}
	id, present, err := markerSummary(ms)
	var why string
	switch {
	case err != nil:
		why = err.Error()
	case present < markerCopies:
		why = fmt.Sprintf("%d of the %d copies of the store marker are gone: the store lost data (restarted without persistence, flushed, or a node came back empty)", markerCopies-present, markerCopies)
	case id != want:
		why = fmt.Sprintf("the store marker changed from %s to %s: this is another store, or one restored from another backup", want, id)
	case held:
		hasKeys, _, err := k.holdsData(ctx)
		if err != nil {
			return err
		}
		if !hasKeys {
			why = "the store held keys and now holds none"
		}
	default:
		hasKeys, _, err := k.holdsData(ctx)
		if err != nil {
			return err
		}
		if hasKeys {
			k.state.mu.Lock()
			k.state.heldKeys = true
			k.state.mu.Unlock()
		}
	}
	if why != "" {
		return k.setLost(why)
	}
	k.state.mu.Lock()
	k.state.lost, k.state.lostWhy = false, ""
	k.state.mu.Unlock()
	return nil
}

// Lost returns the *StoreLostError of the last check that found the store
// lost, or nil.
func (k *Keys) Lost() error {
	k.state.mu.Lock()
	defer k.state.mu.Unlock()
	if !k.state.lost {
		return nil
	}
	return &StoreLostError{Why: k.state.lostWhy}
}

// Adopt takes the store as it is now, on an operator's word: it writes the
// missing copies of the marker (keeping the identity of those present, or
// a new one), checks the KEKs (writing the check values of KEK IDs the
// store has not seen), and clears the lost state.
func (k *Keys) Adopt(ctx context.Context) (string, error) {
	k.state.check.Lock()
	defer k.state.check.Unlock()
	ms, err := k.markers(ctx)
	if err != nil {
		return "", err
	}
	id, _, _ := markerSummary(ms)
	if id == "" {
		if id, err = newMarkerID(k.rand); err != nil {
			return "", err
		}
	}
	if err := k.writeMarkers(ctx, ms, id); err != nil {
		return "", err
	}
	ms, err = k.markers(ctx)
	if err != nil {
		return "", err
	}
	if got, present, err := markerSummary(ms); err != nil || present != markerCopies || got != id {
		return "", fmt.Errorf("keystore: adopt: the store holds the markers of another store; remove the %s* meta values first", markerPrefix)
	}
	if err := k.checkKEKs(ctx, id); err != nil {
		return "", err
	}
	hasKeys, _, err := k.holdsData(ctx)
	if err != nil {
		return "", err
	}
	k.state.mu.Lock()
	k.state.id, k.state.heldKeys, k.state.lost, k.state.lostWhy = id, hasKeys, false, ""
	k.state.mu.Unlock()
	return id, nil
}

// markersIntact reports whether every copy of the marker id is stored.
func (k *Keys) markersIntact(ctx context.Context, id string) error {
	ms, err := k.markers(ctx)
	if err != nil {
		return err
	}
	got, present, err := markerSummary(ms)
	if err != nil || present != markerCopies || got != id {
		return &StoreLostError{Why: "the store marker changed while the KEKs were being checked: the store lost its data; no KEK check value was written"}
	}
	return nil
}

// StoreID is the identity of the store's marker, "" before Open.
func (k *Keys) StoreID() string {
	k.state.mu.Lock()
	defer k.state.mu.Unlock()
	return k.state.id
}

// writable refuses writes into a store found lost.
func (k *Keys) writable() error { return k.Lost() }

// notFound turns ErrNotFound into the store-lost error (which does not
// match ErrNotFound) while the store is found lost: a key it does not hold
// may be one it lost.
func (k *Keys) notFound(err error) error {
	if err == nil || !errors.Is(err, ErrNotFound) || errors.Is(err, ErrDeleted) {
		return err
	}
	if lost := k.Lost(); lost != nil {
		// Not wrapping ErrNotFound: callers must not report it missing.
		return lost
	}
	return err
}

// wroteKeys notes that the store holds keys now.
func (k *Keys) wroteKeys() {
	k.state.mu.Lock()
	k.state.heldKeys = true
	k.state.mu.Unlock()
}

// Idempotency keys: a create of a random key may carry one, so that a
// retry of it (after a timeout, a 503 or a dropped connection) answers the
// key the first attempt created instead of creating another.

// IdempotencyTTL is how long the store remembers an idempotency key: a
// retry within it gets the first attempt's key.
const IdempotencyTTL = 24 * time.Hour

// MaxIdempotencyKey is the longest idempotency key accepted, in bytes.
const MaxIdempotencyKey = 255

// ErrIdempotencyMismatch: the idempotency key was used before for a
// different request.
var ErrIdempotencyMismatch = errors.New("keystore: idempotency key already used for a different request")

const idempotencyPrefix = "idempotency/"

type idempotencyValue struct {
	KID         KeyID  `json:"kid"`
	Fingerprint string `json:"fp"`
}

// ClaimIdempotency binds the idempotency key key of the caller scope to the
// KID id and the request's fingerprint (a digest of everything the request
// asks for, nothing secret), for IdempotencyTTL. first reports whether this
// call made the binding; otherwise got is the KID bound before, for the same
// fingerprint (else ErrIdempotencyMismatch). The store keeps only a digest of
// scope and key. It needs an Expiring store.
func (k *Keys) ClaimIdempotency(ctx context.Context, scope, key string, id KeyID, fingerprint []byte) (got KeyID, first bool, err error) {
	if err := k.writable(); err != nil {
		return KeyID{}, false, err
	}
	ex, ok := k.store.(Expiring)
	if !ok {
		return KeyID{}, false, errors.New("keystore: this store cannot remember idempotency keys")
	}
	h := sha256.Sum256([]byte(scope + "\x00" + key))
	name := idempotencyPrefix + hex.EncodeToString(h[:])
	fp := hex.EncodeToString(fingerprint)
	b, err := json.Marshal(idempotencyValue{KID: id, Fingerprint: fp})
	if err != nil {
		return KeyID{}, false, err
	}
	for range 2 {
		err = k.call(ctx, opCreateExpiring, func(ctx context.Context) error { return ex.CreateExpiring(ctx, name, b, IdempotencyTTL) })
		if err == nil {
			return id, true, nil
		}
		if !errors.Is(err, ErrExists) {
			return KeyID{}, false, fmt.Errorf("keystore: idempotency key: %w", err)
		}
		var stored []byte
		err = k.call(ctx, opGetExpiring, func(ctx context.Context) (err error) {
			stored, err = ex.GetExpiring(ctx, name)
			return err
		})
		if errors.Is(err, ErrNotFound) {
			continue // expired between the two calls
		}
		if err != nil {
			return KeyID{}, false, fmt.Errorf("keystore: idempotency key: %w", err)
		}
		var v idempotencyValue
		if err := json.Unmarshal(stored, &v); err != nil {
			return KeyID{}, false, fmt.Errorf("keystore: idempotency key: stored value does not decode: %w", err)
		}
		if v.Fingerprint != fp {
			return KeyID{}, false, ErrIdempotencyMismatch
		}
		return v.KID, false, nil
	}
	return KeyID{}, false, fmt.Errorf("%w: idempotency key keeps changing", ErrUnavailable)
}

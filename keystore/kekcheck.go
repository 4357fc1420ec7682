package keystore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// KEKReport is what VerifyKEKs found about the keyring's KEKs in the store.
type KEKReport struct {
	// Recorded lists the KEK IDs the store holds a check value for (every
	// KEK a server has started with on this store), sorted.
	Recorded []string
	// New lists the keyring's KEK IDs the store has no check value for
	// yet; CheckKEKs records them.
	New []string
	// Retired lists the recorded KEK IDs the keyring lacks under which no
	// stored value is sealed: the KEK file may leave them out.
	Retired []string
	// Empty: the store holds no check value at all. No server has started
	// on it: it is new (and so holds no key).
	Empty bool
}

// MissingKEKError refuses a keyring that lacks KEKs the store's values are
// sealed under: those keys could not be delivered.
type MissingKEKError struct {
	// IDs are the missing KEK IDs, sorted.
	IDs []string
}

func (e *MissingKEKError) Error() string {
	quoted := make([]string, len(e.IDs))
	for i, id := range e.IDs {
		quoted[i] = fmt.Sprintf("%q", id)
	}
	return fmt.Sprintf("keystore: the store holds keys sealed under kek %s, which the kek file lacks: "+
		"refusing to start, since they could not be delivered (put the missing kek lines back in the kek file, after the first line)",
		strings.Join(quoted, ", "))
}

// VerifyKEKs checks the keyring against the store without writing
// anything:
//
//   - every KEK of the keyring whose ID the store has a check value for
//     must open it (else the KEK file holds a different key under that ID:
//     an error wrapping ErrSealed);
//   - every KEK ID the store has a check value for but the keyring lacks
//     must have no stored value (key or key seed) sealed under it (else a
//     *MissingKEKError naming them).
//
// The store's KEK IDs come from its check values, which every server
// writes for each KEK it starts with, so rotation leaves the old ID
// recorded. Only when the keyring lacks a recorded ID are the stored values
// read (their KEK IDs are in the clear), until each missing ID is found or
// the store is read through; a missing ID under which nothing is sealed any
// more is reported as Retired.
func (k *Keys) VerifyKEKs(ctx context.Context) (KEKReport, error) {
	var rep KEKReport
	var names []string
	err := k.call(ctx, opListMeta, func(ctx context.Context) (err error) {
		names, err = k.store.ListMeta(ctx, kekCheckPrefix)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("keystore: list kek check values: %w", err)
	}
	for _, n := range names {
		rep.Recorded = append(rep.Recorded, strings.TrimPrefix(n, kekCheckPrefix))
	}
	sort.Strings(rep.Recorded)
	ring := k.ring.IDs()
	for _, id := range ring {
		v, err := k.meta(ctx, kekCheckPrefix+id)
		switch {
		case errors.Is(err, ErrNotFound):
			rep.New = append(rep.New, id)
			continue
		case err != nil:
			return rep, fmt.Errorf("keystore: check kek %q: %w", id, err)
		}
		if !slices.Contains(rep.Recorded, id) { // a name the store's listing missed
			rep.Recorded = append(rep.Recorded, id)
			sort.Strings(rep.Recorded)
		}
		var probe [16]byte
		if err := k.ring.open(kekCheckSlot(id), v, probe[:]); err != nil {
			return rep, fmt.Errorf("keystore: kek %q is not the key-encryption key this store was written with: refusing to start (restore the right kek file): %w", id, err)
		}
	}
	rep.Empty = len(rep.Recorded) == 0
	var missing []string
	for _, id := range rep.Recorded {
		if !slices.Contains(ring, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return rep, nil
	}
	used, err := k.sealedUnder(ctx, missing)
	if err != nil {
		return rep, fmt.Errorf("keystore: look for values sealed under kek %s: %w", strings.Join(missing, ", "), err)
	}
	var inUse []string
	for _, id := range missing {
		if used[id] {
			inUse = append(inUse, id)
		} else {
			rep.Retired = append(rep.Retired, id)
		}
	}
	if len(inUse) > 0 {
		return rep, &MissingKEKError{IDs: inUse}
	}
	return rep, nil
}

// meta reads a meta value within the store deadline.
func (k *Keys) meta(ctx context.Context, name string) (v []byte, err error) {
	err = k.call(ctx, opGetMeta, func(ctx context.Context) (err error) {
		v, err = k.store.GetMeta(ctx, name)
		return err
	})
	return v, err
}

// sealedUnder reports which of ids some stored key or key seed is sealed
// under, reading the stored values until every one of ids is found.
func (k *Keys) sealedUnder(ctx context.Context, ids []string) (map[string]bool, error) {
	found := map[string]bool{}
	want := func(sealed []byte) bool {
		if id := sealedKEKID(sealed); slices.Contains(ids, id) {
			found[id] = true
		}
		return len(found) < len(ids)
	}
	var seeds []string
	err := k.call(ctx, opListMeta, func(ctx context.Context) (err error) {
		seeds, err = k.store.ListMeta(ctx, keySeedPrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, name := range seeds {
		b, err := k.meta(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var j keySeedJSON
		if json.Unmarshal(b, &j) == nil && !want(j.Sealed) {
			return found, nil
		}
	}
	const page = 500
	from := KeyID{}
	for {
		var rs []Record
		err := k.call(ctx, opList, func(ctx context.Context) (err error) {
			rs, err = k.store.List(ctx, from, page)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !want(r.Sealed) {
				return found, nil
			}
		}
		if len(rs) < page {
			return found, nil
		}
		next, ok := rs[len(rs)-1].ID.Next()
		if !ok {
			return found, nil
		}
		from = next
	}
}

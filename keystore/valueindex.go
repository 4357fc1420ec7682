package keystore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// The value index lets an import whose entries carry no KID (the seed's
// JSON format allows that) be sent again without storing the same key
// bytes twice under two random KIDs. For each key created that way, Keys
// records a meta entry
//
//	keyhash/<KEK ID>/<HMAC-SHA256 of the 16 key bytes, hex> -> the KID's 16 bytes
//
// Security invariant: the key bytes are never stored or compared in the
// clear: the entry's name is a keyed hash, under a key derived from the
// KEK (indexKey), so without the KEK file it reveals nothing about the key,
// and equal names mean equal keys only to someone holding the KEK.
//
// Rotation: entries are written under the primary KEK and looked up under
// every KEK of the keyring, so entries made before a rotation are still
// found (a re-import then also records the entry under the new primary).
// An entry whose KEK left the file is no longer found; that KEK left
// because no stored value needs it, so no live key is duplicated.
//
// Concurrency: the entry is created (CreateMeta, create-only on every
// backend) before the key. Of two imports of the same bytes at once, one
// creates the entry; the other finds it, adopts its KID, and its key
// create is then Unchanged: both answer the same KID.
//
// Purge: the entry outlives a purge of its key (the Store has no way to
// delete a meta entry). Importing the same bytes without a KID again then
// brings the key back under its old KID.
const valueIndexPrefix = "keyhash/"

// indexKeyLabel separates the index key from every other use of a KEK.
const indexKeyLabel = "keydelivery/keyhash/v1"

// indexKey derives the key of the value index from a KEK's raw bytes.
func indexKey(raw []byte) []byte {
	m := hmac.New(sha256.New, raw)
	m.Write([]byte(indexKeyLabel))
	return m.Sum(nil)
}

// valueName is the meta name under which k indexes value.
func (k *kek) valueName(value *[16]byte) string {
	m := hmac.New(sha256.New, k.index)
	m.Write(value[:])
	return valueIndexPrefix + k.id + "/" + hex.EncodeToString(m.Sum(nil))
}

// indexWorkers bounds the index lookups and writes in flight for one
// import: enough for a bolt store to write many in one transaction (its
// Batch), and for Redis to overlap the round trips.
const indexWorkers = 32

// KeyIDsByValue looks up, for each key of keys, the KID its value was
// stored under by an earlier ImportByValue, under every KEK of the
// keyring. found[i] reports whether keys[i]'s was; ids[i] is that KID. It
// reads only.
func (k *Keys) KeyIDsByValue(ctx context.Context, keys []Key) (ids []KeyID, found []bool, err error) {
	ids, found = make([]KeyID, len(keys)), make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(indexWorkers)
	for i := range keys {
		g.Go(func() error {
			id, kekID, err := k.lookupValue(gctx, &keys[i].Value)
			ids[i], found[i] = id, kekID != ""
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return ids, found, nil
}

// lookupValue finds value's index entry under any KEK, primary first, and
// returns the KID and the ID of the KEK it was found under ("" for none).
func (k *Keys) lookupValue(ctx context.Context, value *[16]byte) (KeyID, string, error) {
	for _, kekID := range k.ring.IDs() {
		b, err := k.meta(ctx, k.ring.byID[kekID].valueName(value))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return KeyID{}, "", fmt.Errorf("keystore: look up a key by value: %w", err)
		}
		if len(b) != len(KeyID{}) {
			return KeyID{}, "", fmt.Errorf("keystore: value index entry of %d bytes, want 16", len(b))
		}
		return KeyID(b), kekID, nil
	}
	return KeyID{}, "", nil
}

// ImportByValue is Import for keys some of which came without a KID of
// their own (byValue[i], each given a random KID by the caller): each of
// those takes the KID its value was indexed under, under any KEK of the
// keyring, and is indexed under the primary KEK before the import (a
// value found only under an older KEK is indexed under the new one too).
// If another import indexes the same value first, the key takes that KID.
// keys[i].ID is changed in place to the KID used. A value stored again
// under its KID is Unchanged, as in Import.
func (k *Keys) ImportByValue(ctx context.Context, keys []Key, byValue []bool) ([]ImportResult, error) {
	if len(byValue) != len(keys) {
		return nil, errors.New("keystore: ImportByValue: byValue must have one entry per key")
	}
	primary := k.ring.primary
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(indexWorkers)
	for i := range keys {
		if !byValue[i] {
			continue
		}
		g.Go(func() error {
			id, kekID, err := k.lookupValue(gctx, &keys[i].Value)
			if err != nil {
				return err
			}
			if kekID == primary.id {
				keys[i].ID = id // indexed under the primary already
				return nil
			}
			if kekID == "" {
				id = keys[i].ID
			}
			keys[i].ID = id
			name := primary.valueName(&keys[i].Value)
			err = k.call(gctx, opCreateMeta, func(ctx context.Context) error { return k.store.CreateMeta(ctx, name, id[:]) })
			if !errors.Is(err, ErrExists) {
				if err != nil {
					return fmt.Errorf("keystore: index a key by value: %w", err)
				}
				return nil
			}
			b, err := k.meta(gctx, name)
			if err != nil {
				return fmt.Errorf("keystore: index a key by value: %w", err)
			}
			if len(b) != len(KeyID{}) {
				return fmt.Errorf("keystore: value index entry of %d bytes, want 16", len(b))
			}
			keys[i].ID = KeyID(b)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return k.Import(ctx, keys)
}

package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keydelivery/keydelivery/keystore"
)

var (
	// usesBucket: token digest -> count (8 bytes) and expiry (8 bytes,
	// Unix nanoseconds), big-endian.
	usesBucket = []byte("uses")
	// usesExpiryBucket: expiry (8 bytes) and digest -> empty, so that the
	// counters past their expiry are found first, without a scan.
	usesExpiryBucket = []byte("uses-expiry")
)

var _ keystore.Counter = (*Store)(nil)

// sweepPerUse is how many expired counters each CountUse removes: more
// than one, so the file never holds many more counters than unexpired
// tokens, however they arrive.
const sweepPerUse = 4

// CountUse implements keystore.Counter. Concurrent calls share write
// transactions (bbolt's Batch), each committed with one fsync; each also
// removes up to sweepPerUse counters whose expiry has passed.
func (s *Store) CountUse(ctx context.Context, digest [32]byte, expires time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int64
	err := s.db.Batch(func(tx *bolt.Tx) error {
		now := time.Now().UnixNano()
		uses, err := tx.CreateBucketIfNotExists(usesBucket)
		if err != nil {
			return err
		}
		index, err := tx.CreateBucketIfNotExists(usesExpiryBucket)
		if err != nil {
			return err
		}
		if err := sweepUses(uses, index, now); err != nil {
			return err
		}
		count, exp := uint64(0), expires.UnixNano()
		if v := uses.Get(digest[:]); len(v) == 16 {
			if old := int64(binary.BigEndian.Uint64(v[8:])); old > now {
				count, exp = binary.BigEndian.Uint64(v[:8]), old
			} else if err := index.Delete(expiryKey(old, digest)); err != nil {
				return err
			}
		}
		count++
		var v [16]byte
		binary.BigEndian.PutUint64(v[:8], count)
		binary.BigEndian.PutUint64(v[8:], uint64(exp))
		if err := uses.Put(digest[:], v[:]); err != nil {
			return err
		}
		if err := index.Put(expiryKey(exp, digest), nil); err != nil {
			return err
		}
		n = int64(count)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("boltstore: count use: %w", err)
	}
	return n, nil
}

// expiryKey is the index key of a counter.
func expiryKey(exp int64, digest [32]byte) []byte {
	k := make([]byte, 8+32)
	binary.BigEndian.PutUint64(k, uint64(exp))
	copy(k[8:], digest[:])
	return k
}

// sweepUses removes up to sweepPerUse counters whose expiry is before now.
// (An expiry before 1970 is negative and sorts last: such a counter is
// never swept, but CountUse resets it like any expired one.)
func sweepUses(uses, index *bolt.Bucket, now int64) error {
	c := index.Cursor()
	for range sweepPerUse {
		k, _ := c.First() // Delete moves the cursor: start again each time
		if len(k) != 40 {
			return nil
		}
		if exp := int64(binary.BigEndian.Uint64(k[:8])); exp >= now || exp < 0 {
			return nil
		}
		key := bytes.Clone(k)
		if err := c.Delete(); err != nil {
			return err
		}
		// The counter may have been renewed under a later expiry.
		if v := uses.Get(key[8:]); len(v) == 16 && bytes.Equal(v[8:], key[:8]) {
			if err := uses.Delete(key[8:]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Package boltstore is the embedded keystore.Store: one durable file on
// local disk (go.etcd.io/bbolt), the zero-setup default for one machine.
// Every write is committed with fsync before Create returns. The file is
// locked while open, so a second process gets a clear error rather than a
// shared, corrupted file. bbolt stays inside this package.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/keydelivery/keydelivery/keystore"
)

var (
	keysBucket     = []byte("keys")
	metaBucket     = []byte("meta")
	assetsBucket   = []byte("assets")   // asset ID, 0, KID -> empty: the keys of each asset
	expiringBucket = []byte("expiring") // name -> 8 bytes of expiry (Unix nanoseconds, big-endian), value
)

// Store is a keystore.Store on a bbolt file.
type Store struct {
	db   *bolt.DB
	path string
	// lastSweep is when CreateExpiring last removed expired values
	// (Unix nanoseconds).
	lastSweep atomic.Int64
}

var (
	_ keystore.Store    = (*Store)(nil)
	_ keystore.Expiring = (*Store)(nil)
)

// Open opens (creating if needed, with mode 0600) the store file at path.
// It waits at most lockTimeout for another process to release the file.
func Open(path string, lockTimeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: %s is in use by another process (a running keydelivery?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	// A store that has its buckets is not written to on open, so a server
	// that opens it and then refuses to start (a wrong KEK) leaves the
	// file as it was.
	ready := db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{keysBucket, metaBucket, assetsBucket, expiringBucket} {
			if tx.Bucket(b) == nil {
				return bolterrors.ErrBucketNotFound
			}
		}
		return nil
	}) == nil
	if !ready {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{keysBucket, metaBucket, assetsBucket, expiringBucket} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Path returns the file the store lives in.
func (s *Store) Path() string { return s.path }

// Get implements keystore.Store.
func (s *Store) Get(ctx context.Context, id keystore.KeyID) (keystore.Record, error) {
	b, err := s.get(ctx, keysBucket, id[:])
	if err != nil {
		return keystore.Record{}, fmt.Errorf("boltstore: get %s: %w", id, err)
	}
	r, err := keystore.DecodeRecord(b)
	if err != nil {
		return keystore.Record{}, fmt.Errorf("boltstore: get %s: %w", id, err)
	}
	return r, nil
}

// Create implements keystore.Store.
func (s *Store) Create(ctx context.Context, r keystore.Record) error {
	errs, err := s.CreateBatch(ctx, []keystore.Record{r})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", r.ID, err)
	}
	return nil
}

// txMax is the most records one write transaction of CreateBatch
// carries. Each transaction is committed with one fsync; bounding it keeps
// the memory of a transaction's dirty pages, and the time other writers
// wait for the file's single writer lock, small, while a 100,000-key
// import still costs only a few fsyncs.
const txMax = 10000

// CreateBatch implements keystore.Store: the records are written in ID
// order, txMax per write transaction, each committed with one fsync. A
// record whose ID is taken answers a *keystore.ExistsError with the record
// as stored (read in the same transaction); one that does not decode
// answers a plain keystore.ErrExists. The context is checked before each
// transaction: a batch cut off between two leaves the earlier ones written
// and answers the context's error (as a single error when nothing was
// written, else per record not attempted).
//
// Writing in ID order matters: bbolt splits a transaction's nodes only when
// it commits, so keys inserted in random order into one transaction make
// every insert move the rest of one growing node (quadratic), while keys in
// order are appended.
func (s *Store) CreateBatch(ctx context.Context, rs []keystore.Record) ([]error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	encoded := make([][]byte, len(rs))
	for i, r := range rs {
		b, err := keystore.EncodeRecord(r)
		if err != nil {
			return nil, fmt.Errorf("boltstore: create %s: %w", r.ID, err)
		}
		for _, a := range r.Assets {
			if a == "" || strings.IndexByte(a, 0) >= 0 {
				return nil, fmt.Errorf("boltstore: create %s: invalid asset id %q", r.ID, a)
			}
		}
		encoded[i] = b
	}
	// Positions in ID order; a stable sort keeps a repeated KID's first
	// occurrence first, so the later ones answer ErrExists.
	order := make([]int, len(rs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := bytes.Compare(rs[a].ID[:], rs[b].ID[:]); c != 0 {
			return c
		}
		return a - b // stable
	})

	errs := make([]error, len(rs))
	for start := 0; start < len(order); start += txMax {
		chunk := order[start:min(start+txMax, len(order))]
		if err := ctx.Err(); err != nil {
			if start == 0 {
				return nil, err
			}
			for _, i := range order[start:] {
				errs[i] = fmt.Errorf("boltstore: create %s: not attempted: %w", rs[i].ID, err)
			}
			break
		}
		err := s.update(func(tx *bolt.Tx) error {
			keys, assets := tx.Bucket(keysBucket), tx.Bucket(assetsBucket)
			for _, i := range chunk {
				r := rs[i]
				if v := keys.Get(r.ID[:]); v != nil {
					// DecodeRecord copies what it keeps: v is only valid
					// inside the transaction.
					if stored, err := keystore.DecodeRecord(v); err == nil {
						errs[i] = &keystore.ExistsError{ID: r.ID, Stored: stored}
					} else {
						errs[i] = keystore.ErrExists
					}
					continue
				}
				if err := keys.Put(r.ID[:], encoded[i]); err != nil {
					return err
				}
				for _, a := range r.Assets {
					if err := assets.Put(assetKey(a, r.ID), nil); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			if start == 0 {
				return nil, fmt.Errorf("boltstore: create batch: %w", err)
			}
			for _, i := range order[start:] {
				errs[i] = fmt.Errorf("boltstore: create %s: %w", rs[i].ID, err)
			}
			break
		}
	}
	return errs, nil
}

func assetKey(asset string, id keystore.KeyID) []byte {
	k := make([]byte, 0, len(asset)+1+len(id))
	k = append(k, asset...)
	k = append(k, 0)
	return append(k, id[:]...)
}

// Update implements keystore.Store.
func (s *Store) Update(ctx context.Context, id keystore.KeyID, fn func(*keystore.Record) error) (keystore.Record, error) {
	if err := ctx.Err(); err != nil {
		return keystore.Record{}, err
	}
	var out keystore.Record
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(keysBucket)
		v := b.Get(id[:])
		if v == nil {
			return keystore.ErrNotFound
		}
		before, err := keystore.DecodeRecord(v)
		if err != nil {
			return err
		}
		after, _ := keystore.DecodeRecord(v) // an independent copy for fn to edit
		if err := fn(&after); err != nil {
			return err
		}
		if err := keystore.CheckUpdate(&before, &after); err != nil {
			return err
		}
		enc, err := keystore.EncodeRecord(after)
		if err != nil {
			return err
		}
		out = after
		return b.Put(id[:], enc)
	})
	if err != nil {
		return keystore.Record{}, fmt.Errorf("boltstore: update %s: %w", id, err)
	}
	return out, nil
}

// Delete implements keystore.Store.
func (s *Store) Delete(ctx context.Context, id keystore.KeyID, check func(*keystore.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(keysBucket)
		v := b.Get(id[:])
		if v == nil {
			return keystore.ErrNotFound
		}
		r, err := keystore.DecodeRecord(v)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(&r); err != nil {
				return err
			}
		}
		for _, a := range r.Assets {
			if err := tx.Bucket(assetsBucket).Delete(assetKey(a, id)); err != nil {
				return err
			}
		}
		return b.Delete(id[:])
	})
	if err != nil {
		return fmt.Errorf("boltstore: delete %s: %w", id, err)
	}
	return nil
}

// List implements keystore.Store.
func (s *Store) List(ctx context.Context, from keystore.KeyID, limit int) ([]keystore.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []keystore.Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(keysBucket).Cursor()
		for k, v := c.Seek(from[:]); k != nil && len(out) < limit; k, v = c.Next() {
			r, err := keystore.DecodeRecord(v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: list: %w", err)
	}
	return out, nil
}

// ListAsset implements keystore.Store.
func (s *Store) ListAsset(ctx context.Context, asset string, from keystore.KeyID, limit int) ([]keystore.KeyID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := assetKey(asset, keystore.KeyID{})[:len(asset)+1]
	var out []keystore.KeyID
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(assetsBucket).Cursor()
		for k, _ := c.Seek(assetKey(asset, from)); k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			var id keystore.KeyID
			if copy(id[:], k[len(prefix):]) == len(id) {
				out = append(out, id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: list asset: %w", err)
	}
	return out, nil
}

// GetMeta implements keystore.Store.
func (s *Store) GetMeta(ctx context.Context, name string) ([]byte, error) {
	b, err := s.get(ctx, metaBucket, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("boltstore: get meta %s: %w", name, err)
	}
	return b, nil
}

// CreateMeta implements keystore.Store.
func (s *Store) CreateMeta(ctx context.Context, name string, value []byte) error {
	if err := s.createMeta(ctx, []byte(name), value); err != nil {
		return fmt.Errorf("boltstore: create meta %s: %w", name, err)
	}
	return nil
}

func (s *Store) get(ctx context.Context, bucket, k []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(k)
		if v == nil {
			return keystore.ErrNotFound
		}
		out = append([]byte(nil), v...) // v is only valid inside the transaction
		return nil
	})
	return out, err
}

// ListMeta implements keystore.Store.
func (s *Store) ListMeta(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var names []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(metaBucket).Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			names = append(names, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: list meta: %w", err)
	}
	return names, nil
}

// createMeta writes through bbolt's Batch, so that concurrent meta
// creates (the value index of a large import without KIDs makes one per
// key) share transactions and fsyncs instead of taking one each. Batch may
// run the function more than once, in a transaction that is then rolled
// back: it sets exists afresh each time, and returns no error for a taken
// name (an error would make Batch retry the others one by one).
func (s *Store) createMeta(ctx context.Context, k, v []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var exists bool
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(metaBucket)
		exists = b.Get(k) != nil
		if exists {
			return nil
		}
		return b.Put(k, v)
	})
	if err == nil && exists {
		return keystore.ErrExists
	}
	return full(err)
}

// update runs a write transaction. A write refused for lack of room (a
// full disk, a quota, a file size limit) is keystore.ErrFull: bbolt rolls
// the transaction back, and the file stays as it was, readable.
func (s *Store) update(fn func(*bolt.Tx) error) error { return full(s.db.Update(fn)) }

// full marks the errors of a full disk as keystore.ErrFull.
func full(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) || fullText(err) {
		return fmt.Errorf("%w: %w", keystore.ErrFull, err)
	}
	return err
}

// fullText reports whether err's text ends with the text of a full disk's
// errno. bbolt wraps the errors of growing its file with %s ("file resize
// error: truncate ...: file too large", "file sync error: ..."), which
// drops their type: only the text is left of them. This is the one place
// an error is matched by text, at the boundary where bbolt lost it.
func fullText(err error) bool {
	msg := err.Error()
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		if strings.HasSuffix(msg, ": "+e.Error()) {
			return true
		}
	}
	return false
}

// sweepEvery is how often CreateExpiring removes expired values.
const sweepEvery = time.Hour

// CreateExpiring implements keystore.Expiring. An expired value under name
// is replaced; once an hour the call also removes every expired value.
func (s *Store) CreateExpiring(ctx context.Context, name string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	sweep := now.UnixNano()-s.lastSweep.Load() > int64(sweepEvery)
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(expiringBucket)
		if v := b.Get([]byte(name)); v != nil && !expired(v, now) {
			return keystore.ErrExists
		}
		if sweep {
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if expired(v, now) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
			}
		}
		rec := make([]byte, 8, 8+len(value))
		binary.BigEndian.PutUint64(rec, uint64(now.Add(ttl).UnixNano()))
		return b.Put([]byte(name), append(rec, value...))
	})
	if err != nil {
		return fmt.Errorf("boltstore: create expiring %s: %w", name, err)
	}
	if sweep {
		s.lastSweep.Store(now.UnixNano())
	}
	return nil
}

// GetExpiring implements keystore.Expiring.
func (s *Store) GetExpiring(ctx context.Context, name string) ([]byte, error) {
	b, err := s.get(ctx, expiringBucket, []byte(name))
	if err == nil && (len(b) < 8 || expired(b, time.Now())) {
		err = keystore.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: get expiring %s: %w", name, err)
	}
	return b[8:], nil
}

// expired reports whether the stored expiring value v has expired at now.
func expired(v []byte, now time.Time) bool {
	return len(v) < 8 || int64(binary.BigEndian.Uint64(v)) <= now.UnixNano()
}

// Ping implements keystore.Store: it fails once the store is closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("boltstore: ping: %w: %w", keystore.ErrUnavailable, err)
	}
	return nil
}

// Close implements keystore.Store.
func (s *Store) Close() error { return s.db.Close() }

// Link implements keystore.Store: the record and the asset's index entry
// change in one transaction.
func (s *Store) Link(ctx context.Context, id keystore.KeyID, asset string) (keystore.Record, error) {
	return s.setAsset(ctx, id, asset, true)
}

// Unlink implements keystore.Store like Link.
func (s *Store) Unlink(ctx context.Context, id keystore.KeyID, asset string) (keystore.Record, error) {
	return s.setAsset(ctx, id, asset, false)
}

func (s *Store) setAsset(ctx context.Context, id keystore.KeyID, asset string, link bool) (keystore.Record, error) {
	if err := ctx.Err(); err != nil {
		return keystore.Record{}, err
	}
	if asset == "" || strings.IndexByte(asset, 0) >= 0 {
		return keystore.Record{}, fmt.Errorf("boltstore: link %s: invalid asset id %q", id, asset)
	}
	var out keystore.Record
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(keysBucket)
		v := b.Get(id[:])
		if v == nil {
			return keystore.ErrNotFound
		}
		r, err := keystore.DecodeRecord(v)
		if err != nil {
			return err
		}
		has := slices.Contains(r.Assets, asset)
		assets := tx.Bucket(assetsBucket)
		if link {
			if !has {
				r.Assets = append(r.Assets, asset)
			}
			err = assets.Put(assetKey(asset, id), nil)
		} else {
			r.Assets = slices.DeleteFunc(r.Assets, func(a string) bool { return a == asset })
			if len(r.Assets) == 0 {
				r.Assets = nil
			}
			err = assets.Delete(assetKey(asset, id))
		}
		if err != nil {
			return err
		}
		out = r
		if has == link {
			return nil // no change to the record
		}
		enc, err := keystore.EncodeRecord(r)
		if err != nil {
			return err
		}
		return b.Put(id[:], enc)
	})
	if err != nil {
		verb := "link"
		if !link {
			verb = "unlink"
		}
		return keystore.Record{}, fmt.Errorf("boltstore: %s %s: %w", verb, id, err)
	}
	return out, nil
}

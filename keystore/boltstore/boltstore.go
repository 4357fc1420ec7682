// Package boltstore is the embedded keystore.Store: one durable file on
// local disk (go.etcd.io/bbolt), the zero-setup default for one machine.
// Every write is committed with fsync before Create returns. The file is
// locked while open, so a second process gets a clear error rather than a
// shared, corrupted file. bbolt stays inside this package.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/keydelivery/keydelivery/keystore"
)

var (
	keysBucket = []byte("keys")
	metaBucket = []byte("meta")
)

// Store is a keystore.Store on a bbolt file.
type Store struct {
	db   *bolt.DB
	path string
}

var _ keystore.Store = (*Store)(nil)

// Open opens (creating if needed, with mode 0600) the store file at path.
// It waits at most lockTimeout for another process to release the file.
func Open(path string, lockTimeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: %s is in use by another process (a running keydelivery?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{keysBucket, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
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
	b, err := keystore.EncodeRecord(r)
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", r.ID, err)
	}
	if err := s.create(ctx, keysBucket, r.ID[:], b); err != nil {
		return fmt.Errorf("boltstore: create %s: %w", r.ID, err)
	}
	return nil
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
	if err := s.create(ctx, metaBucket, []byte(name), value); err != nil {
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

func (s *Store) create(ctx context.Context, bucket, k, v []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get(k) != nil {
			return keystore.ErrExists
		}
		return b.Put(k, v)
	})
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

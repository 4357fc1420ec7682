package boltstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNoStore: OpenReadOnly found no file at the path.
var ErrNoStore = errors.New("boltstore: no store file")

// OpenReadOnly opens an existing store file for reading only, for checks
// that must change nothing (keydelivery --check-config): it never creates
// the file or its directory, and every write fails. bbolt's read-only
// open takes a shared lock, which a running server's exclusive lock
// excludes: it waits at most lockTimeout, then fails saying the file is in
// use. A file that is not a store of this package is refused.
func OpenReadOnly(path string, lockTimeout time.Duration) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNoStore, path)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: %s is in use by another process (a running keydelivery?): bbolt lets one process at a time open it; stop that process to read it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{keysBucket, metaBucket, assetsBucket} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("no %q bucket: not a keydelivery store", b)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

package boltstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// compactTxSize bounds the data copied per write transaction while
// compacting.
const compactTxSize = 64 << 20

// Compact rewrites the store file at path without its free pages, which
// keep the bytes of deleted records (a purged key's sealed value) until
// bbolt reuses them: a copy of the file taken after a purge could
// otherwise still yield the value. It copies the live data into a new file
// beside path (bbolt's Compact), syncs it, and renames it over path, so
// the file is either the old one or the compacted one. It is offline: the
// server must be stopped (a running server holds the file's lock, and
// Compact waits at most lockTimeout for it). It returns the file's size
// before and after.
func Compact(path string, lockTimeout time.Duration) (before, after int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("boltstore: compact: %w", err)
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("boltstore: compact: %s is in use by another process (stop keydelivery first)", path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("boltstore: compact: open %s: %w", path, err)
	}
	defer src.Close()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".compact")
	_ = os.Remove(tmp) // left by an interrupted run
	dst, err := bolt.Open(tmp, fi.Mode().Perm(), &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return 0, 0, fmt.Errorf("boltstore: compact: create %s: %w", tmp, err)
	}
	if err := bolt.Compact(dst, src, compactTxSize); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("boltstore: compact: %w", err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("boltstore: compact: sync: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("boltstore: compact: %w", err)
	}
	// The old file is replaced while its lock is still held, so no server
	// can open it in between.
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("boltstore: compact: replace %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	nfi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("boltstore: compact: %w", err)
	}
	return fi.Size(), nfi.Size(), nil
}

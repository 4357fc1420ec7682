package tlsserve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Blobs is a store that every instance shares (Redis: package
// keystore/redisstore implements it), holding small named values and
// locks. It is not trusted with secrets: SharedStorage seals every value
// before it reaches it.
type Blobs interface {
	// PutBlob stores value under name, replacing any value there.
	PutBlob(ctx context.Context, name string, value []byte) error
	// GetBlob returns the value under name and when it was stored; found
	// is false when there is none.
	GetBlob(ctx context.Context, name string) (value []byte, modified time.Time, found bool, err error)
	// DeleteBlob removes the value under name, if any.
	DeleteBlob(ctx context.Context, name string) error
	// ListBlobs returns the names that start with prefix.
	ListBlobs(ctx context.Context, prefix string) ([]string, error)
	// TryLock takes the lock name for ttl as the holder token, unless
	// another holder has it.
	TryLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	// RenewLock extends the lock name to ttl from now if token holds it.
	RenewLock(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	// Unlock releases the lock name if token holds it.
	Unlock(ctx context.Context, name, token string) error
}

// SharedStorage is ACME's storage in a shared store: the account key and
// the certificates with their private keys, sealed by Seal before they are
// stored under their name and opened by Open (keystore.Keyring's SealBlob
// and OpenBlob: bound to the name, under the key-encryption key).
type SharedStorage struct {
	Blobs Blobs
	Seal  func(name string, plaintext []byte) ([]byte, error)
	Open  func(name string, sealed []byte) ([]byte, error)
}

// lockTTL is how long a lock outlives a holder that stopped renewing it
// (died); a holder renews it every lockTTL/3.
const lockTTL = time.Minute

// sharedStorage adapts SharedStorage to certmagic.Storage.
type sharedStorage struct {
	s   *SharedStorage
	log *slog.Logger

	mu    sync.Mutex
	locks map[string]func() // name: stops the renewal and releases; guarded by mu
}

var _ certmagic.Storage = (*sharedStorage)(nil)

func newSharedStorage(s *SharedStorage, log *slog.Logger) *sharedStorage {
	return &sharedStorage{s: s, log: log, locks: map[string]func(){}}
}

// Store implements certmagic.Storage.
func (st *sharedStorage) Store(ctx context.Context, key string, value []byte) error {
	sealed, err := st.s.Seal(key, value)
	if err != nil {
		return fmt.Errorf("tlsserve: seal %s: %w", key, err)
	}
	return st.s.Blobs.PutBlob(ctx, key, sealed)
}

// Load implements certmagic.Storage.
func (st *sharedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	sealed, _, found, err := st.s.Blobs.GetBlob(ctx, key)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fs.ErrNotExist
	}
	v, err := st.s.Open(key, sealed)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: open %s: %w", key, err)
	}
	return v, nil
}

// Delete implements certmagic.Storage: key and everything under it.
func (st *sharedStorage) Delete(ctx context.Context, key string) error {
	under, err := st.s.Blobs.ListBlobs(ctx, key+"/")
	if err != nil {
		return err
	}
	for _, n := range append(under, key) {
		if err := st.s.Blobs.DeleteBlob(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Exists implements certmagic.Storage.
func (st *sharedStorage) Exists(ctx context.Context, key string) bool {
	_, err := st.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage.
func (st *sharedStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	prefix := strings.TrimSuffix(path, "/") + "/"
	if path == "" {
		prefix = ""
	}
	names, err := st.s.Blobs.ListBlobs(ctx, prefix)
	if err != nil {
		return nil, err
	}
	if recursive {
		return names, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		first, _, _ := strings.Cut(n[len(prefix):], "/")
		if c := prefix + first; !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// Stat implements certmagic.Storage.
func (st *sharedStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	sealed, mod, found, err := st.s.Blobs.GetBlob(ctx, key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if found {
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(sealed)), IsTerminal: true}, nil
	}
	under, err := st.s.Blobs.ListBlobs(ctx, key+"/")
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(under) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// Lock implements certmagic.Locker: it waits until the lock is free, then
// holds it, renewing it, until Unlock.
func (st *sharedStorage) Lock(ctx context.Context, name string) error {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	wait := 100 * time.Millisecond
	for {
		ok, err := st.s.Blobs.TryLock(ctx, name, token, lockTTL)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if ok, err := st.s.Blobs.RenewLock(rctx, name, token, lockTTL); err != nil || !ok {
					st.log.Warn("ACME storage lock could not be renewed", "lock", name, "err", err)
				}
			}
		}
	}()
	st.mu.Lock()
	st.locks[name] = func() {
		stop()
		<-done
		if err := st.s.Blobs.Unlock(context.Background(), name, token); err != nil {
			st.log.Warn("ACME storage lock could not be released; it expires by itself", "lock", name, "err", err)
		}
	}
	st.mu.Unlock()
	return nil
}

// Unlock implements certmagic.Locker.
func (st *sharedStorage) Unlock(_ context.Context, name string) error {
	st.mu.Lock()
	release, ok := st.locks[name]
	delete(st.locks, name)
	st.mu.Unlock()
	if !ok {
		return fmt.Errorf("tlsserve: unlock %s: not locked here", name)
	}
	release()
	return nil
}

// String names the storage in certmagic's logs.
func (st *sharedStorage) String() string { return "keydelivery shared storage (sealed)" }

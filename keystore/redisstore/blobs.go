package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Blobs and locks: small named values (the ACME account and certificates)
// that every instance on this Redis shares, and the locks that let one
// instance at a time do a piece of work (order a certificate). The store
// keeps the bytes it is given: sealing them is the caller's job (Redis is
// not trusted with secrets). Every blob is a field of one hash,
// <prefix>blobs, so the layout works on Redis Cluster; each lock is a key
// of its own, <prefix>lock:<name>, with a time to live, so a lock whose
// holder died frees itself.

func (s *Store) blobsName() string { return s.prefix + "blobs" }

func (s *Store) lockName(name string) string { return s.prefix + "lock:" + name }

// PutBlob stores value under name, replacing any value there, stamped with
// the time now.
func (s *Store) PutBlob(ctx context.Context, name string, value []byte) error {
	b := make([]byte, 8, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(time.Now().UnixNano()))
	if err := s.c.HSet(ctx, s.blobsName(), name, append(b, value...)).Err(); err != nil {
		return fmt.Errorf("redisstore: put blob %s: %w", name, translate(err))
	}
	return nil
}

// GetBlob returns the value under name and when it was stored; found is
// false when there is none.
func (s *Store) GetBlob(ctx context.Context, name string) (value []byte, modified time.Time, found bool, err error) {
	b, err := s.c.HGet(ctx, s.blobsName(), name).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("redisstore: get blob %s: %w", name, translate(err))
	}
	if len(b) < 8 {
		return nil, time.Time{}, false, fmt.Errorf("redisstore: get blob %s: stored value is truncated", name)
	}
	return b[8:], time.Unix(0, int64(binary.BigEndian.Uint64(b))), true, nil
}

// DeleteBlob removes the value under name, if any.
func (s *Store) DeleteBlob(ctx context.Context, name string) error {
	if err := s.c.HDel(ctx, s.blobsName(), name).Err(); err != nil {
		return fmt.Errorf("redisstore: delete blob %s: %w", name, translate(err))
	}
	return nil
}

// ListBlobs returns the names that start with prefix, sorted.
func (s *Store) ListBlobs(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	iter := s.c.HScan(ctx, s.blobsName(), 0, "", 256).Iterator()
	for i := 0; iter.Next(ctx); i++ {
		if i%2 == 0 && strings.HasPrefix(iter.Val(), prefix) { // fields and values alternate
			out = append(out, iter.Val())
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: list blobs: %w", translate(err))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// TryLock takes the lock name for ttl, as the holder token, unless another
// holder has it; ok says whether it was taken.
func (s *Store) TryLock(ctx context.Context, name, token string, ttl time.Duration) (ok bool, err error) {
	err = s.c.SetArgs(ctx, s.lockName(name), token, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redisstore: lock %s: %w", name, translate(err))
	}
	return true, nil
}

// renewScript extends a lock held by the token ARGV[1] to ARGV[2] ms.
var renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)

// unlockScript deletes a lock held by the token ARGV[1].
var unlockScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// RenewLock extends the lock name to ttl from now if token still holds it;
// ok is false when it does not (it expired, and may have another holder).
func (s *Store) RenewLock(ctx context.Context, name, token string, ttl time.Duration) (ok bool, err error) {
	n, err := renewScript.Run(ctx, s.c, []string{s.lockName(name)}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: renew lock %s: %w", name, translate(err))
	}
	return n == 1, nil
}

// Unlock releases the lock name if token holds it.
func (s *Store) Unlock(ctx context.Context, name, token string) error {
	if err := unlockScript.Run(ctx, s.c, []string{s.lockName(name)}, token).Err(); err != nil {
		return fmt.Errorf("redisstore: unlock %s: %w", name, translate(err))
	}
	return nil
}

package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/keystore"
)

// txAttempts bounds how often Update and Delete try their optimistic
// transaction when another writer changed the record between WATCH and
// EXEC. After the n-th lost attempt they wait a random time below
// min(txBackoffCap, 2^(n-1) ms) ("full jitter"), so that contenders spread
// out quickly; about 300ms on average over all attempts at worst, and
// never beyond the caller's deadline.
const (
	txAttempts   = 20
	txBackoffCap = 32 * time.Millisecond
)

// txBackoff is the wait before attempt (1 or more).
func txBackoff(attempt int) time.Duration {
	ceiling := min(txBackoffCap, time.Millisecond<<min(attempt-1, 16))
	return time.Duration(rand.Int64N(int64(ceiling)))
}

// Update implements keystore.Store with an optimistic transaction on the
// record's key alone (so it works on Redis Cluster): WATCH, GET, fn on the
// decoded record, keystore.CheckUpdate, then MULTI SET EXEC. If another
// writer changed the record in between, EXEC does nothing and Update tries
// again from the GET, up to txAttempts times, then fails with
// keystore.ErrUnavailable ("contended"). fn may therefore run more than
// once, each time on the record as stored then; it must depend on nothing
// else. fn's error, and keystore.ErrImmutable for a change CheckUpdate
// refuses, are returned (wrapped) as they are and cancel the update.
//
// SET is sent without KEEPTTL: records never have a TTL (Create sets none),
// and a plain SET clears one that someone put on a record by hand, which
// would otherwise make the key vanish later.
//
// If the connection fails around EXEC, Update returns
// keystore.ErrUnavailable and the update may or may not have been applied;
// go-redis does not resend an EXEC on a broken connection (the WATCH
// would be lost), so it is never applied twice or unguarded.
func (s *Store) Update(ctx context.Context, id keystore.KeyID, fn func(*keystore.Record) error) (keystore.Record, error) {
	key := s.keyName(id)
	var out keystore.Record
	err := s.watch(ctx, key, func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if err != nil {
			return final(translate(err))
		}
		before, err := decodeAt(id, b)
		if err != nil {
			return final(err)
		}
		after, _ := decodeAt(id, b) // an independent copy for fn to edit
		if err := fn(&after); err != nil {
			return final(err)
		}
		if err := keystore.CheckUpdate(&before, &after); err != nil {
			return final(err)
		}
		out = after
		return s.setRecord(ctx, tx, key, after)
	})
	if err != nil {
		return keystore.Record{}, fmt.Errorf("redisstore: update %s: %w", id, err)
	}
	return out, nil
}

// Delete implements keystore.Store like Update: WATCH, GET, check, then
// MULTI DEL ZREM EXEC (the record and its entry in the key index shard of
// its slot), retried when another writer got in between (check may run
// more than once), then WAIT when writes wait for replicas. Afterwards the
// record's asset entries are removed (ZREM on each asset's set, other
// slots, so not in the transaction). That cleanup is best effort: if it
// fails, Delete still returns nil, because the record, the part that
// matters, is gone, and ListAsset skips and removes members whose record is
// gone.
func (s *Store) Delete(ctx context.Context, id keystore.KeyID, check func(*keystore.Record) error) error {
	key := s.keyName(id)
	var assets []string
	err := s.watch(ctx, key, func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if err != nil {
			return final(translate(err))
		}
		r, err := decodeAt(id, b)
		if err != nil {
			return final(err)
		}
		stored := slices.Clone(r.Assets) // check may edit r
		if check != nil {
			if err := check(&r); err != nil {
				return final(err)
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			p.ZRem(ctx, s.shardOf(keyIndex, key), member(id))
			return nil
		})
		if err != nil {
			return err
		}
		assets = stored
		if err := s.confirmOn(ctx, tx, key); err != nil {
			return final(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: delete %s: %w", id, err)
	}
	_ = s.unindex(ctx, entries(id, assets, 0))
	return nil
}

// confirmOn waits for the replicas to hold what tx wrote (see confirm).
func (s *Store) confirmOn(ctx context.Context, tx *redis.Tx, key string) error {
	n, err := s.nodeFor(ctx, key)
	if err != nil {
		return confirmError(err)
	}
	return s.confirm(ctx, tx, n, key)
}

// finalError carries an error out of a watch closure that ends the
// transaction as it is: not to be translated, not to be retried.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }
func (e *finalError) Unwrap() error { return e.err }

func final(err error) error { return &finalError{err} }

// watch runs fn with key WATCHed until fn's transaction commits, fn gives
// up with a final error, or txAttempts transactions were aborted by
// another writer. Other errors (of WATCH, or of MULTI/EXEC) are
// translated.
func (s *Store) watch(ctx context.Context, key string, fn func(*redis.Tx) error) error {
	for attempt := 0; attempt < txAttempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(txBackoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return translate(ctx.Err())
			case <-t.C:
			}
		}
		err := s.c.Watch(ctx, fn, key)
		var f *finalError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &f):
			return f.err
		case errors.Is(err, redis.TxFailedErr):
			continue
		}
		return translate(err)
	}
	return fmt.Errorf("%w: contended: the record changed under %d attempts in a row", keystore.ErrUnavailable, txAttempts)
}

// Link implements keystore.Store: an optimistic transaction on the record
// (WATCH, GET, MULTI SET EXEC, as Update), then the asset's index entry
// (ZADD, another slot). If that ZADD fails, Link returns
// keystore.ErrUnavailable with the record already linked; linking again
// writes the entry (ListAsset only lists the members of the asset's set).
func (s *Store) Link(ctx context.Context, id keystore.KeyID, asset string) (keystore.Record, error) {
	if asset == "" {
		return keystore.Record{}, fmt.Errorf("redisstore: link %s: %w: empty", id, keystore.ErrInvalidAsset)
	}
	r, err := s.setAsset(ctx, id, asset, true)
	if err != nil {
		return keystore.Record{}, fmt.Errorf("redisstore: link %s: %w", id, err)
	}
	var ierr error
	s.addIndex(ctx, []indexEntry{{id: id, asset: asset}}, func(_ int, err error) { ierr = err })
	if ierr != nil {
		return keystore.Record{}, fmt.Errorf("redisstore: link %s: %w", id, indexError(ierr))
	}
	return r, nil
}

// Unlink implements keystore.Store: the record first (as Link), then the
// asset's index entry, best effort: an entry whose record no longer has
// the asset is skipped, and removed, by ListAsset.
func (s *Store) Unlink(ctx context.Context, id keystore.KeyID, asset string) (keystore.Record, error) {
	r, err := s.setAsset(ctx, id, asset, false)
	if err != nil {
		return keystore.Record{}, fmt.Errorf("redisstore: unlink %s: %w", id, err)
	}
	_ = s.unindex(ctx, []indexEntry{{id: id, asset: asset}})
	return r, nil
}

// setAsset adds asset to, or removes it from, the stored record's Assets
// in an optimistic transaction; a record that already says so is not
// written.
func (s *Store) setAsset(ctx context.Context, id keystore.KeyID, asset string, link bool) (keystore.Record, error) {
	key := s.keyName(id)
	var out keystore.Record
	err := s.watch(ctx, key, func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if err != nil {
			return final(translate(err))
		}
		r, err := decodeAt(id, b)
		if err != nil {
			return final(err)
		}
		has := slices.Contains(r.Assets, asset)
		if has == link {
			// Done already, maybe by an attempt whose replication was not
			// confirmed: a retry waits for the replicas again.
			out = r
			if err := s.confirmOn(ctx, tx, key); err != nil {
				return final(err)
			}
			return nil
		}
		if link {
			r.Assets = append(r.Assets, asset)
		} else {
			r.Assets = slices.DeleteFunc(r.Assets, func(a string) bool { return a == asset })
			if len(r.Assets) == 0 {
				r.Assets = nil
			}
		}
		out = r
		return s.setRecord(ctx, tx, key, r)
	})
	return out, err
}

// setRecord writes r under key in MULTI/EXEC on tx (a TxFailedErr makes
// watch retry), then waits for the replicas (see confirm).
func (s *Store) setRecord(ctx context.Context, tx *redis.Tx, key string, r keystore.Record) error {
	enc, err := keystore.EncodeRecord(r)
	if err != nil {
		return final(err)
	}
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, enc, 0)
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.confirmOn(ctx, tx, key); err != nil {
		return final(err)
	}
	return nil
}

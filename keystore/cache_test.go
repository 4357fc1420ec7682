package keystore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// countingKeys counts the reads that reach the real Keys, and can slow
// them down.
type countingKeys struct {
	keys  *keystore.Keys
	reads atomic.Int64
	delay time.Duration
}

func (c *countingKeys) Get(ctx context.Context, id keystore.KeyID) (keystore.Key, error) {
	c.reads.Add(1)
	time.Sleep(c.delay)
	return c.keys.Get(ctx, id)
}

func newCacheFixture(t *testing.T, o keystore.CacheOptions) (*keystore.Cache, *countingKeys, *keystore.Keys) {
	t.Helper()
	keys := keystest.New(t, keystore.Options{})
	src := &countingKeys{keys: keys}
	cache, err := keystore.NewCache(src, o)
	if err != nil {
		t.Fatal(err)
	}
	keys.Subscribe(cache.Apply)
	return cache, src, keys
}

func TestCacheHitsMissesAndTTL(t *testing.T) {
	now := time.Now()
	reg := prometheus.NewRegistry()
	cache, src, keys := newCacheFixture(t, keystore.CacheOptions{TTL: time.Minute, NegativeTTL: time.Second, Size: 10,
		Now: func() time.Time { return now }, Registerer: reg})
	ctx := context.Background()
	k, err := keys.Create(ctx, keystore.Key{ID: storetest.RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		got, err := cache.Get(ctx, k.ID)
		if err != nil || got.Value != k.Value {
			t.Fatalf("Get = %v", err)
		}
	}
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for 5 gets, want 1", n)
	}
	now = now.Add(time.Minute + time.Second)
	if _, err := cache.Get(ctx, k.ID); err != nil || src.reads.Load() != 2 {
		t.Fatalf("after TTL: %v, reads %d", err, src.reads.Load())
	}
	// Negative caching: a missing KID is read once per NegativeTTL.
	missing := storetest.RandomID(t)
	for range 3 {
		if _, err := cache.Get(ctx, missing); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
	}
	if n := src.reads.Load(); n != 3 {
		t.Fatalf("%d reads, want 3 (one for the missing KID)", n)
	}
	// Creating it invalidates the negative entry at once (same process).
	if _, err := keys.Create(ctx, keystore.Key{ID: missing}); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, missing); err != nil {
		t.Fatalf("created key still cached as missing: %v", err)
	}
	// A soft delete takes effect at once, though the TTL has not passed.
	if _, err := keys.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, k.ID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("deleted key served from the cache: %v", err)
	}
	mfs, _ := reg.Gather()
	if len(mfs) != 4 {
		t.Fatalf("%d cache metric families, want 4", len(mfs))
	}
}

// TestCacheCoalesces: a burst for one KID makes one store read. The burst
// runs in a synctest bubble, whose clock moves only when every goroutine in
// it is blocked: the read's delay ends after all 50 callers wait on the one
// read, however slowly a busy machine starts them.
func TestCacheCoalesces(t *testing.T) {
	cache, src, keys := newCacheFixture(t, keystore.CacheOptions{TTL: time.Minute, Size: 10})
	k, err := keys.Create(context.Background(), keystore.Key{ID: storetest.RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	src.delay = 50 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := cache.Get(context.Background(), k.ID)
				if err == nil && got.Value != k.Value {
					err = errors.New("wrong value")
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("%d store reads for a burst of 50, want 1", n)
	}
}

// TestCacheInvalidatedWhileReading: an invalidation during a read keeps
// the (maybe stale) result out of the cache. In a synctest bubble the
// test's 30 ms sleep ends only once the read is under way (blocked in its
// 100 ms delay), so the invalidation falls inside the read on any machine.
func TestCacheInvalidatedWhileReading(t *testing.T) {
	cache, src, keys := newCacheFixture(t, keystore.CacheOptions{TTL: time.Minute, Size: 10})
	k, err := keys.Create(context.Background(), keystore.Key{ID: storetest.RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	src.delay = 100 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = cache.Get(context.Background(), k.ID)
		}()
		time.Sleep(30 * time.Millisecond)
		cache.Invalidate(k.ID)
		<-done
		// Read again on the bubble's clock, which the entry's TTL (had it
		// been stored) counts on.
		src.delay = 0
		if _, err := cache.Get(context.Background(), k.ID); err != nil {
			t.Fatal(err)
		}
	})
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("%d reads, want 2: the read overlapping the invalidation must not be cached", n)
	}
}

func TestCacheBounded(t *testing.T) {
	cache, src, keys := newCacheFixture(t, keystore.CacheOptions{TTL: time.Minute, Size: 2})
	var ids []keystore.KeyID
	for range 3 {
		k, err := keys.Create(context.Background(), keystore.Key{ID: storetest.RandomID(t)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
		if _, err := cache.Get(context.Background(), k.ID); err != nil {
			t.Fatal(err)
		}
	}
	// The first was evicted: reading it again goes to the store.
	if _, err := cache.Get(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if n := src.reads.Load(); n != 4 {
		t.Fatalf("%d reads, want 4", n)
	}
	if _, err := keystore.NewCache(src, keystore.CacheOptions{TTL: 0, Size: 1}); err == nil {
		t.Fatal("TTL 0 accepted")
	}
}

func BenchmarkCacheHit(b *testing.B) {
	keys := keystest.New(b, keystore.Options{})
	k, err := keys.Create(context.Background(), keystore.Key{ID: storetest.RandomID(b)})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := keystore.NewCache(keys, keystore.CacheOptions{TTL: time.Hour, Size: 10})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cache.Get(ctx, k.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeysGet is an uncached key read: a bbolt read, the record
// decoded, the value unsealed; of a value in the current format (v2), and
// of one a store written in format 1 holds (v1).
func BenchmarkKeysGet(b *testing.B) {
	v1 := storetest.LoadFormatV1(b)
	store, err := boltstore.Open(filepath.Join(b.TempDir(), "keys.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	keys := keystore.NewKeys(store, storetest.RingFromLines(b, v1.KEKLine), keystore.Options{Rand: rand.Reader})
	ctx := context.Background()
	k, err := keys.Create(ctx, keystore.Key{ID: storetest.RandomID(b)})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if err := store.Create(ctx, keystore.Record{ID: v1.Key.ID, Sealed: v1.KeySealed, Created: now, Updated: now}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		id   keystore.KeyID
	}{{"v2", k.ID}, {"v1", v1.Key.ID}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := keys.Get(ctx, c.id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

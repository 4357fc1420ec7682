package keystore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// CacheOptions configures a Cache.
type CacheOptions struct {
	// TTL is how long a key found in the store is served from memory.
	// Required (positive).
	TTL time.Duration
	// NegativeTTL is how long "no such key" is remembered (default 1s), so
	// a storm of requests for a missing KID does not reach the store.
	NegativeTTL time.Duration
	// Size bounds the number of cached KIDs (least recently used evicted
	// first). Required (positive).
	Size int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer, when set, receives keydelivery_key_cache_{hits,misses,
	// evictions}_total and keydelivery_key_cache_entries.
	Registerer prometheus.Registerer
}

// keyGetter is what the cache reads through.
type keyGetter interface {
	Get(ctx context.Context, id KeyID) (Key, error)
}

// Cache keeps unsealed keys in process memory for a short time, so the hot
// path answers without the store and without unsealing. A burst of
// requests for one KID makes one store read (request coalescing), and a
// missing KID is remembered briefly (negative caching).
//
// Exposure trade-off: a cached key sits unsealed in this process's memory
// for up to TTL after its last read, and a soft delete made through another
// server instance takes effect here when the store's change notification
// arrives (Redis pub/sub), or at the latest after TTL if it is lost. Turn
// the cache off (TTL 0 in the server) to have every request read the store.
type Cache struct {
	src     keyGetter
	entries *lru.Cache[KeyID, cacheEntry]
	group   singleflight.Group
	ttl     time.Duration
	negTTL  time.Duration
	now     func() time.Time
	// gen counts invalidations: a read that started before one must not
	// store its (possibly stale) result.
	gen atomic.Uint64

	hits, misses, evictions prometheus.Counter
}

type cacheEntry struct {
	key   Key
	err   error // ErrNotFound (negative entry) or nil
	until time.Time
}

// NewCache returns a Cache reading through src.
func NewCache(src keyGetter, o CacheOptions) (*Cache, error) {
	if o.TTL <= 0 || o.Size <= 0 {
		return nil, errors.New("keystore: cache needs a positive TTL and size")
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cache{src: src, ttl: o.TTL, negTTL: o.NegativeTTL, now: o.Now}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keydelivery", Subsystem: "key_cache", Name: name, Help: help})
	}
	c.hits = counter("hits_total", "Key lookups answered from the in-process key cache.")
	c.misses = counter("misses_total", "Key lookups that went to the store.")
	c.evictions = counter("evictions_total", "Keys evicted from the key cache to respect its size.")
	var err error
	c.entries, err = lru.NewWithEvict(o.Size, func(KeyID, cacheEntry) { c.evictions.Inc() })
	if err != nil {
		return nil, err
	}
	if o.Registerer != nil {
		entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "keydelivery", Subsystem: "key_cache", Name: "entries",
			Help: "KIDs in the key cache, found or negative."}, func() float64 { return float64(c.entries.Len()) })
		if err := registerAll(o.Registerer, c.hits, c.misses, c.evictions, entries); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("keystore: register cache metrics: %w", err)
		}
	}
	return nil
}

// Get returns the key from memory while fresh, else from the store.
func (c *Cache) Get(ctx context.Context, id KeyID) (Key, error) {
	if e, ok := c.entries.Get(id); ok && c.now().Before(e.until) {
		c.hits.Inc()
		return e.key, e.err
	}
	c.misses.Inc()
	gen := c.gen.Load()
	// One store read per KID at a time; the read does not die with the
	// first caller's request, so the others are not failed by its cancel.
	v, err, _ := c.group.Do(string(id[:]), func() (any, error) {
		k, err := c.src.Get(context.WithoutCancel(ctx), id)
		switch {
		case err == nil:
			c.store(gen, id, cacheEntry{key: k, until: c.now().Add(c.ttl)})
		case errors.Is(err, ErrNotFound):
			c.store(gen, id, cacheEntry{err: err, until: c.now().Add(c.negTTL)})
		}
		return k, err
	})
	if err != nil {
		return Key{}, err
	}
	return v.(Key), nil
}

func (c *Cache) store(gen uint64, id KeyID, e cacheEntry) {
	if c.gen.Load() != gen {
		return // invalidated while reading: the result may be stale
	}
	c.entries.Add(id, e)
}

// Invalidate drops id, so the next read goes to the store.
func (c *Cache) Invalidate(id KeyID) {
	c.gen.Add(1)
	c.entries.Remove(id)
}

// Apply applies a change event of the key store (see Keys.Subscribe):
// the key is dropped, or every key after a lost notification.
func (c *Cache) Apply(ch Change) {
	if ch.All {
		c.InvalidateAll()
		return
	}
	c.Invalidate(ch.ID)
}

// InvalidateAll drops every entry (after a lost change notification).
func (c *Cache) InvalidateAll() {
	c.gen.Add(1)
	c.entries.Purge()
}

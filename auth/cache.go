package auth

import (
	"fmt"

	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lru "github.com/hashicorp/golang-lru/v2"
)

// CachedVerifier remembers tokens that verified, so the ECDSA cost is paid
// once per token rather than once per request: players send the same
// token for every segment. It is safe for concurrent use.
//
// Security invariants:
//   - Only tokens that verified are cached; a refusal is never cached, so
//     garbage cannot fill the cache or evict good entries faster than good
//     tokens arrive.
//   - The cache key is the whole token, signature included, compared
//     exactly: a token that differs in any byte is verified afresh.
//   - An entry is used only while the trust set it was verified under is
//     still the current one (a reload drops every entry's validity at
//     once), and only until the token expires or its certificate does,
//     each with the verifier's leeway.
type CachedVerifier struct {
	v     *Verifier
	cache *lru.Cache[string, cachedClaims]

	hits, misses, evictions prometheus.Counter
}

type cachedClaims struct {
	claims Claims
	set    *trustSet
	until  time.Time
}

// NewCachedVerifier wraps v with a cache of at most size verified tokens
// (least recently used evicted first). When reg is not nil it receives
// keydelivery_token_cache_{hits,misses,evictions}_total and
// keydelivery_token_cache_entries.
func NewCachedVerifier(v *Verifier, size int, reg prometheus.Registerer) (*CachedVerifier, error) {
	if size <= 0 {
		return nil, errors.New("auth: token cache size must be positive")
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keydelivery", Subsystem: "token_cache", Name: name, Help: help})
	}
	cv := &CachedVerifier{v: v,
		hits:      counter("hits_total", "Token verifications answered from the verified-token cache."),
		misses:    counter("misses_total", "Token verifications that paid the full ES256 check."),
		evictions: counter("evictions_total", "Verified tokens dropped from the cache (size limit, expiry or trust reload)."),
	}
	c, err := lru.NewWithEvict(size, func(string, cachedClaims) { cv.evictions.Inc() })
	if err != nil {
		return nil, err
	}
	cv.cache = c
	if reg != nil {
		entries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "keydelivery", Subsystem: "token_cache", Name: "entries",
			Help: "Verified tokens in the cache."}, func() float64 { return float64(c.Len()) })
		for _, m := range []prometheus.Collector{cv.hits, cv.misses, cv.evictions, entries} {
			if err := reg.Register(m); err != nil {
				return nil, fmt.Errorf("auth: register token cache metrics: %w", err)
			}
		}
	}
	return cv, nil
}

// Verify is Verifier.Verify, answered from the cache when the same token
// verified before and is still valid.
func (c *CachedVerifier) Verify(raw string) (Claims, error) {
	if len(raw) > MaxTokenSize {
		return c.v.Verify(raw) // refused before any lookup
	}
	if e, ok := c.cache.Get(raw); ok {
		if e.set == c.v.trust.set.Load() && c.v.now().Before(e.until) {
			c.hits.Inc()
			return e.claims, nil
		}
		c.cache.Remove(raw)
	}
	c.misses.Inc()
	claims, set, used, err := c.v.verify(raw)
	if err != nil {
		return claims, err
	}
	until := claims.ExpiresAt
	if na := used.cert.NotAfter; na.Before(until) {
		until = na
	}
	c.cache.Add(raw, cachedClaims{claims: claims, set: set, until: until.Add(c.v.leeway)})
	return claims, nil
}

// Len returns the number of cached tokens.
func (c *CachedVerifier) Len() int { return c.cache.Len() }

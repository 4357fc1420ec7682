package auth

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
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
//   - An entry is found by the token's signature and used only when the
//     signed part (header.payload) hashes to the value stored with it. The
//     signature is itself the signer's commitment to the SHA-256 of the
//     signed part: two different signed parts with one valid signature
//     would be a SHA-256 collision. So a token with a cached header and
//     payload and any other (forged) signature misses the entry and is
//     verified afresh, and a token with a cached signature and another
//     header or payload fails the hash check (a collision of a 64-bit hash
//     under a random per-process seed the caller never sees) and is
//     verified afresh too. The token itself is not kept: 86 bytes of
//     signature and 8 of hash per entry instead of the token's hundreds of
//     bytes, and a hit costs two short hashes, not a SHA-256 of the token.
//   - An entry is used only while the trust set it was verified under is
//     still the current one (a reload drops every entry's validity at
//     once), and only until the token expires or its certificate does,
//     each with the verifier's leeway.
type CachedVerifier struct {
	v     *Verifier
	cache *lru.Cache[string, cachedClaims]
	seed  maphash.Seed

	hits, misses, evictions prometheus.Counter
}

type cachedClaims struct {
	signed uint64 // maphash of the signed part under CachedVerifier.seed
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
	cv := &CachedVerifier{v: v, seed: maphash.MakeSeed(),
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
	dot := strings.LastIndexByte(raw, '.')
	if dot < 0 {
		c.misses.Inc()
		return c.v.Verify(raw) // not a JWS: refused
	}
	sig, signed := raw[dot+1:], maphash.String(c.seed, raw[:dot])
	if e, ok := c.cache.Get(sig); ok {
		if e.signed == signed && e.set == c.v.trust.set.Load() && c.v.now().Before(e.until) {
			c.hits.Inc()
			return e.claims, nil
		}
		if e.signed == signed {
			c.cache.Remove(sig) // stale: expired, or verified under an older trust set
		}
	}
	c.misses.Inc()
	claims, set, used, err := c.v.verify(raw)
	if err != nil {
		return claims, err
	}
	until := claims.ExpiresAt
	if na := used.cert.NotAfter; !na.IsZero() && na.Before(until) { // a bare key has no NotAfter
		until = na
	}
	// The issuer is one of the configured ones: keep that string rather
	// than the copy decoded from this token.
	if i := slices.Index(c.v.issuers, claims.Issuer); i >= 0 {
		claims.Issuer = c.v.issuers[i]
	}
	// A copy of the signature: a substring would keep the whole token alive.
	c.cache.Add(strings.Clone(sig), cachedClaims{signed: signed, claims: claims, set: set, until: until.Add(c.v.leeway)})
	return claims, nil
}

// Len returns the number of cached tokens.
func (c *CachedVerifier) Len() int { return c.cache.Len() }

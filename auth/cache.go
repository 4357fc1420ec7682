package auth

import (
	"errors"
	"time"

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
}

type cachedClaims struct {
	claims Claims
	set    *trustSet
	until  time.Time
}

// NewCachedVerifier wraps v with a cache of at most size verified tokens
// (least recently used evicted first).
func NewCachedVerifier(v *Verifier, size int) (*CachedVerifier, error) {
	if size <= 0 {
		return nil, errors.New("auth: token cache size must be positive")
	}
	c, err := lru.New[string, cachedClaims](size)
	if err != nil {
		return nil, err
	}
	return &CachedVerifier{v: v, cache: c}, nil
}

// Verify is Verifier.Verify, answered from the cache when the same token
// verified before and is still valid.
func (c *CachedVerifier) Verify(raw string) (Claims, error) {
	if len(raw) > MaxTokenSize {
		return c.v.Verify(raw) // refused before any lookup
	}
	if e, ok := c.cache.Get(raw); ok {
		if e.set == c.v.trust.set.Load() && c.v.now().Before(e.until) {
			return e.claims, nil
		}
		c.cache.Remove(raw)
	}
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

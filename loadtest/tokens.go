package main

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keydelivery/keydelivery/auth"
)

// tokenMode says how many distinct tokens a run uses.
type tokenMode struct {
	Kind string // "shared", "pool" or "fresh"
	N    int    // pool size, for "pool"
}

func (m tokenMode) String() string {
	if m.Kind == "pool" {
		return "pool:" + strconv.Itoa(m.N)
	}
	return m.Kind
}

func parseTokenMode(s string) (tokenMode, error) {
	switch {
	case s == "shared" || s == "fresh":
		return tokenMode{Kind: s}, nil
	case strings.HasPrefix(s, "pool:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "pool:"))
		if err != nil || n < 1 {
			return tokenMode{}, fmt.Errorf("--tokens %q: pool:N needs N >= 1", s)
		}
		return tokenMode{Kind: "pool", N: n}, nil
	}
	return tokenMode{}, fmt.Errorf("--tokens %q: want shared, pool:N or fresh", s)
}

// distribution picks which KID a request asks for.
type distribution struct {
	Kind string  // "hot", "uniform" or "zipf"
	S    float64 // zipf exponent
}

func (d distribution) String() string {
	if d.Kind == "zipf" {
		return "zipf:" + strconv.FormatFloat(d.S, 'g', -1, 64)
	}
	return d.Kind
}

func parseDistribution(s string) (distribution, error) {
	switch {
	case s == "hot" || s == "uniform":
		return distribution{Kind: s}, nil
	case strings.HasPrefix(s, "zipf:"):
		v, err := strconv.ParseFloat(strings.TrimPrefix(s, "zipf:"), 64)
		if err != nil || !(v > 0) || v > 10 {
			return distribution{}, fmt.Errorf("--dist %q: zipf:S needs 0 < S <= 10 (e.g. zipf:1.1)", s)
		}
		return distribution{Kind: "zipf", S: v}, nil
	}
	return distribution{}, fmt.Errorf("--dist %q: want hot, uniform or zipf:S", s)
}

// picker draws KID indexes in [0, n). It is safe for concurrent use when
// each goroutine passes its own *rand.Rand.
type picker struct {
	n   int
	d   distribution
	cdf []float64 // zipf: cumulative weights, cdf[n-1] == 1
}

func newPicker(d distribution, n int) (*picker, error) {
	if n < 1 {
		return nil, errors.New("no KIDs to request")
	}
	p := &picker{n: n, d: d}
	if d.Kind == "zipf" {
		// Rank k (1-based) has weight 1/k^s. An explicit table works for
		// any s > 0, unlike math/rand's Zipf (s > 1 only).
		p.cdf = make([]float64, n)
		var sum float64
		for k := 1; k <= n; k++ {
			sum += 1 / math.Pow(float64(k), d.S)
			p.cdf[k-1] = sum
		}
		for i := range p.cdf {
			p.cdf[i] /= sum
		}
		p.cdf[n-1] = 1
	}
	return p, nil
}

func (p *picker) pick(r *rand.Rand) int {
	switch p.d.Kind {
	case "uniform":
		return r.IntN(p.n)
	case "zipf":
		u := r.Float64()
		return sort.SearchFloat64s(p.cdf, u)
	}
	return 0 // hot
}

// tokenScope says what each token grants.
const (
	scopeAll     = "all"     // every KID of the run, in the "kids" claim
	scopeOne     = "one"     // exactly the KID of the request
	scopeUnbound = "unbound" // no key claim: needs the server's --allow-unbound-tokens
)

// maxKIDsPerToken keeps a scope=all token under the server's 8 KiB limit:
// each KID costs 39 bytes in the claim, 52 once base64url-encoded.
const maxKIDsPerToken = 120

// minter signs tokens with the run's claims.
type minter struct {
	signer   *auth.Signer
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	seq      atomic.Uint64 // makes every token distinct (sub)
}

// mint returns "Bearer <jwt>" for a token granting kids (nil: no key claim).
func (m *minter) mint(kids []string) (string, error) {
	now := m.now()
	n := m.seq.Add(1)
	tok, err := m.signer.Sign(auth.TokenClaims{
		Issuer:    m.issuer,
		Audience:  m.audience,
		Subject:   "loadtest-" + strconv.FormatUint(n, 10),
		KeyIDs:    kids,
		IssuedAt:  now,
		NotBefore: now.Add(-time.Minute),
		ExpiresAt: now.Add(m.ttl),
	})
	if err != nil {
		return "", err
	}
	return "Bearer " + tok, nil
}

// mintMany calls f(i) for i in [0, n) on every CPU and stops at the first
// error. Minting happens before a run starts, never inside the measured
// window.
func mintMany(n int, f func(i int) error) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

// request is what one request sends: the path and the Authorization value.
type request struct {
	path string
	auth string
}

// requestSource yields the requests of a run. next is called concurrently;
// measuring says whether the request belongs to the measured window or to
// the warm-up, seq is its sequence number within that phase (0, 1, ...),
// and r is the calling worker's own generator. ok is false when a
// fresh-token source is used up.
type requestSource interface {
	next(seq uint64, r *rand.Rand, measuring bool) (req request, ok bool)
	describe() string
}

// repeatSource reuses pre-minted tokens: one or a pool, shared by all KIDs
// (scope all or unbound) or per KID (scope one).
type repeatSource struct {
	paths  []string   // per KID
	tokens [][]string // scope one: tokens[kid][j]; else tokens[0][j]
	perKID bool
	pick   *picker
	desc   string
}

func (s *repeatSource) next(seq uint64, r *rand.Rand, _ bool) (request, bool) {
	k := s.pick.pick(r)
	ts := s.tokens[0]
	if s.perKID {
		ts = s.tokens[k]
	}
	return request{path: s.paths[k], auth: ts[seq%uint64(len(ts))]}, true
}

func (s *repeatSource) describe() string { return s.desc }

// freshSource holds one pre-minted token per request: the KID of each was
// drawn from the distribution when it was minted. Once used up the run
// stops (it is the run's request bound).
type freshSource struct {
	reqs []request
	// warm is a small pool the warm-up cycles through, so the measured
	// window's tokens are all new to the server.
	warm []request
	desc string
	// cyclic makes the source wrap around instead of running out: for the
	// baselines, which never look at the token.
	cyclic bool
}

func (s *freshSource) next(seq uint64, _ *rand.Rand, measuring bool) (request, bool) {
	if !measuring && len(s.warm) > 0 {
		return s.warm[seq%uint64(len(s.warm))], true
	}
	if seq >= uint64(len(s.reqs)) {
		if !s.cyclic || len(s.reqs) == 0 {
			return request{}, false
		}
		seq %= uint64(len(s.reqs))
	}
	return s.reqs[seq], true
}

func (s *freshSource) describe() string { return s.desc }

// sourceSpec is everything needed to build a requestSource.
type sourceSpec struct {
	kids    []string // canonical KIDs
	path    string   // path template with {kid}
	mode    tokenMode
	scope   string
	dist    distribution
	maxMint int
	seed    uint64
}

func (sp sourceSpec) paths() []string {
	out := make([]string, len(sp.kids))
	for i, k := range sp.kids {
		out[i] = strings.ReplaceAll(sp.path, "{kid}", k)
	}
	return out
}

func (sp sourceSpec) describe() string {
	return fmt.Sprintf("tokens %s, scope %s, %d KID(s) %s", sp.mode, sp.scope, len(sp.kids), sp.dist)
}

// grantFor is the "kids" claim of a token for KID index k.
func (sp sourceSpec) grantFor(k int) []string {
	switch sp.scope {
	case scopeOne:
		return []string{sp.kids[k]}
	case scopeAll:
		return sp.kids
	}
	return nil
}

// buildRepeat mints the tokens of a shared or pool source.
func buildRepeat(sp sourceSpec, m *minter) (*repeatSource, error) {
	pk, err := newPicker(sp.dist, len(sp.kids))
	if err != nil {
		return nil, err
	}
	per := 1
	if sp.mode.Kind == "pool" {
		per = sp.mode.N
	}
	groups := 1
	if sp.scope == scopeOne {
		groups = len(sp.kids)
	}
	if total := groups * per; total > sp.maxMint {
		return nil, fmt.Errorf("%s needs %d tokens, more than --max-mint %d: use fewer KIDs, a smaller pool, --scope all (up to %d KIDs) or --scope unbound", sp.describe(), total, sp.maxMint, maxKIDsPerToken)
	}
	tokens := make([][]string, groups)
	for g := range tokens {
		tokens[g] = make([]string, per)
	}
	err = mintMany(groups*per, func(i int) error {
		g, j := i/per, i%per
		t, err := m.mint(sp.grantFor(g))
		tokens[g][j] = t
		return err
	})
	if err != nil {
		return nil, err
	}
	return &repeatSource{paths: sp.paths(), tokens: tokens, perKID: sp.scope == scopeOne, pick: pk, desc: sp.describe()}, nil
}

// freshWarmTokens is the size of a fresh source's warm-up pool.
const freshWarmTokens = 1000

// buildFresh mints n distinct tokens, one per measured request, and a
// separate warm-up pool.
func buildFresh(sp sourceSpec, m *minter, n int, round int) (*freshSource, error) {
	if n > sp.maxMint {
		return nil, fmt.Errorf("fresh tokens: %d requests need %d tokens, more than --max-mint %d: lower --requests or --rate", n, n, sp.maxMint)
	}
	pk, err := newPicker(sp.dist, len(sp.kids))
	if err != nil {
		return nil, err
	}
	paths := sp.paths()
	r := rand.New(rand.NewPCG(sp.seed, uint64(round)))
	total := n + freshWarmTokens
	kidOf := make([]int, total)
	for i := range kidOf {
		kidOf[i] = pk.pick(r)
	}
	reqs := make([]request, total)
	err = mintMany(total, func(i int) error {
		t, err := m.mint(sp.grantFor(kidOf[i]))
		reqs[i] = request{path: paths[kidOf[i]], auth: t}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &freshSource{reqs: reqs[:n], warm: reqs[n:], desc: sp.describe()}, nil
}

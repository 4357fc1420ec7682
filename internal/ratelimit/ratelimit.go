// Package ratelimit keeps per-client budgets for both planes: token buckets
// (golang.org/x/time/rate, which stays inside this package) in a table whose
// size is fixed, whatever the number of clients, so that an attacker with
// many addresses cannot grow the server's memory with them. When the table
// is full the least recently used client is forgotten (and starts again
// with a full budget): an attacker who cycles through more addresses than
// the table holds gets the budget of that many clients, never unbounded
// memory.
//
// A client is its address as the plane sees it; an IPv6 address counts by
// its /64 prefix (AddressKey), since one subscriber is usually given a
// whole /64 and could otherwise take a fresh budget per address.
//
// It knows nothing of HTTP: the planes ask it and answer 429 themselves.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Limit is a budget: Rate events per second on average, up to Burst at
// once. The zero Limit is off (no limit).
type Limit struct {
	Rate  float64
	Burst int
}

// Off reports whether l limits nothing.
func (l Limit) Off() bool { return l.Rate <= 0 }

// String writes l as ParseLimit reads it ("20/s:40", or "off").
func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	return strconv.FormatFloat(l.Rate, 'f', -1, 64) + "/s:" + strconv.Itoa(l.Burst)
}

// ParseLimit reads a budget: "RATE/UNIT" or "RATE/UNIT:BURST", with UNIT
// s, m or h (per second, minute or hour) and RATE a positive number; the
// burst defaults to twice the per-second rate (at least 1). "off" or "0"
// is no limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Limit{}, nil
	}
	spec, burstText, hasBurst := strings.Cut(s, ":")
	num, unit, ok := strings.Cut(spec, "/")
	if !ok {
		return Limit{}, fmt.Errorf("ratelimit: %q: want RATE/UNIT[:BURST] such as 20/s:40, or off", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return Limit{}, fmt.Errorf("ratelimit: %q: the rate must be a positive number", s)
	}
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[unit]
	if per == 0 {
		return Limit{}, fmt.Errorf("ratelimit: %q: the unit must be s, m or h", s)
	}
	l := Limit{Rate: n / per}
	if hasBurst {
		b, err := strconv.Atoi(burstText)
		if err != nil || b < 1 {
			return Limit{}, fmt.Errorf("ratelimit: %q: the burst must be a positive integer", s)
		}
		l.Burst = b
	} else {
		l.Burst = max(1, int(math.Ceil(2*l.Rate)))
	}
	return l, nil
}

// Key identifies a client in a table.
type Key = netip.Addr

// AddressKey is the table key of a client address: the address itself for
// IPv4 (an IPv4-mapped IPv6 address is IPv4), the first address of its /64
// for IPv6 (zone dropped). Anything that does not parse is the zero Key:
// such clients share one budget. It does not allocate.
func AddressKey(addr string) Key {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return Key{}
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return Key{}
	}
	return p.Addr()
}

// shards spread the table's lock; each shard holds an equal part.
const shards = 16

// DefaultSize is the number of clients a table remembers by default:
// about 200 bytes each, so about 13 MiB.
const DefaultSize = 65536

// Table holds one budget per client, at most size of them. It is safe for
// concurrent use.
type Table struct {
	limit Limit
	now   func() time.Time
	seed  maphash.Seed
	part  [shards]shard
}

type shard struct {
	mu  sync.Mutex
	lru *simplelru.LRU[Key, *rate.Limiter]
}

// NewTable returns a table of budgets l for at most size clients (size <= 0
// means DefaultSize), on the clock now (nil: time.Now). l must not be off.
func NewTable(l Limit, size int, now func() time.Time) (*Table, error) {
	if l.Off() || l.Burst < 1 {
		return nil, errors.New("ratelimit: a table needs a positive rate and burst")
	}
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	t := &Table{limit: l, now: now, seed: maphash.MakeSeed()}
	per := max(1, (size+shards-1)/shards)
	for i := range t.part {
		lru, err := simplelru.NewLRU[Key, *rate.Limiter](per, nil)
		if err != nil {
			return nil, err
		}
		t.part[i].lru = lru
	}
	return t, nil
}

// Limit is the table's budget.
func (t *Table) Limit() Limit { return t.limit }

func (t *Table) shard(key Key) *shard {
	return &t.part[maphash.Comparable(t.seed, key)%shards]
}

// Ready reports whether key has at least one event of budget left and, when
// it has not, how long until it has. A client the table does not hold has
// its whole budget, and Ready does not add it.
func (t *Table) Ready(key Key) (bool, time.Duration) {
	s := t.shard(key)
	s.mu.Lock()
	lim, ok := s.lru.Peek(key)
	s.mu.Unlock()
	if !ok {
		return true, 0
	}
	tokens := lim.TokensAt(t.now())
	if tokens >= 1 {
		return true, 0
	}
	return false, t.wait(tokens)
}

// wait is how long a bucket holding tokens takes to hold one.
func (t *Table) wait(tokens float64) time.Duration {
	return time.Duration((1 - tokens) / t.limit.Rate * float64(time.Second))
}

// Charge spends one event of key's budget (nothing when it is spent
// already).
func (t *Table) Charge(key Key) {
	t.limiter(key).AllowN(t.now(), 1)
}

// Allow spends one event of key's budget if it has one, and otherwise says
// how long until it has.
func (t *Table) Allow(key Key) (bool, time.Duration) {
	lim := t.limiter(key)
	now := t.now()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, t.wait(lim.TokensAt(now))
}

// limiter returns key's bucket, adding a full one (and forgetting the
// least recently used client of its shard when full).
func (t *Table) limiter(key Key) *rate.Limiter {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	lim, ok := s.lru.Get(key)
	if !ok {
		lim = rate.NewLimiter(rate.Limit(t.limit.Rate), t.limit.Burst)
		s.lru.Add(key, lim)
	}
	return lim
}

// Len is the number of clients the table holds.
func (t *Table) Len() int {
	n := 0
	for i := range t.part {
		s := &t.part[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// Tally counts events per key and says when to report them: at most once
// per interval for each key, and at most Limit overall, each report
// carrying the count since the key's last one. It is for logs and audit
// records of refusals, which must neither be lost nor flood. Like Table, it
// holds at most size keys (an evicted key's unreported count is dropped;
// callers count every event in a metric as well).
type Tally struct {
	interval time.Duration
	overall  *rate.Limiter
	now      func() time.Time
	mu       sync.Mutex
	keys     *simplelru.LRU[Key, *tallyEntry]
}

type tallyEntry struct {
	pending int
	last    time.Time
}

// NewTally reports each key at most once per interval, and at most
// overall reports in all (a positive limit); size as in NewTable.
func NewTally(interval time.Duration, overall Limit, size int, now func() time.Time) (*Tally, error) {
	if overall.Off() || overall.Burst < 1 || interval < 0 {
		return nil, errors.New("ratelimit: a tally needs a positive overall limit and a non-negative interval")
	}
	if size <= 0 {
		size = DefaultSize
	}
	if now == nil {
		now = time.Now
	}
	keys, err := simplelru.NewLRU[Key, *tallyEntry](size, nil)
	if err != nil {
		return nil, err
	}
	return &Tally{interval: interval, overall: rate.NewLimiter(rate.Limit(overall.Rate), overall.Burst), now: now, keys: keys}, nil
}

// Note counts one event for key. When report is true the caller reports
// count events (this one included) now.
func (t *Tally) Note(key Key) (report bool, count int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e, ok := t.keys.Get(key)
	if !ok {
		e = &tallyEntry{}
		t.keys.Add(key, e)
	}
	e.pending++
	if ok && now.Sub(e.last) < t.interval {
		return false, 0
	}
	if !t.overall.AllowN(now, 1) {
		return false, 0
	}
	count, e.pending, e.last = e.pending, 0, now
	return true, count
}

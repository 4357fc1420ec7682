package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/keydelivery/keydelivery/keystore"
)

// unit is one create: a key written with SET NX (with a time to live when
// ttl is set) and, when shard is set, its member in that sorted set, which
// lies in the same slot (see shardOf), so on the same node.
type unit struct {
	key    string
	value  []byte
	ttl    time.Duration
	shard  string
	member string

	set      *redis.StatusCmd
	zadd     *redis.IntCmd
	answered bool  // Redis answered the SET NX (done, or exists)
	err      error // the result: nil, keystore.ErrExists, or another error
}

// writeUnits creates us, grouped by the node that holds their slot (one
// group on a single server), each group on one connection: the SET NX and
// ZADD of every unit, pipelined (pipeMax units per round trip), then, when
// writes wait for replicas, an INCR of the group's sync key and WAIT (or
// WAITAOF) on the same connection. WAIT counts the replicas that hold
// everything this connection wrote, and the INCR makes that include every
// unit, those that answered "exists" too (the write a retry finds may be
// its own earlier attempt, never confirmed). Fewer replicas in time: each
// unit that was written or found answers keystore.ErrNotReplicated.
//
// It returns one result per unit in u.err, or a single error when no unit
// got an answer. On Redis Cluster a unit answered MOVED or ASK (the slot map
// was stale) is sent again once, after the map is reloaded.
func (s *Store) writeUnits(ctx context.Context, us []*unit) error {
	pending := us
	for attempt := 0; ; attempt++ {
		groups, err := s.groupByNode(ctx, pending)
		if err != nil {
			s.connectionFailed(err)
			return translate(err)
		}
		var g errgroup.Group
		for _, grp := range groups {
			g.Go(func() error { s.writeGroup(ctx, grp); return nil })
		}
		_ = g.Wait()
		var moved []*unit
		for _, u := range pending {
			if u.err != nil && isRedirect(u.err) {
				moved = append(moved, u)
			}
		}
		if len(moved) == 0 || attempt > 0 || s.cluster == nil {
			for _, u := range moved {
				u.err = fmt.Errorf("%w: the cluster's slot map is changing: %w", keystore.ErrUnavailable, u.err)
			}
			break
		}
		s.cluster.ReloadState(ctx)
		pending = moved
	}
	var first error
	for _, u := range us {
		if u.answered {
			return nil
		}
		if first == nil {
			first = u.err
		}
	}
	return first
}

// isRedirect reports whether err is a cluster redirection (MOVED or ASK).
func isRedirect(err error) bool {
	return redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")
}

// node is a Redis master that takes writes: the store's own client, or in
// a cluster the client of one master.
type node struct {
	client *redis.Client
	addr   string // "" on a single server or behind Sentinel
}

type nodeGroup struct {
	node  node
	units []*unit
}

// nodeFor returns the master that holds key's slot.
func (s *Store) nodeFor(ctx context.Context, key string) (node, error) {
	if s.cluster == nil {
		return node{client: s.single}, nil
	}
	c, err := s.cluster.MasterForKey(ctx, key)
	if err != nil {
		return node{}, err
	}
	return node{client: c, addr: c.Options().Addr}, nil
}

// groupByNode groups us by the master that holds their slot.
func (s *Store) groupByNode(ctx context.Context, us []*unit) ([]*nodeGroup, error) {
	if s.cluster == nil {
		return []*nodeGroup{{node: node{client: s.single}, units: us}}, nil
	}
	byAddr := map[string]*nodeGroup{}
	var out []*nodeGroup
	for _, u := range us {
		c, err := s.cluster.MasterForKey(ctx, u.key)
		if err != nil {
			return nil, err
		}
		addr := c.Options().Addr
		g := byAddr[addr]
		if g == nil {
			g = &nodeGroup{node: node{client: c, addr: addr}}
			byAddr[addr] = g
			out = append(out, g)
		}
		g.units = append(g.units, u)
	}
	return out, nil
}

// writeGroup writes the units of one node on one connection; see
// writeUnits.
func (s *Store) writeGroup(ctx context.Context, g *nodeGroup) {
	for _, u := range g.units {
		u.err, u.answered = nil, false
	}
	conn := g.node.client.Conn()
	defer conn.Close()
	var broken error
	answered := false
	for start := 0; start < len(g.units); start += pipeMax {
		chunk := g.units[start:min(start+pipeMax, len(g.units))]
		if broken != nil {
			for _, u := range chunk {
				u.err = fmt.Errorf("not sent after an earlier failure: %w", broken)
			}
			continue
		}
		_, _ = conn.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, u := range chunk {
				u.set = p.SetArgs(ctx, u.key, u.value, redis.SetArgs{Mode: "NX", TTL: u.ttl})
				if u.shard != "" {
					u.zadd = p.ZAdd(ctx, u.shard, redis.Z{Member: u.member})
				}
			}
			return nil
		})
		for _, u := range chunk {
			switch err := u.set.Err(); {
			case err == nil:
				answered, u.answered = true, true
			case errors.Is(err, redis.Nil): // NX and the key exists
				u.err = keystore.ErrExists
				answered, u.answered = true, true
			default:
				u.err = translate(err)
				if !isReply(err) && broken == nil {
					broken = u.err
					s.connectionFailed(err)
				}
				continue
			}
			// The index entry, in the same slot, written in the same round
			// trip: a record stored without it is reported, and healed by
			// sending it again (the ZADD is sent whatever SET NX answered).
			if u.zadd != nil {
				if err := u.zadd.Err(); err != nil {
					u.err = indexError(translate(err))
				}
			}
		}
	}
	if !answered {
		return
	}
	if broken != nil {
		// The units answered before the connection broke are written, but
		// their replication cannot be confirmed on this connection now.
		if s.waitAOF || s.replicasFor(ctx, g.node) > 0 {
			for _, u := range g.units {
				if u.answered && (u.err == nil || errors.Is(u.err, keystore.ErrExists)) {
					u.err = confirmError(broken)
				}
			}
		}
		return
	}
	if err := s.confirm(ctx, conn, g.node, g.units[0].key); err != nil {
		for _, u := range g.units {
			if u.err == nil || errors.Is(u.err, keystore.ErrExists) {
				u.err = err
			}
		}
	}
}

// confirm waits, on conn (a connection to n, or a transaction on one),
// for the replicas (and with WaitAOF the append-only files) to hold
// everything conn wrote. key is one of the keys it wrote. It returns
// keystore.ErrNotReplicated when fewer confirmed in time, or when it could
// not ask; nil when they did or writes do not wait.
func (s *Store) confirm(ctx context.Context, conn confirmer, n node, key string) error {
	want := s.replicasFor(ctx, n)
	if want == 0 && !s.waitAOF {
		return nil
	}
	// The INCR moves this connection's replication offset past every
	// write it made, and past those it found made (answered "exists").
	if err := conn.Incr(ctx, s.syncKey(key)).Err(); err != nil {
		return confirmError(err)
	}
	timeout := s.waitTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl)-waitMargin)
	}
	if timeout < time.Millisecond {
		return fmt.Errorf("%w: the write is done but no time was left to wait for the replicas", keystore.ErrNotReplicated)
	}
	if s.waitAOF {
		got, err := conn.WaitAOF(ctx, 1, want, timeout).Result()
		if err != nil {
			return confirmError(err)
		}
		if len(got) != 2 || got[0] < 1 || got[1] < int64(want) {
			return fmt.Errorf("%w: WAITAOF 1 %d: confirmed by %v (local append-only file, replicas) within %v", keystore.ErrNotReplicated, want, got, timeout)
		}
		return nil
	}
	got, err := conn.Wait(ctx, want, timeout).Result()
	if err != nil {
		return confirmError(err)
	}
	if got < int64(want) {
		s.topology.stale(n.addr)
		return fmt.Errorf("%w: WAIT %d: %d replicas confirmed within %v", keystore.ErrNotReplicated, want, got, timeout)
	}
	return nil
}

// confirmer is a connection, or a transaction on one: what confirm sends
// its commands on.
type confirmer interface {
	Incr(ctx context.Context, key string) *redis.IntCmd
	Wait(ctx context.Context, numSlaves int, timeout time.Duration) *redis.IntCmd
	WaitAOF(ctx context.Context, numLocal, numSlaves int, timeout time.Duration) *redis.IntSliceCmd
}

// waitMargin is the time kept, out of the caller's deadline, for the
// answer of WAIT to come back.
const waitMargin = 50 * time.Millisecond

func confirmError(err error) error {
	return fmt.Errorf("%w: the write is done but its replication could not be confirmed: %w", keystore.ErrNotReplicated, translate(err))
}

// syncKey is the counter that confirm increments: one per slot (of key),
// so on the same node as key.
func (s *Store) syncKey(key string) string { return s.prefix + "sync:" + slotTag(keySlot(key)) }

// replicasFor is how many replicas a write to n waits for: the configured
// number, or with WaitAuto every replica n has connected (none when it has
// none).
//
// Every replica, not one: with two replicas, a write that one of them
// confirmed can be lost when the failover promotes the other (Sentinel
// passes over a replica whose link it judges down, or picks one still
// resyncing after a restart; the fault suite lost a third of the writes of
// a round that way, with WAIT 1, in repeated Sentinel failovers under
// load). Confirmed by all of them, the write is on whichever a failover
// promotes. The cost: while a replica resyncs, writes wait for it, and
// answer not_replicated when it takes longer than WaitTimeout.
func (s *Store) replicasFor(ctx context.Context, n node) int {
	if !s.waitAuto {
		return s.waitReplicas
	}
	return s.topology.replicas(ctx, n)
}

// topology remembers how many replicas each master has connected (INFO
// replication, connected_slaves), for WaitAuto. A count is fetched on
// first use and again in the background when it is older than
// topologyMaxAge, or marked stale.
type topology struct {
	mu     sync.Mutex
	counts map[string]replicaCount
}

type replicaCount struct {
	n          int
	at         time.Time
	known      bool
	refreshing bool
}

const topologyMaxAge = 5 * time.Second

func (t *topology) stale(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.counts[addr]; ok {
		c.at = time.Time{}
		t.counts[addr] = c
	}
}

// replicas returns the replica count of n: cached, or fetched now when
// there is none yet. A node that cannot be asked (INFO refused or failing)
// counts as having one replica, so that writes wait rather than assume;
// it is asked again after topologyMaxAge. A stale count is refreshed in
// the background while the cached one is used.
func (t *topology) replicas(ctx context.Context, n node) int {
	t.mu.Lock()
	if t.counts == nil {
		t.counts = map[string]replicaCount{}
	}
	c := t.counts[n.addr]
	if c.known && (time.Since(c.at) < topologyMaxAge || c.refreshing) {
		t.mu.Unlock()
		return c.n
	}
	if c.known {
		c.refreshing = true
		t.counts[n.addr] = c
		t.mu.Unlock()
		go t.fetch(context.Background(), n)
		return c.n
	}
	t.mu.Unlock()
	return t.fetch(ctx, n)
}

// fetch asks n for its replica count and remembers it.
func (t *topology) fetch(ctx context.Context, n node) int {
	got, err := connectedReplicas(ctx, n.client)
	t.mu.Lock()
	defer t.mu.Unlock()
	c := replicaCount{n: got, at: time.Now(), known: true}
	if err != nil {
		c.n = 1
	}
	t.counts[n.addr] = c
	return c.n
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(ctx context.Context, c *redis.Client) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	v, ok := infoField(info, "connected_slaves")
	if !ok {
		return 0, errors.New("INFO replication has no connected_slaves")
	}
	return strconv.Atoi(v)
}

// infoField returns the value of name in an INFO reply.
func infoField(info, name string) (string, bool) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v, true
		}
	}
	return "", false
}

package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/keydelivery/keydelivery/keystore"
)

// Defaults for the zero values of Options.
const (
	DefaultPrefix       = "kd:"
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 500 * time.Millisecond
	DefaultWriteTimeout = 500 * time.Millisecond
)

// Options configures New. Zero values take the documented defaults.
type Options struct {
	// URL says where Redis is. Required. The accepted forms:
	//
	//	redis://[user:pass@]host[:port][/db]
	//	    One server. port defaults to 6379, db to 0.
	//	rediss://[user:pass@]host[:port][/db]
	//	    The same over TLS (see TLSConfig).
	//	redis+sentinel://[user:pass@]h1[:p1],h2[:p2]/MASTERNAME[?db=N]
	//	    The primary that the listed Sentinels (port default 26379) know
	//	    as MASTERNAME, followed across failovers; db defaults to 0. The
	//	    credentials are for the Redis servers; the Sentinels themselves
	//	    are asked without credentials. rediss+sentinel:// adds TLS.
	//	redis+cluster://[user:pass@]h1[:p1],h2[:p2]
	//	    Redis Cluster, discovered from the listed seed nodes (one is
	//	    enough; port default 6379). Cluster has only database 0, so no
	//	    path. rediss+cluster:// adds TLS.
	//
	// Special characters in the user or password must be percent-encoded.
	// Keep the password out of the URL where you can: use Password.
	URL string
	// Password overrides the URL's password when non-empty. Read it from a
	// file or the environment, never from a command-line flag.
	Password string
	// Username overrides the URL's user (an ACL user) when non-empty.
	Username string
	// Prefix starts every Redis key this store writes (default "kd:"), so
	// several deployments can share one Redis. A prefix with a hash tag
	// such as "{kd}:" puts every key in one cluster slot; that works but
	// loads a single node.
	Prefix string
	// PoolSize is the most connections kept per Redis node (default: ten
	// per GOMAXPROCS, go-redis' default). MinIdleConns is how many idle
	// connections to keep open (default 0).
	PoolSize, MinIdleConns int
	// DialTimeout bounds connecting to a node, per attempt (default 2s).
	// ReadTimeout and WriteTimeout bound each socket read and write of a
	// command (default 500ms each). The caller's context deadline still
	// applies on top, so a call never outlives its context. Negative
	// values are rejected: there is no "no timeout".
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	// TLSConfig is used for rediss:// (and only then; with any other scheme
	// it is an error). Default: the system roots, TLS 1.2 or later, and the
	// server name taken from the host being dialed.
	TLSConfig *tls.Config
	// AutoPipeline sends the key reads of concurrent callers (Get) to Redis
	// together, in shared pipelines (see batcher): a burst of reads costs
	// Redis and the kernel a few round trips instead of one each. A lone
	// read still goes out at once, and every read still ends at its
	// context's deadline. Every other command takes the plain client.
	AutoPipeline bool

	// Replicated acknowledgements. After every write (a create, an update,
	// a delete, a link, a meta or expiring value) the store sends WAIT on
	// the write's connection and counts the write done only when
	// WaitReplicas replicas confirm it within WaitTimeout; fewer is
	// keystore.ErrNotReplicated. With WaitAuto, a write waits for every
	// replica the master that takes it has connected (INFO replication):
	// one where it has one, none where it has none (see replicasFor). The
	// zero value waits for none, as a store without replicas needs.
	WaitReplicas int
	WaitAuto     bool
	// WaitTimeout bounds each WAIT (default 1s); the caller's deadline
	// must leave room for it.
	WaitTimeout time.Duration
	// WaitAOF sends WAITAOF (Redis 7.2 or later) instead of WAIT: the
	// master's own append-only file must hold the write too (fsynced),
	// and WaitReplicas replicas' files.
	WaitAOF bool
	// SlotReloadInterval is how often, at least, a Cluster client reloads
	// the slot map (default 1s; go-redis' own default is a minute). It is
	// also reloaded at once when a node refuses connections.
	SlotReloadInterval time.Duration
}

// DefaultWaitTimeout is Options.WaitTimeout's default.
const DefaultWaitTimeout = time.Second

// DefaultSlotReloadInterval is Options.SlotReloadInterval's default.
const DefaultSlotReloadInterval = time.Second

// maxRetries is how often go-redis repeats a command that failed on the
// network. One retry rides over a connection Redis closed while it sat in
// the pool; more would only stretch the time to a clear ErrUnavailable.
const maxRetries = 1

// dialerRetries is how often one connection attempt is made before the
// call fails (go-redis' default is 5). Against a server that is down each
// refused attempt is quick; two tolerate a single dropped SYN.
const dialerRetries = 2

// Store is a keystore.Store on Redis. It is safe for concurrent use.
type Store struct {
	c       redis.UniversalClient
	single  *redis.Client        // c, on one server or behind Sentinel
	cluster *redis.ClusterClient // c, on Redis Cluster
	// batch sends the key reads of concurrent callers together
	// (Options.AutoPipeline); nil: each read on its own.
	batch    *batcher
	prefix   string
	redacted string
	mode     mode

	waitAuto     bool
	waitReplicas int
	waitTimeout  time.Duration
	waitAOF      bool
	topology     topology
	// lastReload is when the slot map was last reloaded after a
	// connection failure (Unix nanoseconds).
	lastReload atomic.Int64
	// size is List's count of the key index (see indexSize).
	size struct {
		mu sync.Mutex
		n  int64
		at time.Time
	}

	closeOnce sync.Once
	closeErr  error
}

var (
	_ keystore.Store    = (*Store)(nil)
	_ keystore.Expiring = (*Store)(nil)
)

// New validates o and returns a Store. It does not contact Redis: a server
// that is down now makes calls fail with keystore.ErrUnavailable until it
// is up; use Ping to check. Errors name the URL form expected and never
// contain the password.
func New(o Options) (*Store, error) {
	e, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Username != "" {
		e.user = o.Username
	}
	if o.Password != "" {
		e.password = o.Password
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"DialTimeout", &o.DialTimeout, DefaultDialTimeout},
		{"ReadTimeout", &o.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &o.WriteTimeout, DefaultWriteTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("redisstore: %s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.WaitReplicas < 0 || o.WaitTimeout < 0 || o.SlotReloadInterval < 0 {
		return nil, fmt.Errorf("redisstore: WaitReplicas %d, WaitTimeout %v and SlotReloadInterval %v must not be negative", o.WaitReplicas, o.WaitTimeout, o.SlotReloadInterval)
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = DefaultWaitTimeout
	}
	if o.SlotReloadInterval == 0 {
		o.SlotReloadInterval = DefaultSlotReloadInterval
	}
	if o.PoolSize < 0 || o.MinIdleConns < 0 {
		return nil, fmt.Errorf("redisstore: PoolSize %d and MinIdleConns %d must not be negative", o.PoolSize, o.MinIdleConns)
	}
	var tlsConfig *tls.Config
	switch {
	case e.tls:
		if o.TLSConfig != nil {
			tlsConfig = o.TLSConfig.Clone()
		} else {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		// With several hosts (or a cluster's redirects) crypto/tls takes the
		// server name from each address dialed.
		if tlsConfig.ServerName == "" && e.mode == standalone {
			tlsConfig.ServerName, _, _ = net.SplitHostPort(e.addrs[0])
		}
	case o.TLSConfig != nil:
		return nil, fmt.Errorf("redisstore: TLSConfig is set but URL %s does not use TLS: use rediss://", e.redacted())
	}

	uo := &redis.UniversalOptions{
		Addrs:         e.addrs,
		DB:            e.db,
		MasterName:    e.master,
		IsClusterMode: e.mode == cluster,
		// No ClientName: CLIENT SETNAME would be one more command the ACL
		// user must be allowed, and a refusal fails every connection.
		Username:  e.user,
		Password:  e.password,
		TLSConfig: tlsConfig,

		// Unbounded Redis calls are what we avoid (STYLE 2.9): the context
		// deadline, the socket timeouts and the retry count all bound
		// every call.
		ContextTimeoutEnabled: true,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		MaxRetries:            maxRetries,
		DialerRetries:         dialerRetries,
		PoolSize:              o.PoolSize,
		MinIdleConns:          o.MinIdleConns,

		// Maintenance notifications are a Redis Cloud/Enterprise feature
		// that would add CLIENT MAINT_NOTIFICATIONS to every connection
		// (another command an ACL user would need); keep the client plain.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	s := &Store{prefix: o.Prefix, redacted: e.redacted(), mode: e.mode,
		waitAuto: o.WaitAuto, waitReplicas: o.WaitReplicas, waitTimeout: o.WaitTimeout, waitAOF: o.WaitAOF}
	if e.mode == cluster {
		co := uo.Cluster()
		// go-redis reloads the slot map on MOVED, ASK and READONLY, and
		// otherwise once a minute; a master that died answers none of them
		// (its connections are refused), so without a short interval its
		// slots stay unreachable for up to a minute after the cluster
		// failed over. connectionFailed reloads at once too.
		co.ClusterStateReloadInterval = o.SlotReloadInterval
		s.cluster = redis.NewClusterClient(co)
		s.c = s.cluster
	} else {
		s.single = redis.NewUniversalClient(uo).(*redis.Client)
		s.c = s.single
	}
	if o.AutoPipeline {
		s.batch = newBatcher(s.c)
	}
	return s, nil
}

// connectionFailed reloads the cluster's slot map (at most every
// reloadMinGap) after a command failed on the network: the node may be a
// master that died, whose slots a replica took over.
func (s *Store) connectionFailed(err error) {
	if s.cluster == nil || err == nil || isReply(err) || errors.Is(err, context.Canceled) {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastReload.Load()
	if now-last < int64(reloadMinGap) || !s.lastReload.CompareAndSwap(last, now) {
		return
	}
	s.cluster.ReloadState(context.Background())
}

// reloadMinGap spaces the slot map reloads that connection failures
// trigger.
const reloadMinGap = 100 * time.Millisecond

// Redacted returns the URL with the password replaced by "xxxxx", for
// logs. A password given in Options.Password shows as xxxxx too.
func (s *Store) Redacted() string { return s.redacted }

// String returns "redisstore " and the redacted URL, so printing a Store
// never prints a password.
func (s *Store) String() string { return "redisstore " + s.redacted }

func (s *Store) keyName(id keystore.KeyID) string { return s.prefix + "key:" + id.String() }

func (s *Store) metaName(name string) string { return s.prefix + "meta:" + name }

// Get implements keystore.Store. A stored record that names another KID
// than the one it is stored under is refused with keystore.ErrSealed:
// Redis is untrusted, and a record copied between keys must not be
// delivered as the key it was copied to.
func (s *Store) Get(ctx context.Context, id keystore.KeyID) (keystore.Record, error) {
	if err := ctx.Err(); err != nil {
		return keystore.Record{}, fmt.Errorf("redisstore: get %s: %w", id, translate(err))
	}
	var b []byte
	var err error
	if s.batch != nil {
		b, err = s.batch.get(ctx, s.keyName(id))
	} else {
		b, err = s.getBounded(ctx, s.keyName(id))
	}
	if err != nil {
		s.connectionFailed(err)
		return keystore.Record{}, fmt.Errorf("redisstore: get %s: %w", id, translate(err))
	}
	r, err := decodeAt(id, b)
	if err != nil {
		return keystore.Record{}, fmt.Errorf("redisstore: get %s: %w", id, err)
	}
	return r, nil
}

// getBounded is GET of key that returns by ctx's end at the latest. On a
// single server go-redis ends the call at the deadline itself; a Cluster
// client may not (its retries and redirections after a master died can
// outlast the deadline), so there the call runs on its own goroutine and is
// abandoned at the deadline (it ends by the socket timeouts).
func (s *Store) getBounded(ctx context.Context, key string) ([]byte, error) {
	if s.cluster == nil {
		return s.c.Get(ctx, key).Bytes()
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := s.c.Get(ctx, key).Bytes()
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// GetMeta implements keystore.Store.
func (s *Store) GetMeta(ctx context.Context, name string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.metaName(name)).Bytes()
	if err != nil {
		s.connectionFailed(err)
		return nil, fmt.Errorf("redisstore: get meta %s: %w", name, translate(err))
	}
	return b, nil
}

// CreateMeta implements keystore.Store: SET NX of the value and ZADD of
// its name to the meta name index shard of its slot (metaShard), for
// ListMeta, on one connection, then WAIT when writes wait. On ErrExists the
// name is added too, so a retry heals a name the index missed.
func (s *Store) CreateMeta(ctx context.Context, name string, value []byte) error {
	key := s.metaName(name)
	u := &unit{key: key, value: value, shard: s.shardOf(metaIndex, key), member: name}
	err := s.writeUnits(ctx, []*unit{u})
	if err == nil {
		err = u.err
	}
	if err != nil {
		return fmt.Errorf("redisstore: create meta %s: %w", name, err)
	}
	return nil
}

// ListMeta implements keystore.Store from the meta name index shards.
func (s *Store) ListMeta(ctx context.Context, prefix string) ([]string, error) {
	names, err := s.scanNames(ctx, metaIndex, prefix)
	if err != nil {
		return nil, fmt.Errorf("redisstore: list meta: %w", err)
	}
	return names, nil
}

// expiringName is where an expiring value lives.
func (s *Store) expiringName(name string) string { return s.prefix + "exp:" + name }

// CreateExpiring implements keystore.Expiring with SET NX PX (Redis
// expires the value), then WAIT when writes wait.
func (s *Store) CreateExpiring(ctx context.Context, name string, value []byte, ttl time.Duration) error {
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	u := &unit{key: s.expiringName(name), value: value, ttl: ttl}
	err := s.writeUnits(ctx, []*unit{u})
	if err == nil {
		err = u.err
	}
	if err != nil {
		return fmt.Errorf("redisstore: create expiring %s: %w", name, err)
	}
	return nil
}

// GetExpiring implements keystore.Expiring.
func (s *Store) GetExpiring(ctx context.Context, name string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.expiringName(name)).Bytes()
	if err != nil {
		s.connectionFailed(err)
		return nil, fmt.Errorf("redisstore: get expiring %s: %w", name, translate(err))
	}
	return b, nil
}

// Ping implements keystore.Store: it sends PING (to one node of a cluster).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", translate(err))
	}
	return nil
}

// Close implements keystore.Store. It closes every connection; calls made
// afterwards fail with keystore.ErrUnavailable. Closing twice is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.batch != nil {
			s.batch.close()
		}
		s.closeErr = s.c.Close()
	})
	return s.closeErr
}

// PoolStats is a snapshot of the connection pool (summed over every node of
// a cluster), for metrics.
type PoolStats struct {
	Hits       uint32 // a free connection was found in the pool
	Misses     uint32 // no free connection: a new one was dialed
	Timeouts   uint32 // waiting for a connection timed out
	TotalConns uint32 // connections open now
	IdleConns  uint32 // idle connections now
	StaleConns uint32 // stale connections removed so far
}

// PoolStats returns the pool counters.
func (s *Store) PoolStats() PoolStats {
	p := s.c.PoolStats()
	if p == nil {
		return PoolStats{}
	}
	return PoolStats{Hits: p.Hits, Misses: p.Misses, Timeouts: p.Timeouts,
		TotalConns: p.TotalConns, IdleConns: p.IdleConns, StaleConns: p.StaleConns}
}

// translate maps a go-redis error to the keystore sentinels. Callers add
// the operation and key ID.
func translate(err error) error {
	switch {
	case errors.Is(err, redis.Nil):
		return keystore.ErrNotFound
	case full(err):
		return fmt.Errorf("%w: %w", keystore.ErrFull, err)
	case unavailable(err):
		return fmt.Errorf("%w: %w", keystore.ErrUnavailable, err)
	}
	return err
}

// full reports whether err is Redis refusing a write for lack of room: OOM
// (maxmemory reached under noeviction) or MISCONF (it cannot persist, e.g.
// a full disk, and stops accepting writes). Reads still work.
func full(err error) bool {
	return redis.HasErrorPrefix(err, "OOM") || redis.HasErrorPrefix(err, "MISCONF")
}

// unavailable reports whether err means Redis could not answer now but may
// later: the network, a deadline, the pool, a closed client, or one of the
// Redis errors a loading, failing-over, read-only or overloaded server
// gives. A canceled context is the caller giving up, not Redis failing.
// Redis errors are matched with go-redis' typed helpers, or by their
// leading error-code token (HasErrorPrefix) where there is no helper.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, redis.ErrPoolExhausted) ||
		errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// Dial errors (connection refused, no route, DNS), resets, broken pipes
	// and socket timeouts are all net.Errors; so is a bare syscall.Errno.
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return redis.IsLoadingError(err) ||
		redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) ||
		redis.IsReadOnlyError(err) ||
		redis.IsMaxClientsError(err) ||
		redis.IsNoReplicasError(err) ||
		redis.HasErrorPrefix(err, "BUSY ")
}

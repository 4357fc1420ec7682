package redisstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// ctxT returns a context that ends with the test or after d. It is for the
// deadlines that are what a test checks (a call against a stopped or silent
// server gives up within it); a context for an operation that should
// succeed is waittest.Context, which only catches a hang.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustNew returns a Store for o, closed when the test ends.
func mustNew(t *testing.T, o Options) *Store {
	t.Helper()
	// The test servers fsync every write on a shared 2-core machine, and a
	// whole pipeline's replies share one read timeout: unless a test sets
	// them, the socket timeouts only catch a hang (waittest), so that a slow
	// machine is not mistaken for an outage.
	if o.ReadTimeout == 0 {
		o.ReadTimeout = waittest.Timeout(t)
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = waittest.Timeout(t)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain go-redis client on srv, for looking behind the store.
func rawClient(t *testing.T, srv *redistest.Server, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password(), DB: db})
	t.Cleanup(func() { c.Close() })
	return c
}

// rawBytes returns the names and values of every key under prefix that srv
// holds, followed by every file in its directory (the append-only files):
// all that Redis persisted.
func rawBytes(t *testing.T, srv *redistest.Server, prefix string) []byte {
	t.Helper()
	ctx := waittest.Context(t)
	c := rawClient(t, srv, 0)
	var out bytes.Buffer
	iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
	n := 0
	for iter.Next(ctx) {
		fmt.Fprintf(&out, "%s\n", iter.Val())
		switch typ := c.Type(ctx, iter.Val()).Val(); typ {
		case "string":
			v, err := c.Get(ctx, iter.Val()).Bytes()
			if err != nil {
				t.Fatalf("raw get %s: %v", iter.Val(), err)
			}
			fmt.Fprintf(&out, "%s\n", v)
		case "zset": // the indexes
			ms, err := c.ZRange(ctx, iter.Val(), 0, -1).Result()
			if err != nil {
				t.Fatalf("raw zrange %s: %v", iter.Val(), err)
			}
			fmt.Fprintf(&out, "%s\n", strings.Join(ms, "\n"))
		default:
			t.Fatalf("key %s has type %q", iter.Val(), typ)
		}
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no keys under %q", prefix)
	}
	err := filepath.WalkDir(srv.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// conformance runs storetest with stores made by start. Reopen closes the
// client, stops and restarts redis-server (so the keys come back only if
// the append-only file kept them), calls ready, and connects again.
func conformance(t *testing.T, start func(t *testing.T) (*redistest.Server, Options), ready func(t *testing.T, srv *redistest.Server)) {
	var mu sync.Mutex
	servers := map[keystore.Store]*redistest.Server{}
	opts := map[keystore.Store]Options{}
	open := func(t *testing.T, srv *redistest.Server, o Options) keystore.Store {
		// As in mustNew: the socket timeouts only catch a hang.
		if o.ReadTimeout == 0 {
			o.ReadTimeout, o.WriteTimeout = waittest.Timeout(t), waittest.Timeout(t)
		}
		s, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		servers[s], opts[s] = srv, o
		return s
	}
	lookup := func(s keystore.Store) (*redistest.Server, Options) {
		mu.Lock()
		defer mu.Unlock()
		return servers[s], opts[s]
	}
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) keystore.Store {
			srv, o := start(t)
			return open(t, srv, o)
		},
		Reopen: func(t *testing.T, s keystore.Store) keystore.Store {
			srv, o := lookup(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			srv.Stop(t)
			srv.Restart(t)
			ready(t, srv)
			return open(t, srv, o)
		},
		Raw: func(t *testing.T, s keystore.Store) []byte {
			srv, o := lookup(s)
			return rawBytes(t, srv, o.Prefix)
		},
	})
}

// TestConformance gives every store its own persistent redis-server.
func TestConformance(t *testing.T) {
	conformance(t, func(t *testing.T) (*redistest.Server, Options) {
		srv := redistest.Start(t, redistest.Options{Persistence: true})
		return srv, Options{URL: srv.URL(), Prefix: DefaultPrefix}
	}, func(*testing.T, *redistest.Server) {})
}

// TestConformanceCluster runs the suite through the cluster client (key
// reads auto-pipelined) against a one-node Redis Cluster that owns every
// slot, so the key layout is shown to work without multi-key commands. A cluster master waits two seconds
// after each start before it serves, so the stores share one node and are
// kept apart by their prefixes.
func TestConformanceCluster(t *testing.T) {
	srv := startCluster(t)
	var mu sync.Mutex
	n := 0
	conformance(t, func(t *testing.T) (*redistest.Server, Options) {
		mu.Lock()
		defer mu.Unlock()
		n++
		// Key reads auto-pipelined, as the server runs by default.
		return srv, Options{URL: "redis+cluster://" + srv.Addr, Prefix: fmt.Sprintf("c%d:", n), AutoPipeline: true}
	}, waitClusterOK)
}

// startCluster starts a one-node cluster with every slot assigned.
func startCluster(t *testing.T) *redistest.Server {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{Persistence: true,
		ExtraArgs: []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}})
	if err := rawClient(t, srv, 0).Do(waittest.Context(t), "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	waitClusterOK(t, srv)
	return srv
}

// waitClusterOK waits until the node reports cluster_state:ok.
func waitClusterOK(t *testing.T, srv *redistest.Server) {
	t.Helper()
	c := rawClient(t, srv, 0)
	ctx := waittest.Context(t)
	waittest.For(t, "cluster_state:ok", func() bool {
		info, err := c.ClusterInfo(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(info, "cluster_state:ok")
	})
}

func TestSentinel(t *testing.T) {
	primary := redistest.Start(t, redistest.Options{})
	host, port, _ := net.SplitHostPort(primary.Addr)
	sent := redistest.Start(t, redistest.Options{ExtraArgs: []string{"--sentinel", "monitor", "mymaster", host, port, "1"}})
	// The first sentinel listed is down: the client must move on to the next.
	down := freeAddr(t)
	s := mustNew(t, Options{URL: "redis+sentinel://" + down + "," + sent.Addr + "/mymaster?db=2", AutoPipeline: true})
	id := storetest.RandomID(t)
	r := keystore.Record{ID: id, Sealed: []byte("sealed"), Created: time.Now(), Updated: time.Now()}
	if err := s.Create(waittest.Context(t), r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(waittest.Context(t), id); err != nil || !bytes.Equal(got.Sealed, r.Sealed) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	n, err := rawClient(t, primary, 2).Exists(waittest.Context(t), DefaultPrefix+"key:"+id.String()).Result()
	if err != nil || n != 1 {
		t.Fatalf("key not in db 2 of the primary: %d, %v", n, err)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestLayout(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL(), Prefix: "tenant1:"})
	ctx := waittest.Context(t)
	id := keystore.KeyID{0xAB, 0xCD, 0xEF, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	r := keystore.Record{ID: id, Sealed: []byte("sealed"), Created: time.Now(), Updated: time.Now(), Assets: []string{"movie-1", "movie/2"}}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMeta(ctx, "kek-check/k1", []byte("check")); err != nil {
		t.Fatal(err)
	}
	c := rawClient(t, srv, 0)
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{"tenant1:asset:movie-1", "tenant1:asset:movie/2", "tenant1:index",
		"tenant1:key:abcdef01-0203-0405-0607-08090a0b0c0d", "tenant1:meta:kek-check/k1", "tenant1:metanames"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	b, err := c.Get(ctx, "tenant1:key:"+id.String()).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := keystore.EncodeRecord(r)
	if !bytes.Equal(b, enc) {
		t.Fatalf("stored %s, want keystore.EncodeRecord's %s", b, enc)
	}
	if ttl, err := c.TTL(ctx, "tenant1:key:"+id.String()).Result(); err != nil || ttl != -1 {
		t.Fatalf("TTL = %v, %v; want none", ttl, err)
	}
	// Index members are the KID in 32 lower-case hex digits, score 0.
	for _, k := range want[:3] {
		zs, err := c.ZRangeWithScores(ctx, k, 0, -1).Result()
		if err != nil || len(zs) != 1 || zs[0].Member != "abcdef0102030405060708090a0b0c0d" || zs[0].Score != 0 {
			t.Fatalf("%s holds %v, %v", k, zs, err)
		}
	}
	// An Update keeps the record free of a TTL, and clears one set by hand.
	if err := c.Expire(ctx, "tenant1:key:"+id.String(), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, id, func(r *keystore.Record) error { r.Name = "n"; return nil }); err != nil {
		t.Fatal(err)
	}
	if ttl, err := c.TTL(ctx, "tenant1:key:"+id.String()).Result(); err != nil || ttl != -1 {
		t.Fatalf("TTL after Update = %v, %v; want none", ttl, err)
	}
	// Delete leaves only the meta entry.
	if err := s.Delete(ctx, id, nil); err != nil {
		t.Fatal(err)
	}
	keys, err = c.Keys(ctx, "*").Result()
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, want[4:]) {
		t.Fatalf("after Delete, keys %q (%v), want %q", keys, err, want[4:])
	}
}

// TestRecordMovedBetweenKeys: Redis is untrusted; a record copied to
// another key's slot must not be delivered as that key.
func TestRecordMovedBetweenKeys(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	ctx := waittest.Context(t)
	a, b := storetest.RandomID(t), storetest.RandomID(t)
	if err := s.Create(ctx, keystore.Record{ID: a, Sealed: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	c := rawClient(t, srv, 0)
	v, err := c.Get(ctx, s.keyName(a)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, s.keyName(b), v, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get of a record moved from %s to %s = %v, want ErrSealed", a, b, err)
	}
	if err := c.Set(ctx, s.keyName(b), "not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b); err == nil || errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Get of a garbage record = %v, want a decode error", err)
	}
}

// TestUnavailable: with Redis stopped every call fails with ErrUnavailable
// (never ErrNotFound) within the caller's deadline; after Redis comes back
// the same Store works again.
func TestUnavailable(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Persistence: true})
	s := mustNew(t, Options{URL: srv.URL()})
	// The per-call budget only catches a hang; the calls made while Redis is
	// stopped have their own deadline below, which is what they are tested
	// against.
	keys := keystore.NewKeys(s, storetest.NewKeyring(t, "k1"), keystore.Options{Timeout: waittest.Timeout(t)})
	created, err := keys.Create(waittest.Context(t), keystore.Key{ID: storetest.RandomID(t), Value: [16]byte{1, 2, 3}})
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	calls := map[string]func(ctx context.Context) error{
		"Get": func(ctx context.Context) error { _, err := s.Get(ctx, created.ID); return err },
		"Create": func(ctx context.Context) error {
			return s.Create(ctx, keystore.Record{ID: storetest.RandomID(t), Sealed: []byte("x")})
		},
		"GetMeta":    func(ctx context.Context) error { _, err := s.GetMeta(ctx, "m"); return err },
		"CreateMeta": func(ctx context.Context) error { return s.CreateMeta(ctx, "m", []byte("x")) },
		"Ping":       s.Ping,
		"Keys.Get":   func(ctx context.Context) error { _, err := keys.Get(ctx, created.ID); return err },
		"CreateBatch": func(ctx context.Context) error {
			_, err := s.CreateBatch(ctx, []keystore.Record{{ID: storetest.RandomID(t)}, {ID: storetest.RandomID(t)}})
			return err
		},
		"Update": func(ctx context.Context) error {
			_, err := s.Update(ctx, created.ID, func(*keystore.Record) error { return nil })
			return err
		},
		"Delete":    func(ctx context.Context) error { return s.Delete(ctx, created.ID, nil) },
		"List":      func(ctx context.Context) error { _, err := s.List(ctx, keystore.KeyID{}, 10); return err },
		"ListAsset": func(ctx context.Context) error { _, err := s.ListAsset(ctx, "a", keystore.KeyID{}, 10); return err },
		"Keys.Ping": keys.Ping,
	}
	for name, call := range calls {
		// Twice: the second call meets go-redis' dial-error state, not a dial.
		for i := range 2 {
			t0 := time.Now()
			err := call(ctxT(t, 3*time.Second))
			t.Logf("%s #%d: %v after %v", name, i, err, time.Since(t0).Round(time.Millisecond))
			if !errors.Is(err, keystore.ErrUnavailable) || errors.Is(err, keystore.ErrNotFound) {
				t.Errorf("%s #%d with Redis stopped = %v, want ErrUnavailable", name, i, err)
			}
		}
	}

	srv.Restart(t)
	// go-redis probes a failed node about once a second: wait until it has.
	waittest.For(t, "the store to recover after Redis restarted", func() bool {
		return s.Ping(waittest.Context(t)) == nil
	})
	got, err := keys.Get(waittest.Context(t), created.ID)
	if err != nil || got.Value != created.Value {
		t.Fatalf("after restart, Get = %v", err)
	}
	if err := s.Create(waittest.Context(t), keystore.Record{ID: storetest.RandomID(t), Sealed: []byte("y")}); err != nil {
		t.Fatalf("after restart, Create = %v", err)
	}
}

// TestHungServer: a server that accepts connections and never answers
// gives ErrUnavailable within the timeouts, not a hang.
func TestHungServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	s, err := New(Options{URL: "redis://" + l.Addr().String(), ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Get(ctxT(t, 5*time.Second), storetest.RandomID(t))
	if !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Get from a server that never answers = %v, want ErrUnavailable", err)
	}
	t.Logf("gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)
	s.Close() // closes the connections, so the copiers end
}

func TestCanceledAndClosed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Get(ctx, storetest.RandomID(t))
	if !errors.Is(err, context.Canceled) || errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Get with a canceled context = %v, want context.Canceled only", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := s.Ping(ctxT(t, time.Second)); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v, want ErrUnavailable", err)
	}
}

func TestPassword(t *testing.T) {
	const pw = "right p@ss/word"
	srv := redistest.Start(t, redistest.Options{Password: pw})
	noPass := "redis://" + srv.Addr + "/0"

	for name, o := range map[string]Options{
		"missing":      {URL: noPass},
		"wrong":        {URL: noPass, Password: "wrong-secret"},
		"wrong in URL": {URL: "redis://:wrong-secret@" + srv.Addr + "/0"},
		"wrong user":   {URL: noPass, Username: "nobody", Password: pw},
	} {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, o)
			for op, err := range map[string]error{
				"Ping": s.Ping(waittest.Context(t)),
				"Get":  func() error { _, err := s.Get(waittest.Context(t), storetest.RandomID(t)); return err }(),
			} {
				if err == nil || errors.Is(err, keystore.ErrNotFound) {
					t.Fatalf("%s = %v, want an authentication error", op, err)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), pw) {
					t.Fatalf("%s error shows a password: %v", op, err)
				}
			}
		})
	}

	for name, o := range map[string]Options{
		"Options.Password":           {URL: noPass, Password: pw},
		"in URL":                     {URL: srv.URL()},
		"Options.Password overrides": {URL: "redis://:wrong@" + srv.Addr + "/0", Password: pw},
		"default user":               {URL: noPass, Username: "default", Password: pw},
	} {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, o)
			if err := s.Ping(waittest.Context(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(waittest.Context(t), storetest.RandomID(t)); !errors.Is(err, keystore.ErrNotFound) {
				t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
			}
			if strings.Contains(s.Redacted(), pw) || !strings.Contains(s.Redacted(), ":xxxxx@") {
				t.Fatalf("Redacted = %q", s.Redacted())
			}
		})
	}
}

func TestDatabaseNumber(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: "redis://" + srv.Addr + "/5"})
	id := storetest.RandomID(t)
	if err := s.Create(waittest.Context(t), keystore.Record{ID: id}); err != nil {
		t.Fatal(err)
	}
	for db, want := range map[int]int64{0: 0, 5: 1} {
		n, err := rawClient(t, srv, db).Exists(waittest.Context(t), s.keyName(id)).Result()
		if err != nil || n != want {
			t.Fatalf("db %d holds the key %d times (%v), want %d", db, n, err, want)
		}
	}
}

func TestPoolStats(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL(), PoolSize: 4})
	for range 3 {
		if err := s.Ping(waittest.Context(t)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.PoolStats()
	if st.TotalConns < 1 || st.TotalConns > 4 || st.Hits+st.Misses < 3 {
		t.Fatalf("PoolStats = %+v after three pings on a pool of 4", st)
	}
}

type parsed struct {
	mode     mode
	tls      bool
	addrs    string // comma-separated
	db       int
	master   string
	user     string
	password string
	redacted string
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want parsed
	}{
		{"redis://127.0.0.1:6380/0", parsed{addrs: "127.0.0.1:6380", redacted: "redis://127.0.0.1:6380/0"}},
		{"redis://localhost", parsed{addrs: "localhost:6379", redacted: "redis://localhost"}},
		{"redis://localhost/", parsed{addrs: "localhost:6379", redacted: "redis://localhost/"}},
		{"REDIS://Redis.Example.com:6379/15", parsed{addrs: "Redis.Example.com:6379", db: 15, redacted: "REDIS://Redis.Example.com:6379/15"}},
		{"redis://user:secret@redis.example.com:6379/3", parsed{addrs: "redis.example.com:6379", db: 3, user: "user", password: "secret", redacted: "redis://user:xxxxx@redis.example.com:6379/3"}},
		{"redis://:secret@h/1", parsed{addrs: "h:6379", db: 1, password: "secret", redacted: "redis://:xxxxx@h/1"}},
		{"redis://alice@h", parsed{addrs: "h:6379", user: "alice", redacted: "redis://alice@h"}},
		{"redis://a%40b:p%40ss%2Fw%3Ad@h", parsed{addrs: "h:6379", user: "a@b", password: "p@ss/w:d", redacted: "redis://a%40b:xxxxx@h"}},
		{"redis://u:p@ss@h", parsed{addrs: "h:6379", user: "u", password: "p@ss", redacted: "redis://u:xxxxx@h"}},
		{"rediss://h.example:6380/2", parsed{tls: true, addrs: "h.example:6380", db: 2, redacted: "rediss://h.example:6380/2"}},
		{"redis://[::1]:6390/0", parsed{addrs: "[::1]:6390", redacted: "redis://[::1]:6390/0"}},
		{"redis://[::1]/0", parsed{addrs: "[::1]:6379", redacted: "redis://[::1]/0"}},
		{"redis+sentinel://s1:26379,s2:26380,s3/mymaster?db=2", parsed{mode: sentinel, addrs: "s1:26379,s2:26380,s3:26379", master: "mymaster", db: 2, redacted: "redis+sentinel://s1:26379,s2:26380,s3/mymaster?db=2"}},
		{"redis+sentinel://u:secret@s1/mymaster", parsed{mode: sentinel, addrs: "s1:26379", master: "mymaster", user: "u", password: "secret", redacted: "redis+sentinel://u:xxxxx@s1/mymaster"}},
		{"rediss+sentinel://s1/m", parsed{mode: sentinel, tls: true, addrs: "s1:26379", master: "m", redacted: "rediss+sentinel://s1/m"}},
		{"redis+cluster://n1:7000,n2:7001,n3:7002", parsed{mode: cluster, addrs: "n1:7000,n2:7001,n3:7002", redacted: "redis+cluster://n1:7000,n2:7001,n3:7002"}},
		{"redis+cluster://:secret@n1:7000/", parsed{mode: cluster, addrs: "n1:7000", password: "secret", redacted: "redis+cluster://:xxxxx@n1:7000/"}},
		{"rediss+cluster://n1", parsed{mode: cluster, tls: true, addrs: "n1:6379", redacted: "rediss+cluster://n1"}},
	} {
		e, err := parseURL(tc.url)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tc.url, err)
			continue
		}
		got := parsed{e.mode, e.tls, strings.Join(e.addrs, ","), e.db, e.master, e.user, e.password, e.redacted()}
		if got != tc.want {
			t.Errorf("parseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ name, url, want string }{
		{"empty", "", "no URL"},
		{"no scheme", "localhost:6379", "no scheme"},
		{"wrong scheme", "http://h", `scheme "http" is not supported`},
		{"unix socket", "unix:///run/redis.sock", `scheme "unix" is not supported`},
		{"db not a number", "redis://h/abc", `database "abc" is not a number`},
		{"negative db", "redis://h/-1", `database "-1" is not a number`},
		{"db with slash", "redis://h/1/2", `database "1/2" is not a number`},
		{"sentinel without master", "redis+sentinel://s1:26379", "master name"},
		{"sentinel empty master", "redis+sentinel://s1:26379/", "master name"},
		{"sentinel db not a number", "redis+sentinel://s1/m?db=x", `database "x" is not a number`},
		{"sentinel unknown parameter", "redis+sentinel://s1/m?foo=1", `unknown parameter "foo"`},
		{"empty host", "redis://", "empty host"},
		{"empty host with password", "redis://:secret@/0", "empty host"},
		{"port only", "redis://:6379", "empty host name"},
		{"zero port", "redis://h:0", "not a number from 1 to 65535"},
		{"port not a number", "redis://h:abc", `port "abc"`},
		{"several hosts", "redis://h1,h2", "names 2 hosts"},
		{"empty host in list", "redis+cluster://n1,,n2", "empty host"},
		{"cluster db", "redis+cluster://n1/3", "only database 0"},
		{"query on redis", "redis://h/0?db=1", `unknown parameter "db"`},
		{"fragment", "redis://h/0#x", "fragment"},
		{"bare IPv6", "redis://::1/0", "brackets"},
		{"bad host", "redis://h o/0", "bad character"},
		{"unescaped slash in password", "redis://user:se/cret@h", "percent-encode"},
		{"bad escape in password", "redis://:secr%zzet@h", "invalid percent-encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseURL(tc.url)
			if err == nil {
				t.Fatalf("parseURL(%q) succeeded", tc.url)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseURL(%q) = %v, want it to mention %q", tc.url, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "redisstore: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			for _, secret := range []string{"secret", "cret", "secr"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the password: %v", err)
				}
			}
			// Through New too, and New never dials.
			if _, err := New(Options{URL: tc.url}); err == nil {
				t.Fatalf("New(%q) succeeded", tc.url)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	s, err := New(Options{URL: "redis://u:secret@h:1/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Redacted() != "redis://u:xxxxx@h:1/0" {
		t.Errorf("Redacted = %q", s.Redacted())
	}
	if got := fmt.Sprint(s); strings.Contains(got, "secret") {
		t.Errorf("printing the store shows the password: %s", got)
	}
	if s.prefix != DefaultPrefix {
		t.Errorf("default prefix %q", s.prefix)
	}

	s2, err := New(Options{URL: "redis://h/0", Username: "bob", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Redacted() != "redis://bob:xxxxx@h/0" {
		t.Errorf("Redacted with Options credentials = %q", s2.Redacted())
	}

	for name, o := range map[string]Options{
		"TLSConfig without rediss": {URL: "redis://h", TLSConfig: tlsConfig()},
		"negative ReadTimeout":     {URL: "redis://h", ReadTimeout: -1},
		"negative DialTimeout":     {URL: "redis://h", DialTimeout: -time.Second},
		"negative PoolSize":        {URL: "redis://h", PoolSize: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	s3, err := New(Options{URL: "rediss://h:1", TLSConfig: tlsConfig()})
	if err != nil {
		t.Fatal(err)
	}
	s3.Close()
}

// fakeRedisError is a Redis error reply, as go-redis returns them.
type fakeRedisError string

func (e fakeRedisError) Error() string { return string(e) }
func (fakeRedisError) RedisError()     {}

func TestTranslate(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name              string
		err               error
		notFound, unavail bool
	}{
		{"nil reply", redis.Nil, true, false},
		{"connection refused", opErr, false, true},
		{"bare errno", syscall.ECONNRESET, false, true},
		{"deadline", context.DeadlineExceeded, false, true},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false, true},
		{"canceled", context.Canceled, false, false},
		{"pool timeout", redis.ErrPoolTimeout, false, true},
		{"closed client", redis.ErrClosed, false, true},
		{"eof", io.EOF, false, true},
		{"loading", fakeRedisError("LOADING Redis is loading the dataset in memory"), false, true},
		{"clusterdown", fakeRedisError("CLUSTERDOWN The cluster is down"), false, true},
		{"tryagain", fakeRedisError("TRYAGAIN Multiple keys request during rehashing of slot"), false, true},
		{"masterdown", fakeRedisError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), false, true},
		{"readonly", fakeRedisError("READONLY You can't write against a read only replica."), false, true},
		{"busy", fakeRedisError("BUSY Redis is busy running a script."), false, true},
		{"wrongpass", fakeRedisError("WRONGPASS invalid username-password pair or user is disabled."), false, false},
		{"wrongtype", fakeRedisError("WRONGTYPE Operation against a key holding the wrong kind of value"), false, false},
		{"other", errors.New("boom"), false, false},
	} {
		got := translate(tc.err)
		if errors.Is(got, keystore.ErrNotFound) != tc.notFound || errors.Is(got, keystore.ErrUnavailable) != tc.unavail {
			t.Errorf("%s: translate(%v) = %v; want notFound %v, unavailable %v", tc.name, tc.err, got, tc.notFound, tc.unavail)
		}
		if !tc.notFound && !errors.Is(got, tc.err) {
			t.Errorf("%s: translate lost the cause: %v", tc.name, got)
		}
	}
}

func TestGetErrorMessage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	id := storetest.RandomID(t)
	_, err := s.Get(waittest.Context(t), id)
	if want := "redisstore: get " + id.String() + ": keystore: not found"; err == nil || err.Error() != want {
		t.Fatalf("Get(missing) = %v, want %q", err, want)
	}
}

func tlsConfig() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }

// aclCommands are the commands the package doc says an ACL user needs.
const aclCommands = "+get +set +del +zadd +zrem +zrange +watch +unwatch +multi +exec +ping +publish +subscribe"

// TestACLUser: the permissions the package doc asks for are enough.
func TestACLUser(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := waittest.Context(t)
	acl := []any{"ACL", "SETUSER", "kd", "on", ">kd-pass", "~kd:*", "&kd:*"}
	for _, c := range strings.Fields(aclCommands) {
		acl = append(acl, c)
	}
	if err := rawClient(t, srv, 0).Do(ctx, acl...).Err(); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, Options{URL: "redis://" + srv.Addr, Username: "kd", Password: "kd-pass"})
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	keys := keystore.NewKeys(s, storetest.NewKeyring(t, "k1"), keystore.Options{Rand: rand.Reader, Timeout: waittest.Timeout(t)})
	if err := keys.CheckKEKs(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := keys.Create(ctx, keystore.Key{ID: storetest.RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keys.Get(ctx, k.ID); err != nil || got.Value != k.Value {
		t.Fatalf("Get = %v", err)
	}
	// Every Store method works with these permissions.
	batch := []keystore.Key{{ID: storetest.RandomID(t), Value: [16]byte{1}, Assets: []string{"film"}}, {ID: k.ID, Value: [16]byte{2}}}
	if res, err := keys.Import(ctx, batch); err != nil || res[0].Status != keystore.Created || res[1].Status != keystore.Conflict {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	if list, err := keys.List(ctx, keystore.KeyID{}, 10); err != nil || len(list) != 2 {
		t.Fatalf("List = %d keys, %v", len(list), err)
	}
	if ids, err := keys.ListAsset(ctx, "film", keystore.KeyID{}, 10); err != nil || len(ids) != 1 {
		t.Fatalf("ListAsset = %v, %v", ids, err)
	}
	if _, err := keys.Delete(ctx, batch[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := keys.Purge(ctx, k.ID); !errors.Is(err, keystore.ErrNotDeleted) { // check refuses: WATCH then UNWATCH
		t.Fatalf("Purge of a live key = %v", err)
	}
	if err := keys.Purge(ctx, batch[0].ID); err != nil {
		t.Fatal(err)
	}
	if ids, err := keys.ListAsset(ctx, "film", keystore.KeyID{}, 10); err != nil || len(ids) != 0 {
		t.Fatalf("ListAsset after Purge = %v, %v", ids, err)
	}
	// Cache invalidations: publish and subscribe on the changes channel.
	if err := s.Notify(ctx, []keystore.KeyID{k.ID}); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	subscribed := make(chan struct{}, 1)
	go s.Listen(lctx, func(_ keystore.KeyID, all bool) {
		if all {
			select {
			case subscribed <- struct{}{}:
			default:
			}
		}
	})
	waittest.Receive(t, subscribed, "Listen to subscribe with the documented permissions")
	cancel()
	// Outside its prefix the user is refused: the error is not ErrNotFound.
	other := mustNew(t, Options{URL: "redis://" + srv.Addr, Username: "kd", Password: "kd-pass", Prefix: "other:"})
	if _, err := other.Get(ctx, k.ID); err == nil || errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get outside the ACL prefix = %v, want a permission error", err)
	}
}

// TestTLS: rediss:// with a private CA in TLSConfig works, the server name
// comes from the URL's host, and without the CA the handshake fails with an
// error that is neither ErrNotFound nor ErrUnavailable.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caPool := writeTestCert(t, dir)
	tlsAddr := freeAddr(t)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	redistest.Start(t, redistest.Options{ExtraArgs: []string{
		"--tls-port", tlsPort,
		"--tls-cert-file", filepath.Join(dir, "cert.pem"),
		"--tls-key-file", filepath.Join(dir, "key.pem"),
		"--tls-auth-clients", "no",
	}})
	tlsURL := "rediss://localhost:" + tlsPort + "/0"

	s := mustNew(t, Options{URL: tlsURL, TLSConfig: &tls.Config{RootCAs: caPool, MinVersion: tls.VersionTLS12}})
	ctx := waittest.Context(t)
	id := storetest.RandomID(t)
	if err := s.Create(ctx, keystore.Record{ID: id, Sealed: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, id); err != nil {
		t.Fatal(err)
	}

	untrusting := mustNew(t, Options{URL: tlsURL}) // system roots only
	err := untrusting.Ping(ctx)
	if err == nil || errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Ping with an untrusted certificate = %v, want a certificate error", err)
	}
	wrongName := mustNew(t, Options{URL: "rediss://127.0.0.1:" + tlsPort + "/0", TLSConfig: &tls.Config{RootCAs: caPool}})
	if err := wrongName.Ping(ctx); err == nil {
		t.Fatal("Ping to an address the certificate does not name succeeded")
	}
}

// writeTestCert writes a self-signed certificate for "localhost" (only)
// and its key to dir, and returns a pool that trusts it.
func writeTestCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// BenchmarkImport100k: keystore.Keys.Import of 100,000 new keys, then of
// the same keys again (all unchanged), into a redis-server without
// persistence (as the load generator runs it), one database per store.
func BenchmarkImport100k(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	n := 0
	newStore := func(b *testing.B) keystore.Store {
		n++
		s, err := New(Options{URL: srv.URL(), Prefix: fmt.Sprintf("b%d:", n)})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("New", func(b *testing.B) { storetest.BenchmarkImport(b, newStore, 100_000, false) })
	b.Run("Again", func(b *testing.B) { storetest.BenchmarkImport(b, newStore, 100_000, true) })
}

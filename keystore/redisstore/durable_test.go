package redisstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// TestSlots: the slot of a key is the one Redis computes (CLUSTER
// KEYSLOT), hash tags included, and every slot's tag puts a key in that
// slot: the layout of the index shards holds on a real Redis.
func TestSlots(t *testing.T) {
	if got := crc16("123456789"); got != 0x31c3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3 (CRC-16/XMODEM)", got)
	}
	srv := startCluster(t)
	c := rawClient(t, srv, 0)
	ctx := waittest.Context(t)
	keys := []string{"kd:key:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", "{kd}:key:x", "a{}b", "a{b}c{d}", "{", "}{x}", "x{y"}
	for i := range numSlots {
		keys = append(keys, "kd:ix:"+slotTag(i))
	}
	cmds := make([]*redis.IntCmd, len(keys))
	for chunk := range slices.Chunk(slices.Collect(func(yield func(int) bool) {
		for i := range keys {
			if !yield(i) {
				return
			}
		}
	}), 2000) {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range chunk {
				cmds[i] = p.ClusterKeySlot(ctx, keys[i])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		if got, want := keySlot(k), int(cmds[i].Val()); got != want {
			t.Fatalf("keySlot(%q) = %d, Redis says %d", k, got, want)
		}
		if j := i - 7; j >= 0 && keySlot(k) != j {
			t.Fatalf("the tag of slot %d puts a key in slot %d", j, keySlot(k))
		}
	}
}

// startReplicated starts a master (persistent) and one replica of it.
func startReplicated(t *testing.T) (master, replica *redistest.Server) {
	t.Helper()
	master = redistest.Start(t, redistest.Options{Persistence: true})
	host, port, _ := net.SplitHostPort(master.Addr)
	replica = redistest.Start(t, redistest.Options{ExtraArgs: []string{"--replicaof", host, port}})
	c := rawClient(t, master, 0)
	waittest.For(t, "the replica to be in sync", func() bool {
		info, err := c.Info(waittest.Context(t), "replication").Result()
		v, _ := infoField(info, "slave0")
		return err == nil && strings.Contains(v, "state=online")
	})
	return master, replica
}

// createConfirmed creates k, sending it again while the answer is
// ErrNotReplicated (a replica that is up confirms within WaitTimeout on a
// quiet machine, not necessarily on a busy one), and returns the first
// other answer.
func createConfirmed(t *testing.T, keys *keystore.Keys, k keystore.Key) error {
	t.Helper()
	var err error
	waittest.For(t, "a replica to confirm the create", func() bool {
		_, err = keys.Create(waittest.Context(t), k)
		return !errors.Is(err, keystore.ErrNotReplicated)
	})
	return err
}

// TestWaitReplicas: a write counts only once a replica confirmed it. With
// the replica paused a create answers ErrNotReplicated although the master
// stored it; the same create sent again, once the replica is back, finds
// it and is confirmed. With WaitAuto the same happens, and a master without
// replicas does not wait.
func TestWaitReplicas(t *testing.T) {
	for _, o := range []Options{{WaitReplicas: 1}, {WaitAuto: true}} {
		t.Run(fmt.Sprintf("replicas=%d,auto=%v", o.WaitReplicas, o.WaitAuto), func(t *testing.T) {
			master, replica := startReplicated(t)
			o.URL, o.WaitTimeout = master.URL(), 200*time.Millisecond
			s := mustNew(t, o)
			keys := keystore.NewKeys(s, storetest.NewKeyring(t, "k1"), keystore.Options{Rand: rand.Reader, Timeout: waittest.Timeout(t)})
			ctx := waittest.Context(t)
			k := keystore.Key{ID: storetest.RandomID(t), Value: [16]byte{1, 2, 3}, Method: keystore.CreatedImport}
			// With the replica up a write is confirmed, but how soon
			// depends on the machine: sent again after not_replicated (as a
			// client does), it ends confirmed.
			if err := createConfirmed(t, keys, k); err != nil && !errors.Is(err, keystore.ErrSameKey) {
				t.Fatalf("create with the replica up: %v", err)
			}
			replica.Signal(t, syscall.SIGSTOP)
			paused := keystore.Key{ID: storetest.RandomID(t), Value: [16]byte{4, 5, 6}, Method: keystore.CreatedImport}
			_, err := keys.Create(ctx, paused)
			if !errors.Is(err, keystore.ErrNotReplicated) || errors.Is(err, keystore.ErrUnavailable) {
				t.Fatalf("create with the replica paused = %v, want ErrNotReplicated", err)
			}
			if _, err := s.Get(ctx, paused.ID); err != nil {
				t.Fatalf("the master does not hold the unconfirmed write: %v", err)
			}
			// Every kind of write waits.
			if _, err := keys.Delete(ctx, k.ID); !errors.Is(err, keystore.ErrNotReplicated) {
				t.Fatalf("delete with the replica paused = %v", err)
			}
			if err := s.CreateMeta(ctx, "m", []byte("v")); !errors.Is(err, keystore.ErrNotReplicated) {
				t.Fatalf("CreateMeta with the replica paused = %v", err)
			}
			if err := s.CreateExpiring(ctx, "e", []byte("v"), time.Hour); !errors.Is(err, keystore.ErrNotReplicated) {
				t.Fatalf("CreateExpiring with the replica paused = %v", err)
			}
			if errs, err := s.CreateBatch(ctx, []keystore.Record{record(t), record(t)}); err != nil || !errors.Is(errs[0], keystore.ErrNotReplicated) || !errors.Is(errs[1], keystore.ErrNotReplicated) {
				t.Fatalf("CreateBatch with the replica paused = %v, %v", errs, err)
			}
			replica.Signal(t, syscall.SIGCONT)
			// The retry finds its own earlier write and is confirmed: the
			// same key, so ErrSameKey ("unchanged"), not a conflict.
			if err := createConfirmed(t, keys, paused); !errors.Is(err, keystore.ErrSameKey) {
				t.Fatalf("retried create = %v, want ErrExists+ErrSameKey", err)
			}
			rc := rawClient(t, replica, 0)
			if n, err := rc.Exists(ctx, s.keyName(paused.ID)).Result(); err != nil || n != 1 {
				t.Fatalf("the replica does not hold the key after the confirmed retry: %d, %v", n, err)
			}
		})
	}
	t.Run("auto without replicas", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{Persistence: true})
		s := mustNew(t, Options{URL: srv.URL(), WaitAuto: true, WaitTimeout: time.Minute})
		// WAIT 1 would block for the minute: auto does not wait.
		if err := s.Create(waittest.Context(t), record(t)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFull: a Redis at maxmemory (noeviction) refuses writes with OOM, one
// that cannot persist with MISCONF: both are ErrFull, which is
// ErrUnavailable; the keys stored before stay readable.
func TestFull(t *testing.T) {
	t.Run("OOM", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{ExtraArgs: []string{"--maxmemory", "3mb", "--maxmemory-policy", "noeviction"}})
		s := mustNew(t, Options{URL: srv.URL()})
		ctx := waittest.Context(t)
		first := record(t)
		if err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		var err error
		for i := 0; i < 100000 && err == nil; i++ {
			r := record(t)
			r.Sealed = make([]byte, 4096)
			err = s.Create(ctx, r)
		}
		if !errors.Is(err, keystore.ErrFull) || !errors.Is(err, keystore.ErrUnavailable) {
			t.Fatalf("create into a full Redis = %v, want ErrFull (and ErrUnavailable)", err)
		}
		if _, err := s.Get(ctx, first.ID); err != nil {
			t.Fatalf("a key stored before is not readable: %v", err)
		}
	})
	t.Run("MISCONF", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{ExtraArgs: []string{"--enable-protected-configs", "yes", "--save", "3600 1"}})
		s := mustNew(t, Options{URL: srv.URL()})
		ctx := waittest.Context(t)
		first := record(t)
		if err := s.Create(ctx, first); err != nil {
			t.Fatal(err)
		}
		// A snapshot that fails (its directory is gone) makes Redis refuse
		// writes (stop-writes-on-bgsave-error, on by default).
		raw := rawClient(t, srv, 0)
		dir := filepath.Join(t.TempDir(), "gone")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := raw.ConfigSet(ctx, "dir", dir).Err(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		_ = raw.BgSave(ctx).Err()
		waittest.For(t, "the snapshot to fail", func() bool {
			info, _ := raw.Info(ctx, "persistence").Result()
			v, _ := infoField(info, "rdb_last_bgsave_status")
			return v == "err"
		})
		err := s.Create(ctx, record(t))
		if !errors.Is(err, keystore.ErrFull) {
			t.Fatalf("create into a Redis that cannot persist = %v, want ErrFull", err)
		}
		if _, err := s.Get(ctx, first.ID); err != nil {
			t.Fatalf("a key stored before is not readable: %v", err)
		}
	})
}

// silentServer accepts connections, reads RESP commands, and never
// answers a GET (it answers the connection handshake); it records the keys
// of the GETs it received.
type silentServer struct {
	addr string
	mu   sync.Mutex
	gets map[string]bool
}

func startSilent(t *testing.T) *silentServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &silentServer{addr: l.Addr().String(), gets: map[string]bool{}}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { srv.read(c) })
		}
	})
	return srv
}

// read parses RESP arrays of bulk strings and notes GET keys.
func (s *silentServer) read(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
		var args []string
		for range n {
			if _, err := r.ReadString('\n'); err != nil { // $len
				return
			}
			arg, err := r.ReadString('\n')
			if err != nil {
				return
			}
			args = append(args, strings.TrimRight(arg, "\r\n"))
		}
		switch {
		case len(args) == 2 && strings.EqualFold(args[0], "get"):
			s.mu.Lock()
			s.gets[args[1]] = true
			s.mu.Unlock()
		case len(args) > 0 && strings.EqualFold(args[0], "hello"):
			_, _ = c.Write([]byte("-ERR unknown command 'HELLO'\r\n")) // go-redis goes on in RESP2
		default:
			_, _ = c.Write([]byte("+OK\r\n")) // the handshake
		}
	}
}

func (s *silentServer) got(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[key]
}

// TestReadDeadlines: an auto-pipelined read returns at its context's
// deadline, however long the socket timeouts (ErrUnavailable, never
// ErrNotFound); reads queued behind batches that are out, whose callers'
// deadlines pass first, are never sent.
func TestReadDeadlines(t *testing.T) {
	silent := startSilent(t)
	s, err := New(Options{URL: "redis://" + silent.addr, AutoPipeline: true, DialTimeout: time.Minute,
		ReadTimeout: time.Hour, WriteTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The first reads fill the batches that may be out at once; they stay
	// out (the server never answers) until their context ends below.
	inCtx, endInFlight := context.WithCancel(context.Background())
	defer endInFlight()
	var inWG, queuedWG sync.WaitGroup
	inErrs, queuedErrs := make(chan error, maxInFlight), make(chan error, 16)
	var inFlight []keystore.KeyID
	for range maxInFlight {
		id := storetest.RandomID(t)
		inFlight = append(inFlight, id)
		inWG.Go(func() {
			_, err := s.Get(inCtx, id)
			inErrs <- err
		})
	}
	waittest.For(t, "the first reads to reach the server", func() bool {
		for _, id := range inFlight {
			if !silent.got(s.keyName(id)) {
				return false
			}
		}
		return true
	})
	// These wait in the queue (every batch is out and stays out); their
	// deadline passes there.
	var queued []keystore.KeyID
	for range 16 {
		id := storetest.RandomID(t)
		queued = append(queued, id)
		queuedWG.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := s.Get(ctx, id)
			queuedErrs <- err
		})
	}
	// The socket timeout is an hour: returning at all is returning at the
	// deadline.
	waitGroup(t, &queuedWG, "queued reads to return at their deadline")
	close(queuedErrs)
	for err := range queuedErrs {
		if !errors.Is(err, keystore.ErrUnavailable) || errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("read past its deadline = %v, want ErrUnavailable", err)
		}
	}
	// A read already sent returns when its context ends too.
	endInFlight()
	waitGroup(t, &inWG, "reads in flight to return when their context ends")
	close(inErrs)
	for err := range inErrs {
		if !errors.Is(err, context.Canceled) || errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("read in flight whose context ended = %v, want context.Canceled", err)
		}
	}
	// Closing the store ends the batches that are out; the queue is then
	// drained, and the reads whose callers have gone are dropped.
	s.Close()
	waittest.For(t, "the queue to drain", func() bool {
		s.batch.mu.Lock()
		defer s.batch.mu.Unlock()
		return len(s.batch.queue) == 0 && s.batch.inFlight == 0
	})
	for _, id := range queued {
		if silent.got(s.keyName(id)) {
			t.Fatalf("a read whose caller had gone was sent (%s)", id)
		}
	}
}

// TestMigrateIndex: the single sorted sets of the layout before shards are
// moved into the shards, and List and ListMeta see what they held.
func TestMigrateIndex(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	raw := rawClient(t, srv, 0)
	ctx := waittest.Context(t)
	// As the earlier layout stored them: records, then members of the
	// single index; a meta value and its name in metanames.
	var ids []keystore.KeyID
	for range 2500 {
		r := record(t)
		b, _ := keystore.EncodeRecord(r)
		if err := raw.Set(ctx, s.keyName(r.ID), b, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := raw.ZAdd(ctx, s.legacyIndexName(), redis.Z{Member: member(r.ID)}).Err(); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := raw.Set(ctx, s.metaName("kek-check/old"), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ZAdd(ctx, s.legacyMetaNames(), redis.Z{Member: "kek-check/old"}, redis.Z{Member: "not-a-kid-but-a-name"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ZAdd(ctx, s.legacyIndexName(), redis.Z{Member: "junk"}).Err(); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, 1000); len(got) != 0 {
		t.Fatalf("List reads the old index: %d", len(got))
	}
	n, err := s.MigrateIndex(ctx)
	if err != nil || n != 2503 {
		t.Fatalf("MigrateIndex = %d, %v; want 2503 entries moved", n, err)
	}
	if got := listAll(t, s, 1000); !slices.Equal(got, sortedIDs(ids...)) {
		t.Fatalf("List after the migration: %d IDs, want %d", len(got), len(ids))
	}
	if names, err := s.ListMeta(ctx, "kek-check/"); err != nil || !slices.Equal(names, []string{"kek-check/old"}) {
		t.Fatalf("ListMeta after the migration = %v, %v", names, err)
	}
	if n, _ := raw.Exists(ctx, s.legacyIndexName(), s.legacyMetaNames()).Result(); n != 0 {
		t.Fatalf("%d old sets left", n)
	}
	if n, err := s.MigrateIndex(ctx); err != nil || n != 0 {
		t.Fatalf("MigrateIndex again = %d, %v", n, err)
	}
}

// TestCheckDurability: each setting that can lose a key is reported with
// its fix; safe settings are not; a user the ACL denies CONFIG is told so.
func TestCheckDurability(t *testing.T) {
	ctx := waittest.Context(t)
	settings := func(rep DurabilityReport) []string {
		var out []string
		for _, f := range rep.Findings {
			if f.Fix == "" || f.Risk == "" {
				t.Errorf("finding without risk or fix: %+v", f)
			}
			out = append(out, f.Setting+"="+f.Value)
		}
		return out
	}
	safe := redistest.Start(t, redistest.Options{Persistence: true})
	rep, err := mustNew(t, Options{URL: safe.URL(), WaitAuto: true}).CheckDurability(ctx)
	if err != nil || len(rep.Findings) != 0 || rep.Masters != 1 || rep.Version == "" {
		t.Fatalf("safe settings: %+v, %v", rep, err)
	}
	unsafe := redistest.Start(t, redistest.Options{ExtraArgs: []string{"--maxmemory-policy", "allkeys-lru"}})
	rep, err = mustNew(t, Options{URL: unsafe.URL(), WaitAuto: true}).CheckDurability(ctx)
	if got := settings(rep); err != nil || !slices.Equal(got, []string{"maxmemory-policy=allkeys-lru", "appendonly=no"}) {
		t.Fatalf("unsafe settings: %v, %v", got, err)
	}
	everysec := redistest.Start(t, redistest.Options{ExtraArgs: []string{"--appendonly", "yes", "--appendfsync", "everysec"}})
	rep, err = mustNew(t, Options{URL: everysec.URL()}).CheckDurability(ctx)
	if got := settings(rep); err != nil || !slices.Equal(got, []string{"appendfsync=everysec"}) {
		t.Fatalf("everysec: %v, %v", got, err)
	}
	// Replicas connected, writes not waiting.
	master, _ := startReplicated(t)
	rep, err = mustNew(t, Options{URL: master.URL()}).CheckDurability(ctx)
	if got := settings(rep); err != nil || !slices.Equal(got, []string{"min-replicas-to-write=0"}) {
		t.Fatalf("replicas without waiting: %v, %v", got, err)
	}
	rep, err = mustNew(t, Options{URL: master.URL(), WaitAuto: true}).CheckDurability(ctx)
	if err != nil || len(rep.Findings) != 0 {
		t.Fatalf("replicas with waiting: %+v, %v", rep, err)
	}
	// An ACL user without CONFIG and INFO.
	raw := rawClient(t, safe, 0)
	if err := raw.Do(ctx, "ACL", "SETUSER", "plain", "on", ">pw", "~kd:*", "+get", "+set", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	rep, err = mustNew(t, Options{URL: "redis://" + safe.Addr, Username: "plain", Password: "pw"}).CheckDurability(ctx)
	if err != nil || !slices.Equal(rep.Denied, []string{"CONFIG GET", "INFO"}) || len(rep.Findings) != 0 {
		t.Fatalf("ACL user without CONFIG: %+v, %v", rep, err)
	}
	// WAITAOF needs 7.2.
	s := mustNew(t, Options{URL: safe.URL(), WaitAOF: true})
	if err := s.CheckWaitAOF(DurabilityReport{Version: "7.0.15"}); !errors.Is(err, ErrWaitAOFUnsupported) {
		t.Fatalf("CheckWaitAOF(7.0.15) = %v", err)
	}
	if err := s.CheckWaitAOF(DurabilityReport{Version: "7.2.4"}); err != nil {
		t.Fatalf("CheckWaitAOF(7.2.4) = %v", err)
	}
}

// waitGroup waits for wg, failing t (at the ceiling of internal/waittest)
// if it does not finish.
func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waittest.Receive(t, done, what)
}

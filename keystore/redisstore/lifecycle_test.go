package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

func record(t *testing.T, assets ...string) keystore.Record {
	now := time.Now().UTC()
	return keystore.Record{ID: storetest.RandomID(t), Sealed: []byte("sealed"), Created: now, Updated: now, Assets: assets}
}

// listAll pages through List and returns every ID, in order.
func listAll(t *testing.T, s *Store, page int) []keystore.KeyID {
	t.Helper()
	var out []keystore.KeyID
	from := keystore.KeyID{}
	for {
		rs, err := s.List(waittest.Context(t), from, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		if len(rs) < page {
			return out
		}
		next, ok := rs[len(rs)-1].ID.Next()
		if !ok {
			return out
		}
		from = next
	}
}

func sortedIDs(ids ...keystore.KeyID) []keystore.KeyID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b keystore.KeyID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// TestIndexHealing: a record whose index entries are missing (an index
// write that failed) is missing from List and ListAsset until the same
// batch is sent again; then it is back. On a single server and on Cluster.
func TestIndexHealing(t *testing.T) {
	t.Run("Server", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		testIndexHealing(t, mustNew(t, Options{URL: srv.URL()}), rawClient(t, srv, 0))
	})
	t.Run("Cluster", func(t *testing.T) {
		srv := startCluster(t)
		testIndexHealing(t, mustNew(t, Options{URL: "redis+cluster://" + srv.Addr}), rawClient(t, srv, 0))
	})
}

func testIndexHealing(t *testing.T, s *Store, raw *redis.Client) {
	ctx := waittest.Context(t)
	a, b := record(t, "film"), record(t)
	batch := []keystore.Record{a, b}
	errs, err := s.CreateBatch(ctx, batch)
	if err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("CreateBatch = %v, %v", errs, err)
	}
	// The index writes of a "failed": remove them by hand.
	if err := raw.ZRem(ctx, s.indexName(), member(a.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.ZRem(ctx, s.assetName("film"), member(a.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, 10); !slices.Equal(got, []keystore.KeyID{b.ID}) {
		t.Fatalf("List without a's index entry = %v, want only b", got)
	}
	if ids, err := s.ListAsset(ctx, "film", keystore.KeyID{}, 10); err != nil || len(ids) != 0 {
		t.Fatalf("ListAsset without a's entry = %v, %v", ids, err)
	}
	// Sending the same batch again answers ErrExists and heals the index.
	errs, err = s.CreateBatch(ctx, batch)
	if err != nil || !errors.Is(errs[0], keystore.ErrExists) || !errors.Is(errs[1], keystore.ErrExists) {
		t.Fatalf("second CreateBatch = %v, %v; want ErrExists twice", errs, err)
	}
	if got, want := listAll(t, s, 10), sortedIDs(a.ID, b.ID); !slices.Equal(got, want) {
		t.Fatalf("List after resending = %v, want %v", got, want)
	}
	if ids, err := s.ListAsset(ctx, "film", keystore.KeyID{}, 10); err != nil || !slices.Equal(ids, []keystore.KeyID{a.ID}) {
		t.Fatalf("ListAsset after resending = %v, %v", ids, err)
	}
	// Healing writes the entries of the stored record, not of the one sent:
	// assets are set at creation.
	other := a
	other.Assets = []string{"intruder"}
	if err := s.Create(ctx, other); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("Create over a = %v", err)
	}
	if n, err := raw.Exists(ctx, s.assetName("intruder")).Result(); err != nil || n != 0 {
		t.Fatalf("a refused Create indexed its own assets: %d, %v", n, err)
	}
}

// TestListSkipsStale: index members whose record is gone are skipped (the
// page is still filled) and removed; malformed members are skipped.
func TestListSkipsStale(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	raw := rawClient(t, srv, 0)
	ctx := waittest.Context(t)
	var rs []keystore.Record
	for range 6 {
		rs = append(rs, record(t, "film"))
	}
	if _, err := s.CreateBatch(ctx, rs); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rs, func(a, b keystore.Record) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	// Records 1 and 2 vanish behind the store's back; junk members appear.
	for _, r := range rs[1:3] {
		if err := raw.Del(ctx, s.keyName(r.ID)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, junk := range []string{"not-a-kid", strings.ToUpper(member(rs[3].ID)), rs[3].ID.String()} {
		if err := raw.ZAdd(ctx, s.indexName(), redis.Z{Member: junk}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []keystore.KeyID{rs[0].ID, rs[3].ID, rs[4].ID}
	got, err := s.List(ctx, keystore.KeyID{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []keystore.KeyID
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("List(limit 3) = %v, want %v (a full page without the gone records)", ids, want)
	}
	for _, r := range rs[1:3] {
		if err := raw.ZScore(ctx, s.indexName(), member(r.ID)).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("stale member %s still in the index: %v", r.ID, err)
		}
	}
	if got := listAll(t, s, 2); len(got) != 4 {
		t.Fatalf("List pages of 2 = %v, want the 4 records left", got)
	}

	// ListAsset skips them too, and a record created again without the asset.
	again := keystore.Record{ID: rs[3].ID, Sealed: []byte("x")}
	if err := raw.Del(ctx, s.keyName(again.ID)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	ids, err = s.ListAsset(ctx, "film", keystore.KeyID{}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []keystore.KeyID{rs[0].ID, rs[4].ID}; !slices.Equal(ids, want) {
		t.Fatalf("ListAsset(limit 2) = %v, want %v", ids, want)
	}
	if n, _ := raw.ZCard(ctx, s.assetName("film")).Result(); n != 3 {
		t.Fatalf("asset set holds %d members, want the 3 live ones", n)
	}
}

// TestUnindexKeepsLiveEntries: removing the entries of a KID whose record
// exists again (created between a Delete and its index cleanup) writes
// them back.
func TestUnindexKeepsLiveEntries(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	ctx := waittest.Context(t)
	r := record(t, "film")
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	// As a Delete of an earlier record of this KID with assets film and
	// trailer would clean up.
	if err := s.unindex(ctx, entries(r.ID, []string{"film", "trailer"}, 0)); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, s, 10); !slices.Equal(got, []keystore.KeyID{r.ID}) {
		t.Fatalf("List = %v", got)
	}
	if ids, err := s.ListAsset(ctx, "film", keystore.KeyID{}, 10); err != nil || !slices.Equal(ids, []keystore.KeyID{r.ID}) {
		t.Fatalf("ListAsset(film) = %v, %v", ids, err)
	}
	if n, err := rawClient(t, srv, 0).Exists(ctx, s.assetName("trailer")).Result(); err != nil || n != 0 {
		t.Fatalf("an entry the live record does not call for was written back: %d, %v", n, err)
	}
}

// countHook counts the commands sent one by one and the pipelines, but
// not the handshake of a new connection (HELLO, CLIENT SETINFO).
type countHook struct {
	single, pipelines, pipelined atomic.Int64
}

func handshake(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.single.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, handshake) {
			h.pipelines.Add(1)
			h.pipelined.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

func (h *countHook) take() (single, pipelines, pipelined int64) {
	return h.single.Swap(0), h.pipelines.Swap(0), h.pipelined.Swap(0)
}

// TestCreateBatchLarge: 10,000 records go in a handful of pipelines, not
// 10,000 round trips, and all of them are listed afterwards.
func TestCreateBatchLarge(t *testing.T) {
	// No persistence: fsyncing megabytes would only slow the tests after.
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	h := &countHook{}
	s.c.AddHook(h)
	const n = 10000
	batch := make([]keystore.Record, n)
	for i := range batch {
		batch[i] = record(t, fmt.Sprint("asset-", i%10))
		batch[i].Sealed = bytes.Repeat([]byte{byte(i)}, 60) // the size of a sealed value
	}
	ctx := waittest.Context(t)

	start := time.Now()
	errs, err := s.CreateBatch(ctx, batch)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("record %d: %v", i, e)
		}
	}
	single, pipes, cmds := h.take()
	t.Logf("CreateBatch of %d records: %v, %d pipelines with %d commands, %d single commands", n, took.Round(time.Millisecond), pipes, cmds, single)
	// SET NX in pipelines of pipeMax; the ZADDs (of zaddMax members each,
	// to the global index and one asset set per record) weigh 20,000
	// members: as many pipelines again, twice.
	setPipes, zaddPipes := int64((n+pipeMax-1)/pipeMax), int64((2*n+pipeMax-1)/pipeMax)
	if single != 0 || pipes > setPipes+zaddPipes+1 || cmds > n+2*n/zaddMax+20 {
		t.Fatalf("CreateBatch of %d records made %d single calls and %d pipelines of %d commands", n, single, pipes, cmds)
	}

	start = time.Now()
	errs, err = s.CreateBatch(ctx, batch)
	took = time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if !errors.Is(e, keystore.ErrExists) {
			t.Fatalf("resent record %d: %v", i, e)
		}
	}
	single, pipes, cmds = h.take()
	t.Logf("the same batch again: %v, %d pipelines with %d commands, %d single commands", took.Round(time.Millisecond), pipes, cmds, single)
	// SET NX, GET of the stored records, ZADD twice.
	if single != 0 || pipes > 2*setPipes+zaddPipes+1 || cmds > 2*n+2*n/zaddMax+20 {
		t.Fatalf("resending made %d single calls and %d pipelines of %d commands", single, pipes, cmds)
	}

	got := listAll(t, s, 1000)
	if len(got) != n || !slices.IsSortedFunc(got, func(a, b keystore.KeyID) int { return bytes.Compare(a[:], b[:]) }) {
		t.Fatalf("List gave %d IDs (sorted: %v), want %d", len(got), slices.IsSortedFunc(got, func(a, b keystore.KeyID) int { return bytes.Compare(a[:], b[:]) }), n)
	}
	ids, err := s.ListAsset(ctx, "asset-3", keystore.KeyID{}, n)
	if err != nil || len(ids) != n/10 {
		t.Fatalf("ListAsset = %d IDs, %v; want %d", len(ids), err, n/10)
	}
}

// TestUpdateContention: many goroutines updating one record under WATCH
// lose no update.
func TestUpdateContention(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"Server":  func(t *testing.T) string { return redistest.Start(t, redistest.Options{}).URL() },
		"Cluster": func(t *testing.T) string { return "redis+cluster://" + startCluster(t).Addr },
	} {
		t.Run(name, func(t *testing.T) {
			s := mustNew(t, Options{URL: url(t)})
			r := record(t)
			r.Name = "0"
			if err := s.Create(waittest.Context(t), r); err != nil {
				t.Fatal(err)
			}
			const workers, each = 10, 10
			var wg sync.WaitGroup
			var calls, worst atomic.Int64
			errs := make(chan error, workers*each)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						var tries int64
						_, err := s.Update(waittest.Context(t), r.ID, func(x *keystore.Record) error {
							calls.Add(1)
							tries++
							n, err := strconv.Atoi(x.Name)
							if err != nil {
								return err
							}
							x.Name = strconv.Itoa(n + 1)
							return nil
						})
						for w := worst.Load(); tries > w && !worst.CompareAndSwap(w, tries); w = worst.Load() {
						}
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.Get(waittest.Context(t), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != strconv.Itoa(workers*each) {
				t.Fatalf("counter is %s after %d updates: updates were lost", got.Name, workers*each)
			}
			t.Logf("%d updates took %d calls of fn (%d retries after a lost WATCH; at most %d attempts for one update, of %d allowed)",
				workers*each, calls.Load(), calls.Load()-workers*each, worst.Load(), txAttempts)
		})
	}
}

// TestIndexWriteFails: when the index cannot be written the record's
// result is ErrUnavailable (the record is stored); sending it again once
// Redis takes index writes heals the index.
func TestIndexWriteFails(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := waittest.Context(t)
	raw := rawClient(t, srv, 0)
	// A user that may write records but not index entries.
	if err := raw.Do(ctx, "ACL", "SETUSER", "nozadd", "on", ">pw", "~kd:*", "+get", "+set", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	crippled := mustNew(t, Options{URL: "redis://" + srv.Addr, Username: "nozadd", Password: "pw"})
	s := mustNew(t, Options{URL: srv.URL()})
	a, b := record(t, "film"), record(t)
	batch := []keystore.Record{a, b}
	errs, err := crippled.CreateBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if !errors.Is(e, keystore.ErrUnavailable) || errors.Is(e, keystore.ErrExists) {
			t.Fatalf("result %d with the index unwritable = %v, want ErrUnavailable", i, e)
		}
	}
	if _, err := s.Get(ctx, a.ID); err != nil {
		t.Fatalf("record not stored: %v", err)
	}
	if got := listAll(t, s, 10); len(got) != 0 {
		t.Fatalf("List = %v before healing", got)
	}
	// Sent again while the index is still unwritable: still ErrUnavailable.
	if errs, _ := crippled.CreateBatch(ctx, batch); !errors.Is(errs[0], keystore.ErrUnavailable) || errors.Is(errs[0], keystore.ErrExists) {
		t.Fatalf("resent to the crippled store: %v", errs)
	}
	if err := crippled.Create(ctx, a); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Create = %v, want ErrUnavailable", err)
	}
	errs, err = s.CreateBatch(ctx, batch)
	if err != nil || !errors.Is(errs[0], keystore.ErrExists) || !errors.Is(errs[1], keystore.ErrExists) {
		t.Fatalf("resent = %v, %v", errs, err)
	}
	if got, want := listAll(t, s, 10), sortedIDs(a.ID, b.ID); !slices.Equal(got, want) {
		t.Fatalf("List after healing = %v, want %v", got, want)
	}
	if ids, _ := s.ListAsset(ctx, "film", keystore.KeyID{}, 10); !slices.Equal(ids, []keystore.KeyID{a.ID}) {
		t.Fatalf("ListAsset after healing = %v", ids)
	}
}

// TestLifecycleErrors: Update and Delete refuse a record moved from another
// key; errors name no stored value; the limit is honoured.
func TestLifecycleErrors(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL()})
	ctx := waittest.Context(t)
	a := record(t)
	a.Sealed = []byte("SEALED-SECRET-BYTES")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, srv, 0)
	v, _ := raw.Get(ctx, s.keyName(a.ID)).Bytes()
	moved := storetest.RandomID(t)
	if err := raw.Set(ctx, s.keyName(moved), v, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, moved, func(*keystore.Record) error { return nil }); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Update of a moved record = %v, want ErrSealed", err)
	}
	if err := s.Delete(ctx, moved, nil); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Delete of a moved record = %v, want ErrSealed", err)
	}
	if err := raw.ZAdd(ctx, s.indexName(), redis.Z{Member: member(moved)}).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.List(ctx, keystore.KeyID{}, 10)
	if !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("List over a moved record = %v, want ErrSealed", err)
	}
	if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), string(v)) {
		t.Fatalf("error shows a stored value: %v", err)
	}
	for _, limit := range []int{0, -1} {
		if rs, err := s.List(ctx, keystore.KeyID{}, limit); err != nil || len(rs) != 0 {
			t.Fatalf("List(limit %d) = %v, %v", limit, rs, err)
		}
	}
	if errs, err := s.CreateBatch(ctx, []keystore.Record{record(t, "")}); err == nil || errs != nil {
		t.Fatalf("CreateBatch with an empty asset = %v, %v", errs, err)
	}
}

// TestCreateBatchReportsStored: a taken ID answers a
// *keystore.ExistsError with the stored record (read in the same
// pipelined pass that heals the index), so an import needs no Get per key;
// on a single server and on Cluster, where the keys of one batch are on
// many slots.
func TestCreateBatchReportsStored(t *testing.T) {
	t.Run("Server", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		testCreateBatchReportsStored(t, mustNew(t, Options{URL: srv.URL()}))
	})
	t.Run("Cluster", func(t *testing.T) {
		srv := startCluster(t)
		testCreateBatchReportsStored(t, mustNew(t, Options{URL: "redis+cluster://" + srv.Addr}))
	})
}

func testCreateBatchReportsStored(t *testing.T, s *Store) {
	ctx := waittest.Context(t)
	var batch []keystore.Record
	for i := range 300 {
		batch = append(batch, record(t, fmt.Sprint("asset-", i%7)))
	}
	if _, err := s.CreateBatch(ctx, batch[:200]); err != nil {
		t.Fatal(err)
	}
	errs, err := s.CreateBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		var ee *keystore.ExistsError
		switch {
		case i >= 200 && e != nil:
			t.Fatalf("result %d = %v, want nil", i, e)
		case i < 200 && (!errors.As(e, &ee) || ee.ID != batch[i].ID || ee.Stored.ID != batch[i].ID || !slices.Equal(ee.Stored.Assets, batch[i].Assets)):
			t.Fatalf("result %d = %v, want an ExistsError with the stored record", i, e)
		}
	}
}

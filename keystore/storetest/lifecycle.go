package storetest

import (
	"bytes"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

func runLifecycle(t *testing.T, h Harness) {
	t.Run("CreateBatch", func(t *testing.T) { testCreateBatch(t, h) })
	t.Run("CreateBatchLarge", func(t *testing.T) { testCreateBatchLarge(t, h) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, h) })
	t.Run("UpdateSealedUpgrade", func(t *testing.T) { testUpdateSealedUpgrade(t, h) })
	t.Run("ConcurrentUpdate", func(t *testing.T) { testConcurrentUpdate(t, h) })
	t.Run("DeleteWithCheck", func(t *testing.T) { testDelete(t, h) })
	t.Run("ListPages", func(t *testing.T) { testList(t, h) })
	t.Run("ListAsset", func(t *testing.T) { testListAsset(t, h) })
	t.Run("SoftDeleteRestorePurge", func(t *testing.T) { testSoftDelete(t, h) })
	t.Run("Import", func(t *testing.T) { testImport(t, h) })
	t.Run("ImportLarge", func(t *testing.T) { testImportLarge(t, h) })
	t.Run("MetaAndKeySeeds", func(t *testing.T) { testMetaAndKeySeeds(t, h) })
	t.Run("PurgeDeleted", func(t *testing.T) { testPurgeDeleted(t, h) })
}

func testCreateBatch(t *testing.T, h Harness) {
	s := newStore(t, h)
	existing := sampleRecord(t)
	if err := s.Create(ctx(t), existing); err != nil {
		t.Fatal(err)
	}
	intruder := existing
	intruder.Sealed = []byte("other")
	a, b := sampleRecord(t), sampleRecord(t)
	a.Assets = []string{"asset-1"}
	batch := []keystore.Record{a, intruder, b, a}
	errs, err := s.CreateBatch(ctx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != len(batch) || errs[0] != nil || !errors.Is(errs[1], keystore.ErrExists) || errs[2] != nil || !errors.Is(errs[3], keystore.ErrExists) {
		t.Fatalf("CreateBatch results %v", errs)
	}
	for _, want := range []keystore.Record{existing, a, b} {
		got, err := s.Get(ctx(t), want.ID)
		if err != nil || !equalRecords(got, want) {
			t.Fatalf("after CreateBatch, Get(%s) = %+v, %v", want.ID, got, err)
		}
	}
	// Sent again, the whole batch answers ErrExists and changes nothing.
	errs, err = s.CreateBatch(ctx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if !errors.Is(e, keystore.ErrExists) {
			t.Fatalf("second CreateBatch result %d = %v", i, e)
		}
	}
	if errs, err := s.CreateBatch(ctx(t), nil); err != nil || len(errs) != 0 {
		t.Fatalf("empty batch: %v %v", errs, err)
	}
}

func testUpdate(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	r.Assets = []string{"a1"}
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	later := r.Updated.Add(time.Hour)
	got, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error {
		x.Name, x.Updated, x.DeletedAt = "renamed", later, later
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.Get(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, stored) || stored.Name != "renamed" || !stored.DeletedAt.Equal(later) || !bytes.Equal(stored.Sealed, r.Sealed) {
		t.Fatalf("after Update: returned %+v, stored %+v", got, stored)
	}
	immutable := map[string]func(x *keystore.Record){
		"sealed":    func(x *keystore.Record) { x.Sealed = []byte("new") },
		"iv":        func(x *keystore.Record) { x.IV = nil },
		"type":      func(x *keystore.Record) { x.Type = keystore.CommonEncryption },
		"method":    func(x *keystore.Record) { x.Method = keystore.CreatedRandom },
		"created":   func(x *keystore.Record) { x.Created = x.Created.Add(time.Second) },
		"assets":    func(x *keystore.Record) { x.Assets = append(x.Assets, "a2") },
		"period":    func(x *keystore.Record) { x.Period = &keystore.KeyPeriod{Index: x.Period.Index + 1} },
		"no period": func(x *keystore.Record) { x.Period = nil },
		"period start": func(x *keystore.Record) {
			x.Period = &keystore.KeyPeriod{Index: x.Period.Index, Start: x.Period.Start.Add(time.Second), End: x.Period.End}
		},
		"track type": func(x *keystore.Record) { x.TrackType = "SD" },
		"id":         func(x *keystore.Record) { x.ID[0] ^= 1 },
	}
	for name, mut := range immutable {
		_, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error { mut(x); return nil })
		if !errors.Is(err, keystore.ErrImmutable) {
			t.Errorf("Update changing %s = %v, want ErrImmutable", name, err)
		}
	}
	if again, _ := s.Get(ctx(t), r.ID); !equalRecords(again, stored) {
		t.Fatalf("a refused Update changed the record: %+v", again)
	}
	boom := errors.New("boom")
	if _, err := s.Update(ctx(t), r.ID, func(*keystore.Record) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn = %v", err)
	}
	if _, err := s.Update(ctx(t), RandomID(t), func(*keystore.Record) error { return nil }); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Update(missing) = %v", err)
	}
}

// testConcurrentUpdate: read-modify-write is atomic, so no update is lost.
func testConcurrentUpdate(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	r.Name = ""
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error {
				x.Name += fmt.Sprintf("<%d>", i)
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Get(ctx(t), r.ID)
	for i := range n {
		if !bytes.Contains([]byte(got.Name), fmt.Appendf(nil, "<%d>", i)) {
			t.Fatalf("update %d was lost: name %q", i, got.Name)
		}
	}
}

func testDelete(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	r.Assets = []string{"movie"}
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	no := errors.New("not now")
	if err := s.Delete(ctx(t), r.ID, func(*keystore.Record) error { return no }); !errors.Is(err, no) {
		t.Fatalf("Delete with a refusing check = %v", err)
	}
	if _, err := s.Get(ctx(t), r.ID); err != nil {
		t.Fatalf("a refused Delete removed the record: %v", err)
	}
	var seen keystore.Record
	if err := s.Delete(ctx(t), r.ID, func(x *keystore.Record) error { seen = *x; return nil }); err != nil {
		t.Fatal(err)
	}
	if seen.ID != r.ID {
		t.Fatalf("check saw %+v", seen)
	}
	if _, err := s.Get(ctx(t), r.ID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if ids, err := s.ListAsset(ctx(t), "movie", keystore.KeyID{}, 10); err != nil || len(ids) != 0 {
		t.Fatalf("asset index after Delete: %v %v", ids, err)
	}
	if err := s.Delete(ctx(t), r.ID, nil); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("second Delete = %v", err)
	}
	// The ID is free again.
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
}

func testList(t *testing.T, h Harness) {
	s := newStore(t, h)
	var want []keystore.KeyID
	batch := make([]keystore.Record, 25)
	for i := range batch {
		batch[i] = sampleRecord(t)
		want = append(want, batch[i].ID)
	}
	// The smallest and the largest IDs page correctly too.
	batch[0].ID, batch[1].ID = keystore.KeyID{}, keystore.KeyID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	want[0], want[1] = batch[0].ID, batch[1].ID
	if _, err := s.CreateBatch(ctx(t), batch); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b keystore.KeyID) int { return bytes.Compare(a[:], b[:]) })
	var got []keystore.KeyID
	from := keystore.KeyID{}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		rs, err := s.List(ctx(t), from, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if len(rs) < 7 {
			break
		}
		next, ok := rs[len(rs)-1].ID.Next()
		if !ok {
			break
		}
		from = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List pages gave %d IDs in order %v, want %v", len(got), got, want)
	}
}

func testListAsset(t *testing.T, h Harness) {
	s := newStore(t, h)
	var movie []keystore.KeyID
	for i := range 9 {
		r := sampleRecord(t)
		switch {
		case i%3 == 0:
			r.Assets = []string{"movie", "trailer"}
			movie = append(movie, r.ID)
		case i%3 == 1:
			r.Assets = []string{"movie"}
			movie = append(movie, r.ID)
		default:
			r.Assets = []string{"movie-2"} // shares a prefix, not the asset
		}
		if err := s.Create(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(movie, func(a, b keystore.KeyID) int { return bytes.Compare(a[:], b[:]) })
	first, err := s.ListAsset(ctx(t), "movie", keystore.KeyID{}, 4)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := first[len(first)-1].Next()
	rest, err := s.ListAsset(ctx(t), "movie", next, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(first, rest...); !slices.Equal(got, movie) {
		t.Fatalf("ListAsset(movie) = %v, want %v", got, movie)
	}
	if ids, err := s.ListAsset(ctx(t), "nothing", keystore.KeyID{}, 10); err != nil || len(ids) != 0 {
		t.Fatalf("ListAsset(unknown) = %v, %v", ids, err)
	}
}

func testSoftDelete(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	period := &keystore.KeyPeriod{Index: 3, Start: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	k, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t), Name: "n", Assets: []string{"film"}, Period: period, TrackType: "VIDEO"})
	if err != nil {
		t.Fatal(err)
	}
	// The key period and track type a packager asked for are kept, and
	// survive a delete and a restore (checked below).
	if m, err := keys.Metadata(ctx(t), k.ID); err != nil || !m.Period.Equal(period) || m.TrackType != "VIDEO" {
		t.Fatalf("Metadata = %+v, %v; want the period and track type", m, err)
	}
	if _, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t), TrackType: "has space"}); !errors.Is(err, keystore.ErrInvalidTrackType) {
		t.Fatalf("Create with an invalid track type = %v", err)
	}
	if err := keys.Purge(ctx(t), k.ID); !errors.Is(err, keystore.ErrNotDeleted) {
		t.Fatalf("Purge of a live key = %v, want ErrNotDeleted", err)
	}
	if _, err := keys.Restore(ctx(t), k.ID); !errors.Is(err, keystore.ErrNotDeleted) {
		t.Fatalf("Restore of a live key = %v, want ErrNotDeleted", err)
	}
	del, err := keys.Delete(ctx(t), k.ID)
	if err != nil || !del.Deleted() {
		t.Fatalf("Delete = %+v, %v", del, err)
	}
	if _, err := keys.Get(ctx(t), k.ID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get of a deleted key = %v", err)
	}
	again, err := keys.Delete(ctx(t), k.ID)
	if err != nil || !again.DeletedAt.Equal(del.DeletedAt) {
		t.Fatalf("second Delete = %+v, %v; want unchanged", again, err)
	}
	res, err := keys.Restore(ctx(t), k.ID)
	if err != nil || res.Deleted() {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	got, err := keys.Get(ctx(t), k.ID)
	if err != nil || got.Value != k.Value {
		t.Fatalf("Get after Restore = %v", err)
	}
	if !got.Period.Equal(period) || got.TrackType != "VIDEO" {
		t.Fatalf("after a delete and a restore: period %+v, track type %q", got.Period, got.TrackType)
	}
	if _, err := keys.Delete(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	if err := keys.Purge(ctx(t), k.ID); err != nil {
		t.Fatalf("Purge of a deleted key: %v", err)
	}
	if _, err := keys.Metadata(ctx(t), k.ID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Metadata after Purge = %v", err)
	}
	if ids, _ := keys.ListAsset(ctx(t), "film", keystore.KeyID{}, 10); len(ids) != 0 {
		t.Fatalf("asset still lists a purged key: %v", ids)
	}
	if _, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t), Assets: []string{"bad asset"}}); !errors.Is(err, keystore.ErrInvalidAsset) {
		t.Fatalf("Create with an invalid asset = %v", err)
	}
}

func testImport(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	var batch []keystore.Key
	for i := range 5 {
		k := keystore.Key{ID: RandomID(t), Method: keystore.CreatedImport, Name: fmt.Sprint("k", i)}
		copy(k.Value[:], fmt.Sprintf("value-%010d", i))
		batch = append(batch, k)
	}
	res, err := keys.Import(ctx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != keystore.Created || r.Key.ID != batch[i].ID || r.Key.Value != ([16]byte{}) {
			t.Fatalf("first import result %d: %+v", i, r)
		}
	}
	// Again, with one value changed: the rest is unchanged, that one is a
	// conflict, and the stored key is untouched.
	changed := slices.Clone(batch)
	changed[2].Value[0] ^= 0xff
	res, err = keys.Import(ctx(t), changed)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := keystore.Unchanged
		if i == 2 {
			want = keystore.Conflict
		}
		if r.Status != want {
			t.Fatalf("re-import result %d: %v, want %v", i, r.Status, want)
		}
	}
	got, err := keys.Get(ctx(t), batch[2].ID)
	if err != nil || got.Value != batch[2].Value {
		t.Fatalf("a conflicting import changed the stored key: %v", err)
	}
}

func testMetaAndKeySeeds(t *testing.T, h Harness) {
	s := newStore(t, h)
	for _, n := range []string{"a/2", "a/1", "b/1", "a"} {
		if err := s.CreateMeta(ctx(t), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	names, err := s.ListMeta(ctx(t), "a/")
	if err != nil || !slices.Equal(names, []string{"a/1", "a/2"}) {
		t.Fatalf("ListMeta(a/) = %v, %v", names, err)
	}
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	seedID := RandomID(t)
	given := bytes.Repeat([]byte{7}, 30) // a PlayReady seed's size
	if _, err := keys.CreateKeySeed(ctx(t), keystore.KeySeed{ID: seedID, Seed: given, Name: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.CreateKeySeed(ctx(t), keystore.KeySeed{ID: seedID, Seed: bytes.Repeat([]byte{8}, 30)}); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("second CreateKeySeed = %v, want ErrExists", err)
	}
	other := bytes.Repeat([]byte{9}, 30)
	random, err := keys.CreateKeySeed(ctx(t), keystore.KeySeed{ID: RandomID(t), Seed: other})
	if err != nil || !bytes.Equal(random.Seed, other) {
		t.Fatalf("second seed: %v", err)
	}
	got, err := keys.KeySeed(ctx(t), seedID)
	if err != nil || !bytes.Equal(got.Seed, given) || got.Name != "main" {
		t.Fatalf("KeySeed = %+v, %v", got, err)
	}
	list, err := keys.KeySeeds(ctx(t))
	if err != nil || len(list) != 2 || list[0].Seed != nil || list[1].Seed != nil {
		t.Fatalf("KeySeeds = %+v, %v", list, err)
	}
	// The seed's size is PlayReady's rule, checked by the admin API
	// (admin's key seed tests); Keys refuses only what it cannot store.
	for _, bad := range [][]byte{nil, {}, make([]byte, keystore.MaxKeySeed+1)} {
		if _, err := keys.CreateKeySeed(ctx(t), keystore.KeySeed{ID: RandomID(t), Seed: bad}); err == nil {
			t.Fatalf("a seed of %d bytes was accepted", len(bad))
		}
	}
	if raw := h.Raw(t, s); bytes.Contains(raw, given) || bytes.Contains(raw, random.Seed) {
		t.Fatal("a key seed is stored in the clear")
	}
}

func testPurgeDeleted(t *testing.T, h Harness) {
	s := newStore(t, h)
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	clock := now
	keys := keystore.NewKeys(s, NewKeyring(t, "k1"), keystore.Options{Rand: randReader, Timeout: waittest.Timeout(t), Now: func() time.Time { return clock }})
	mk := func() keystore.KeyID {
		k, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	old, recent, live := mk(), mk(), mk()
	clock = now.Add(-100 * 24 * time.Hour)
	if _, err := keys.Delete(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	clock = now.Add(-time.Hour)
	if _, err := keys.Delete(ctx(t), recent); err != nil {
		t.Fatal(err)
	}
	purged, err := keys.PurgeDeleted(ctx(t), now.Add(-90*24*time.Hour))
	if err != nil || len(purged) != 1 || purged[0] != old {
		t.Fatalf("PurgeDeleted = %v, %v; want only %s", purged, err, old)
	}
	if _, err := keys.Metadata(ctx(t), old); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("old deleted key still stored: %v", err)
	}
	for _, id := range []keystore.KeyID{recent, live} {
		if _, err := keys.Metadata(ctx(t), id); err != nil {
			t.Fatalf("%s was purged: %v", id, err)
		}
	}
}

var randReader = cryptorand.Reader

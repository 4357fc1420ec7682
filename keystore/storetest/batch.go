package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

// largeBatch is the size of the large batch tests: more than a backend's
// transaction or pipeline and more than Keys.Import's chunk, so that the
// cases below straddle those boundaries.
const largeBatch = 12_500

// checkExists checks a CreateBatch result for a taken ID: it matches
// ErrExists, and when it carries the stored record (*ExistsError), that is
// the record stored under the ID.
func checkExists(t *testing.T, i int, err error, stored keystore.Record) {
	t.Helper()
	if !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("result %d = %v, want ErrExists", i, err)
	}
	var ee *keystore.ExistsError
	if errors.As(err, &ee) && (ee.ID != stored.ID || !equalRecords(ee.Stored, stored)) {
		t.Fatalf("result %d: ExistsError for %s carries %+v, want the stored %+v", i, ee.ID, ee.Stored, stored)
	}
}

// testCreateBatchLarge: a batch larger than any chunk a backend uses, with
// records already stored identically, records whose ID is taken by a
// different record, and a KID repeated far apart, gives one correct result
// per record, overwrites nothing, and leaves the index complete.
func testCreateBatchLarge(t *testing.T, h Harness) {
	s := newStore(t, h)
	c := ctx(t)
	batch := make([]keystore.Record, largeBatch)
	for i := range batch {
		batch[i] = sampleRecord(t)
		batch[i].Name = fmt.Sprint("k", i)
		if i%100 == 0 {
			batch[i].Assets = []string{"large-asset"}
		}
	}
	// Stored before: every 10th record as it is in the batch, every 25th
	// (not a 10th) under its ID but different.
	stored := map[int]keystore.Record{}
	var pre []keystore.Record
	for i, r := range batch {
		switch {
		case i%10 == 0:
			stored[i] = r
		case i%25 == 0:
			other := r
			other.Sealed, other.Name, other.Assets = []byte("another value"), "intruder", nil
			stored[i] = other
		default:
			continue
		}
		pre = append(pre, stored[i])
	}
	errs, err := s.CreateBatch(c, pre)
	if err != nil {
		t.Fatalf("storing the first records: %v", err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("storing the first records, %d: %v", i, e)
		}
	}
	// The first new record again at the end: the second one is refused.
	batch = append(batch, batch[1])

	errs, err = s.CreateBatch(c, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != len(batch) {
		t.Fatalf("%d results for %d records", len(errs), len(batch))
	}
	for i, e := range errs {
		switch st, ok := stored[i]; {
		case i == len(batch)-1:
			checkExists(t, i, e, batch[1])
		case ok:
			checkExists(t, i, e, st)
		case e != nil:
			t.Fatalf("result %d = %v, want nil", i, e)
		}
	}
	for i, r := range batch {
		want := r
		if st, ok := stored[i]; ok {
			want = st
		}
		got, err := s.Get(c, r.ID)
		if err != nil || !equalRecords(got, want) {
			t.Fatalf("record %d: Get = %+v, %v; want %+v", i, got, err, want)
		}
	}
	// The index lists every record once, the asset's set its members.
	all := listIDs(t, s)
	if len(all) != largeBatch {
		t.Fatalf("List gives %d records, want %d", len(all), largeBatch)
	}
	assets, err := s.ListAsset(c, "large-asset", keystore.KeyID{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var wantAssets []keystore.KeyID
	for i, r := range batch[:largeBatch] {
		if i%100 == 0 && i%10 != 0 {
			wantAssets = append(wantAssets, r.ID)
		}
		if i%100 == 0 && i%10 == 0 {
			wantAssets = append(wantAssets, r.ID) // stored identically, with the asset
		}
	}
	slices.SortFunc(wantAssets, func(a, b keystore.KeyID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(assets, wantAssets) {
		t.Fatalf("ListAsset gives %d IDs, want %d", len(assets), len(wantAssets))
	}
	// Sent again, every record answers ErrExists and nothing changes.
	errs, err = s.CreateBatch(c, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		want := batch[i]
		if st, ok := stored[i]; ok {
			want = st
		}
		if i == len(batch)-1 {
			want = batch[1]
		}
		checkExists(t, i, e, want)
	}
	if n := len(listIDs(t, s)); n != largeBatch {
		t.Fatalf("after the repeat, List gives %d records, want %d", n, largeBatch)
	}
}

// listIDs pages through List and returns every ID.
func listIDs(t *testing.T, s keystore.Store) []keystore.KeyID {
	t.Helper()
	var out []keystore.KeyID
	from := keystore.KeyID{}
	for {
		rs, err := s.List(ctx(t), from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out = append(out, r.ID)
		}
		if len(rs) < 1000 {
			return out
		}
		next, ok := rs[len(rs)-1].ID.Next()
		if !ok {
			return out
		}
		from = next
	}
}

// testImportLarge: Keys.Import of more keys than one chunk, some already
// stored with the same value (Unchanged), some with another value
// (Conflict, left untouched), gives each key its status in input order,
// reports exactly the created keys to the subscribers, and a repeat is idempotent.
func testImportLarge(t *testing.T, h Harness) {
	s := newStore(t, h)
	var mu sync.Mutex
	changed := map[keystore.KeyID]int{}
	kr := NewKeyring(t, "k1")
	keys := keystore.NewKeys(s, kr, keystore.Options{Rand: randReader, Timeout: waittest.Timeout(t)})
	keys.Subscribe(func(ch keystore.Change) {
		mu.Lock()
		changed[ch.ID]++
		mu.Unlock()
	})
	c := ctx(t)
	batch := ImportKeys(t, largeBatch)
	for i := range batch {
		if i%50 == 0 {
			batch[i].Assets = []string{"film"}
		}
	}
	want := make([]keystore.ImportStatus, len(batch))
	var same []keystore.Key
	for i, k := range batch {
		switch {
		case i%7 == 0:
			same = append(same, k)
			want[i] = keystore.Unchanged
		case i%31 == 0:
			other := k
			other.Value[0] ^= 0xff
			if _, err := keys.Create(c, other); err != nil {
				t.Fatal(err)
			}
			want[i] = keystore.Conflict
		}
	}
	if _, err := keys.Import(c, same); err != nil {
		t.Fatal(err)
	}
	clear(changed)
	// A key repeated at the end, with its own value: Unchanged.
	batch = append(batch, batch[3])
	want = append(want, keystore.Unchanged)

	res, err := keys.Import(c, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d keys", len(res), len(batch))
	}
	created := 0
	for i, r := range res {
		if r.Key.ID != batch[i].ID || r.Status != want[i] || r.Key.Value != ([16]byte{}) {
			t.Fatalf("result %d: %s %v, want %s %v (no value)", i, r.Key.ID, r.Status, batch[i].ID, want[i])
		}
		if r.Status == keystore.Created {
			created++
			if changed[r.Key.ID] != 1 {
				t.Fatalf("created key %d reported to the subscribers %d times", i, changed[r.Key.ID])
			}
		}
	}
	if len(changed) != created {
		t.Fatalf("the subscribers got %d keys, %d were created", len(changed), created)
	}
	for i, k := range batch {
		got, err := keys.Get(c, k.ID)
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if (got.Value == k.Value) != (want[i] != keystore.Conflict) {
			t.Fatalf("key %d: stored value wrong (status %v)", i, want[i])
		}
	}
	if n := len(listIDs(t, s)); n != largeBatch {
		t.Fatalf("List gives %d keys, want %d", n, largeBatch)
	}
	// Again: everything is Unchanged but the conflicts, nothing is created.
	clear(changed)
	res, err = keys.Import(c, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		w := keystore.Unchanged
		if want[i] == keystore.Conflict {
			w = keystore.Conflict
		}
		if r.Status != w {
			t.Fatalf("repeat, result %d: %v, want %v", i, r.Status, w)
		}
	}
	if len(changed) != 0 {
		t.Fatalf("a repeated import reported %d keys as changed", len(changed))
	}
}

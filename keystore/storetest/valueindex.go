package storetest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// randomValues returns n random key values.
func randomValues(t *testing.T, n int) [][16]byte {
	vs := make([][16]byte, n)
	for i := range vs {
		vs[i] = RandomID(t) // 16 random bytes
	}
	return vs
}

// byValueBatch is keys without KIDs of their own: random KIDs, marked
// byValue, with the values vs.
func byValueBatch(t *testing.T, vs [][16]byte) ([]keystore.Key, []bool) {
	keys := make([]keystore.Key, len(vs))
	byValue := make([]bool, len(vs))
	for i := range keys {
		keys[i] = keystore.Key{ID: RandomID(t), Value: vs[i], Type: keystore.EnvelopeEncryption, Method: keystore.CreatedImport}
		byValue[i] = true
	}
	return keys, byValue
}

// testImportByValue: keys imported without KIDs are found again by their
// value (by a keyed hash that the store holds instead of the value), so a
// repeat answers the same KIDs, unchanged, across a KEK rotation and under
// concurrency; the same value twice in a batch is one key.
func testImportByValue(t *testing.T, h Harness) {
	s := newStore(t, h)
	k1 := KEKLine(t, "k1")
	keys := newKeys(t, s, RingFromLines(t, k1))
	vs := randomValues(t, 3)
	batch, byValue := byValueBatch(t, vs)
	batch = append(batch, batch[0]) // the same bytes again, another random KID
	batch[3].ID = RandomID(t)
	byValue = append(byValue, true)
	values := make([][16]byte, len(batch))
	for i := range batch {
		values[i] = batch[i].Value
	}
	res, err := keys.ImportByValue(ctx(t), batch, byValue)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]keystore.KeyID, len(res))
	for i, r := range res {
		first[i] = r.Key.ID
		if batch[i].ID != r.Key.ID {
			t.Fatalf("entry %d: keys[i].ID %s, result %s", i, batch[i].ID, r.Key.ID)
		}
	}
	if res[0].Status != keystore.Created || res[3].Status != keystore.Unchanged || first[3] != first[0] {
		t.Fatalf("the same bytes twice in a batch: %v/%s and %v/%s", res[0].Status, first[0], res[3].Status, first[3])
	}
	if n := len(listIDs(t, s)); n != 3 {
		t.Fatalf("%d keys stored, want 3", n)
	}

	// Again, with new random KIDs: found by value, before (KeyIDsByValue,
	// read only) and while importing; nothing new is stored.
	again := func(keys *keystore.Keys, what string) {
		t.Helper()
		batch, byValue := byValueBatch(t, vs)
		ids, found, err := keys.KeyIDsByValue(ctx(t), batch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			if !found[i] || ids[i] != first[i] {
				t.Fatalf("%s: KeyIDsByValue entry %d: %v %s, want %s", what, i, found[i], ids[i], first[i])
			}
		}
		res, err := keys.ImportByValue(ctx(t), batch, byValue) // random KIDs: the index corrects them
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Status != keystore.Unchanged || r.Key.ID != first[i] {
				t.Fatalf("%s: entry %d: %v %s, want unchanged %s", what, i, r.Status, r.Key.ID, first[i])
			}
		}
		if n := len(listIDs(t, s)); n != 3 {
			t.Fatalf("%s: %d keys stored, want 3", what, n)
		}
	}
	again(keys, "repeat")

	// After a rotation the entries made under the old KEK are still found.
	k2 := KEKLine(t, "k2")
	rotated := newKeys(t, s, RingFromLines(t, k2, k1))
	if err := rotated.CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	again(rotated, "after rotation")
	// ... and the repeat indexed them under the new primary too, so the
	// new KEK alone finds them.
	names, err := s.ListMeta(ctx(t), "keyhash/k2/")
	if err != nil || len(names) != 3 {
		t.Fatalf("entries under k2: %v %v", names, err)
	}
	b, _ := byValueBatch(t, vs)
	ids, found, err := newKeys(t, s, RingFromLines(t, k2)).KeyIDsByValue(ctx(t), b)
	if err != nil || !found[0] || !found[1] || !found[2] || ids[0] != first[0] || ids[2] != first[2] {
		t.Fatalf("k2 alone: %v %v %v", ids, found, err)
	}

	// Not found by another keyring's KEK of the same name: the index is
	// keyed by the KEK's bytes, not its ID.
	if _, found, err := newKeys(t, s, NewKeyring(t, "k1")).KeyIDsByValue(ctx(t), batch[:1]); err != nil || found[0] {
		t.Fatalf("found by a different KEK named k1: %v %v", found, err)
	}

	// Concurrent imports of the same new bytes agree on one KID.
	var wg sync.WaitGroup
	got := make([]keystore.KeyID, 4)
	shared := randomValues(t, 1)
	values = append(values, shared[0])
	for g := range got {
		wg.Go(func() {
			b, bv := byValueBatch(t, shared)
			res, err := keys.ImportByValue(ctx(t), b, bv)
			if err != nil {
				t.Error(err)
				return
			}
			got[g] = res[0].Key.ID
		})
	}
	wg.Wait()
	for _, id := range got[1:] {
		if id != got[0] {
			t.Fatalf("concurrent imports of one value: KIDs %v", got)
		}
	}
	if n := len(listIDs(t, s)); n != 4 {
		t.Fatalf("%d keys stored after the concurrent imports, want 4", n)
	}

	// The store holds no value in the clear, in the index or anywhere.
	if h.Raw != nil {
		raw := h.Raw(t, s)
		for _, v := range values {
			for _, form := range [][]byte{v[:], []byte(hex.EncodeToString(v[:])), []byte(base64.StdEncoding.EncodeToString(v[:]))} {
				if bytes.Contains(raw, form) {
					t.Fatalf("the store holds a key value in the clear (%q)", form)
				}
			}
		}
	}
}

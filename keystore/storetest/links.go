package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// runLinks runs the tests of asset links (Link, Unlink) and of the
// AuthorizationPolicyID field.
func runLinks(t *testing.T, h Harness) {
	t.Run("LinkUnlink", func(t *testing.T) { testLinkUnlink(t, h) })
	t.Run("ConcurrentLinks", func(t *testing.T) { testConcurrentLinks(t, h) })
	t.Run("LinksThroughKeys", func(t *testing.T) { testLinksThroughKeys(t, h) })
	t.Run("AuthorizationPolicyID", func(t *testing.T) { testAuthorizationPolicyID(t, h) })
}

func listAsset(t *testing.T, s keystore.Store, asset string) []keystore.KeyID {
	t.Helper()
	ids, err := s.ListAsset(ctx(t), asset, keystore.KeyID{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// testLinkUnlink: a link adds the asset to the record and to ListAsset, an
// unlink takes it away, both are idempotent, a creation-time asset can be
// unlinked too, and links survive a restart and go with a Delete.
func testLinkUnlink(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	r.Assets = []string{"film"}
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Link(ctx(t), r.ID, "trailer")
	if err != nil || !slices.Equal(got.Assets, []string{"film", "trailer"}) || !equalRecords(got, r) {
		t.Fatalf("Link = %+v, %v", got, err)
	}
	for _, asset := range []string{"film", "trailer"} {
		if ids := listAsset(t, s, asset); !slices.Equal(ids, []keystore.KeyID{r.ID}) {
			t.Fatalf("ListAsset(%s) = %v", asset, ids)
		}
	}
	again, err := s.Link(ctx(t), r.ID, "trailer")
	if err != nil || !slices.Equal(again.Assets, []string{"film", "trailer"}) {
		t.Fatalf("second Link = %+v, %v", again.Assets, err)
	}
	stored, err := s.Get(ctx(t), r.ID)
	if err != nil || !slices.Equal(stored.Assets, []string{"film", "trailer"}) || !equalRecords(stored, r) {
		t.Fatalf("stored after Link: %+v, %v", stored, err)
	}
	// Update still refuses to change the assets, and keeps the links.
	if _, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error { x.Assets = nil; return nil }); !errors.Is(err, keystore.ErrImmutable) {
		t.Fatalf("Update dropping the assets = %v, want ErrImmutable", err)
	}
	if _, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error { x.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	// A creation-time asset unlinks like any other.
	got, err = s.Unlink(ctx(t), r.ID, "film")
	if err != nil || !slices.Equal(got.Assets, []string{"trailer"}) || got.Name != "renamed" {
		t.Fatalf("Unlink = %+v, %v", got, err)
	}
	if ids := listAsset(t, s, "film"); len(ids) != 0 {
		t.Fatalf("ListAsset(film) after Unlink = %v", ids)
	}
	if got, err := s.Unlink(ctx(t), r.ID, "film"); err != nil || !slices.Equal(got.Assets, []string{"trailer"}) {
		t.Fatalf("second Unlink = %+v, %v", got, err)
	}
	missing := RandomID(t)
	if _, err := s.Link(ctx(t), missing, "film"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Link(missing) = %v", err)
	}
	if _, err := s.Unlink(ctx(t), missing, "film"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Unlink(missing) = %v", err)
	}
	if ids := listAsset(t, s, "film"); len(ids) != 0 {
		t.Fatalf("a failed Link indexed something: %v", ids)
	}
	// Durable.
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	if ids := listAsset(t, s, "trailer"); !slices.Equal(ids, []keystore.KeyID{r.ID}) {
		t.Fatalf("ListAsset(trailer) after a restart = %v", ids)
	}
	if stored, err := s.Get(ctx(t), r.ID); err != nil || !slices.Equal(stored.Assets, []string{"trailer"}) {
		t.Fatalf("record after a restart: %+v, %v", stored.Assets, err)
	}
	// Delete takes the linked asset's entry with it.
	if err := s.Delete(ctx(t), r.ID, nil); err != nil {
		t.Fatal(err)
	}
	if ids := listAsset(t, s, "trailer"); len(ids) != 0 {
		t.Fatalf("ListAsset(trailer) after Delete = %v", ids)
	}
	// A record created again under that ID does not inherit the link.
	r2 := sampleRecord(t)
	r2.ID = r.ID
	if err := s.Create(ctx(t), r2); err != nil {
		t.Fatal(err)
	}
	if ids := listAsset(t, s, "trailer"); len(ids) != 0 {
		t.Fatalf("a recreated record is listed under the old link: %v", ids)
	}
}

// testConcurrentLinks: links of one key to many assets at once, and of
// many keys to one asset, are all kept: each Link is an atomic
// read-modify-write.
func testConcurrentLinks(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	others := make([]keystore.Record, 6)
	for i := range others {
		others[i] = sampleRecord(t)
		if err := s.Create(ctx(t), others[i]); err != nil {
			t.Fatal(err)
		}
	}
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n+len(others))
	for i := range n {
		wg.Go(func() {
			_, err := s.Link(ctx(t), r.ID, fmt.Sprint("asset-", i))
			errs <- err
		})
	}
	for _, o := range others {
		wg.Go(func() {
			_, err := s.Link(ctx(t), o.ID, "shared")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	stored, err := s.Get(ctx(t), r.ID)
	if err != nil || len(stored.Assets) != n {
		t.Fatalf("assets after %d concurrent links: %v, %v", n, stored.Assets, err)
	}
	for i := range n {
		if ids := listAsset(t, s, fmt.Sprint("asset-", i)); !slices.Equal(ids, []keystore.KeyID{r.ID}) {
			t.Fatalf("asset-%d lists %v", i, ids)
		}
	}
	if ids := listAsset(t, s, "shared"); len(ids) != len(others) {
		t.Fatalf("shared lists %d keys, want %d", len(ids), len(others))
	}
}

// testLinksThroughKeys: Keys.Link and Keys.Unlink check the asset ID,
// refuse a deleted key, and report the assets.
func testLinksThroughKeys(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	k, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t), Assets: []string{"film"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.Link(ctx(t), k.ID, "nb:cid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f")
	if err != nil || !slices.Equal(m.Assets, []string{"film", "nb:cid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"}) || m.Value != ([16]byte{}) {
		t.Fatalf("Link = %+v, %v", m, err)
	}
	if _, err := keys.Link(ctx(t), k.ID, "bad asset"); !errors.Is(err, keystore.ErrInvalidAsset) {
		t.Fatalf("Link with an invalid asset = %v", err)
	}
	if _, err := keys.Link(ctx(t), RandomID(t), "film"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Link of a missing key = %v", err)
	}
	if _, err := keys.Delete(ctx(t), k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Link(ctx(t), k.ID, "other"); !errors.Is(err, keystore.ErrDeleted) {
		t.Fatalf("Link of a deleted key = %v, want ErrDeleted", err)
	}
	// Unlinking a deleted key is allowed: it only removes an association.
	if m, err := keys.Unlink(ctx(t), k.ID, "film"); err != nil || slices.Contains(m.Assets, "film") {
		t.Fatalf("Unlink of a deleted key = %+v, %v", m, err)
	}
}

// testAuthorizationPolicyID: the field is stored, listed, kept by
// CreateBatch and a restart, and never changed by Update.
func testAuthorizationPolicyID(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	r.AuthorizationPolicyID = "nb:ckpid:UUID:f0a3d5b1-6f0e-4d57-a5b2-1c2d3e4f5a6b"
	b := sampleRecord(t)
	b.AuthorizationPolicyID = "policy of the batch"
	plain := sampleRecord(t)
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	if errs, err := s.CreateBatch(ctx(t), []keystore.Record{b, plain}); err != nil || errs[0] != nil || errs[1] != nil {
		t.Fatalf("CreateBatch: %v %v", errs, err)
	}
	want := map[keystore.KeyID]string{r.ID: r.AuthorizationPolicyID, b.ID: b.AuthorizationPolicyID, plain.ID: ""}
	check := func(when string) {
		for id, policy := range want {
			got, err := s.Get(ctx(t), id)
			if err != nil || got.AuthorizationPolicyID != policy {
				t.Fatalf("%s: Get %s: %q, %v; want %q", when, id, got.AuthorizationPolicyID, err, policy)
			}
		}
		list, err := s.List(ctx(t), keystore.KeyID{}, 100)
		if err != nil || len(list) != 3 {
			t.Fatalf("%s: List: %d records, %v", when, len(list), err)
		}
		for _, got := range list {
			if got.AuthorizationPolicyID != want[got.ID] {
				t.Fatalf("%s: List %s: %q", when, got.ID, got.AuthorizationPolicyID)
			}
		}
	}
	check("after create")
	if _, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error { x.AuthorizationPolicyID = "other"; return nil }); !errors.Is(err, keystore.ErrImmutable) {
		t.Fatalf("Update changing the policy = %v, want ErrImmutable", err)
	}
	if _, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error { x.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Link(ctx(t), r.ID, "film"); err != nil {
		t.Fatal(err)
	}
	check("after update and link")
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	check("after a restart")

	keys := newKeys(t, s, NewKeyring(t, "k1"))
	k, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t), AuthorizationPolicyID: "through Keys"})
	if err != nil || k.AuthorizationPolicyID != "through Keys" {
		t.Fatalf("Keys.Create: %+v, %v", k, err)
	}
	if m, err := keys.Metadata(ctx(t), k.ID); err != nil || m.AuthorizationPolicyID != "through Keys" {
		t.Fatalf("Keys.Metadata: %q, %v", m.AuthorizationPolicyID, err)
	}
}

package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// testVerifyKEKs: VerifyKEKs reads only, reports a new store, new and
// retired KEK IDs, and refuses (as CheckKEKs does) a keyring that lacks a
// KEK the store's keys or key seeds are sealed under, naming it.
func testVerifyKEKs(t *testing.T, h Harness) {
	s := newStore(t, h)
	k1, k2, k3 := KEKLine(t, "kek-1"), KEKLine(t, "kek-2"), KEKLine(t, "kek-3")

	// A new store: empty, every KEK new, and nothing written.
	rep, err := newKeys(t, s, RingFromLines(t, k1)).VerifyKEKs(ctx(t))
	if err != nil || !rep.Empty || !slices.Equal(rep.New, []string{"kek-1"}) || len(rep.Recorded) != 0 {
		t.Fatalf("new store: %+v %v", rep, err)
	}
	if names, err := s.ListMeta(ctx(t), ""); err != nil || len(names) != 0 {
		t.Fatalf("VerifyKEKs wrote %v (%v)", names, err)
	}

	// Keys under kek-1, then a rotation to kek-2 with a key under it.
	first := newKeys(t, s, RingFromLines(t, k1))
	if err := first.CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Create(ctx(t), keystore.Key{ID: RandomID(t)}); err != nil {
		t.Fatal(err)
	}
	rotated := newKeys(t, s, RingFromLines(t, k2, k1))
	if err := rotated.CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Create(ctx(t), keystore.Key{ID: RandomID(t)}); err != nil {
		t.Fatal(err)
	}
	rep, err = rotated.VerifyKEKs(ctx(t))
	if err != nil || rep.Empty || !slices.Equal(rep.Recorded, []string{"kek-1", "kek-2"}) || len(rep.New) != 0 {
		t.Fatalf("rotated: %+v %v", rep, err)
	}

	// A KEK file holding only another KEK: refused, naming kek-1 and
	// kek-2, by VerifyKEKs and by CheckKEKs, which writes nothing then.
	other := newKeys(t, s, RingFromLines(t, k3))
	for name, check := range map[string]func() error{
		"VerifyKEKs": func() error { _, err := other.VerifyKEKs(ctx(t)); return err },
		"CheckKEKs":  func() error { return other.CheckKEKs(ctx(t)) },
	} {
		var me *keystore.MissingKEKError
		if err := check(); !errors.As(err, &me) || !slices.Equal(me.IDs, []string{"kek-1", "kek-2"}) {
			t.Fatalf("%s with another KEK = %v, want both missing", name, err)
		}
	}
	if _, err := s.GetMeta(ctx(t), "kek-check/kek-3"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("a refused CheckKEKs recorded its KEK: %v", err)
	}
	// Without the old KEK only: refused, naming it.
	var me *keystore.MissingKEKError
	if _, err := newKeys(t, s, RingFromLines(t, k2)).VerifyKEKs(ctx(t)); !errors.As(err, &me) || !slices.Equal(me.IDs, []string{"kek-1"}) {
		t.Fatalf("without kek-1: %v", err)
	}

	// Once no value is sealed under kek-1 (its key purged), it is retired.
	keys, err := rotated.List(ctx(t), keystore.KeyID{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		r, err := s.Get(ctx(t), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Sealed[2:2+int(r.Sealed[1])]) == "kek-1" { // version, KEK ID length, KEK ID
			if _, err := rotated.Delete(ctx(t), k.ID); err != nil {
				t.Fatal(err)
			}
			if err := rotated.Purge(ctx(t), k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err = newKeys(t, s, RingFromLines(t, k2)).VerifyKEKs(ctx(t))
	if err != nil || !slices.Equal(rep.Retired, []string{"kek-1"}) {
		t.Fatalf("retired kek-1: %+v %v", rep, err)
	}
	// A key seed sealed under a KEK counts too.
	seeded := newKeys(t, s, RingFromLines(t, k3, k2))
	if err := seeded.CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := seeded.CreateKeySeed(ctx(t), keystore.KeySeed{ID: RandomID(t), Seed: make([]byte, 30)}); err != nil {
		t.Fatal(err)
	}
	if _, err := newKeys(t, s, RingFromLines(t, k2)).VerifyKEKs(ctx(t)); !errors.As(err, &me) || !slices.Equal(me.IDs, []string{"kek-3"}) {
		t.Fatalf("without the key seed's kek-3: %v", err)
	}
}

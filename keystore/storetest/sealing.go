package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// A sealSlot is where a store keeps one sealed value: a content key's
// record, a key seed's meta value, or a KEK's check value.
type sealSlot struct {
	kind string         // "key", "seed" or "check"
	id   keystore.KeyID // of a key or a seed
	kek  string         // of a check value
}

func keySlot(id keystore.KeyID) sealSlot  { return sealSlot{kind: "key", id: id} }
func seedSlot(id keystore.KeyID) sealSlot { return sealSlot{kind: "seed", id: id} }
func checkSlot(kek string) sealSlot       { return sealSlot{kind: "check", kek: kek} }

func (s sealSlot) String() string {
	if s.kind == "check" {
		return "check slot of kek " + s.kek
	}
	return fmt.Sprintf("%s slot %s", s.kind, s.id)
}

// put stores sealed in slot s of st, as Keys would have.
func (s sealSlot) put(t *testing.T, st keystore.Store, sealed []byte) {
	t.Helper()
	var err error
	switch s.kind {
	case "key":
		now := time.Now()
		err = st.Create(ctx(t), keystore.Record{ID: s.id, Sealed: sealed, Type: keystore.EnvelopeEncryption, Created: now, Updated: now})
	case "seed":
		err = st.CreateMeta(ctx(t), "keyseed/"+s.id.String(), seedMeta(t, sealed))
	case "check":
		err = st.CreateMeta(ctx(t), "kek-check/"+s.kek, sealed)
	}
	if err != nil {
		t.Fatalf("put in %s: %v", s, err)
	}
}

// open opens slot s through keys: Get, KeySeed, or CheckKEKs.
func (s sealSlot) open(t *testing.T, keys *keystore.Keys) error {
	switch s.kind {
	case "key":
		_, err := keys.Get(ctx(t), s.id)
		return err
	case "seed":
		_, err := keys.KeySeed(ctx(t), s.id)
		return err
	}
	return keys.CheckKEKs(ctx(t))
}

// testSealKinds copies every kind of sealed value (content key, key seed,
// KEK check value), in the current format and in format 1, into every
// other kind's slot, and into slots of its own kind under another name,
// and expects each to be refused with ErrSealed. The names are the
// dangerous ones: a key and a seed with the same 16-byte ID, and the KID
// whose bytes are "kek-check/abcdef", the check label of the 6-character
// KEK ID "abcdef" (the values are sealed under that KEK). Its own slot
// holds the value with its version byte changed, which fails too.
func testSealKinds(t *testing.T, h Harness) {
	v1 := LoadFormatV1(t)
	ring := RingFromLines(t, v1.KEKLine)
	collision := v1.Confusable.ID

	// The current format's values of every kind, under the same KEK. With
	// kinds separated, a key whose KID is "kek-check/abcdef" is an ordinary
	// key.
	src := newStore(t, h)
	keys := newKeys(t, src, ring)
	if err := keys.CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	key, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	confusable, err := keys.Create(ctx(t), keystore.Key{ID: collision})
	if err != nil {
		t.Fatal(err)
	}
	seed, err := keys.CreateKeySeed(ctx(t), keystore.KeySeed{ID: RandomID(t), Seed: bytes.Repeat([]byte{5}, 30)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []keystore.Key{key, confusable} {
		if got, err := keys.Get(ctx(t), k.ID); err != nil || got.Value != k.Value {
			t.Fatalf("Get(%s) in its own slot = %v", k.ID, err)
		}
	}
	record := func(id keystore.KeyID) []byte {
		r, err := src.Get(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return r.Sealed
	}
	meta := func(name string) []byte {
		v, err := src.GetMeta(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	values := []struct {
		name   string
		own    sealSlot
		sealed []byte
		// opensAsCheck: the one value that opens in another slot. In
		// format 1 a key whose KID is "kek-check/abcdef", sealed under
		// "abcdef", has the same additional data as that KEK's check
		// value, so in the check slot it proves what the check checks
		// (this KEK opens what it sealed); as a key it never opens.
		opensAsCheck bool
	}{
		{name: "content key", own: keySlot(key.ID), sealed: record(key.ID)},
		{name: "content key kek-check/abcdef", own: keySlot(collision), sealed: record(collision)},
		{name: "key seed", own: seedSlot(seed.ID), sealed: seedSealed(t, meta("keyseed/"+seed.ID.String()))},
		{name: "kek check value", own: checkSlot("abcdef"), sealed: meta("kek-check/abcdef")},
		{name: "format 1 content key", own: keySlot(v1.Key.ID), sealed: v1.KeySealed},
		{name: "format 1 content key kek-check/abcdef", own: keySlot(collision), sealed: v1.ConfusableSealed, opensAsCheck: true},
		{name: "format 1 key seed", own: seedSlot(v1.Seed.ID), sealed: seedSealed(t, v1.SeedMeta)},
		{name: "format 1 kek check value", own: checkSlot("abcdef"), sealed: v1.Check},
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			st := newStore(t, h)
			name := v.own.id
			if v.own.kind == "check" {
				name = RandomID(t)
			}
			var slots []sealSlot
			for _, s := range []sealSlot{keySlot(collision), keySlot(name), seedSlot(name), seedSlot(RandomID(t)), checkSlot("abcdef")} {
				if s != v.own && !slices.Contains(slots, s) {
					slots = append(slots, s)
					s.put(t, st, v.sealed)
				}
			}
			flipped := bytes.Clone(v.sealed)
			flipped[0] ^= 3 // format 1 <-> 2
			v.own.put(t, st, flipped)
			keys := newKeys(t, st, ring)
			for _, s := range slots {
				err := s.open(t, keys)
				if v.opensAsCheck && s.kind == "check" {
					if err != nil {
						t.Errorf("in the %s: %v", s, err)
					}
					continue
				}
				if !errors.Is(err, keystore.ErrSealed) {
					t.Errorf("in the %s: opened (%v), want ErrSealed", s, err)
				}
			}
			if err := v.own.open(t, keys); !errors.Is(err, keystore.ErrSealed) {
				t.Errorf("with its version byte changed, in its own slot: %v, want ErrSealed", err)
			}
		})
	}
}

// testFormatV1 opens a store written in format 1: every value opens in its
// own slot, but the key whose KID is its KEK's check label, which may be
// the check value copied there.
func testFormatV1(t *testing.T, h Harness) {
	v1 := LoadFormatV1(t)
	s := newStore(t, h)
	keySlot(v1.Key.ID).put(t, s, v1.KeySealed)
	keySlot(v1.Confusable.ID).put(t, s, v1.ConfusableSealed)
	if err := s.CreateMeta(ctx(t), "keyseed/"+v1.Seed.ID.String(), v1.SeedMeta); err != nil {
		t.Fatal(err)
	}
	checkSlot("abcdef").put(t, s, v1.Check)

	keys := newKeys(t, s, RingFromLines(t, v1.KEKLine))
	if err := keys.CheckKEKs(ctx(t)); err != nil {
		t.Fatalf("CheckKEKs on a format 1 check value: %v", err)
	}
	if got, err := keys.Get(ctx(t), v1.Key.ID); err != nil || got.Value != v1.Key.Value {
		t.Fatalf("Get(format 1 key) = %v", err)
	}
	seed, err := keys.KeySeed(ctx(t), v1.Seed.ID)
	if err != nil || !bytes.Equal(seed.Seed, v1.Seed.Seed) || seed.Name != v1.Seed.Name {
		t.Fatalf("KeySeed(format 1 seed) = %+v, %v", seed, err)
	}
	if _, err := keys.Get(ctx(t), v1.Confusable.ID); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get(format 1 key kek-check/abcdef) = %v, want ErrSealed", err)
	}
	wrong := newKeys(t, s, NewKeyring(t, "abcdef")) // same ID, different bytes
	if err := wrong.CheckKEKs(ctx(t)); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("CheckKEKs with a different kek under the same id = %v, want ErrSealed", err)
	}
	if _, err := wrong.Get(ctx(t), v1.Key.ID); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get(format 1 key) with a different kek = %v, want ErrSealed", err)
	}
}

// testFormatUpgrade: the next update of a key sealed in format 1 (a
// delete or a restore) writes it in the current format, under the same
// KEK, with the same key inside; a read writes nothing. A format 1 value
// that does not open as the key it is stored for is written back as it
// was: upgrading it would make it open.
func testFormatUpgrade(t *testing.T, h Harness) {
	v1 := LoadFormatV1(t)
	s := newStore(t, h)
	ring := RingFromLines(t, v1.KEKLine)
	keys := newKeys(t, s, ring)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	rec := keystore.Record{ID: v1.Key.ID, Sealed: v1.KeySealed, IV: bytes.Repeat([]byte{7}, 16), Name: "v1",
		Type: keystore.EnvelopeEncryption, Method: keystore.CreatedImport, Created: t0, Updated: t0, Assets: []string{"film"}}
	if err := s.Create(ctx(t), rec); err != nil {
		t.Fatal(err)
	}
	stored := func(id keystore.KeyID) keystore.Record {
		t.Helper()
		r, err := s.Get(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got, err := keys.Get(ctx(t), rec.ID); err != nil || got.Value != v1.Key.Value {
		t.Fatalf("Get = %v", err)
	}
	if r := stored(rec.ID); !bytes.Equal(r.Sealed, v1.KeySealed) {
		t.Fatal("a read rewrote the sealed value")
	}

	if _, err := keys.Delete(ctx(t), rec.ID); err != nil {
		t.Fatal(err)
	}
	up := stored(rec.ID)
	kekHeader := len("\x01\x06abcdef")
	if up.Sealed[0] != 2 || len(up.Sealed) != len(v1.KeySealed) || !bytes.Equal(up.Sealed[1:kekHeader], v1.KeySealed[1:kekHeader]) {
		t.Fatalf("after Delete the value is %x, want format 2 under the same kek (was %x)", up.Sealed, v1.KeySealed)
	}
	if up.Name != rec.Name || !bytes.Equal(up.IV, rec.IV) || up.Type != rec.Type || up.Method != rec.Method ||
		!up.Created.Equal(rec.Created) || len(up.Assets) != 1 || up.Assets[0] != "film" || up.DeletedAt.IsZero() {
		t.Fatalf("after Delete the record is %+v", up)
	}
	if _, err := keys.Restore(ctx(t), rec.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := keys.Get(ctx(t), rec.ID); err != nil || got.Value != v1.Key.Value {
		t.Fatalf("Get after the upgrade = %v", err)
	}
	if r := stored(rec.ID); !bytes.Equal(r.Sealed, up.Sealed) {
		t.Fatal("an update rewrote a value already in the current format")
	}

	// Values that must not be upgraded, in the KID they would open as:
	// the check value, and the format 1 key of that KID.
	for _, c := range []struct {
		name   string
		sealed []byte
	}{{"kek check value", v1.Check}, {"key kek-check/abcdef", v1.ConfusableSealed}} {
		id := v1.Confusable.ID
		keySlot(id).put(t, s, c.sealed)
		if _, err := keys.Delete(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Restore(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		if r := stored(id); !bytes.Equal(r.Sealed, c.sealed) {
			t.Fatalf("format 1 %s in the key %s was rewritten", c.name, id)
		}
		if _, err := keys.Get(ctx(t), id); !errors.Is(err, keystore.ErrSealed) {
			t.Fatalf("format 1 %s in the key %s: Get = %v, want ErrSealed", c.name, id, err)
		}
		if _, err := keys.Delete(ctx(t), id); err != nil {
			t.Fatal(err)
		}
		if err := keys.Purge(ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}

	// Without its KEK a format 1 value is written back as it was, and
	// upgraded by a later update that has the KEK.
	s2 := newStore(t, h)
	rec.DeletedAt = t0
	if err := s2.Create(ctx(t), rec); err != nil {
		t.Fatal(err)
	}
	if _, err := newKeys(t, s2, NewKeyring(t, "other")).Restore(ctx(t), rec.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Get(ctx(t), rec.ID); err != nil || !bytes.Equal(r.Sealed, v1.KeySealed) {
		t.Fatalf("Restore without the kek: %v, or the value was rewritten", err)
	}
	if _, err := newKeys(t, s2, ring).Delete(ctx(t), rec.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Get(ctx(t), rec.ID); err != nil || r.Sealed[0] != 2 {
		t.Fatalf("Delete with the kek: %v, or the value was not upgraded", err)
	}
}

// testUpdateSealedUpgrade: Update lets the sealed value change in one way
// only, a format upgrade (format 1 to 2, the same KEK ID, the same length;
// Keys checks the plaintext), and refuses every other change of it.
func testUpdateSealedUpgrade(t *testing.T, h Harness) {
	s := newStore(t, h)
	sealed := func(version byte, kek string, body []byte) []byte {
		return append(append([]byte{version, byte(len(kek))}, kek...), body...)
	}
	body, other := bytes.Repeat([]byte{9}, 28), bytes.Repeat([]byte{8}, 28)
	r := sampleRecord(t)
	r.Sealed = sealed(1, "k1", body)
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	setSealed := func(v []byte) error {
		_, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error { x.Sealed = v; return nil })
		return err
	}
	for name, v := range map[string][]byte{
		"format 1 to 1":         sealed(1, "k1", other),
		"format 1 to 3":         sealed(3, "k1", other),
		"another kek":           sealed(2, "k2", other),
		"another kek id length": sealed(2, "k10", other[1:]),
		"longer":                sealed(2, "k1", append(other, 0)),
		"shorter":               sealed(2, "k1", other[1:]),
		"empty":                 nil,
	} {
		if err := setSealed(v); !errors.Is(err, keystore.ErrImmutable) {
			t.Errorf("Update changing the sealed value, %s = %v, want ErrImmutable", name, err)
		}
	}
	if got, _ := s.Get(ctx(t), r.ID); !equalRecords(got, r) {
		t.Fatalf("a refused Update changed the record: %+v", got)
	}
	upgraded := sealed(2, "k1", other)
	got, err := s.Update(ctx(t), r.ID, func(x *keystore.Record) error {
		x.Sealed, x.Name = upgraded, "upgraded"
		return nil
	})
	if err != nil {
		t.Fatalf("Update upgrading the format: %v", err)
	}
	stored, err := s.Get(ctx(t), r.ID)
	if err != nil || !equalRecords(got, stored) || !bytes.Equal(stored.Sealed, upgraded) || stored.Name != "upgraded" {
		t.Fatalf("after the upgrade: returned %+v, stored %+v, %v", got, stored, err)
	}
	for name, v := range map[string][]byte{
		"format 2 to 2":    sealed(2, "k1", body),
		"back to format 1": r.Sealed,
	} {
		if err := setSealed(v); !errors.Is(err, keystore.ErrImmutable) {
			t.Errorf("Update changing the upgraded value, %s = %v, want ErrImmutable", name, err)
		}
	}
}

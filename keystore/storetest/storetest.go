// Package storetest is the conformance suite every keystore.Store backend
// must pass. A backend's test calls Run with a Harness that makes fresh
// stores of its kind; the suite exercises the Store contract directly and
// through the sealing barrier (keystore.Keys), and checks at-rest secrecy
// against the raw bytes the backend persisted.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

// Harness tells the suite how to make and inspect stores of one backend.
type Harness struct {
	// New returns a new, empty store. The suite closes it.
	New func(t *testing.T) keystore.Store
	// Reopen closes s and opens the same storage again, as a restart would.
	Reopen func(t *testing.T, s keystore.Store) keystore.Store
	// Raw returns every byte the backend has persisted for s (the file on
	// disk, or every value in the server), to check secrecy at rest.
	Raw func(t *testing.T, s keystore.Store) []byte
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, h) })
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, h) })
	t.Run("NeverOverwrites", func(t *testing.T) { testNeverOverwrites(t, h) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testConcurrentCreate(t, h) })
	t.Run("Meta", func(t *testing.T) { testMeta(t, h) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceledContext(t, h) })
	t.Run("Barrier", func(t *testing.T) { testBarrier(t, h) })
	t.Run("SealedAtRest", func(t *testing.T) { testSealedAtRest(t, h) })
	t.Run("MovedValueFails", func(t *testing.T) { testMovedValue(t, h) })
	t.Run("KEKCheck", func(t *testing.T) { testKEKCheck(t, h) })
	t.Run("KEKRotation", func(t *testing.T) { testKEKRotation(t, h) })
	t.Run("VerifyKEKs", func(t *testing.T) { testVerifyKEKs(t, h) })
	t.Run("ImportByValue", func(t *testing.T) { testImportByValue(t, h) })
	t.Run("SealedKindsNeverCross", func(t *testing.T) { testSealKinds(t, h) })
	t.Run("FormatV1Opens", func(t *testing.T) { testFormatV1(t, h) })
	t.Run("FormatUpgradeOnUpdate", func(t *testing.T) { testFormatUpgrade(t, h) })
	t.Run("SurvivesRestart", func(t *testing.T) { testRestart(t, h) })
	runLifecycle(t, h)
	runLinks(t, h)
	runCounter(t, h)
	runDurable(t, h)
}

func newStore(t *testing.T, h Harness) keystore.Store {
	t.Helper()
	s := h.New(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// NewKeyring returns a keyring with freshly generated KEKs, the first one
// primary.
func NewKeyring(t testing.TB, ids ...string) *keystore.Keyring {
	t.Helper()
	var lines []string
	for _, id := range ids {
		lines = append(lines, KEKLine(t, id))
	}
	return RingFromLines(t, lines...)
}

// KEKLine returns a new KEK file line for id.
func KEKLine(t testing.TB, id string) string {
	t.Helper()
	line, err := keystore.GenerateKEKLine(rand.Reader, id)
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// RingFromLines parses KEK file lines into a keyring.
func RingFromLines(t testing.TB, lines ...string) *keystore.Keyring {
	t.Helper()
	kr, err := keystore.ParseKeyring([]byte(strings.Join(lines, "\n")), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// RandomID returns a random KeyID.
func RandomID(t testing.TB) keystore.KeyID {
	t.Helper()
	var id keystore.KeyID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	return id
}

// ctx returns the context of one step of a test. Its deadline only catches
// a hang (see waittest): the large batches run many times slower under
// -race on a busy machine, and a deadline that tried to tell slow from
// stuck would fail them there.
func ctx(t *testing.T) context.Context { return waittest.Context(t) }

func testGetMissing(t *testing.T, h Harness) {
	s := newStore(t, h)
	_, err := s.Get(ctx(t), RandomID(t))
	if !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func sampleRecord(t *testing.T) keystore.Record {
	now := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	return keystore.Record{
		ID: RandomID(t), Sealed: []byte("opaque sealed bytes"), IV: bytes.Repeat([]byte{7}, 16),
		Name: "rendition 1080p", Type: keystore.EnvelopeEncryption, Method: keystore.CreatedImport,
		Created: now, Updated: now.Add(time.Second),
		Period:    &keystore.KeyPeriod{Index: 7, Start: now, End: now.Add(time.Hour)},
		TrackType: "HD",
	}
}

func equalRecords(a, b keystore.Record) bool {
	return a.ID == b.ID && bytes.Equal(a.Sealed, b.Sealed) && bytes.Equal(a.IV, b.IV) &&
		a.Name == b.Name && a.Type == b.Type && a.Method == b.Method &&
		a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated) && a.DeletedAt.Equal(b.DeletedAt) &&
		a.Period.Equal(b.Period) && a.TrackType == b.TrackType
}

func testCreateGet(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, r) {
		t.Fatalf("Get = %+v, want %+v", got, r)
	}
}

func testNeverOverwrites(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	other := r
	other.Sealed = []byte("another value")
	other.Name = "intruder"
	if err := s.Create(ctx(t), other); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	got, err := s.Get(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !equalRecords(got, r) {
		t.Fatalf("stored record changed to %+v", got)
	}
}

func testConcurrentCreate(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := r
			rr.Sealed = []byte{byte(i)}
			errs[i] = s.Create(ctx(t), rr)
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if won >= 0 {
				t.Fatalf("creates %d and %d both succeeded", won, i)
			}
			won = i
		case !errors.Is(err, keystore.ErrExists):
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no create succeeded")
	}
	got, err := s.Get(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Sealed, []byte{byte(won)}) {
		t.Fatalf("stored %v, want the winner's %d", got.Sealed, won)
	}
}

func testMeta(t *testing.T, h Harness) {
	s := newStore(t, h)
	if _, err := s.GetMeta(ctx(t), "kek-check/x"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("GetMeta(missing) = %v, want ErrNotFound", err)
	}
	if err := s.CreateMeta(ctx(t), "kek-check/x", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMeta(ctx(t), "kek-check/x", []byte("two")); !errors.Is(err, keystore.ErrExists) {
		t.Fatalf("second CreateMeta = %v, want ErrExists", err)
	}
	v, err := s.GetMeta(ctx(t), "kek-check/x")
	if err != nil || string(v) != "one" {
		t.Fatalf("GetMeta = %q, %v; want \"one\"", v, err)
	}
}

func testCanceledContext(t *testing.T, h Harness) {
	s := newStore(t, h)
	r := sampleRecord(t)
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(c, r.ID); err == nil || errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get with a canceled context = %v, want an error that is not ErrNotFound", err)
	}
}

// newKeys returns the barrier over s. Its per-call store deadline, like
// ctx's, only catches a hang: the suite checks what a store does, not how
// fast.
func newKeys(t *testing.T, s keystore.Store, kr *keystore.Keyring) *keystore.Keys {
	return keystore.NewKeys(s, kr, keystore.Options{Rand: rand.Reader, Timeout: waittest.Timeout(t)})
}

func testBarrier(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	want := keystore.Key{ID: RandomID(t), IV: bytes.Repeat([]byte{1}, 16), Name: "a", Type: keystore.EnvelopeEncryption, Method: keystore.CreatedImport}
	copy(want.Value[:], "0123456789abcdef")
	created, err := keys.Create(ctx(t), want)
	if err != nil {
		t.Fatal(err)
	}
	if created.Created.IsZero() || created.Method != keystore.CreatedImport {
		t.Fatalf("Create returned %+v", created)
	}
	got, err := keys.Get(ctx(t), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Value != want.Value || !bytes.Equal(got.IV, want.IV) || got.Name != "a" || got.Type != keystore.EnvelopeEncryption {
		t.Fatalf("Get = %+v", got)
	}

	// Same value again: ErrExists and ErrSameKey. Another value: ErrExists only.
	_, err = keys.Create(ctx(t), want)
	if !errors.Is(err, keystore.ErrExists) || !errors.Is(err, keystore.ErrSameKey) {
		t.Fatalf("re-create with same value = %v, want ErrExists and ErrSameKey", err)
	}
	other := want
	other.Value[0] ^= 0xff
	_, err = keys.Create(ctx(t), other)
	if !errors.Is(err, keystore.ErrExists) || errors.Is(err, keystore.ErrSameKey) {
		t.Fatalf("re-create with another value = %v, want ErrExists without ErrSameKey", err)
	}
	if got, _ := keys.Get(ctx(t), want.ID); got.Value != want.Value {
		t.Fatal("stored key was overwritten")
	}

	// Generated keys are random and distinct.
	a, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Value == ([16]byte{}) || a.Value == b.Value || a.Method != keystore.CreatedRandom {
		t.Fatalf("generated keys %x %x (method %v)", a.Value, b.Value, a.Method)
	}

	// A soft-deleted record is not delivered.
	del := sampleRecord(t)
	del.DeletedAt = time.Now()
	if err := s.Create(ctx(t), del); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get(ctx(t), del.ID); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get(deleted) = %v, want ErrNotFound", err)
	}
	// Metadata still shows it, without material.
	meta, err := keys.Metadata(ctx(t), del.ID)
	if err != nil || !meta.Deleted() || meta.Name != del.Name || meta.Value != ([16]byte{}) {
		t.Fatalf("Metadata(deleted) = %+v, %v", meta, err)
	}
	if meta, err := keys.Metadata(ctx(t), want.ID); err != nil || meta.Value != ([16]byte{}) || meta.Name != "a" {
		t.Fatalf("Metadata = %+v, %v; want metadata without the value", meta, err)
	}
	if _, err := keys.Get(ctx(t), RandomID(t)); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

// AssertNoPlaintext fails t if raw contains any of values in the clear, as
// lower or upper hex, or in standard or URL base64 (padded or not).
func AssertNoPlaintext(t testing.TB, raw []byte, values ...[16]byte) {
	t.Helper()
	for _, v := range values {
		forms := map[string][]byte{
			"raw":       v[:],
			"hex":       []byte(hex.EncodeToString(v[:])),
			"HEX":       bytes.ToUpper([]byte(hex.EncodeToString(v[:]))),
			"base64":    []byte(base64.RawStdEncoding.EncodeToString(v[:])),
			"base64url": []byte(base64.RawURLEncoding.EncodeToString(v[:])),
		}
		for name, f := range forms {
			if bytes.Contains(raw, f) {
				t.Errorf("key material found at rest in %s form", name)
			}
		}
	}
}

func testSealedAtRest(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	var values [][16]byte
	for range 8 {
		k, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, k.Value)
	}
	raw := h.Raw(t, s)
	if len(raw) == 0 {
		t.Fatal("Raw returned nothing: the check would prove nothing")
	}
	// The check must be able to fail: the KIDs themselves are stored.
	if !bytes.Contains(raw, []byte(`"id"`)) {
		t.Fatal("Raw does not contain the stored records")
	}
	AssertNoPlaintext(t, raw, values...)
}

func testMovedValue(t *testing.T, h Harness) {
	s := newStore(t, h)
	keys := newKeys(t, s, NewKeyring(t, "k1"))
	a, err := keys.Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := s.Get(ctx(t), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	moved := ra
	moved.ID = RandomID(t)
	if err := s.Create(ctx(t), moved); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get(ctx(t), moved.ID); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get(moved value) = %v, want ErrSealed", err)
	}
	tampered := ra
	tampered.ID = RandomID(t)
	tampered.Sealed = append([]byte(nil), ra.Sealed...)
	tampered.Sealed[len(tampered.Sealed)-1] ^= 1
	if err := s.Create(ctx(t), tampered); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get(ctx(t), tampered.ID); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get(tampered value) = %v, want ErrSealed", err)
	}
}

func testKEKCheck(t *testing.T, h Harness) {
	s := newStore(t, h)
	right := NewKeyring(t, "k1")
	if err := newKeys(t, s, right).CheckKEKs(ctx(t)); err != nil {
		t.Fatalf("first check: %v", err)
	}
	if err := newKeys(t, s, right).CheckKEKs(ctx(t)); err != nil {
		t.Fatalf("second check with the same kek: %v", err)
	}
	wrong := NewKeyring(t, "k1") // same ID, different bytes
	if err := newKeys(t, s, wrong).CheckKEKs(ctx(t)); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("check with a different kek under the same id = %v, want ErrSealed", err)
	}
}

func testKEKRotation(t *testing.T, h Harness) {
	s := newStore(t, h)
	oldLine, newLine := KEKLine(t, "old"), KEKLine(t, "new")
	old := RingFromLines(t, oldLine)
	k1, err := newKeys(t, s, old).Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Rotate: the new KEK first seals new values, the old one still opens old ones.
	rotated := newKeys(t, s, RingFromLines(t, newLine, oldLine))
	if err := rotated.CheckKEKs(ctx(t)); err != nil {
		t.Fatal(err)
	}
	k2, err := rotated.Create(ctx(t), keystore.Key{ID: RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []keystore.Key{k1, k2} {
		got, err := rotated.Get(ctx(t), want.ID)
		if err != nil || got.Value != want.Value {
			t.Fatalf("after rotation, Get(%s) = %v", want.ID, err)
		}
	}
	// The new key is sealed under the new KEK: the old ring alone cannot open it.
	if _, err := newKeys(t, s, old).Get(ctx(t), k2.ID); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get of a new-kek value with only the old kek = %v, want ErrSealed", err)
	}
	// Without the old KEK the old key cannot be opened either.
	if _, err := newKeys(t, s, RingFromLines(t, newLine)).Get(ctx(t), k1.ID); !errors.Is(err, keystore.ErrSealed) {
		t.Fatalf("Get without the old kek = %v, want ErrSealed", err)
	}
}

func testRestart(t *testing.T, h Harness) {
	s := h.New(t)
	kr := NewKeyring(t, "k1")
	var created []keystore.Key
	for range 5 {
		k, err := newKeys(t, s, kr).Create(ctx(t), keystore.Key{ID: RandomID(t), Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, k)
	}
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	keys := newKeys(t, s, kr)
	for _, want := range created {
		got, err := keys.Get(ctx(t), want.ID)
		if err != nil {
			t.Fatalf("after restart, Get(%s): %v", want.ID, err)
		}
		if got.Value != want.Value {
			t.Fatalf("after restart, %s has another value", want.ID)
		}
	}
}

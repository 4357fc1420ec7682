package keystore

import (
	"crypto/rand"
	"errors"
	"testing"
)

// testRing returns a keyring of fresh KEKs with the given IDs, the first
// one primary.
func testRing(tb testing.TB, ids ...string) *Keyring {
	tb.Helper()
	var text []byte
	for _, id := range ids {
		line, err := GenerateKEKLine(rand.Reader, id)
		if err != nil {
			tb.Fatal(err)
		}
		text = append(text, line+"\n"...)
	}
	kr, err := ParseKeyring(text, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// BenchmarkOpen is the unsealing half of every uncached key request:
// Keys.open on a record as the store returned it.
func BenchmarkOpen(b *testing.B) {
	k := &Keys{ring: testRing(b, "kek-2026.11")}
	id := KeyID{0x0a, 0x4f, 0x6e, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	var value [16]byte
	sealed, err := k.ring.seal(keySlot(&id), value[:])
	if err != nil {
		b.Fatal(err)
	}
	r := Record{ID: id, Sealed: sealed}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.open(id, r); err != nil {
			b.Fatal(err)
		}
	}
}

// sealAs seals plaintext for s under k in format v, as that format's writer
// did: format 1 is no longer written, but its values must still open, or
// not, exactly as before.
func sealAs(tb testing.TB, k *kek, v byte, s slot, plaintext []byte) []byte {
	tb.Helper()
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		tb.Fatal(err)
	}
	out := append([]byte{v, byte(len(k.id))}, k.id...)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, s.appendAAD(nil, v, k.id))
}

// TestSealKindsSeparate: a value sealed for one kind never opens as
// another with the same name and the same plaintext size (the kind byte
// alone tells them apart), for the kinds there are and the next ones.
func TestSealKindsSeparate(t *testing.T) {
	// A 16-character KEK ID: the name of a content key, a key seed and
	// that KEK's check value alike.
	kr := testRing(t, "0123456789abcdef")
	name := []byte("0123456789abcdef")
	plain := []byte("sixteen bytes!!!")
	for a := sealKind(1); a <= 8; a++ {
		sealed, err := kr.seal(slot{a, name}, plain)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, len(plain))
		if err := kr.open(slot{a, name}, sealed, out); err != nil || string(out) != string(plain) {
			t.Fatalf("kind %d in its own slot: %v", a, err)
		}
		for b := sealKind(1); b <= 8; b++ {
			if b != a {
				if err := kr.open(slot{b, name}, sealed, out); !errors.Is(err, ErrSealed) {
					t.Errorf("kind %d opened as kind %d: %v", a, b, err)
				}
			}
		}
		// A kind added after format 1 has no format 1 values.
		if a > kindKEKCheck {
			if err := kr.open(slot{a, name}, sealAs(t, kr.primary, sealV1, slot{kindContentKey, name}, plain), out); !errors.Is(err, ErrSealed) {
				t.Errorf("kind %d opened a format 1 value: %v", a, err)
			}
		}
	}
}

// TestFormatV1Rule: the one format 1 confusion, a KEK's check value in the
// key whose KID is that check value's label, is refused, and nothing else
// format 1 wrote is.
func TestFormatV1Rule(t *testing.T) {
	kr := testRing(t, "abcdef", "ghijkl")
	abcdef, ghijkl := kr.byID["abcdef"], kr.byID["ghijkl"]
	kid := func(s string) *KeyID { var id KeyID; copy(id[:], s); return &id }
	plain := make([]byte, 16)
	out := make([]byte, 16)
	for _, c := range []struct {
		name  string
		k     *kek
		wrote slot // what format 1 sealed it for
		open  slot
		opens bool
	}{
		{"check value as the key of its label", abcdef, kekCheckSlot("abcdef"), keySlot(kid("kek-check/abcdef")), false},
		{"key kek-check/abcdef under abcdef", abcdef, keySlot(kid("kek-check/abcdef")), keySlot(kid("kek-check/abcdef")), false},
		{"key kek-check/abcdef under another kek", ghijkl, keySlot(kid("kek-check/abcdef")), keySlot(kid("kek-check/abcdef")), true},
		{"key kek-check/ghijkl under abcdef", abcdef, keySlot(kid("kek-check/ghijkl")), keySlot(kid("kek-check/ghijkl")), true},
		{"key kek-check/abcdeg under abcdef", abcdef, keySlot(kid("kek-check/abcdeg")), keySlot(kid("kek-check/abcdeg")), true},
		{"check value", abcdef, kekCheckSlot("abcdef"), kekCheckSlot("abcdef"), true},
		// A check value proves its own KEK only: the format 1 key
		// kek-check/abcdef sealed under ghijkl has the additional data of
		// a check value of abcdef sealed under ghijkl.
		{"check slot, value under another kek", ghijkl, keySlot(kid("kek-check/abcdef")), kekCheckSlot("abcdef"), false},
		{"check value of another kek", ghijkl, kekCheckSlot("ghijkl"), kekCheckSlot("abcdef"), false},
		{"key seed", abcdef, keySeedSlot(kid("kek-check/abcdef")), keySeedSlot(kid("kek-check/abcdef")), true},
		{"key seed as the key of its id", abcdef, keySeedSlot(kid("kek-check/abcdef")), keySlot(kid("kek-check/abcdef")), false},
	} {
		err := kr.open(c.open, sealAs(t, c.k, sealV1, c.wrote, plain), out)
		if c.opens && err != nil || !c.opens && !errors.Is(err, ErrSealed) {
			t.Errorf("%s: open = %v, want it to open: %v", c.name, err, c.opens)
		}
	}
}

// FuzzSealAAD: the additional data of a format 2 value determines its kind,
// name and KEK, so two different slots or KEKs never share it.
func FuzzSealAAD(f *testing.F) {
	f.Add(byte(1), []byte("kek-check/abcdef"), "abcdef", byte(3), []byte("abcdef"), "abcdef")
	f.Add(byte(1), []byte("0123456789abcdef"), "k1", byte(2), []byte("0123456789abcdef"), "k1")
	f.Add(byte(3), []byte("a"), "bc", byte(3), []byte("ab"), "c")
	f.Fuzz(func(t *testing.T, k1 byte, n1 []byte, e1 string, k2 byte, n2 []byte, e2 string) {
		if len(n1) > 255 || len(n2) > 255 || len(e1) > 255 || len(e2) > 255 {
			return
		}
		a := slot{sealKind(k1), n1}.appendAAD(nil, sealV2, e1)
		b := slot{sealKind(k2), n2}.appendAAD(nil, sealV2, e2)
		same := k1 == k2 && string(n1) == string(n2) && e1 == e2
		if same != (string(a) == string(b)) {
			t.Fatalf("(%d %q %q) and (%d %q %q): additional data %q and %q", k1, n1, e1, k2, n2, e2, a, b)
		}
		if len(a) != (slot{sealKind(k1), n1}).aadLen(sealV2, e1) {
			t.Fatalf("aadLen %d, appendAAD wrote %d", (slot{sealKind(k1), n1}).aadLen(sealV2, e1), len(a))
		}
	})
}

package keystore

import (
	"crypto/rand"
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
	sealed, err := k.ring.seal(id[:], value[:])
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

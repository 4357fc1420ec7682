package storetest

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// ImportKeys returns n keys with random IDs and values, as an import
// brings them (Method CreatedImport, half of them with an IV).
func ImportKeys(tb testing.TB, n int) []keystore.Key {
	tb.Helper()
	buf := make([]byte, n*32)
	if _, err := rand.Read(buf); err != nil {
		tb.Fatal(err)
	}
	iv := make([]byte, 16)
	keys := make([]keystore.Key, n)
	for i := range keys {
		k := keystore.Key{Type: keystore.EnvelopeEncryption, Method: keystore.CreatedImport}
		copy(k.ID[:], buf[i*32:])
		copy(k.Value[:], buf[i*32+16:])
		if i%2 == 0 {
			k.IV = iv
		}
		keys[i] = k
	}
	return keys
}

// BenchmarkImport measures keystore.Keys.Import of n new keys into fresh
// stores made by newStore (one store per iteration, made with the timer
// stopped), and, with again set, the re-import of the same n keys (all
// "unchanged"). It reports keys/s.
func BenchmarkImport(b *testing.B, newStore func(b *testing.B) keystore.Store, n int, again bool) {
	kr := NewKeyring(b, "k1")
	keys := ImportKeys(b, n)
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		s := newStore(b)
		k := keystore.NewKeys(s, kr, keystore.Options{Rand: rand.Reader, Timeout: 5 * time.Minute})
		ctx := context.Background()
		if again {
			if _, err := k.Import(ctx, keys); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		res, err := k.Import(ctx, keys)
		total += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		want := keystore.Created
		if again {
			want = keystore.Unchanged
		}
		for i, r := range res {
			if r.Status != want {
				b.Fatalf("result %d: %v, want %v", i, r.Status, want)
			}
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "keys/s")
}

package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// runCounter checks keystore.Counter, the use counters of token replay
// limits. Every backend is expected to keep them: without, a token with a
// replay limit is refused (503), never served unlimited.
func runCounter(t *testing.T, h Harness) {
	counter := func(t *testing.T, s keystore.Store) keystore.Counter {
		t.Helper()
		c, ok := s.(keystore.Counter)
		if !ok {
			t.Fatalf("%T is not a keystore.Counter: tokens with a replay limit (maxuses) would all be refused", s)
		}
		return c
	}
	digest := func(t *testing.T) [32]byte {
		var d [32]byte
		if _, err := rand.Read(d[:]); err != nil {
			t.Fatal(err)
		}
		return d
	}
	hour := time.Now().Add(time.Hour)
	count := func(t *testing.T, c keystore.Counter, d [32]byte, exp time.Time) int64 {
		t.Helper()
		n, err := c.CountUse(context.Background(), d, exp)
		if err != nil {
			t.Fatalf("CountUse: %v", err)
		}
		return n
	}

	t.Run("CounterCounts", func(t *testing.T) {
		c := counter(t, newStore(t, h))
		a, b := digest(t), digest(t)
		for want := int64(1); want <= 3; want++ {
			if n := count(t, c, a, hour); n != want {
				t.Fatalf("use %d of a counted %d", want, n)
			}
		}
		if n := count(t, c, b, hour); n != 1 {
			t.Fatalf("another digest starts at %d", n)
		}
	})
	t.Run("CounterConcurrent", func(t *testing.T) {
		c := counter(t, newStore(t, h))
		d := digest(t)
		const n = 40
		got := make([]int64, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i] = count(t, c, d, hour) })
		}
		wg.Wait()
		slices.Sort(got)
		for i, v := range got {
			if v != int64(i+1) {
				t.Fatalf("concurrent uses counted %v, want 1 to %d once each", got, n)
			}
		}
	})
	t.Run("CounterExpires", func(t *testing.T) {
		c := counter(t, newStore(t, h))
		d := digest(t)
		past := time.Now().Add(-time.Second)
		// A counter whose expiry has passed is forgotten: each use
		// starts again.
		for range 3 {
			if n := count(t, c, d, past); n != 1 {
				t.Fatalf("an expired counter counted %d", n)
			}
		}
		// The first use's expiry stands: a later call cannot shorten it.
		e := digest(t)
		count(t, c, e, hour)
		if n := count(t, c, e, past); n != 2 {
			t.Fatalf("a later expiry reset the counter: %d", n)
		}
		// Many expired counters, then live ones: every live one counts on.
		for range 20 {
			count(t, c, digest(t), past)
		}
		if n := count(t, c, e, hour); n != 3 {
			t.Fatalf("after expired counters were swept: %d", n)
		}
	})
	t.Run("CounterSurvivesRestart", func(t *testing.T) {
		s := h.New(t)
		d := digest(t)
		count(t, counter(t, s), d, hour)
		s = h.Reopen(t, s)
		t.Cleanup(func() { s.Close() })
		if n := count(t, counter(t, s), d, hour); n != 2 {
			t.Fatalf("after a restart the counter is at %d, want 2", n)
		}
	})
	t.Run("CounterCanceled", func(t *testing.T) {
		c := counter(t, newStore(t, h))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d := digest(t)
		if _, err := c.CountUse(ctx, d, hour); err == nil {
			t.Fatal("CountUse with a canceled context succeeded")
		}
		if n := count(t, c, d, hour); n != 1 {
			t.Fatalf("a canceled use was counted: %d", n)
		}
	})
	t.Run("CounterThroughKeys", func(t *testing.T) {
		s := newStore(t, h)
		k := keystore.NewKeys(s, NewKeyring(t, "kek-1"), keystore.Options{})
		d := digest(t)
		for want := int64(1); want <= 2; want++ {
			n, err := k.CountUse(context.Background(), d, hour)
			if err != nil || n != want {
				t.Fatalf("Keys.CountUse = %d, %v; want %d", n, err, want)
			}
		}
		if _, err := keystore.NewKeys(noCounter{s}, NewKeyring(t, "kek-1"), keystore.Options{}).CountUse(context.Background(), d, hour); !errors.Is(err, keystore.ErrUnavailable) {
			t.Fatalf("a store without counters: %v, want ErrUnavailable", err)
		}
	})
}

// noCounter hides a store's Counter.
type noCounter struct{ keystore.Store }

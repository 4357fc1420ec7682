package keystore_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// readCounting is a real bbolt store that counts Gets and, with plain set,
// reports taken IDs as a bare ErrExists, as a backend that does not read
// the stored record may.
type readCounting struct {
	keystore.Store
	plain bool
	gets  atomic.Int64
}

func (s *readCounting) Get(ctx context.Context, id keystore.KeyID) (keystore.Record, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *readCounting) CreateBatch(ctx context.Context, rs []keystore.Record) ([]error, error) {
	errs, err := s.Store.CreateBatch(ctx, rs)
	if s.plain {
		for i, e := range errs {
			if errors.Is(e, keystore.ErrExists) {
				errs[i] = keystore.ErrExists
			}
		}
	}
	return errs, err
}

// TestImportReadsNoKeyAgain: a repeated import learns the stored records
// from CreateBatch (no Get per key); with a store that reports a bare
// ErrExists it reads each taken key once, with the same results.
func TestImportReadsNoKeyAgain(t *testing.T) {
	for _, plain := range []bool{false, true} {
		bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "keys.db"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bolt.Close() })
		s := &readCounting{Store: bolt, plain: plain}
		// 6,000 keys are two bbolt transactions of up to 5,000: under -race
		// on a busy machine each takes seconds, so the store deadline only
		// catches a hang.
		keys := keystore.NewKeys(s, storetest.NewKeyring(t, "k1"), keystore.Options{Timeout: waittest.Timeout(t)})
		batch := storetest.ImportKeys(t, 6000)
		ctx := waittest.Context(t)
		if _, err := keys.Import(ctx, batch[:3000]); err != nil {
			t.Fatal(err)
		}
		batch[1].Value[0] ^= 1 // a conflict
		res, err := keys.Import(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			want := keystore.Created
			switch {
			case i == 1:
				want = keystore.Conflict
			case i < 3000:
				want = keystore.Unchanged
			}
			if r.Status != want || r.Key.ID != batch[i].ID {
				t.Fatalf("plain=%v: result %d: %v, want %v", plain, i, r.Status, want)
			}
		}
		wantGets := int64(0)
		if plain {
			wantGets = 3000
		}
		if n := s.gets.Load(); n != wantGets {
			t.Fatalf("plain=%v: the import made %d Gets, want %d", plain, n, wantGets)
		}
	}
}

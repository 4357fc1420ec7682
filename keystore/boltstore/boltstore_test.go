package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) keystore.Store {
			s, err := boltstore.Open(filepath.Join(t.TempDir(), "keys.db"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Reopen: func(t *testing.T, s keystore.Store) keystore.Store {
			path := s.(*boltstore.Store).Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := boltstore.Open(path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return s2
		},
		Raw: func(t *testing.T, s keystore.Store) []byte {
			b, err := os.ReadFile(s.(*boltstore.Store).Path())
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	})
}

func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("store file mode %o, want 600", perm)
	}
	_, err = boltstore.Open(path, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want an in-use error", err)
	}
}

// BenchmarkImport100k: keystore.Keys.Import of 100,000 new keys, then of
// the same keys again (all unchanged), into a bbolt file.
func BenchmarkImport100k(b *testing.B) {
	newStore := func(b *testing.B) keystore.Store {
		s, err := boltstore.Open(filepath.Join(b.TempDir(), "keys.db"), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("New", func(b *testing.B) { storetest.BenchmarkImport(b, newStore, 100_000, false) })
	b.Run("Again", func(b *testing.B) { storetest.BenchmarkImport(b, newStore, 100_000, true) })
}

// TestCreateBatchReportsStored: a taken ID answers a *keystore.ExistsError
// with the record as stored, read in the same transaction; across more
// than one transaction, with a KID repeated in the batch.
func TestCreateBatchReportsStored(t *testing.T) {
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "keys.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	keys := storetest.ImportKeys(t, 25_000)
	batch := make([]keystore.Record, len(keys))
	for i, k := range keys {
		batch[i] = keystore.Record{ID: k.ID, Sealed: k.Value[:], Name: fmt.Sprint(i)}
	}
	if _, err := s.CreateBatch(ctx, batch[:10_000]); err != nil {
		t.Fatal(err)
	}
	batch = append(batch, batch[20_000])
	errs, err := s.CreateBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		var ee *keystore.ExistsError
		switch want := batch[min(i, 20_000)]; {
		case i >= 10_000 && i < 25_000:
			if e != nil {
				t.Fatalf("result %d = %v, want nil", i, e)
			}
		case !errors.As(e, &ee) || ee.ID != want.ID || ee.Stored.ID != want.ID || ee.Stored.Name != want.Name:
			t.Fatalf("result %d = %v, want an ExistsError with the stored record", i, e)
		}
	}
}

package boltstore_test

import (
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

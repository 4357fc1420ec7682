package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
)

// TestOpenReadOnly: a read-only open reads what a store holds, writes
// nothing, never creates a file, and while another process holds the file
// (here: a read-write open, whose lock is the same flock) fails saying so.
func TestOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	if _, err := OpenReadOnly(path, time.Second); !errors.Is(err, ErrNoStore) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("OpenReadOnly created the file")
	}
	rw, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rw.CreateMeta(ctx, "kek-check/k1", []byte{1}); err != nil {
		t.Fatal(err)
	}
	// Held by a writer: refused after the lock timeout, not hung.
	if _, err := OpenReadOnly(path, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("while held: %v", err)
	}
	rw.Close()
	ro, err := OpenReadOnly(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if v, err := ro.GetMeta(ctx, "kek-check/k1"); err != nil || len(v) != 1 {
		t.Fatalf("GetMeta: %v %v", v, err)
	}
	if err := ro.CreateMeta(ctx, "x", []byte{1}); err == nil {
		t.Fatal("a read-only store wrote")
	}
	if err := ro.Create(ctx, keystore.Record{ID: keystore.KeyID{1}, Sealed: []byte{1}}); err == nil {
		t.Fatal("a read-only store created a key")
	}
	// Not a store: refused.
	other := filepath.Join(t.TempDir(), "other.db")
	if err := os.WriteFile(other, []byte("not bolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReadOnly(other, time.Second); err == nil {
		t.Fatal("opened a file that is not a store")
	}
}

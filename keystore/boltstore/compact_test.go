package boltstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// TestCompactRemovesPurgedValue (issue 12: "a purged key can still be
// recovered from a copy of the bbolt file (free pages)"): after a purge
// the sealed value is still in the file; after Compact it is not, and the
// other keys are all there.
func TestCompactRemovesPurgedValue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	store, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ring := storetest.NewKeyring(t, "kek-1")
	keys := keystore.NewKeys(store, ring, keystore.Options{Rand: rand.Reader})
	var ids []keystore.KeyID
	for i := range 20 {
		k, err := keys.Create(ctx, keystore.Key{ID: keystore.KeyID{byte(i + 1)}, Name: strings.Repeat("n", 200)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, k.ID)
	}
	victim := ids[7]
	rec, err := store.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	sealed := []byte(base64.StdEncoding.EncodeToString(rec.Sealed)) // as the record stores it
	if _, err := keys.Delete(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := keys.Purge(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, victim); err == nil {
		t.Fatal("the purged key is still readable")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, sealed) {
		t.Fatal("the purged value is not in the file's free pages: the test shows nothing")
	}

	before, after, err := boltstore.Compact(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, sealed) {
		t.Fatal("the purged key's sealed value is still in the compacted file")
	}
	if after > before || int64(len(raw)) != after {
		t.Errorf("size %d before, %d after (file %d)", before, after, len(raw))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), ".keys.db.compact")); !os.IsNotExist(err) {
		t.Errorf("the temporary file was left: %v", err)
	}
	// Every other key is there and opens.
	store, err = boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	keys = keystore.NewKeys(store, ring, keystore.Options{})
	if err := keys.CheckKEKs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		_, err := keys.Get(ctx, id)
		if (err == nil) == (id == victim) {
			t.Errorf("key %s after compaction: %v", id, err)
		}
	}
}

// TestCompactWhileOpen: a store in use is not compacted.
func TestCompactWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := boltstore.Compact(path, 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Compact of an open store: %v", err)
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore/boltstore"
)

// TestStoreCompact: kdctl store compact rewrites a stopped server's bbolt
// file (the purged value's removal is proven in keystore/boltstore), and
// refuses one in use.
func TestStoreCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := boltstore.Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := kdctl(t, nil, "store", "compact", "bolt:"+path)
	if r.code != exitRefused || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("a store in use: %d %q", r.code, r.stderr)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r = kdctl(t, nil, "store", "compact", "bolt:"+path)
	if r.code != 0 || !strings.Contains(r.stdout, "compacted") {
		t.Fatalf("compact: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if s, err = boltstore.Open(path, time.Second); err != nil {
		t.Fatalf("the compacted file does not open: %v", err)
	}
	s.Close()
	if r := kdctl(t, nil, "store", "compact"); r.code != exitUsage {
		t.Fatalf("no path: %d", r.code)
	}
	if r := kdctl(t, nil, "store", "compact", filepath.Join(t.TempDir(), "missing.db")); r.code != exitRefused {
		t.Fatalf("a missing file: %d %q", r.code, r.stderr)
	}
}

// Package keystest gives tests a real keystore.Keys: sealed under a fresh
// KEK, on a real bbolt file in the test's temporary directory. It is
// imported only by tests.
package keystest

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// New returns a Keys over a new bbolt file, closed when the test ends. o's
// Rand defaults to crypto/rand; the KEK check value is written, as the
// server does at startup.
func New(tb testing.TB, o keystore.Options) *keystore.Keys {
	tb.Helper()
	store, err := boltstore.Open(filepath.Join(tb.TempDir(), "keys.db"), time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	keys := keystore.NewKeys(store, storetest.NewKeyring(tb, "kek-test"), o)
	if err := keys.CheckKEKs(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return keys
}

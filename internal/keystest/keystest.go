// Package keystest gives tests a real keystore.Keys: sealed under a fresh
// KEK, on a real bbolt file in the test's temporary directory. It is
// imported only by tests.
package keystest

import (
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// New returns a Keys over a new bbolt file, closed when the test ends. o's
// Rand defaults to crypto/rand, and its Timeout to one that only catches a
// hang (waittest.Timeout), not keystore.DefaultTimeout: a bbolt write
// fsyncs, and a -race run on a busy machine may take seconds over it. The
// KEK check value is written, as the server does at startup.
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
	if o.Timeout == 0 {
		o.Timeout = waittest.Timeout(tb)
	}
	keys := keystore.NewKeys(store, storetest.NewKeyring(tb, "kek-test"), o)
	if err := keys.CheckKEKs(waittest.Context(tb)); err != nil {
		tb.Fatal(err)
	}
	return keys
}

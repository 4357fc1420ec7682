package redisstore

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// TestNotifyReachesOtherServers: two servers on one Redis; a soft delete
// through the first is announced to the second's listener, and a lost
// connection is reported as "anything may have changed".
func TestNotifyReachesOtherServers(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := mustNew(t, Options{URL: srv.URL()})
	b := mustNew(t, Options{URL: srv.URL()})
	type change struct {
		id  keystore.KeyID
		all bool
	}
	changes := make(chan change, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, func(id keystore.KeyID, all bool) { changes <- change{id, all} }) }()
	next := func() change {
		t.Helper()
		return waittest.Receive(t, changes, "a change announcement")
	}
	if c := next(); !c.all {
		t.Fatalf("first event %+v, want the subscription (all)", c)
	}
	keys := keystore.NewKeys(a, storetest.NewKeyring(t, "k1"), keystore.Options{Rand: rand.Reader, Timeout: waittest.Timeout(t)})
	k, err := keys.Create(waittest.Context(t), keystore.Key{ID: storetest.RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Delete(waittest.Context(t), k.ID); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.all || c.id != k.ID {
		t.Fatalf("after Delete: %+v, want %s", c, k.ID)
	}
	// Redis restarts: the listener reports that anything may have changed.
	srv.Stop(t)
	srv.Restart(t)
	for !next().all {
	}
	cancel()
	if err := waittest.Receive(t, done, "Listen to return after cancel"); err != nil {
		t.Fatalf("Listen returned %v", err)
	}
}

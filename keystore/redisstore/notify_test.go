package redisstore

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
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
		select {
		case c := <-changes:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no change announced")
		}
		return change{}
	}
	if c := next(); !c.all {
		t.Fatalf("first event %+v, want the subscription (all)", c)
	}
	keys := keystore.NewKeys(a, storetest.NewKeyring(t, "k1"), keystore.Options{Rand: rand.Reader})
	k, err := keys.Create(ctxT(t, 5*time.Second), keystore.Key{ID: storetest.RandomID(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Delete(ctxT(t, 5*time.Second), k.ID); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.all || c.id != k.ID {
		t.Fatalf("after Delete: %+v, want %s", c, k.ID)
	}
	// Redis restarts: the listener reports that anything may have changed.
	srv.Stop(t)
	srv.Restart(t)
	deadline := time.After(10 * time.Second)
	for sawAll := false; !sawAll; {
		select {
		case c := <-changes:
			sawAll = c.all
		case <-deadline:
			t.Fatal("no all-changed event after Redis restarted")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not return after cancel")
	}
}

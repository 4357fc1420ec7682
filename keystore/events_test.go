package keystore_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/boltstore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// changeLog collects change events.
type changeLog struct {
	mu  sync.Mutex
	got []keystore.Change
}

func (l *changeLog) add(ch keystore.Change) { l.mu.Lock(); l.got = append(l.got, ch); l.mu.Unlock() }

func (l *changeLog) take() []keystore.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = nil
	return got
}

// TestSubscribe: every change this Keys makes reaches every subscriber,
// once, until it unsubscribes.
func TestSubscribe(t *testing.T) {
	keys := keystest.New(t, keystore.Options{})
	ctx := context.Background()
	var a, b changeLog
	keys.Subscribe(a.add)
	stopB := keys.Subscribe(b.add)
	id := storetest.RandomID(t)
	if _, err := keys.Create(ctx, keystore.Key{ID: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	stopB()
	if _, err := keys.Restore(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := keys.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	imported := storetest.RandomID(t)
	if _, err := keys.Import(ctx, []keystore.Key{{ID: imported, Value: [16]byte{1}}}); err != nil {
		t.Fatal(err)
	}
	// A refused change is no change.
	if _, err := keys.Create(ctx, keystore.Key{ID: imported, Value: [16]byte{2}}); err == nil {
		t.Fatal("overwrote a key")
	}
	one := keystore.Change{ID: id}
	want := []keystore.Change{one, one, one, one, one, {ID: imported}}
	if got := a.take(); !slices.Equal(got, want) {
		t.Errorf("subscriber a got %v, want %v", got, want)
	}
	if got := b.take(); !slices.Equal(got, want[:2]) {
		t.Errorf("subscriber b got %v after unsubscribing, want %v", got, want[:2])
	}
}

// notifyingStore is a store whose Listen replays the announcements sent on
// its channel, as a shared store (Redis pub/sub) delivers other servers'.
type notifyingStore struct {
	keystore.Store
	announce chan keystore.Change
}

func (s notifyingStore) Notify(context.Context, []keystore.KeyID) error { return nil }

func (s notifyingStore) Listen(ctx context.Context, fn func(keystore.KeyID, bool)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch := <-s.announce:
			fn(ch.ID, ch.All)
		}
	}
}

// TestWatch: Watch relays the store's announcements to the subscribers and
// returns when its context ends; over a store that announces nothing it
// returns at once.
func TestWatch(t *testing.T) {
	bolt, err := boltstore.Open(t.TempDir()+"/keys.db", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	ring := storetest.NewKeyring(t, "k1")
	if err := keystore.NewKeys(bolt, ring, keystore.Options{}).Watch(context.Background()); err != nil {
		t.Fatalf("Watch over bbolt: %v", err)
	}
	s := notifyingStore{Store: bolt, announce: make(chan keystore.Change)}
	keys := keystore.NewKeys(s, ring, keystore.Options{})
	var log changeLog
	keys.Subscribe(log.add)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- keys.Watch(ctx) }()
	id := storetest.RandomID(t)
	s.announce <- keystore.Change{ID: id}
	s.announce <- keystore.Change{All: true}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := log.take(), []keystore.Change{{ID: id}, {All: true}}; !slices.Equal(got, want) {
		t.Errorf("relayed %v, want %v", got, want)
	}
}

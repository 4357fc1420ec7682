package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// TestBlobsAndLocks: blobs round-trip with their time, list by prefix,
// delete; a lock has one holder at a time, is renewed and released only by
// its token, and frees itself when its holder stops renewing it.
func TestBlobsAndLocks(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := New(Options{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before := time.Now()
	if _, _, found, err := s.GetBlob(ctx, "a/b"); err != nil || found {
		t.Fatalf("absent blob: found %v, err %v", found, err)
	}
	for _, n := range []string{"acme/acct/key", "acme/certs/x.crt", "acme/certs/x.key", "other"} {
		if err := s.PutBlob(ctx, n, []byte("value of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	v, mod, found, err := s.GetBlob(ctx, "acme/certs/x.key")
	if err != nil || !found || string(v) != "value of acme/certs/x.key" || mod.Before(before.Add(-time.Second)) {
		t.Fatalf("GetBlob: %q %v %v %v", v, mod, found, err)
	}
	names, err := s.ListBlobs(ctx, "acme/certs/")
	if err != nil || strings.Join(names, ",") != "acme/certs/x.crt,acme/certs/x.key" {
		t.Fatalf("ListBlobs: %v %v", names, err)
	}
	if err := s.DeleteBlob(ctx, "acme/certs/x.crt"); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.ListBlobs(ctx, "acme/"); strings.Join(names, ",") != "acme/acct/key,acme/certs/x.key" {
		t.Fatalf("after delete: %v", names)
	}

	if ok, err := s.TryLock(ctx, "issue", "A", time.Minute); !ok || err != nil {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if ok, _ := s.TryLock(ctx, "issue", "B", time.Minute); ok {
		t.Fatal("a held lock was taken again")
	}
	if ok, _ := s.RenewLock(ctx, "issue", "B", time.Minute); ok {
		t.Fatal("a lock was renewed by a token that does not hold it")
	}
	if err := s.Unlock(ctx, "issue", "B"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.TryLock(ctx, "issue", "B", time.Minute); ok {
		t.Fatal("a lock was released by a token that does not hold it")
	}
	if ok, _ := s.RenewLock(ctx, "issue", "A", 50*time.Millisecond); !ok {
		t.Fatal("the holder could not renew its lock")
	}
	// A stopped renewing: the lock frees itself.
	waittest.For(t, "the abandoned lock to expire", func() bool {
		ok, _ := s.TryLock(ctx, "issue", "B", time.Minute)
		return ok
	})
	if err := s.Unlock(ctx, "issue", "B"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.TryLock(ctx, "issue", "C", time.Minute); !ok {
		t.Fatal("an unlocked lock could not be taken")
	}
}

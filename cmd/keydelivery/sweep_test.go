package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

// TestSweepDeletedPurgesAndAudits: keys deleted longer ago than the
// retention are purged for good, live and recently deleted keys are not,
// and the purge is in the audit log.
func TestSweepDeletedPurgesAndAudits(t *testing.T) {
	// The keys' clock and the sweeper's are the test's: "old" is deleted
	// an hour before "recent", and the retention is half an hour.
	var clock atomic.Pointer[time.Time]
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	setNow := func(t time.Time) { clock.Store(&t) }
	now := func() time.Time { return *clock.Load() }
	setNow(t0)
	keys := keystest.New(t, keystore.Options{Now: now})
	ctx := context.Background()
	mk := func() keystore.KeyID {
		k := keystore.Key{Value: randomKey(t)}
		id := randomKey(t)
		k.ID = keystore.KeyID(id)
		k, err := keys.Create(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID
	}
	old, live := mk(), mk()
	if _, err := keys.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	setNow(t0.Add(time.Hour))
	recent := mk()
	if _, err := keys.Delete(ctx, recent); err != nil {
		t.Fatal(err)
	}

	var buf syncBuffer
	log := audit.New(&buf, nil)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		// Retention 30m: "old" is past it, "recent" (deleted now) is not.
		sweepDeleted(sctx, keys, log, 30*time.Minute, time.Hour, now, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	waittest.For(t, "the first sweep's audit record", func() bool { return strings.Contains(buf.String(), old.String()) })
	cancel()
	<-done

	var rec struct {
		Credential, Source, Operation, Result string
		KIDs                                  []string
	}
	if err := json.Unmarshal(bytes.TrimSpace([]byte(buf.String())), &rec); err != nil {
		t.Fatalf("audit log %q: %v", buf.String(), err)
	}
	if rec.Credential != "system" || rec.Source != "retention" || rec.Operation != "keys.purge" || rec.Result != "ok" ||
		len(rec.KIDs) != 1 || rec.KIDs[0] != old.String() {
		t.Fatalf("audit record %+v", rec)
	}
	if _, err := keys.Metadata(ctx, old); !errors.Is(err, keystore.ErrNotFound) || errors.Is(err, keystore.ErrDeleted) {
		t.Fatalf("old deleted key: %v, want purged", err)
	}
	if _, err := keys.Get(ctx, live); err != nil {
		t.Fatalf("live key: %v", err)
	}
	if _, err := keys.Metadata(ctx, recent); err != nil {
		t.Fatalf("recently deleted key: %v, want kept", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
)

// TestSweepDeletedPurgesAndAudits: keys deleted longer ago than the
// retention are purged for good, live and recently deleted keys are not,
// and the purge is in the audit log.
func TestSweepDeletedPurgesAndAudits(t *testing.T) {
	keys := keystest.New(t, keystore.Options{})
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
	time.Sleep(20 * time.Millisecond)
	recent := mk()
	if _, err := keys.Delete(ctx, recent); err != nil {
		t.Fatal(err)
	}

	var buf syncBuffer
	audit := admin.NewAudit(&buf, nil)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		// Retention 10ms: "old" is past it, "recent" (deleted just now) is not.
		sweepDeleted(sctx, keys, audit, 10*time.Millisecond, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), old.String()) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
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

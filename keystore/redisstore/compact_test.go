package redisstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// TestCompactRewritesAOF (issue 12: "a purged key can still be recovered
// ... from the Redis AOF until a rewrite"): the purged key's sealed value
// is in the append-only files after the purge, and gone once the rewrite
// Keys.CompactAfterPurges starts has finished.
func TestCompactRewritesAOF(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Persistence: true})
	s := mustNew(t, Options{URL: srv.URL()})
	ctx := waittest.Context(t)
	keys := keystore.NewKeys(s, storetest.NewKeyring(t, "kek-1"), keystore.Options{})
	victim := keystore.KeyID{7}
	for _, id := range []keystore.KeyID{{1}, victim, {9}} {
		if _, err := keys.Create(ctx, keystore.Key{ID: id, Value: [16]byte{id[0], 1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := s.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	sealed := []byte(base64.StdEncoding.EncodeToString(rec.Sealed))
	if did, err := keys.CompactAfterPurges(ctx); did || err != nil {
		t.Fatalf("compacted with nothing purged: %v %v", did, err)
	}
	if _, err := keys.Delete(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := keys.Purge(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(aofBytes(t, srv), sealed) {
		t.Fatal("the purged value is not in the append-only files: the test shows nothing")
	}
	if did, err := keys.CompactAfterPurges(ctx); !did || err != nil {
		t.Fatalf("CompactAfterPurges after a purge: %v %v", did, err)
	}
	c := rawClient(t, srv, 0)
	waittest.For(t, "the AOF rewrite to finish", func() bool {
		info, err := c.Info(context.Background(), "persistence").Result()
		return err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") &&
			!bytes.Contains(aofBytes(t, srv), sealed)
	})
	if info, _ := c.Info(ctx, "persistence").Result(); !strings.Contains(info, "aof_last_bgrewrite_status:ok") {
		t.Fatalf("rewrite failed: %s", info)
	}
	// The other keys survive a restart from the rewritten files.
	srv.Restart(t)
	for _, id := range []keystore.KeyID{{1}, {9}} {
		if _, err := keys.Get(ctx, id); err != nil {
			t.Errorf("key %s after the rewrite and a restart: %v", id, err)
		}
	}
}

// aofBytes is every file under the server's directory but its config and
// log: the append-only files.
func aofBytes(t *testing.T, srv *redistest.Server) []byte {
	t.Helper()
	var all []byte
	err := filepath.Walk(srv.Dir, func(p string, fi os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil // a file Redis replaced while the walk ran
		}
		if err != nil || fi.IsDir() || strings.HasSuffix(p, ".conf") || strings.HasSuffix(p, ".log") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		all = append(all, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

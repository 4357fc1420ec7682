package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// TestConformanceAutoPipeline runs the whole store suite with the key reads
// going through the autopipeliner.
func TestConformanceAutoPipeline(t *testing.T) {
	conformance(t, func(t *testing.T) (*redistest.Server, Options) {
		srv := redistest.Start(t, redistest.Options{Persistence: true})
		return srv, Options{URL: srv.URL(), Prefix: DefaultPrefix, AutoPipeline: true}
	}, func(*testing.T, *redistest.Server) {})
}

// TestAutoPipelineConcurrentReads: many readers at once each get their own
// record, never another's, the missing ones get ErrNotFound, and the reads
// share a few connections instead of taking one each (which is what the
// option is for; a plain client opens about one per concurrent reader).
func TestAutoPipelineConcurrentReads(t *testing.T) {
	const readers, rounds = 64, 50
	for _, auto := range []bool{false, true} {
		t.Run("AutoPipeline="+strconv.FormatBool(auto), func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			s := mustNew(t, Options{URL: srv.URL(), AutoPipeline: auto, PoolSize: readers})
			ids := make([]keystore.KeyID, readers)
			for i := range ids {
				ids[i] = storetest.RandomID(t)
				if i%4 == 3 {
					continue // missing
				}
				r := keystore.Record{ID: ids[i], Sealed: []byte("sealed-" + strconv.Itoa(i)), Created: time.Now(), Updated: time.Now()}
				if err := s.Create(waittest.Context(t), r); err != nil {
					t.Fatal(err)
				}
			}
			ctx := waittest.Context(t)
			start := make(chan struct{})
			errs := make(chan error, readers)
			var wg sync.WaitGroup
			for i := range readers {
				wg.Go(func() {
					<-start
					for range rounds {
						got, err := s.Get(ctx, ids[i])
						switch {
						case i%4 == 3:
							if !errors.Is(err, keystore.ErrNotFound) {
								errs <- fmt.Errorf("reader %d: Get(missing) = %v, want ErrNotFound", i, err)
								return
							}
						case err != nil:
							errs <- fmt.Errorf("reader %d: %w", i, err)
							return
						case got.ID != ids[i] || !bytes.Equal(got.Sealed, []byte("sealed-"+strconv.Itoa(i))):
							errs <- fmt.Errorf("reader %d got %s %q", i, got.ID, got.Sealed)
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			n := connectedClients(t, srv)
			t.Logf("%d connections for %d concurrent readers", n, readers)
			// One of the connections is rawClient's own.
			if auto && n > 8 {
				t.Fatalf("auto-pipelined reads used %d connections for %d readers, want a few", n, readers)
			}
			if !auto && n <= 8 {
				t.Fatalf("plain reads used only %d connections for %d readers: the comparison says nothing", n, readers)
			}
		})
	}
}

// connectedClients is INFO clients' connected_clients.
func connectedClients(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	info, err := rawClient(t, srv, 0).Info(waittest.Context(t), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no connected_clients in %q", info)
	return 0
}

// TestAutoPipelineFailures: an auto-pipelined read fails the way a plain
// one does: ErrUnavailable from a server that never answers (within the
// socket timeouts) or after Close, context.Canceled for a caller that gave up.
func TestAutoPipelineFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	accepted := make(chan net.Conn, 16)
	t.Cleanup(func() {
		l.Close()
		close(accepted)
		for c := range accepted {
			c.Close()
		}
		conns.Wait()
	})
	conns.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	})
	hung, err := New(Options{URL: "redis://" + l.Addr().String(), AutoPipeline: true,
		ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	start := time.Now()
	if _, err := hung.Get(ctxT(t, 5*time.Second), storetest.RandomID(t)); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Get from a server that never answers = %v, want ErrUnavailable", err)
	}
	t.Logf("gave up after %v", time.Since(start).Round(time.Millisecond))

	srv := redistest.Start(t, redistest.Options{})
	s := mustNew(t, Options{URL: srv.URL(), AutoPipeline: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, storetest.RandomID(t)); !errors.Is(err, context.Canceled) || errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Get with a canceled context = %v, want context.Canceled only", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctxT(t, time.Second), storetest.RandomID(t)); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Get after Close = %v, want ErrUnavailable", err)
	}
}

package redisstore

import (
	"strconv"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/storetest"
)

// BenchmarkGet reads stored records from many goroutines at once
// (RunParallel, 64 per CPU), one round trip each or auto-pipelined: what
// the delivery plane's uncached key reads do under load.
func BenchmarkGet(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ids := make([]keystore.KeyID, 256)
	for _, auto := range []bool{false, true} {
		b.Run("AutoPipeline="+strconv.FormatBool(auto), func(b *testing.B) {
			s, err := New(Options{URL: srv.URL(), AutoPipeline: auto, PoolSize: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for i := range ids {
				if ids[i] == (keystore.KeyID{}) {
					ids[i] = storetest.RandomID(b)
					r := keystore.Record{ID: ids[i], Sealed: make([]byte, 60), Created: time.Now(), Updated: time.Now()}
					if err := s.Create(waittest.Context(b), r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.SetParallelism(64)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := waittest.Context(b)
				i := 0
				for pb.Next() {
					if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

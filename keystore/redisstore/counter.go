package redisstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/keystore"
)

var _ keystore.Counter = (*Store)(nil)

// countUse adds one to a counter and, when it is new, sets its expiry, in
// one atomic step. A counter past its expiry is gone (Redis removes it),
// so it starts again at 1.
var countUse = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end
return n`)

// usesName is the Redis key of a token's use counter: the digest in hex,
// never the token.
func (s *Store) usesName(digest [32]byte) string {
	return s.prefix + "uses:" + hex.EncodeToString(digest[:])
}

// CountUse implements keystore.Counter with one script call (EVALSHA, or
// EVAL the first time): INCR, and PEXPIREAT on a new counter. One key per
// call, so it works on Redis Cluster.
func (s *Store) CountUse(ctx context.Context, digest [32]byte, expires time.Time) (int64, error) {
	n, err := countUse.Run(ctx, s.c, []string{s.usesName(digest)}, expires.UnixMilli()).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: count use: %w", translate(err))
	}
	return n, nil
}

package redisstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/keystore"
)

var _ keystore.Compactor = (*Store)(nil)

// Compact implements keystore.Compactor: BGREWRITEAOF on the server, or on
// every primary of a cluster, so that the append-only file stops holding
// the sealed values of purged keys once Redis has rewritten it (in the
// background; this returns when it has started). A rewrite already running
// counts as started. RDB snapshots are not touched: one taken before a
// purge keeps the value until the next snapshot replaces it.
func (s *Store) Compact(ctx context.Context) error {
	rewrite := func(ctx context.Context, c redis.Cmdable) error {
		err := c.BgRewriteAOF(ctx).Err()
		// Redis answers a rewrite in progress with an error and no code
		// of its own: the text is all there is to tell.
		if err != nil && strings.Contains(err.Error(), "already in progress") {
			return nil
		}
		return err
	}
	var err error
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return rewrite(ctx, c) })
	} else {
		err = rewrite(ctx, s.c)
	}
	if err != nil {
		return fmt.Errorf("redisstore: bgrewriteaof: %w", translate(err))
	}
	return nil
}

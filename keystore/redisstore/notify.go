package redisstore

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/keydelivery/keydelivery/keystore"
)

var _ keystore.Notifier = (*Store)(nil)

// changesChannel is the pub/sub channel on which servers sharing this
// store announce deleted, restored and purged keys. On Redis Cluster a
// PUBLISH reaches subscribers on every node.
func (s *Store) changesChannel() string { return s.prefix + "changes" }

// Notify implements keystore.Notifier: one PUBLISH per KID (32 hex
// digits), pipelined.
func (s *Store) Notify(ctx context.Context, ids []keystore.KeyID) error {
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Publish(ctx, s.changesChannel(), hex.EncodeToString(id[:]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: notify: %w", translate(err))
	}
	return nil
}

// Listen implements keystore.Notifier. go-redis reconnects a lost
// subscription by itself; every (re)subscription is reported as fn(_,
// true), since announcements made while it was down are lost. While the
// connection is down nothing is reported: caches keep serving what they
// hold until their TTL (the store is down, so nothing can change).
func (s *Store) Listen(ctx context.Context, fn func(id keystore.KeyID, all bool)) error {
	sub := s.c.Subscribe(ctx, s.changesChannel())
	defer sub.Close()
	// The channel form runs go-redis' own receive loop, with health checks
	// and reconnection, and lets ctx end the wait.
	ch := sub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-ch:
			if !ok {
				return nil
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				fn(keystore.KeyID{}, true)
			case *redis.Message:
				var id keystore.KeyID
				if b, err := hex.DecodeString(m.Payload); err == nil && len(b) == len(id) {
					copy(id[:], b)
					fn(id, false)
				}
			}
		}
	}
}

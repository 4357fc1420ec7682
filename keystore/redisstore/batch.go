package redisstore

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the key reads (GET) of concurrent callers to Redis
// together: a read that arrives while maxInFlight batches are out waits in
// the queue, and the queue leaves as one pipeline (of at most maxBatch
// reads) when a batch comes back. A lone read leaves at once, as a
// pipeline of one. So a burst of reads costs a few round trips, on a few
// connections, instead of one each.
//
// Unlike go-redis' autopipeliner, every read keeps its own deadline: the
// caller waits for its answer or its context, whichever ends first, and a
// read whose caller has gone (its context ended while it was queued) is
// dropped from the queue, never sent. A batch in flight is bounded by its
// readers' latest deadline and by the socket timeouts; its answers for
// readers that have gone are dropped.
type batcher struct {
	c redis.UniversalClient

	mu       sync.Mutex
	queue    []*read
	inFlight int
	closed   bool
}

const (
	// maxInFlight is the most batches out at once: with one stalled (a
	// Redis node that stopped answering) the next reads still leave.
	maxInFlight = 4
	// maxBatch is the most reads in one pipeline.
	maxBatch = 512
)

// read is one caller's GET.
type read struct {
	ctx  context.Context
	key  string
	done chan struct{}
	val  []byte
	err  error
}

func newBatcher(c redis.UniversalClient) *batcher { return &batcher{c: c} }

// get reads key, with the others queued meanwhile. It returns at ctx's end
// at the latest, with ctx's error.
func (b *batcher) get(ctx context.Context, key string) ([]byte, error) {
	r := &read{ctx: ctx, key: key, done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, redis.ErrClosed
	}
	if b.inFlight < maxInFlight {
		// A free slot: this read leaves at once, as a batch of one (on a
		// goroutine of its own: the caller waits for it or its context,
		// whichever ends first, since go-redis does not end every call at
		// its context's deadline: a Cluster client's retries after a
		// master died can outlast it).
		b.inFlight++
		b.mu.Unlock()
		go b.run([]*read{r})
	} else {
		b.queue = append(b.queue, r)
		b.mu.Unlock()
	}
	select {
	case <-r.done:
		return r.val, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends batch, then every batch the queue holds by the time it is
// back, until the queue is empty.
func (b *batcher) run(batch []*read) {
	for batch != nil {
		b.send(batch)
		batch = b.take()
	}
}

// take takes the next batch from the queue (at most maxBatch reads,
// without those whose callers have gone: they are never sent), or, when
// there is none, gives up the caller's slot and returns nil.
func (b *batcher) take() []*read {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*read
	for len(b.queue) > 0 && len(batch) < maxBatch {
		r := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		if r.ctx.Err() != nil {
			continue // its caller has gone: not sent
		}
		batch = append(batch, r)
	}
	if len(batch) == 0 {
		b.inFlight--
		return nil
	}
	return batch
}

// send sends one pipeline of GETs, bounded by the latest deadline among
// its readers (or by the socket timeouts alone when one has none).
func (b *batcher) send(batch []*read) {
	ctx := context.Background()
	if len(batch) == 1 {
		ctx = batch[0].ctx
	}
	var latest time.Time
	bounded := true
	for _, r := range batch {
		dl, ok := r.ctx.Deadline()
		if !ok {
			bounded = false
			break
		}
		if dl.After(latest) {
			latest = dl
		}
	}
	if bounded && len(batch) > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	cmds := make([]*redis.StringCmd, len(batch))
	_, _ = b.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range batch {
			cmds[i] = p.Get(ctx, r.key)
		}
		return nil
	})
	for i, r := range batch {
		r.val, r.err = cmds[i].Bytes()
		close(r.done)
	}
}

// close makes later reads fail with redis.ErrClosed; batches out finish.
func (b *batcher) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
}

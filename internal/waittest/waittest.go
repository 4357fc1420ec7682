// Package waittest holds the suite's one rule for how long a test waits.
//
// A test never sleeps and then asserts: it waits for a condition (For,
// Receive), and it hands correct operations a context (Context) or a
// per-call budget (Timeout) whose only job is to catch a hang. None of
// these tells fast from slow: their ceiling is the test binary's own
// -timeout (go test's default is 10 minutes, scripts/test.sh gives 15), less
// a margin, so that a -race run on a busy 2-core machine, however slow, does
// not reach it, while a test that does hang fails with its own message and
// runs its cleanups (stopping its redis-servers) before go test panics with
// every goroutine's stack.
//
// A deadline that is itself what a test checks (a store call against a
// stopped or silent server must give up within it) is not a wait and does
// not belong here. Import this package from tests only.
package waittest

import (
	"context"
	"testing"
	"time"
)

const (
	// margin is what is left of the -timeout when a wait gives up: time
	// for the failing test to report and clean up. A short -timeout keeps
	// a quarter of what remains instead.
	margin = 30 * time.Second
	// noTimeout is the ceiling, from now, when the binary has no -timeout
	// (go test -timeout 0) or t is a benchmark.
	noTimeout = 10 * time.Minute
	// poll is how often For checks its condition.
	poll = 10 * time.Millisecond
)

// Deadline returns when the waits of t give up.
func Deadline(t testing.TB) time.Time {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if end, ok := d.Deadline(); ok {
			return end.Add(-min(margin, time.Until(end)/4))
		}
	}
	return time.Now().Add(noTimeout)
}

// Timeout returns the time left until Deadline(t), for options that take a
// duration (a store's per-call budget, a client's read timeout) where the
// test only needs them to catch a hang.
func Timeout(t testing.TB) time.Duration {
	return time.Until(Deadline(t))
}

// Context returns a context that ends at Deadline(t), or when the test's
// cleanups run.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), Deadline(t))
	t.Cleanup(cancel)
	return ctx
}

// For waits until cond holds, checking it every few milliseconds, and fails
// t if it still does not at Deadline(t). what names the condition in that
// failure ("the cluster to be ok").
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := Deadline(t)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waittest: gave up waiting for %s (the test binary's -timeout is near)", what)
		}
		time.Sleep(poll)
	}
}

// Receive waits for a value from ch and returns it (the zero value once ch
// is closed, so a closed done channel counts as received), failing t if
// none comes by Deadline(t). what names the value in that failure ("the
// change announcement").
func Receive[V any](t testing.TB, ch <-chan V, what string) V {
	t.Helper()
	timer := time.NewTimer(time.Until(Deadline(t)))
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waittest: gave up waiting for %s (the test binary's -timeout is near)", what)
	}
	var zero V
	return zero
}

package waittest

import (
	"testing"
	"time"
)

func TestDeadlineBeforeTheBinarys(t *testing.T) {
	end, ok := t.Deadline()
	got := Deadline(t)
	if !ok {
		if d := time.Until(got); d <= 0 || d > noTimeout {
			t.Fatalf("without -timeout, Deadline is %v from now, want within %v", d, noTimeout)
		}
		return
	}
	if !got.Before(end) || !got.After(time.Now()) {
		t.Fatalf("Deadline = %v, want between now and the binary's %v", got, end)
	}
	if Timeout(t) <= 0 || Timeout(t) > time.Until(end) {
		t.Fatalf("Timeout = %v, want positive and within the binary's %v", Timeout(t), time.Until(end))
	}
}

func TestContextEndsAtDeadline(t *testing.T) {
	ctx := Context(t)
	dl, ok := ctx.Deadline()
	if !ok || dl.After(Deadline(t)) || ctx.Err() != nil {
		t.Fatalf("Context deadline %v (set: %v, err %v), want at most %v and not ended", dl, ok, ctx.Err(), Deadline(t))
	}
}

func TestForWaitsForTheCondition(t *testing.T) {
	calls := 0
	For(t, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3 (For returns as soon as it holds)", calls)
	}
}

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	go func() { ch <- 42 }()
	if v := Receive(t, ch, "the value"); v != 42 {
		t.Fatalf("Receive = %d, want 42", v)
	}
	close(ch)
	if v := Receive(t, ch, "the close"); v != 0 {
		t.Fatalf("Receive from a closed channel = %d, want 0", v)
	}
}

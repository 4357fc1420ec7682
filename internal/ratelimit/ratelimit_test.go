package ratelimit

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func TestParseLimit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Limit
		ok   bool
	}{
		{"20/s:40", Limit{20, 40}, true},
		{"20/s", Limit{20, 40}, true},
		{"60/m", Limit{1, 2}, true},
		{"1/h", Limit{1.0 / 3600, 1}, true},
		{"0.5/s:3", Limit{0.5, 3}, true},
		{"off", Limit{}, true},
		{"0", Limit{}, true},
		{"20", Limit{}, false},
		{"20/d", Limit{}, false},
		{"-1/s", Limit{}, false},
		{"x/s", Limit{}, false},
		{"20/s:0", Limit{}, false},
		{"20/s:x", Limit{}, false},
		{"NaN/s", Limit{}, false},
	} {
		got, err := ParseLimit(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err == nil && tt.ok && !got.Off() {
			again, err := ParseLimit(got.String())
			if err != nil || again != got {
				t.Errorf("%q does not round-trip through %q: %+v, %v", tt.in, got.String(), again, err)
			}
		}
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::",
		"fe80::1%eth0":         "fe80::",
		"2001:db8:1:3::1":      "2001:db8:1:3::",
		"not an address":       "invalid IP",
	} {
		if got := AddressKey(in).String(); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { AddressKey("2001:db8:1:2:3:4:5:6") }); n != 0 {
		t.Errorf("AddressKey allocates %v times", n)
	}
}

func TestTableBudget(t *testing.T) {
	c := newClock()
	tb, err := NewTable(Limit{Rate: 2, Burst: 3}, 100, c.now)
	if err != nil {
		t.Fatal(err)
	}
	a, b := AddressKey("192.0.2.1"), AddressKey("192.0.2.2")
	if ok, _ := tb.Ready(a); !ok || tb.Len() != 0 {
		t.Fatal("a new client is not ready, or Ready added it")
	}
	for range 3 {
		tb.Charge(a)
	}
	ok, wait := tb.Ready(a)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("after the burst: ready=%v wait=%v, want false 500ms", ok, wait)
	}
	if ok, _ := tb.Ready(b); !ok {
		t.Fatal("another client shares the budget")
	}
	c.advance(wait)
	if ok, _ := tb.Ready(a); !ok {
		t.Fatal("not ready after the wait it announced")
	}
	if ok, _ := tb.Allow(a); !ok {
		t.Fatal("Allow refused the refilled event")
	}
	if ok, wait := tb.Allow(a); ok || wait != 500*time.Millisecond {
		t.Fatalf("Allow on an empty budget: %v %v", ok, wait)
	}
}

// TestTableBounded: a million addresses, each charged, leave the table at
// its size, and the heap does not grow with them.
func TestTableBounded(t *testing.T) {
	const size = 1024
	tb, err := NewTable(Limit{Rate: 1, Burst: 1}, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 1_000_000 {
		tb.Charge(AddressKey(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := tb.Len(); n > size+shards {
		t.Errorf("table holds %d clients, size %d", n, size)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4<<20 {
		t.Errorf("heap grew by %d bytes for a table of %d", grew, size)
	}
}

func TestTally(t *testing.T) {
	c := newClock()
	ty, err := NewTally(time.Second, Limit{Rate: 1, Burst: 2}, 10, c.now)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c3 := AddressKey("192.0.2.1"), AddressKey("192.0.2.2"), AddressKey("192.0.2.3")
	if ok, n := ty.Note(a); !ok || n != 1 {
		t.Fatalf("first event: %v %d", ok, n)
	}
	for range 5 {
		if ok, _ := ty.Note(a); ok {
			t.Fatal("reported again within the interval")
		}
	}
	c.advance(time.Second)
	if ok, n := ty.Note(a); !ok || n != 6 {
		t.Fatalf("after the interval: %v %d, want true 6", ok, n)
	}
	// The overall limit: burst 2, one spent by "a" twice (refilled 1).
	if ok, _ := ty.Note(b); !ok {
		t.Fatal("b refused")
	}
	if ok, _ := ty.Note(c3); ok {
		t.Fatal("overall limit not applied")
	}
	c.advance(time.Second)
	if ok, n := ty.Note(c3); !ok || n != 2 {
		t.Fatalf("c after the overall refill: %v %d, want true 2", ok, n)
	}
}

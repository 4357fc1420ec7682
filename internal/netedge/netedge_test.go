package netedge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
)

func TestClientAddr(t *testing.T) {
	xff, err := ParseProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}, XForwardedFor)
	if err != nil {
		t.Fatal(err)
	}
	fwd, _ := ParseProxies([]string{"10.0.0.0/8"}, Forwarded)
	none, _ := ParseProxies(nil, XForwardedFor)
	for _, tc := range []struct {
		name    string
		p       *Proxies
		remote  string
		headers map[string][]string
		want    string
	}{
		{"no proxies: the peer, headers ignored", none, "203.0.113.9:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.9"},
		{"nil proxies", nil, "203.0.113.9:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.9"},
		{"untrusted peer: its header is ignored", xff, "203.0.113.9:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.9"},
		{"trusted peer, one hop", xff, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"client-chosen left part is skipped", xff, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1, 10.9.9.9"}}, "198.51.100.1"},
		{"several header lines in order", xff, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"6.6.6.6", "198.51.100.1", "192.0.2.7"}}, "198.51.100.1"},
		{"all hops trusted: the left-most", xff, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, "10.0.0.1"},
		{"no header from a trusted peer: the peer", xff, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"garbage hop stops the walk", xff, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1, garbage, 10.0.0.5"}}, "10.0.0.5"},
		{"hop with a port", xff, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1:4711"}}, "198.51.100.1"},
		{"IPv6 peer and hop", xff, "[2001:db8::1]:443", map[string][]string{"X-Forwarded-For": {"2001:db9::5"}}, "2001:db9::5"},
		{"IPv4-mapped peer", xff, "[::ffff:10.1.2.3]:443", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"Forwarded", fwd, "10.1.2.3:5000", map[string][]string{"Forwarded": {`for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.9`}}, "2001:db8:cafe::17"},
		{"Forwarded mode ignores X-Forwarded-For", fwd, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"6.6.6.6"}}, "10.1.2.3"},
		{"X-Forwarded-For mode ignores Forwarded", xff, "10.1.2.3:5000", map[string][]string{"Forwarded": {"for=6.6.6.6"}}, "10.1.2.3"},
		{"Forwarded obfuscated hop", fwd, "10.1.2.3:5000", map[string][]string{"Forwarded": {`for=198.51.100.1, for=_hidden, for=10.0.0.9`}}, "10.0.0.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for k, vs := range tc.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			if got := tc.p.ClientAddr(r); got != tc.want {
				t.Fatalf("ClientAddr = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseProxies([]string{"10.0.0.0/8", "not-an-address"}, XForwardedFor); err == nil || !strings.Contains(err.Error(), "not-an-address") {
		t.Fatalf("bad proxy: %v", err)
	}
	if _, err := ParseHeader("X-Real-IP"); err == nil {
		t.Fatal("X-Real-IP accepted")
	}
}

// serveRemote serves the peer address each request arrived from.
func serveRemote(t *testing.T, l net.Listener, lim *Limiter) *http.Server {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, r.RemoteAddr)
	})}
	if lim != nil {
		srv.ConnState = lim.ConnState
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestProxyProtocol(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		header  string
		want    string // prefix of the answer, or "" for a failed request
	}{
		{"trusted proxy, v1 header", []string{"127.0.0.1"}, "PROXY TCP4 198.51.100.1 127.0.0.1 4711 80\r\n", "198.51.100.1:4711"},
		{"trusted proxy without a header", []string{"127.0.0.1"}, "", "127.0.0.1:"},
		{"untrusted peer's header is not read", []string{"10.0.0.0/8"}, "PROXY TCP4 198.51.100.1 127.0.0.1 4711 80\r\n", ""},
		{"untrusted peer without a header", []string{"10.0.0.0/8"}, "", "127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseProxies(tc.trusted, XForwardedFor)
			if err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serveRemote(t, ProxyProtocol(l, p, 5*time.Second), nil)
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "%sGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tc.header)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if tc.want == "" {
				if err == nil && resp.StatusCode == 200 {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("an untrusted peer's PROXY header was honoured: %s", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(b), tc.want) {
				t.Fatalf("remote %q, want %q", b, tc.want)
			}
		})
	}
}

// keepAlive opens a connection and makes one request on it, leaving it
// open and idle.
func keepAlive(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	get(t, c, r, "/")
	return c, r
}

func get(t *testing.T, c net.Conn, r *bufio.Reader, path string) {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// closed reports whether the server closed c (waiting at most until the
// test's ceiling).
func closed(t *testing.T, c net.Conn, r *bufio.Reader) bool {
	c.SetReadDeadline(waittest.Deadline(t))
	_, err := r.ReadByte()
	return err == io.EOF
}

func TestLimiterClosesTheLongestIdleFirst(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := NewLimiter(3)
	serveRemote(t, lim.Listener(l), lim)
	addr := l.Addr().String()
	// The server marks a connection idle just after the answer is sent:
	// wait for it, so that the order of idleness is the test's.
	idle := func(n int) {
		waittest.For(t, fmt.Sprintf("%d idle connections", n), func() bool { return lim.Idle() == n })
	}
	c1, r1 := keepAlive(t, addr)
	idle(1)
	c2, r2 := keepAlive(t, addr)
	idle(2)
	_, _ = keepAlive(t, addr)
	idle(3)
	if lim.Open() != 3 {
		t.Fatalf("open = %d, want 3", lim.Open())
	}
	get(t, c1, r1, "/") // c1 is now idle for a shorter time than c2
	idle(3)

	c4, r4 := keepAlive(t, addr) // at the cap: c2 makes room
	if !closed(t, c2, r2) {
		t.Fatal("the longest idle connection was not closed")
	}
	get(t, c1, r1, "/")
	get(t, c4, r4, "/")
	if lim.Evicted() != 1 || lim.Open() > 3 {
		t.Fatalf("evicted %d, open %d", lim.Evicted(), lim.Open())
	}
}

func TestLimiterWaitsWhenNoneIsIdle(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := NewLimiter(1)
	serveRemote(t, lim.Listener(l), lim)
	busy, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(busy, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n") // active until it closes
	waittest.For(t, "the busy connection", func() bool { return lim.Open() == 1 })

	answered := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/")
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	// The second connection is accepted and held for a slot: nothing idle
	// can make room, so it is not served.
	waittest.For(t, "the second connection to wait for a slot", func() bool { return lim.Waiting() == 1 })
	select {
	case err := <-answered:
		t.Fatalf("a second connection was served past the cap of 1 (err %v)", err)
	default:
	}
	if lim.Evicted() != 0 {
		t.Fatalf("an active connection was evicted")
	}
	busy.Close()
	if err := waittest.Receive(t, answered, "the answer to the waiting connection"); err != nil {
		t.Fatalf("the waiting connection was not served once the busy one closed: %v", err)
	}
}

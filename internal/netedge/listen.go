package netedge

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyProtocol wraps l so that a connection from a trusted proxy may open
// with a PROXY protocol header (version 1 or 2, as HAProxy, AWS and Google
// Cloud TCP load balancers send it): the connection's RemoteAddr is then the
// client address the header declares. A trusted proxy may also connect
// without one (a health check). From any other peer nothing is read ahead:
// a header it sends is part of its request, which fails, so no client can
// declare its own address. headerTimeout bounds the wait for the header.
func ProxyProtocol(l net.Listener, trusted *Proxies, headerTimeout time.Duration) net.Listener {
	return &proxyproto.Listener{
		Listener:          l,
		ReadHeaderTimeout: headerTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if trusted.Trusted(peerAddr(o.Upstream.String())) {
				return proxyproto.USE, nil
			}
			return proxyproto.SKIP, nil
		},
	}
}

// Limiter caps the connections a listener holds open. When a connection
// arrives at the cap, the connection idle the longest (a kept-alive HTTP
// connection between requests, HTTP/1.1 or HTTP/2) is closed to make room,
// as nginx does; when none is idle, the new connection waits until one
// closes (and connections after it wait in the kernel's accept queue), so
// the memory connections hold is bounded by the cap however many clients
// come. Wrap the listener with Listener and give ConnState to the
// http.Server.
type Limiter struct {
	slots   chan struct{} // one token per open connection
	wake    chan struct{} // a connection became idle
	evicted atomic.Uint64
	waiting atomic.Int32 // accepted connections waiting for a slot

	mu    sync.Mutex
	idle  map[net.Conn]*list.Element // guarded by mu
	order list.List                  // idle connections, the longest idle first; guarded by mu
}

// NewLimiter returns a limiter of max connections (max > 0).
func NewLimiter(max int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max), wake: make(chan struct{}, 1), idle: map[net.Conn]*list.Element{}}
}

// Max is the cap.
func (l *Limiter) Max() int { return cap(l.slots) }

// Open is the number of connections open now.
func (l *Limiter) Open() int { return len(l.slots) }

// Waiting is the number of accepted connections waiting for a slot (at
// most one per listener: the listener accepts no other meanwhile).
func (l *Limiter) Waiting() int { return int(l.waiting.Load()) }

// Idle is the number of connections idle now.
func (l *Limiter) Idle() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.idle)
}

// Evicted is the number of idle connections closed to make room.
func (l *Limiter) Evicted() uint64 { return l.evicted.Load() }

// ConnState tracks which connections are idle: it is the http.Server's
// ConnState (call any other hook from a function that calls this one).
func (l *Limiter) ConnState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.idle[c]; ok {
		l.order.Remove(e)
		delete(l.idle, c)
	}
	if s == http.StateIdle {
		l.idle[c] = l.order.PushBack(c)
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// evictIdle closes the connection idle the longest, if any.
func (l *Limiter) evictIdle() bool {
	l.mu.Lock()
	e := l.order.Front()
	if e == nil {
		l.mu.Unlock()
		return false
	}
	c := l.order.Remove(e).(net.Conn)
	delete(l.idle, c)
	l.mu.Unlock()
	l.evicted.Add(1)
	go c.Close() // a TLS close_notify may block on a slow peer; the slot frees when it is done
	return true
}

// Listener wraps inner so that it holds at most the limiter's cap of
// connections.
func (l *Limiter) Listener(inner net.Listener) net.Listener {
	return &limitListener{Listener: inner, l: l, done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	l         *Limiter
	done      chan struct{}
	closeOnce sync.Once
}

func (ll *limitListener) Accept() (net.Conn, error) {
	c, err := ll.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case ll.l.slots <- struct{}{}:
	default:
		if !ll.wait() {
			c.Close()
			return nil, net.ErrClosed
		}
	}
	return &limitConn{Conn: c, release: func() { <-ll.l.slots }}, nil
}

// wait takes a slot once one frees, closing one idle connection (now, or
// as soon as one is idle) to free it.
func (ll *limitListener) wait() bool {
	ll.l.waiting.Add(1)
	defer ll.l.waiting.Add(-1)
	evicted := ll.l.evictIdle()
	for {
		select {
		case ll.l.slots <- struct{}{}:
			return true
		case <-ll.l.wake:
			if !evicted {
				evicted = ll.l.evictIdle()
			}
		case <-ll.done:
			return false
		}
	}
}

func (ll *limitListener) Close() error {
	ll.closeOnce.Do(func() { close(ll.done) })
	return ll.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

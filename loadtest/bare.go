package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// The baseline servers answer every key request with 16 bytes and the
// headers keydelivery sends on a 200 (Cache-Control, Content-Type,
// Content-Length, Vary, X-Request-Id), through an http.Server with
// keydelivery's timeouts, and nothing else: no token check, no lookup. They
// are the ceiling for a Go server (bare) and for an echo server (echo) on
// this machine. They run as separate processes, like the server, so the
// load generator's CPU and the server's are measured apart.

var (
	baselineBody  = []byte("0123456789abcdef") // 16 bytes
	noStore       = []string{"no-store"}
	octetStream   = []string{"application/octet-stream"}
	sixteen       = []string{"16"}
	varyOrigin    = []string{"Origin"}
	maxBaselineUp = time.Hour // a baseline server exits by itself after this
)

// requestIDs hands out 24-hex-digit request IDs from a counter: the same
// header size as keydelivery's random IDs, without claiming their cost.
type requestIDs struct{ n atomic.Uint64 }

func (r *requestIDs) next() string {
	var b [12]byte
	v := r.n.Add(1)
	for i := 11; i >= 4 && v > 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return hex.EncodeToString(b[:])
}

func setBaselineHeaders(h http.Header, ids *requestIDs) {
	h["Cache-Control"] = noStore
	h["Content-Type"] = octetStream
	h["Content-Length"] = sixteen
	h["Vary"] = varyOrigin
	h["X-Request-Id"] = []string{ids.next()}
}

func bareHandler() http.Handler {
	ids := &requestIDs{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setBaselineHeaders(w.Header(), ids)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(baselineBody)
	})
}

func echoHandler() http.Handler {
	ids := &requestIDs{}
	e := echo.New()
	e.HideBanner, e.HidePort, e.Debug = true, true, false
	h := func(c echo.Context) error {
		setBaselineHeaders(c.Response().Header(), ids)
		return c.Blob(http.StatusOK, echo.MIMEOctetStream, baselineBody)
	}
	// The same routes as keydelivery's delivery plane.
	e.GET("/keys/:kid", h)
	e.GET("/", h)
	e.POST("/", h)
	return e
}

// newBaselineServer has the limits of keydelivery's newHTTPServer.
func newBaselineServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
	}
}

// serveBaseline runs serve-bare or serve-echo: it listens (loopback only),
// prints "listening ADDR" on stdout, and serves until it is signalled, its
// standard input closes with --watch-stdin (the parent died), or --max-lifetime passes.
func serveBaseline(ctx context.Context, kind string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve-"+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (loopback only)")
	lifetime := fs.Duration("max-lifetime", maxBaselineUp, "exit after this long whatever happens")
	watchStdin := fs.Bool("watch-stdin", false, "exit when standard input reaches EOF (the parent's pipe closed)")
	tlsCert := fs.String("tls-cert", "", "serve TLS (Go's defaults, HTTP/2 and HTTP/1.1) with this certificate file")
	tlsKey := fs.String("tls-key", "", "the key of --tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", *listen, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("--listen %q: loopback addresses only", *listen)
	}
	var h http.Handler
	switch kind {
	case "bare":
		h = bareHandler()
	case "echo":
		h = echoHandler()
	default:
		return fmt.Errorf("unknown baseline %q", kind)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := newBaselineServer(h)
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "listening %s\n", l.Addr())
	serve := func() error { return srv.Serve(l) }
	if *tlsCert != "" {
		serve = func() error { return srv.ServeTLS(l, *tlsCert, *tlsKey) }
	}
	if err := serve(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

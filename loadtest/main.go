// Command loadtest is keydelivery's load generator and benchmark harness
// (issue "Performance"). It mints its own ES256 tokens, drives a server over
// HTTP/1.1 keep-alive in a closed loop (fixed concurrency) or an open loop
// (fixed arrival rate, latency measured from the scheduled time), and
// measures the server's CPU time per request from /proc. It runs baselines
// (a bare net/http server, a bare echo server, nginx serving a static file)
// in the same invocation, alternating with the target round by round, and
// prints the ratios target / baseline.
//
// It talks to loopback addresses only, every loop is bounded in time and
// count, and it is never imported by the server. It is a module of its own
// (loadtest/go.mod), so that its plotting and histogram libraries stay out of
// the server's go.mod; the go.work at the repository root lets
// `go run ./loadtest` work from there. See loadtest/README.md.
//
//	go run ./loadtest [run] [flags]          measure (the default)
//	go run ./loadtest serve-bare [--listen]  the bare net/http baseline server
//	go run ./loadtest serve-echo [--listen]  the bare echo baseline server
//	go run ./loadtest plot results.json out.png
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runBench(ctx, args, getenv, stdout, stderr)
	case "serve-bare":
		return serveBaseline(ctx, "bare", args, stdout, stderr)
	case "serve-echo":
		return serveBaseline(ctx, "echo", args, stdout, stderr)
	case "plot":
		return plotCommand(args)
	case "tls":
		return tlsBench(ctx, args, stdout, stderr)
	case "idle-conns":
		return idleConns(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage:
  go run ./loadtest [run] [flags]               run a load test (go run ./loadtest run -h for flags)
  go run ./loadtest serve-bare [--listen ADDR]  bare net/http server answering 16 bytes
  go run ./loadtest serve-echo [--listen ADDR]  bare echo/v4 server answering 16 bytes
  go run ./loadtest plot results.json out.png   throughput and p99 against concurrency
  go run ./loadtest tls [flags]                 TLS: keep-alive, full and resumed handshakes, a flash
                                                crowd of new viewers; bare Go TLS and nginx TLS baselines
  go run ./loadtest idle-conns [--conns N]      server memory with N idle kept-alive connections
`

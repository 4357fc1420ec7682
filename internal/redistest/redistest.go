// Package redistest starts real redis-server processes for tests: each
// Server runs on its own free loopback port with its own temporary
// directory, never on 6379 and never on a shared instance, and is killed when
// the test ends. It speaks just enough RESP over a net.Conn to see that the
// server is ready, so it does not depend on go-redis (which stays inside
// keystore/redisstore). Import it from _test.go files only.
//
// redis-server must be on PATH. There is no skipping: a missing server fails
// the test with instructions to install it.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// Start, Restart and Stop wait on conditions (PONG, the process's exit),
// bounded only by waittest's ceiling: a redis-server that loads or flushes
// its append-only file on a busy machine is slow, not broken.
const (
	// startAttempts is how often Start tries a new port when the one it
	// picked was taken before redis-server could bind it.
	startAttempts = 4
	logFile       = "redis.log"
	confFile      = "redis.conf"
)

// Options configures a Server. The zero value is a non-persistent server
// without a password.
type Options struct {
	// Persistence turns on the append-only file with appendfsync always, so
	// every acknowledged write survives Stop and Restart.
	Persistence bool
	// Password, when set, is required by the server (requirepass).
	Password string
	// ExtraArgs are appended to the redis-server command line, e.g.
	// []string{"--cluster-enabled", "yes"}.
	ExtraArgs []string
}

// Server is a real redis-server process started for a test on a free
// loopback port with its own temporary directory.
type Server struct {
	// Addr is "127.0.0.1:PORT". The port stays the same across Stop and
	// Restart.
	Addr string
	// Dir is the server's working directory: its config, log, and (with
	// Persistence) append-only files.
	Dir string

	opts Options
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{}   // closed when the process has exited
	output *syncbuf.Buffer // stdout and stderr, for errors before the log file opens
}

// Start starts a redis-server for t and registers a cleanup that kills it.
// It fails t (never skips) if redis-server is not installed or does not
// come up.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found: install it with `apt-get install redis-server` (scripts/test.sh does this when run as root)")
	}
	s := &Server{Dir: t.TempDir(), opts: o}
	// Registered after TempDir's own cleanup, so it runs first: the
	// process is gone before its directory is removed.
	t.Cleanup(s.kill)
	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: pick a free port: %v", err)
		}
		s.port = port
		_ = os.Remove(filepath.Join(s.Dir, logFile)) // so portTaken reads this attempt only
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConfig(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		err = s.start(waittest.Deadline(t))
		if err == nil {
			return s
		}
		errs = append(errs, err)
		if !s.portTaken() {
			break // a real failure, not a lost race for the port
		}
	}
	t.Fatalf("redistest: start redis-server: %v", errors.Join(errs...))
	return nil
}

// URL returns the server's URL, "redis://127.0.0.1:PORT/0", with the
// password in it when one is set ("redis://:PASS@127.0.0.1:PORT/0").
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr, Path: "/0"}
	if s.opts.Password != "" {
		u.User = url.UserPassword("", s.opts.Password)
	}
	return u.String()
}

// Password returns the password the server requires, or "".
func (s *Server) Password() string { return s.opts.Password }

// Stop shuts the server down (SIGTERM, which flushes the append-only file)
// and waits for it to exit, killing it (and failing t) if it has not by
// waittest's ceiling. The port and directory stay with s for Restart. Stopping a stopped server
// does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	ceiling := time.NewTimer(waittest.Timeout(t))
	defer ceiling.Stop()
	select {
	case <-p.done:
	case <-ceiling.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("redistest: redis-server on %s did not stop after SIGTERM; killed it\n%s", s.Addr, s.logTail())
	}
}

// Restart starts the server again on the same port and directory, so data
// persisted in the append-only file comes back, and waits until it answers
// PING. It stops the server first if it is running.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	if err := s.start(waittest.Deadline(t)); err != nil {
		t.Fatalf("redistest: restart redis-server on %s: %v", s.Addr, err)
	}
}

// Signal sends sig to the running server (SIGSTOP and SIGCONT pause and
// resume it). It fails t when the server is not running.
func (s *Server) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatalf("redistest: signal %v to redis-server on %s: not running", sig, s.Addr)
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("redistest: signal %v to redis-server on %s: %v", sig, s.Addr, err)
	}
}

// Kill kills the server with SIGKILL, as a crash would (nothing is
// flushed), and waits for it to exit. The port and directory stay with s
// for Restart. Killing a stopped server does nothing.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.kill()
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// kill is the cleanup: it kills the process without ceremony, whether or
// not the test failed.
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.proc; p != nil {
		s.proc = nil
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (s *Server) writeConfig() error {
	var b strings.Builder
	line := func(args ...string) {
		b.WriteString(strings.Join(args, " "))
		b.WriteByte('\n')
	}
	line("bind", "127.0.0.1")
	line("port", strconv.Itoa(s.port))
	line("dir", quote(s.Dir))
	line("protected-mode", "yes")
	line("daemonize", "no")
	line("logfile", quote(filepath.Join(s.Dir, logFile)))
	line("save", `""`)
	if s.opts.Persistence {
		line("appendonly", "yes")
		line("appendfsync", "always")
	} else {
		line("appendonly", "no")
	}
	if s.opts.Password != "" {
		line("requirepass", quote(s.opts.Password))
	}
	return os.WriteFile(filepath.Join(s.Dir, confFile), []byte(b.String()), 0o600)
}

// quote writes v as a double-quoted redis.conf string.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// start runs redis-server with the config in s.Dir and waits until it is
// ready, giving up at deadline. On failure the process is gone and the error carries its output
// and the tail of its log.
func (s *Server) start(deadline time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	args := append([]string{filepath.Join(s.Dir, confFile)}, s.opts.ExtraArgs...)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = s.Dir
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), output: out}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := s.waitReady(p, deadline); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%w\n%s", err, s.diagnostics(p))
	}
	s.proc = p
	return nil
}

// waitReady dials the server and sends PING (after AUTH when a password is
// set) until it answers PONG, the process exits, or deadline passes. A
// server still loading its append-only file answers LOADING and is not
// ready yet.
func (s *Server) waitReady(p *process, deadline time.Time) error {
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on %s exited during startup (%v)", s.Addr, p.cmd.ProcessState)
		default:
		}
		if last = s.ping(time.Until(deadline)); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s still not ready at the test's ceiling: %v", s.Addr, last)
}

func (s *Server) ping(budget time.Duration) error {
	budget = min(budget, time.Second)
	c, err := net.DialTimeout("tcp", s.Addr, budget)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(budget))
	r := bufio.NewReader(c)
	if s.opts.Password != "" {
		if err := command(c, r, "+OK", "AUTH", s.opts.Password); err != nil {
			return err
		}
	}
	return command(c, r, "+PONG", "PING")
}

// command sends args as a RESP array and checks that the reply line is want.
func command(c net.Conn, r *bufio.Reader, want string, args ...string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != want {
		return fmt.Errorf("%s answered %q", args[0], line)
	}
	return nil
}

// portTaken reports whether the log says the port was in use.
func (s *Server) portTaken() bool {
	b, _ := os.ReadFile(filepath.Join(s.Dir, logFile))
	return bytes.Contains(b, []byte("Address already in use"))
}

func (s *Server) diagnostics(p *process) string {
	var b strings.Builder
	if out := strings.TrimSpace(p.output.String()); out != "" {
		fmt.Fprintf(&b, "redis-server output:\n%s\n", out)
	}
	b.WriteString(s.logTail())
	return b.String()
}

// LogTail returns the last n lines of the server's log file, for a test
// to show when something went wrong.
func (s *Server) LogTail(n int) string { return s.logTailN(n) }

// logTail returns the last lines of the server's log file.
func (s *Server) logTail() string { return s.logTailN(20) }

func (s *Server) logTailN(n int) string {
	path := filepath.Join(s.Dir, logFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("last lines of %s:\n%s", path, strings.Join(lines, "\n"))
}

// freePort returns a loopback TCP port that was free a moment ago, never
// Redis' default 6379 (where a developer's own server may live).
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port != 6379 {
			return port, nil
		}
	}
}

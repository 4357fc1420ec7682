package redistest

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/internal/waittest"
)

// do opens a connection to s, runs the commands in order (each with the
// reply line it must give), and closes it.
func do(t *testing.T, s *Server, cmds ...[]string) error {
	t.Helper()
	// Deadlines that only catch a hang (waittest): the servers fsync on a
	// busy machine.
	c, err := net.DialTimeout("tcp", s.Addr, waittest.Timeout(t))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(waittest.Deadline(t))
	r := bufio.NewReader(c)
	for _, cmd := range cmds {
		if err := command(c, r, cmd[0], cmd[1:]...); err != nil {
			return err
		}
	}
	return nil
}

func TestStartStopRestartPersists(t *testing.T) {
	s := Start(t, Options{Persistence: true})
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || strings.HasSuffix(s.Addr, ":6379") {
		t.Fatalf("Addr = %q, want a loopback port other than 6379", s.Addr)
	}
	if want := "redis://" + s.Addr + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	if err := do(t, s, []string{"+OK", "SET", "k", "v"}); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	if err := do(t, s, []string{"+PONG", "PING"}); err == nil {
		t.Fatal("stopped server still answers")
	}
	s.Stop(t) // a second Stop is a no-op
	addr := s.Addr
	s.Restart(t)
	if s.Addr != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr)
	}
	// "$1" is the bulk-string header of the one-byte value "v".
	if err := do(t, s, []string{"$1", "GET", "k"}); err != nil {
		t.Fatalf("after restart, GET k: %v (the append-only file did not bring it back)", err)
	}
}

func TestWithoutPersistenceDataIsGone(t *testing.T) {
	s := Start(t, Options{})
	if err := do(t, s, []string{"+OK", "SET", "k", "v"}); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if err := do(t, s, []string{"$-1", "GET", "k"}); err != nil {
		t.Fatalf("GET k after restart without persistence: %v, want nil", err)
	}
}

func TestPassword(t *testing.T) {
	const pw = `p@ss:w/rd "quoted"`
	s := Start(t, Options{Password: pw})
	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := u.User.Password(); got != pw || u.Host != s.Addr {
		t.Fatalf("URL %q does not carry the password and address", s.URL())
	}
	if err := do(t, s, []string{"+PONG", "PING"}); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without AUTH = %v, want NOAUTH", err)
	}
	if err := do(t, s, []string{"+OK", "AUTH", pw}, []string{"+PONG", "PING"}); err != nil {
		t.Fatal(err)
	}
}

func TestServersAreDistinct(t *testing.T) {
	a, b := Start(t, Options{}), Start(t, Options{})
	if a.Addr == b.Addr || a.Dir == b.Dir {
		t.Fatalf("two servers share %s / %s", a.Addr, a.Dir)
	}
}

func TestExtraArgs(t *testing.T) {
	s := Start(t, Options{ExtraArgs: []string{"--maxmemory-policy", "noeviction"}})
	if err := do(t, s, []string{"*2", "CONFIG", "GET", "maxmemory-policy"}); err != nil {
		t.Fatal(err)
	}
}

// fatalTB records Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingServerFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f, Options{})
	}()
	<-done
	if !strings.Contains(f.msg, "redis-server not found") || !strings.Contains(f.msg, "apt-get install redis-server") {
		t.Fatalf("Start without redis-server: %q", f.msg)
	}
}

func TestBadArgsReportLog(t *testing.T) {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f, Options{ExtraArgs: []string{"--no-such-directive", "1"}})
	}()
	<-done
	t.Logf("failure message: %s", f.msg)
	if !strings.Contains(f.msg, "no-such-directive") {
		t.Fatalf("failed start does not show redis-server's complaint: %q", f.msg)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:     `"plain"`,
		`a"b\c`:     `"a\"b\\c"`,
		"tab\there": `"tab\x09here"`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

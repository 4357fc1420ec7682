//go:build faults

package faults

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

var long = flag.Bool("long", false, "the long form: more writes, longer faults, several rounds, and the bounds on the 503 windows asserted")

// kdBin is the server binary built from this tree for the run.
var kdBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "kd-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kdBin = filepath.Join(dir, "keydelivery")
	build := exec.Command("go", "build", "-o", kdBin, "github.com/keydelivery/keydelivery/cmd/keydelivery")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "faults: building the server: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	printReport(os.Stdout)
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	issuer   = "https://tokens.faults.test/"
	audience = "urn:keydelivery:faults"
	secret   = "kda_faults-admin-secret"
	// storeTimeout is the server's --store-timeout in every scenario.
	storeTimeout = time.Second
)

// material is what a test server trusts, and a token for any key.
type material struct {
	dir, certFile, kekFile, credsFile string
	token                             string
}

func newMaterial(t *testing.T) material {
	t.Helper()
	dir := t.TempDir()
	m := material{dir: dir, certFile: filepath.Join(dir, "token.crt"), kekFile: filepath.Join(dir, "kek"),
		credsFile: filepath.Join(dir, "admin-credentials")}
	keyFile := filepath.Join(dir, "token.key")
	certPEM, keyPEM, err := auth.GenerateDevCertificate(rand.Reader, "faults", time.Now(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	line, err := keystore.GenerateKEKLine(rand.Reader, "faults-1")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(secret))
	for path, b := range map[string][]byte{m.certFile: certPEM, keyFile: keyPEM, m.kekFile: []byte(line + "\n"),
		m.credsFile: []byte("faults admin " + hex.EncodeToString(sum[:]) + "\n")} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	signer, err := auth.LoadSigner(keyFile, m.certFile)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Unbound (the server runs with --allow-unbound-tokens): one token
	// reads every key.
	if m.token, err = signer.Sign(auth.TokenClaims{Issuer: issuer, Audience: audience, Subject: "reader",
		IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return m
}

// freePort returns a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is the keydelivery binary run as a process, on fixed loopback
// ports so that a restart keeps its addresses.
type server struct {
	t        *testing.T
	args     []string
	wrap     []string // a command the server runs under (unshare, prlimit)
	delivery string   // http://127.0.0.1:PORT
	admin    string
	log      *syncbuf.Buffer // every run's stderr, appended

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// newServer prepares a server on store with the suite's flags plus extra;
// start runs it.
func newServer(t *testing.T, m material, store string, extra ...string) *server {
	t.Helper()
	dp, ap := freePort(t), freePort(t)
	s := &server{t: t, log: &syncbuf.Buffer{},
		delivery: "http://127.0.0.1:" + strconv.Itoa(dp), admin: "http://127.0.0.1:" + strconv.Itoa(ap)}
	s.args = append([]string{
		"--listen", "127.0.0.1:" + strconv.Itoa(dp), "--admin-listen", "127.0.0.1:" + strconv.Itoa(ap),
		"--store", store, "--store-timeout", storeTimeout.String(),
		"--token-certs", m.certFile, "--token-issuer", issuer, "--token-audience", audience, "--allow-unbound-tokens",
		"--kek-file", m.kekFile, "--admin-credentials-file", m.credsFile,
		"--audit-log", filepath.Join(m.dir, "audit.log"),
		"--key-cache-ttl", "0", // every read reaches the store
		"--access-log", // the server-side duration of every read
		"--store-check-interval", "2s",
		"--deleted-retention", "0",
	}, extra...)
	t.Cleanup(func() { s.kill() })
	return s
}

// start runs the server and waits until it is ready.
func (s *server) start(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		t.Fatal("faults: server already running")
	}
	argv := append(append(append([]string(nil), s.wrap...), kdBin), s.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = &syncbuf.Buffer{}
	cmd.Stderr = s.log
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		t.Fatalf("faults: start the server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	waittest.For(t, "the server to be ready", func() bool {
		select {
		case <-done:
			t.Fatalf("faults: the server exited during start (%v):\n%s", cmd.ProcessState, tail(s.log.String(), 30))
		default:
		}
		resp, err := http.Get(s.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// pid is the running server's process ID.
func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// kill kills the server with SIGKILL and waits for it to exit.
func (s *server) kill() { s.signal(syscall.SIGKILL) }

// stop stops the server with SIGTERM (it drains) and waits for it.
func (s *server) stop() { s.signal(syscall.SIGTERM) }

func (s *server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// accessLine is what the suite reads of the server's access log.
type accessLine struct {
	Msg      string `json:"msg"`
	Route    string `json:"route"`
	Status   int    `json:"status"`
	Duration int64  `json:"duration"` // nanoseconds
	Reason   string `json:"reason"`
}

// readDurations returns the server-side durations of the key reads in
// the log: the time from the request's arrival to its answer, measured by
// the server, so a busy test machine does not add its own delays.
func (s *server) readDurations() []time.Duration {
	var out []time.Duration
	sc := bufio.NewScanner(strings.NewReader(s.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l accessLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" && l.Route == "/keys/:kid" {
			out = append(out, time.Duration(l.Duration))
		}
	}
	return out
}

// slowReads returns the access-log lines of the key reads slower than d
// (at most 5).
func (s *server) slowReads(d time.Duration) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < 5 {
		var l accessLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" && l.Route == "/keys/:kid" && time.Duration(l.Duration) > d {
			out = append(out, sc.Text())
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// report rows, printed at the end of the run.
var (
	reportMu sync.Mutex
	rows     []row
)

// row is one scenario's figures.
type row struct {
	Scenario   string
	Acked      int           // writes acknowledged (2xx)
	Lost       int           // acknowledged keys not read back with their bytes
	Reads      int           // reads of acknowledged keys
	Read503    int           // of which 503
	ReadWindow time.Duration // first to last 503 answer to a read, the longest of a round
	Write503   int           // write attempts answered 503 (any reason)
	NotRepl    int           // of which not_replicated
	MaxRead    time.Duration // the slowest read, server-side
	Recovery   time.Duration // the fault's end (or the store's own failover) to the first good read and write
	Note       string
}

func addRow(r row) {
	reportMu.Lock()
	defer reportMu.Unlock()
	rows = append(rows, r)
}

func printReport(w *os.File) {
	reportMu.Lock()
	defer reportMu.Unlock()
	if len(rows) == 0 {
		return
	}
	form := "short"
	if *long {
		form = "long"
	}
	fmt.Fprintf(w, "\nfault-injection suite (%s form): acknowledged-write ledger per scenario\n\n", form)
	fmt.Fprintln(w, "| Scenario | Acked | Lost | Reads | Read 503 | 503 window (reads) | Write 503 (not_replicated) | Slowest read (server) | Recovery | Note |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s | %d (%d) | %s | %s | %s |\n", r.Scenario, r.Acked, r.Lost, r.Reads, r.Read503,
			ms(r.ReadWindow), r.Write503, r.NotRepl, ms(r.MaxRead), ms(r.Recovery), r.Note)
	}
}

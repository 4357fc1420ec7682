package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// The tests in this file run the real server binary as a process of its
// own: what they check (a closed stdout pipe, the peak memory of one
// request) belongs to the process, not to run.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// serverBinary builds this package's binary once per test run.
func serverBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keydelivery-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "keydelivery")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("building the server binary (the go tool must be on PATH): %v", binErr)
	}
	return binPath
}

// proc is the server running as a process.
type proc struct {
	cmd         *exec.Cmd
	deliveryURL string
	adminURL    string
	logText     func() string // what the process wrote to stderr so far
	exited      chan struct{}
	exitErr     error
}

// startProcess starts the server binary with args (args[0] is ignored) and
// the environment env added, stdout going to stdout, and waits until it
// serves /readyz.
func startProcess(t testing.TB, args []string, env []string, stdout io.Writer) *proc {
	t.Helper()
	buf := &syncbuf.Buffer{}
	return startProcessIO(t, args, env, stdout, buf, buf.String)
}

// startProcessIO is startProcess with the process's stderr going to
// stderr (an *os.File is handed to the process itself) and logText
// returning what it has written so far.
func startProcessIO(t testing.TB, args []string, env []string, stdout, stderr io.Writer, logText func() string) *proc {
	t.Helper()
	cmd := exec.Command(serverBinary(t), args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, logText: logText, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	waittest.For(t, "the server process to serve /readyz", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("the server exited during start: %v\n%s", p.exitErr, p.logText())
		default:
		}
		for _, m := range listenRE.FindAllStringSubmatch(p.logText(), -1) {
			if m[1] == "delivery" {
				p.deliveryURL = "http://" + m[2]
			} else {
				p.adminURL = "http://" + m[2]
			}
		}
		if p.adminURL == "" || p.deliveryURL == "" {
			return false
		}
		resp, err := http.Get(p.adminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// highWater is the process's peak resident memory so far (VmHWM), in
// bytes.
func (p *proc) highWater(t testing.TB) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the process's memory (Linux /proc is needed): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// post sends body to the admin API with the test credential.
func (p *proc) post(t testing.TB, path, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.adminURL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Content-Type", contentType)
	client := &http.Client{Timeout: waittest.Timeout(t)}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// mib formats bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

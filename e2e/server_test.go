//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

const (
	devIssuer   = "keydelivery-dev"
	devAudience = "keydelivery"
)

// backend is one store the whole suite runs against.
type backend struct {
	name  string
	redis bool
	// tls runs the delivery plane over HTTPS (--dev-tls) for pages served
	// over HTTPS, with a shorter list of checks: the players, ffmpeg, and
	// that browsers fetched keys over HTTP/2.
	tls bool
}

// server is a running keydelivery process.
type server struct {
	delivery string // http://127.0.0.1:PORT
	admin    string
	dataDir  string
	logPath  string // its stderr: JSON log lines, access log included
	store    string // the store the server reports in its "keydelivery ready" line
	pid      int
	done     chan struct{}
	// ceiling is when waits on the server give up: only a hang reaches it
	// (waittest), a slow start on a busy machine does not.
	ceiling time.Time
}

// startServer runs keydelivery --dev with a data dir of its own, listeners
// on free loopback ports (:0, read back from its "listening" log lines),
// the access log on, and CORS for the page origin only. It returns once the
// admin /readyz answers 200; a cleanup stops it.
func startServer(t *testing.T, e *env, dir, pageOrigin, storeFlag string, extraEnv []string, extraArgs ...string) (*server, error) {
	t.Helper()
	s := &server{dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "server.log"), done: make(chan struct{}),
		ceiling: waittest.Deadline(t)}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	stdout, err := os.Create(filepath.Join(dir, "server.out"))
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	args := []string{"--dev", "--data-dir", s.dataDir,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--cors-origins", pageOrigin, "--access-log", "--audit-log", filepath.Join(dir, "audit.log")}
	if storeFlag != "" {
		args = append(args, "--store", storeFlag)
	}
	args = append(args, extraArgs...)
	cmd := exec.Command(e.keydeliver, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), extraEnv...)
	cmd.Stdout, cmd.Stderr = stdout, logf
	cmd.SysProcAttr = groupAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.pid = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if err := stopGroup(s.pid, s.done, time.Until(s.ceiling)); err != nil {
			t.Errorf("keydelivery: %v", err)
		}
	})

	for time.Now().Before(s.ceiling) && (s.delivery == "" || s.admin == "") {
		select {
		case <-s.done:
			return nil, failf(s.logTail(30), "keydelivery exited during startup (%v)", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		for _, l := range s.logLines(0) {
			if l.Msg == "listening" && l.Plane == "delivery" {
				s.delivery = l.Scheme + "://" + l.Addr
			}
			if l.Msg == "listening" && l.Plane == "admin" {
				s.admin = l.Scheme + "://" + l.Addr
			}
			if l.Msg == "keydelivery ready" {
				s.store = l.Store
			}
		}
	}
	if s.delivery == "" || s.admin == "" {
		return nil, failf(s.logTail(30), "keydelivery never logged its listeners")
	}
	for time.Now().Before(s.ceiling) {
		resp, err := http.Get(s.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, failf(s.logTail(30), "keydelivery %s/readyz never answered 200", s.admin)
}

// logLine is one JSON line of the server's log; request lines are the
// access log.
type logLine struct {
	Msg    string `json:"msg"`
	Plane  string `json:"plane"`
	Addr   string `json:"addr"`
	Scheme string `json:"scheme"`
	Proto  string `json:"proto"`
	Method string `json:"method"`
	Route  string `json:"route"`
	URI    string `json:"uri"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Store  string `json:"store"`
	Level  string `json:"level"`
	raw    string
}

// logSize is the current end of the log, to read what a check caused.
func (s *server) logSize() int64 {
	fi, err := os.Stat(s.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logLines parses the log from offset on.
func (s *server) logLines(offset int64) []logLine {
	f, err := os.Open(s.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	var lines []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			l.raw = sc.Text()
			lines = append(lines, l)
		}
	}
	return lines
}

// requests returns the access-log lines since offset whose route starts
// with prefix, once they satisfy want (the line is written as the answer
// leaves, so it can trail the client by a moment), or as they are at the
// ceiling.
func (s *server) requests(offset int64, prefix string, want func([]logLine) bool) []logLine {
	for {
		var got []logLine
		for _, l := range s.logLines(offset) {
			if l.Msg == "request" && strings.HasPrefix(l.Route, prefix) {
				got = append(got, l)
			}
		}
		if want(got) || time.Now().After(s.ceiling) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "server log (last lines):\n" + strings.Join(lines, "\n")
}

// statuses summarises access-log lines, e.g. "200 x2" or "401 bad_signature".
func statuses(lines []logLine) string {
	if len(lines) == 0 {
		return "no request"
	}
	var parts []string
	count := map[string]int{}
	for _, l := range lines {
		k := fmt.Sprint(l.Status)
		if l.Reason != "" {
			k += " " + l.Reason
		}
		if count[k] == 0 {
			parts = append(parts, k)
		}
		count[k]++
	}
	for i, p := range parts {
		if count[p] > 1 {
			parts[i] = fmt.Sprintf("%s x%d", p, count[p])
		}
	}
	return strings.Join(parts, ", ")
}

// kdctl runs the admin client against s with the dev admin credential.
func (s *server) kdctl(e *env, stdin []byte, args ...string) (string, error) {
	token, err := os.ReadFile(filepath.Join(s.dataDir, "dev-admin-token"))
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	var in *bytes.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	err = commandIO(context.Background(), s.dataDir, []string{"KD_SERVER=" + s.admin, "KD_ADMIN_TOKEN=" + strings.TrimSpace(string(token))},
		in, &stdout, &stderr, e.kdctl, args...)
	if err != nil {
		return stdout.String(), failf(stderr.String(), "kdctl %s: %v", strings.Join(args[:min(2, len(args))], " "), err)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// tokens are the delivery tokens one backend's checks use.
type tokens struct {
	hls      string // grants the HLS key
	otherKID string // valid, grants only the second key
	badSig   string // signed by a key no server trusts
	expired  string // signed by the trusted key, expired 10 minutes ago
	cenc     string // grants both CENC keys
	cencBad  string // the CENC grant, signed by the untrusted key
	cencExp  string // the CENC grant, expired
}

// mint makes a token with kdctl token mint, as the README shows.
func (s *server) mint(e *env, signingKey, cert string, kids ...string) (string, error) {
	args := []string{"token", "mint", "--signing-key", signingKey, "--issuer", devIssuer, "--audience", devAudience, "--ttl", "10m"}
	if cert != "" {
		args = append(args, "--cert", cert)
	}
	for _, k := range kids {
		args = append(args, "--kid", k)
	}
	return s.kdctl(e, nil, args...)
}

// mintExpired signs a token that expired 10 minutes ago (beyond the
// default 60 s leeway) with the trusted dev key: kdctl refuses a negative
// --ttl, so it is signed here with auth's Signer.
func (s *server) mintExpired(kids ...string) (string, error) {
	signer, err := auth.LoadSigner(filepath.Join(s.dataDir, "dev-token-signing.key"), filepath.Join(s.dataDir, "dev-token-signing.crt"))
	if err != nil {
		return "", err
	}
	now := time.Now().Truncate(time.Second)
	return signer.Sign(auth.TokenClaims{
		Issuer: devIssuer, Audience: devAudience, KeyIDs: kids,
		IssuedAt: now.Add(-30 * time.Minute), NotBefore: now.Add(-30 * time.Minute), ExpiresAt: now.Add(-10 * time.Minute),
	})
}

// makeTokens mints every token a backend's checks need.
func (s *server) makeTokens(e *env, hlsKID, otherKID string) (tokens, error) {
	var tk tokens
	var errs []error
	mint := func(dst *string, f func() (string, error)) {
		v, err := f()
		errs = append(errs, err)
		*dst = v
	}
	key, cert := filepath.Join(s.dataDir, "dev-token-signing.key"), filepath.Join(s.dataDir, "dev-token-signing.crt")
	cenc := []string{e.cencKeys[0].kidString(), e.cencKeys[1].kidString()}
	mint(&tk.hls, func() (string, error) { return s.mint(e, key, cert, hlsKID) })
	mint(&tk.otherKID, func() (string, error) { return s.mint(e, key, cert, otherKID) })
	mint(&tk.badSig, func() (string, error) { return s.mint(e, e.foreignKey, "", hlsKID) })
	mint(&tk.expired, func() (string, error) { return s.mintExpired(hlsKID) })
	mint(&tk.cenc, func() (string, error) { return s.mint(e, key, cert, cenc...) })
	mint(&tk.cencBad, func() (string, error) { return s.mint(e, e.foreignKey, "", cenc...) })
	mint(&tk.cencExp, func() (string, error) { return s.mintExpired(cenc...) })
	return tk, errors.Join(errs...)
}

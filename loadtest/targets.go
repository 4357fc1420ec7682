package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// target is something the load is sent to: the server under test or a
// baseline.
type target struct {
	Name string
	URL  *url.URL
	PID  int // whose CPU (with its descendants) is measured; 0: none
	// StorePID is the redis-server a started server uses, whose CPU is
	// reported apart; 0: none.
	StorePID int
	Base     bool // a baseline: it ignores tokens and KIDs
	// Source is the request source for this target's runs; baselines share
	// the first server's.
	Source requestSource
	// For a server: how to mint its tokens and reach its admin plane.
	spec   sourceSpec
	minter *minter
	stop   func()
}

// proc is a child process we started and must stop.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

func startProc(cmd *exec.Cmd, deathSig syscall.Signal) (*proc, error) {
	// The child dies with us even if we are killed: SIGTERM (or SIGKILL)
	// when the thread that started it exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: deathSig, Setpgid: false}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: &syncBuffer{}}
	if cmd.Stderr == nil {
		cmd.Stderr = p.log
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM, waits up to wait, then kills.
func (p *proc) stop(wait time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startBaseline runs this program again as serve-bare or serve-echo, on a
// free loopback port, and waits for its "listening ADDR" line.
func startBaseline(kind string, extra ...string) (*target, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", kind, err)
	}
	cmd := exec.Command(exe, append([]string{"serve-" + kind, "--listen", "127.0.0.1:0", "--watch-stdin", "--max-lifetime", "2h"}, extra...)...)
	stdin, err := cmd.StdinPipe() // closes when we exit: the child follows
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p, err := startProc(cmd, syscall.SIGKILL)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", kind, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var addr string
	select {
	case l := <-lines:
		addr = strings.TrimPrefix(l, "listening ")
	case <-p.done:
		return nil, fmt.Errorf("baseline %s exited at start: %s", kind, p.log.String())
	case <-time.After(15 * time.Second):
		p.stop(time.Second)
		return nil, fmt.Errorf("baseline %s did not start within 15s", kind)
	}
	u, _ := url.Parse("http://" + addr)
	return &target{Name: kind, URL: u, PID: cmd.Process.Pid, Base: true, stop: func() {
		stdin.Close()
		p.stop(5 * time.Second)
	}}, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findNginx returns the nginx binary, or "" when it is not installed.
func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// nginxConf is the generated configuration: one loopback server answering
// every path with the same static 16-byte file, no access log, unlimited
// keep-alive requests (like Go's server), and the headers keydelivery sends
// that a static file server does not add by itself.
const nginxConf = `daemon off;
master_process on;
worker_processes %s;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    types { }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%[3]d;
        root %[2]s/www;
        location / {
            try_files /key.bin =404;
            add_header Cache-Control no-store;
            add_header Vary Origin;
        }
    }
}
`

// startNginx starts nginx with a generated config in a temporary directory.
func startNginx(workers, tmp string) (*target, error) {
	bin := findNginx()
	if bin == "" {
		return nil, errors.New("nginx is not installed (apt-get install -y nginx)")
	}
	dir := filepath.Join(tmp, "nginx")
	for _, d := range []string{"www", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// Started as root, nginx's workers run as an unprivileged user: they
	// must be able to reach the file through the private temporary
	// directory (traverse only; nothing in it becomes listable).
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "key.bin"), baselineBody, 0o644); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // the free port may be taken before nginx binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, workers, dir, port)), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
		p, err := startProc(cmd, syscall.SIGTERM)
		if err != nil {
			return nil, fmt.Errorf("nginx: %w", err)
		}
		u, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(port))
		if err := waitHTTP(u.String()+"/keys/x", p, 10*time.Second); err != nil {
			p.stop(2 * time.Second)
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			lastErr = fmt.Errorf("nginx did not start: %v\n%s%s", err, p.log.String(), clip(string(errLog), 2000))
			if bytes.Contains(errLog, []byte("Address already in use")) {
				continue
			}
			return nil, lastErr
		}
		return &target{Name: "nginx", URL: u, PID: cmd.Process.Pid, Base: true, stop: func() { p.stop(5 * time.Second) }}, nil
	}
	return nil, lastErr
}

// waitHTTP polls url until it answers 200, p exits, or d passes.
func waitHTTP(u string, p *proc, d time.Duration) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return errors.New("the process exited")
		}
		resp, err := c.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", d, last)
}

// redisServer is a redis-server we started for the run, as
// internal/redistest does for tests: a free loopback port, a temporary
// directory, no persistence.
type redisServer struct {
	Addr string
	PID  int
	p    *proc
}

func startRedis(tmp string) (*redisServer, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server not found: install it with `apt-get install redis-server`")
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if port == 6379 {
			continue // never the developer's own Redis port
		}
		dir := filepath.Join(tmp, "redis-"+strconv.Itoa(port))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		conf := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %q\nprotected-mode yes\ndaemonize no\nlogfile %q\nsave \"\"\nappendonly no\n",
			port, dir, filepath.Join(dir, "redis.log"))
		confFile := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command("redis-server", confFile)
		cmd.Dir = dir
		p, err := startProc(cmd, syscall.SIGKILL)
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitRedis(addr, p, 10*time.Second); err != nil {
			p.stop(time.Second)
			lg, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			lastErr = fmt.Errorf("redis-server: %v\n%s", err, clip(string(lg), 1000))
			continue
		}
		return &redisServer{Addr: addr, PID: cmd.Process.Pid, p: p}, nil
	}
	return nil, lastErr
}

func (r *redisServer) stop() { r.p.stop(5 * time.Second) }

func waitRedis(addr string, p *proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return errors.New("redis-server exited")
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
			if err == nil {
				var line string
				line, err = bufio.NewReader(c).ReadString('\n')
				if err == nil && strings.TrimSpace(line) == "+PONG" {
					c.Close()
					return nil
				}
				if err == nil {
					err = fmt.Errorf("PING answered %q", strings.TrimSpace(line))
				}
			}
			c.Close()
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", d, last)
}

// serverOptions starts keydelivery for a run.
type serverOptions struct {
	Bin   string   // the binary; "" builds ./cmd/keydelivery
	Flags []string // extra flags
	Store string   // "bolt" or "redis"
	Name  string
	Tmp   string
	Redis *redisServer
}

// keydeliveryServer is a keydelivery process we started in dev mode.
type keydeliveryServer struct {
	Delivery *url.URL
	Admin    string
	DataDir  string
	PID      int
	p        *proc
	logFile  *os.File
}

// buildServer builds ./cmd/keydelivery of the enclosing module into tmp.
func buildServer(tmp string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "keydelivery")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/keydelivery")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/keydelivery: %v\n%s", err, b)
	}
	return out, nil
}

// moduleRoot walks up from the working directory to the server module's
// go.mod (past loadtest's own).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/keydelivery/keydelivery\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the keydelivery module: run from the repository or pass --server-bin")
		}
		dir = parent
	}
}

// startServer runs keydelivery --dev on loopback ports chosen by the
// kernel, in a fresh data directory, and waits until it logs that it is
// ready. A flag the server does not know makes it exit at once, and the
// error quotes what it said.
func startServer(o serverOptions) (*keydeliveryServer, error) {
	dataDir := filepath.Join(o.Tmp, "kd-"+o.Name)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	args := []string{"--dev", "--data-dir", dataDir,
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--audit-log", filepath.Join(dataDir, "audit.log"), "--log-level", "info"}
	if o.Store == "redis" {
		args = append(args, "--store", "redis://"+o.Redis.Addr+"/0")
	}
	args = append(args, o.Flags...)
	cmd := exec.Command(o.Bin, args...)
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dataDir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout = logFile
	p, err := startProc(cmd, syscall.SIGTERM)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	s := &keydeliveryServer{DataDir: dataDir, PID: cmd.Process.Pid, p: p, logFile: logFile}
	type ready struct {
		delivery, admin string
		err             error
	}
	readyc := make(chan ready, 1)
	go func() {
		var r ready
		var tail []string
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if sent {
				continue
			}
			tail = append(tail, line)
			if len(tail) > 30 {
				tail = tail[1:]
			}
			var m struct{ Msg, Plane, Addr string }
			_ = json.Unmarshal([]byte(line), &m)
			switch {
			case m.Msg == "listening" && m.Plane == "delivery":
				r.delivery = m.Addr
			case m.Msg == "listening" && m.Plane == "admin":
				r.admin = m.Addr
			case m.Msg == "keydelivery ready":
				readyc <- r
				sent = true
			}
		}
		if !sent {
			r.err = fmt.Errorf("keydelivery exited before it was ready; its last output:\n%s", strings.Join(tail, "\n"))
			readyc <- r
		}
	}()
	var r ready
	select {
	case r = <-readyc:
	case <-time.After(60 * time.Second):
		p.stop(2 * time.Second)
		return nil, errors.New("keydelivery not ready within 60s")
	}
	if r.err != nil {
		p.stop(2 * time.Second)
		return nil, fmt.Errorf("keydelivery %s %s: %w", o.Bin, strings.Join(args, " "), r.err)
	}
	if r.delivery == "" || r.admin == "" {
		p.stop(2 * time.Second)
		return nil, errors.New("keydelivery did not log its listening addresses")
	}
	s.Delivery, _ = url.Parse("http://" + r.delivery)
	s.Admin = "http://" + r.admin
	return s, nil
}

func (s *keydeliveryServer) stop() {
	s.p.stop(20 * time.Second)
	s.logFile.Close()
}

func (s *keydeliveryServer) signingKey() string {
	return filepath.Join(s.DataDir, "dev-token-signing.key")
}
func (s *keydeliveryServer) signingCert() string {
	return filepath.Join(s.DataDir, "dev-token-signing.crt")
}
func (s *keydeliveryServer) adminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.DataDir, "dev-admin-token"))
	return strings.TrimSpace(string(b)), err
}

// cleanEnv is our environment without KD_* variables, so a developer's
// shell settings do not change the server we start.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KD_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, capped at 64 KiB.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() < 64<<10 {
		b.b.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// contextSleep sleeps d or until ctx ends.
func contextSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

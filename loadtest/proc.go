package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (it is part of the kernel ABI,
// independent of CONFIG_HZ).
const clockTick = 10 * time.Millisecond

// isLoopbackHost reports whether host (no port) is a loopback IP literal or
// "localhost".
func isLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkLoopbackURL refuses anything but an http URL on a loopback address:
// this tool sends load to this machine only.
func checkLoopbackURL(flagName, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flagName, raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s %q: only http:// URLs are supported (TLS would measure the handshake and the cipher, not the server)", flagName, raw)
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("%s %q: give the port explicitly (e.g. http://127.0.0.1:8080)", flagName, raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%s %q: refusing a non-loopback target: loadtest sends load to 127.0.0.0/8, [::1] or localhost only", flagName, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q: want a bare base URL such as http://127.0.0.1:8080", flagName, raw)
	}
	return u, nil
}

// cpuTime is a process's user plus system CPU time.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the contents
// of /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted after its last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed utime/stime in /proc stat")
	}
	return time.Duration(ut+st) * clockTick, nil
}

// parentPID returns field 4 of /proc/PID/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("short /proc stat")
	}
	return strconv.Atoi(f[1])
}

// processTree returns pid and all its descendants (nginx's workers, or the
// server under a `go run` parent).
func processTree(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := parentPID(p); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out) && i < 4096; i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeCPU sums cpuTime over pid and its descendants. Descendants that exit
// during the window are lost, so the measured servers must not fork per
// request (none of ours does).
func treeCPU(pid int) (time.Duration, error) {
	var sum time.Duration
	for i, p := range processTree(pid) {
		d, err := cpuTime(p)
		if err != nil {
			if i == 0 {
				return 0, fmt.Errorf("server process %d: %w", pid, err)
			}
			continue // a child that just went away
		}
		sum += d
	}
	return sum, nil
}

// treeRSS sums VmRSS, in KiB, over pid and its descendants.
func treeRSS(pid int) int64 {
	var sum int64
	for _, p := range processTree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// selfCPU is the load generator's own user plus system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// listeningInodes parses /proc/net/tcp or tcp6 and returns the socket
// inodes in state LISTEN (0A) on port, whatever the local address.
func listeningInodes(r io.Reader, port int) []string {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 32)
		if err != nil || int(p) != port {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// pidListeningOn finds the process that has a listening socket on port, by
// matching the socket inode from /proc/net/tcp{,6} against the symlinks in
// /proc/*/fd. It needs the right to read other processes' fd directories
// (same user, or root).
func pidListeningOn(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		for _, in := range listeningInodes(fh, port) {
			inodes["socket:["+in+"]"] = true
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no listening socket on port %d in /proc/net/tcp", port)
	}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", e.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join("/proc", e.Name(), "fd", fd.Name()))
			if err == nil && inodes[link] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("found a listening socket on port %d but not its process (no permission to read /proc/*/fd? pass --server-pid)", port)
}

//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// commandTimeout bounds every short-lived tool run (ffmpeg, kdctl, the
// packager, go build).
const commandTimeout = 3 * time.Minute

// command runs a short-lived program in its own process group and returns
// its combined output. The whole group is killed when ctx ends or after
// commandTimeout. extraEnv is added to a copy of the environment without
// any KD_ variable, so a developer's own settings do not leak in.
func command(ctx context.Context, dir string, extraEnv []string, name string, args ...string) (string, error) {
	var out bytes.Buffer
	err := commandIO(ctx, dir, extraEnv, nil, &out, &out, name, args...)
	return out.String(), err
}

// commandIO is command with explicit standard streams.
func commandIO(ctx context.Context, dir string, extraEnv []string, stdin *bytes.Reader, stdout, stderr *bytes.Buffer, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), extraEnv...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	inGroup(cmd)
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything it left behind
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", filepath.Base(name), ctx.Err())
	}
	return err
}

// inGroup puts cmd in a process group of its own, killed whole on cancel.
func inGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = groupAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
}

// groupAttr makes a child the leader of its own process group (so that it
// and whatever it starts can be killed together), killed if the test
// process dies first: a test that times out or is interrupted runs no
// cleanup, and a process group of its own does not get the terminal's
// SIGINT.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// cleanEnv is the environment without KD_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KD_") {
			env = append(env, kv)
		}
	}
	return env
}

// stopGroup asks a process group to stop (SIGTERM), waits for done up to
// grace, then kills the group.
func stopGroup(pid int, done <-chan struct{}, grace time.Duration) error {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	var err error
	select {
	case <-done:
	case <-time.After(grace):
		err = fmt.Errorf("process %d did not stop within %v of SIGTERM; killed", pid, grace)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return err
}

// killByArgument kills every process whose command line holds arg (a path
// unique to this run, such as a browser's user data directory), with its
// process group when it leads one. Chromium, launched detached by
// Playwright, is not in node's process group; this catches it if node died
// before closing it.
func killByArgument(arg string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var killed []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(arg)) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil || errors.Is(err, syscall.ESRCH) {
			killed = append(killed, pid)
		}
	}
	return killed
}

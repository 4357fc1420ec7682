package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMakeBuildVersion: make build, as the README says, gives both
// binaries a --version naming the commit they were built from, even where
// the toolchain records no VCS information (a git worktree, or
// GOFLAGS=-buildvcs=false as on the machines this is built on).
func TestMakeBuildVersion(t *testing.T) {
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to test make build: install it (Debian: apt-get install %s)", tool, tool)
		}
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v (the test runs in a clone)", err)
	}
	bin := t.TempDir()
	build := exec.Command("make", "-C", filepath.Join("..", ".."), "build", "BIN="+bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	for _, name := range []string{"keydelivery", "kdctl"} {
		out, err := exec.Command(filepath.Join(bin, name), "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", name, err, out)
		}
		s := string(out)
		if !strings.HasPrefix(s, name+" ") || !strings.Contains(s, "(revision "+strings.TrimSpace(string(head))) ||
			strings.HasPrefix(s, name+" (devel)") || !strings.Contains(s, runtime.Version()) {
			t.Errorf("%s --version = %q, want the version and revision %s", name, s, head)
		}
	}
}

// Package scripts holds the tests of the repository's shell scripts.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAptWaitsForTheLock: every apt-get the scripts run goes through
// apt_install, which passes the lock timeout, so an install running beside
// them (unattended-upgrades, another job) delays them instead of failing
// them. The apt-get here is a stand-in on PATH that fails the way the real
// one does while another process holds the lock, unless told to wait.
func TestAptWaitsForTheLock(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is needed to test the scripts")
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := `#!/bin/sh
echo "$*" >> "` + calls + `"
case "$*" in
*DPkg::Lock::Timeout=600*) exit 0 ;;
esac
echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1 (apt-get)" >&2
exit 100
`
	if err := os.WriteFile(filepath.Join(dir, "apt-get"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "-c", `set -euo pipefail; . scripts/apt.sh; apt_install redis-server zsh`)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt_install: %v\n%s", err, out)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], " update") || !strings.Contains(lines[1], "install -y -qq --no-install-recommends redis-server zsh") {
		t.Errorf("apt-get calls:\n%s", b)
	}

	// No script calls apt-get itself (a message telling a person to run it
	// is fine).
	direct := regexp.MustCompile(`(?m)^\s*(DEBIAN_FRONTEND=\S+\s+)?apt-get\s`)
	for _, name := range []string{"test.sh", "e2e.sh"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := direct.Find(b); m != nil {
			t.Errorf("%s runs apt-get without apt_install: %q", name, m)
		}
		if !strings.Contains(string(b), ". scripts/apt.sh") {
			t.Errorf("%s does not source scripts/apt.sh", name)
		}
	}
}

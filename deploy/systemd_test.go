package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unitFile is a systemd unit: section -> key -> values in order (a key may
// repeat; continuation lines are joined).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	var pending string
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			pending = strings.TrimSpace(s)
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Errorf("keydelivery.service:%d: not KEY=VALUE in a section: %q", i+1, line)
			continue
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u
}

func (u unitFile) last(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// TestSystemdUnit checks the unit's structure: the sandbox, the secrets as
// credentials wired to the flags, the reload and the stop timeout against
// the drain. TestSystemdAnalyze has systemd itself check it.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, string(readFile(t, deployPath(t, "systemd", "keydelivery.service"))))
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("keydelivery.service: no [%s] section", s)
		}
	}
	want := map[string]string{
		"DynamicUser":             "yes",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"ProtectHome":             "yes",
		"PrivateDevices":          "yes",
		"CapabilityBoundingSet":   "",
		"MemoryDenyWriteExecute":  "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	}
	for k, v := range want {
		got, ok := u.last("Service", k)
		if !ok || got != v {
			t.Errorf("[Service] %s=%q, want %q", k, got, v)
		}
	}
	if f := u["Service"]["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("[Service] SystemCallFilter=%v: want @system-service first", f)
	}
	if sd, _ := u.last("Service", "StateDirectory"); sd == "" {
		if rw, _ := u.last("Service", "ReadWritePaths"); rw == "" {
			t.Error("[Service]: the data directory must be writable under ProtectSystem=strict (StateDirectory= or ReadWritePaths=)")
		}
	}
	envFile, _ := u.last("Service", "EnvironmentFile")
	if envFile == "" {
		t.Error("[Service]: want EnvironmentFile= for the KD_* settings")
	}
	if r, _ := u.last("Service", "ExecReload"); !regexp.MustCompile(`kill -HUP \$MAINPID$`).MatchString(r) {
		t.Errorf("[Service] ExecReload=%q: want kill -HUP $MAINPID", r)
	}

	// ExecStart: the installed binary, known flags, every credential it
	// names loaded and every credential loaded used.
	start, _ := u.last("Service", "ExecStart")
	f := strings.Fields(start)
	if len(f) == 0 || f[0] != "/usr/local/bin/keydelivery" {
		t.Fatalf("ExecStart=%q: want /usr/local/bin/keydelivery ...", start)
	}
	flags := serverFlags(t)
	used := map[string]bool{}
	for _, a := range f[1:] {
		name, val, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || !flags[name] {
			t.Errorf("ExecStart: %q is not a keydelivery flag (--name=value)", a)
		}
		if c, ok := strings.CutPrefix(val, "${CREDENTIALS_DIRECTORY}/"); ok {
			used[c] = true
		}
		if strings.Contains(name, "file") || name == "protection-key" || name == "tls-key" {
			if !strings.HasPrefix(val, "${CREDENTIALS_DIRECTORY}/") {
				t.Errorf("ExecStart: %s must point into $CREDENTIALS_DIRECTORY (LoadCredential=)", a)
			}
		}
	}
	loaded := map[string]bool{}
	for _, lc := range u["Service"]["LoadCredential"] {
		name, src, _ := strings.Cut(lc, ":")
		loaded[name] = true
		if !strings.HasPrefix(src, "/etc/keydelivery/credentials/") {
			t.Errorf("LoadCredential=%s: keep secrets in the root-only /etc/keydelivery/credentials/", lc)
		}
	}
	for c := range used {
		if !loaded[c] {
			t.Errorf("ExecStart reads credential %s, which no LoadCredential= loads", c)
		}
	}
	for c := range loaded {
		if !used[c] {
			t.Errorf("LoadCredential=%s: no flag reads it", c)
		}
	}
	for _, c := range []string{"kek", "admin-credentials", "tls.crt", "tls.key"} { // the unit serves HTTPS
		if !loaded[c] {
			t.Errorf("want LoadCredential=%s", c)
		}
	}

	// The example environment file: known variables; the stop timeout
	// covers its drain.
	env := parseEnvFile(t, deployPath(t, "systemd", "keydelivery.env.example"))
	var names []string
	for k := range env {
		names = append(names, k)
	}
	checkEnvNames(t, "keydelivery.env.example", names)
	for _, k := range []string{"KD_TOKEN_CERTS", "KD_TOKEN_ISSUER", "KD_TOKEN_AUDIENCE"} {
		if env[k] == "" {
			t.Errorf("keydelivery.env.example must set %s (required)", k)
		}
	}
	for k := range env {
		if strings.Contains(k, "KEK") || strings.Contains(k, "PASSWORD") {
			t.Errorf("keydelivery.env.example sets %s: secrets go through LoadCredential=", k)
		}
	}
	delay, _ := time.ParseDuration(env["KD_DRAIN_DELAY"])
	timeout := 15 * time.Second
	if v := env["KD_DRAIN_TIMEOUT"]; v != "" {
		timeout, _ = time.ParseDuration(v)
	}
	ts, _ := u.last("Service", "TimeoutStopSec")
	stop, err := time.ParseDuration(ts)
	if err != nil {
		if n, err2 := strconv.Atoi(ts); err2 == nil {
			stop, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || stop <= delay+timeout {
		t.Errorf("TimeoutStopSec=%q must exceed KD_DRAIN_DELAY + KD_DRAIN_TIMEOUT (%s)", ts, delay+timeout)
	}
}

// TestSystemdAnalyze runs `systemd-analyze verify` (it needs no running
// systemd) on a copy of the unit whose ExecStart names the binary this test
// built, since verify insists the executable exists and nothing is
// installed in /usr/local/bin here; then `systemd-analyze security
// --offline=yes` for the sandbox's exposure score.
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: install it with `apt-get install systemd` (scripts/test.sh does this when run as root)")
	}
	text := string(readFile(t, deployPath(t, "systemd", "keydelivery.service")))
	text = strings.Replace(text, "/usr/local/bin/keydelivery", serverBinary(t), 1)
	dir := t.TempDir()
	unit := filepath.Join(dir, "keydelivery.service")
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify exits 0 on warnings such as an unknown key: any output fails.
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for keydelivery.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no exposure level in\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f: the sandbox lost directives (want at most 2.0)\n%s", level, out)
	} else {
		t.Logf("systemd-analyze security: exposure level %.1f", level)
	}
}

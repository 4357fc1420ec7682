//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkTimeout bounds each browser check inside the page; run.mjs adds a
// margin for page loads, and the whole node run is bounded too.
const checkTimeout = 20 * time.Second

// browserConfig is what e2e/browser/run.mjs reads.
type browserConfig struct {
	Chromium string `json:"chromium"`
	// ChromiumArgs are added to run.mjs's own (the HTTPS run's
	// --ignore-certificate-errors-spki-list).
	ChromiumArgs   []string       `json:"chromiumArgs"`
	UserDataDir    string         `json:"userDataDir"`
	PageOrigin     string         `json:"pageOrigin"`
	KeyServer      string         `json:"keyServer"`
	CheckTimeoutMs int            `json:"checkTimeoutMs"`
	Checks         []browserCheck `json:"checks"`
}

// browserCheck is one playback in a fresh page. Expect is "play" (playback
// must advance) or "refuse" (the player must report the key or license
// failure and not advance). KeyPath and KeyStatus are what run.mjs demands
// of the key server's answers it sees on the wire.
type browserCheck struct {
	Name      string `json:"name"`
	Page      string `json:"page"`
	Expect    string `json:"expect"`
	KeyPath   string `json:"keyPath"`
	KeyStatus int    `json:"keyStatus"`
	// MinKeyPaths, when set, is how many different key server paths the
	// page must fetch (a key rotation: one key per period).
	MinKeyPaths int            `json:"minKeyPaths,omitempty"`
	Params      map[string]any `json:"params"`
}

// browserResult is one JSON line run.mjs prints per check.
type browserResult struct {
	Name   string          `json:"name"`
	OK     bool            `json:"ok"`
	Detail string          `json:"detail"`
	Diag   json.RawMessage `json:"diag"`
}

// runBrowserChecks plays the HLS and DASH media in headless Chromium with
// hls.js, Shaka Player, dash.js and a raw EME page, through run.mjs; extra
// are more checks (the SPEKE media's). With trustSPKI (the HTTPS run: pages
// and key server on https://), Chromium trusts those certificates, and only
// the good playbacks run.
func runBrowserChecks(t *testing.T, e *env, rep *reporter, s *server, pages *pageServer, backendName, dir string, media *hlsMedia, tk tokens, trustSPKI []string, extra ...browserCheck) {
	o := pages.origin
	keys, license := s.delivery+"/keys/", s.delivery+"/clearkey/license"
	var cencKIDs []string
	for _, k := range e.cencKeys {
		cencKIDs = append(cencKIDs, b64url(k.kid[:]))
	}
	hls := func(name, playlist, headerToken, expect string, status int) browserCheck {
		return browserCheck{Name: name, Page: "hls.html", Expect: expect, KeyPath: "/keys/", KeyStatus: status,
			Params: map[string]any{"src": o + "/media/" + playlist, "headerToken": headerToken, "keyPrefix": keys}}
	}
	drm := func(name, page, token, expect string, status int) browserCheck {
		mpd := o + "/dash/stream.mpd"
		if page == "dash.html" {
			mpd = o + "/dash/stream-dashjs.mpd" // see packageDASH
		}
		return browserCheck{Name: name, Page: page, Expect: expect, KeyPath: "/clearkey/license", KeyStatus: status,
			Params: map[string]any{"mpd": mpd, "licenseUrl": license, "token": token, "kids": cencKIDs}}
	}
	cfg := browserConfig{
		Chromium:       e.chromium,
		UserDataDir:    filepath.Join(dir, "chromium-profile"),
		PageOrigin:     o,
		KeyServer:      s.delivery,
		CheckTimeoutMs: int(checkTimeout / time.Millisecond),
		Checks: []browserCheck{
			hls("hls.js/header-token", media.header, tk.hls, "play", 200),
			hls("hls.js/query-token", "query.m3u8", "", "play", 200),
			hls("hls.js/header-token/bad-signature", media.header, tk.badSig, "refuse", 401),
			hls("hls.js/query-token/expired", "query-expired.m3u8", "", "refuse", 401),
			drm("shaka/clearkey", "shaka.html", tk.cenc, "play", 200),
			drm("shaka/clearkey/bad-signature", "shaka.html", tk.cencBad, "refuse", 401),
			drm("dashjs/clearkey", "dash.html", tk.cenc, "play", 200),
			drm("dashjs/clearkey/bad-signature", "dash.html", tk.cencBad, "refuse", 401),
			drm("eme/clearkey", "eme.html", tk.cenc, "play", 200),
			drm("eme/clearkey/bad-signature", "eme.html", tk.cencBad, "refuse", 401),
			drm("eme/clearkey/other-kid", "eme.html", tk.otherKID, "refuse", 403),
		},
	}
	cfg.Checks = append(cfg.Checks, extra...)
	if len(trustSPKI) > 0 {
		cfg.ChromiumArgs = []string{"--ignore-certificate-errors-spki-list=" + strings.Join(trustSPKI, ",")}
		var good []browserCheck
		for _, c := range cfg.Checks {
			if c.Expect == "play" {
				good = append(good, c)
			}
		}
		cfg.Checks = good
	}
	if err := os.MkdirAll(cfg.UserDataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "browser-config.json")
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// Bounded by the checks, and ended before go test's own -timeout,
	// which would kill the test without running its cleanups.
	budget := 30*time.Second + time.Duration(len(cfg.Checks))*(checkTimeout+5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if dl, ok := t.Deadline(); ok {
		var cancelDL context.CancelFunc
		ctx, cancelDL = context.WithDeadline(ctx, dl.Add(-20*time.Second))
		defer cancelDL()
	}
	cmd := exec.CommandContext(ctx, e.node, "run.mjs", cfgFile)
	cmd.Dir = e.browserDir
	// Chromium writes outside its user data dir too (crash reports under
	// $XDG_CONFIG_HOME, caches and an NSS database under $HOME, its
	// singleton socket, PulseAudio's and Playwright's files under $TMPDIR):
	// all of it goes into a directory of this test. A short path, because
	// the socket's path must fit in 108 bytes.
	home, err := os.MkdirTemp("", "kdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	cmd.Env = append(cleanEnv(), "HOME="+home, "TMPDIR="+home, "XDG_RUNTIME_DIR="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	inGroup(cmd)
	// SIGTERM first: Playwright closes Chromium on it. Then the group.
	cmd.Cancel = func() error {
		return stopGroup(cmd.Process.Pid, make(chan struct{}), 5*time.Second)
	}
	t.Cleanup(func() {
		if pids := killByArgument(cfg.UserDataDir); len(pids) > 0 {
			t.Logf("killed %d leftover Chromium processes: %v", len(pids), pids)
		}
	})
	if err := cmd.Start(); err != nil {
		rep.fail(t, backendName+"/browser", "could not start node", err.Error())
		return
	}
	reported, failed := map[string]bool{}, false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var r browserResult
		if err := json.Unmarshal(line, &r); err != nil || r.Name == "" {
			continue
		}
		reported[r.Name] = true
		name := backendName + "/" + r.Name
		if r.OK {
			rep.pass(name, r.Detail)
		} else {
			failed = true
			rep.fail(t, name, r.Detail, redactTokens(prettyJSON(r.Diag)))
		}
	}
	werr := cmd.Wait()
	// run.mjs exits 1 when a check failed (reported above), 2 when it broke.
	if werr != nil && (len(reported) < len(cfg.Checks) || !failed) {
		rep.fail(t, backendName+"/browser", fmt.Sprintf("run.mjs (node, Chromium) failed: %v", werr), redactTokens(tail(stderr.String(), 40)))
	}
	for _, c := range cfg.Checks {
		if !reported[c.Name] {
			rep.fail(t, backendName+"/"+c.Name, fmt.Sprintf("no result: run.mjs stopped (see %s/browser)", backendName), "")
		}
	}
}

func prettyJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

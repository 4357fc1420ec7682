//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The whole suite: shared preparation (tools, binaries, media), then every
// check once per store backend. Each check prints one line; a failing
// check also fails the test with its diagnostics.
func TestE2E(t *testing.T) {
	started := time.Now()
	rep := &reporter{w: os.Stdout}
	defer func() { rep.summary(time.Since(started)) }() // also after a t.FailNow
	env := prepare(t, rep)
	for _, b := range []backend{
		{name: "bolt"},
		{name: "redis", redis: true},
		{name: "https", tls: true},
	} {
		t.Run(b.name, func(t *testing.T) { runBackend(t, env, rep, b) })
	}
}

// reporter prints one line per check and counts them. Checks run one
// after the other, so the time since the previous line is about how long a
// check took; it ends each line.
type reporter struct {
	mu             sync.Mutex
	w              io.Writer
	passed, failed int
	last           time.Time
}

// took returns the time since the previous line; r.mu is held.
func (r *reporter) took() string {
	now := time.Now()
	d := now.Sub(r.last)
	r.last = now
	return fmt.Sprintf("[%.1fs]", d.Seconds())
}

func (r *reporter) header(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "== "+format+"\n", args...)
	r.last = time.Now()
}

// pass records a check that held.
func (r *reporter) pass(name, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.passed++
	fmt.Fprintf(r.w, "ok   %-44s %s %s\n", name, detail, r.took())
}

// fail records a check that did not hold and fails t with diag, the
// evidence (process output, the page's console, the player's error).
func (r *reporter) fail(t testing.TB, name, detail, diag string) {
	t.Helper()
	r.mu.Lock()
	r.failed++
	fmt.Fprintf(r.w, "FAIL %-44s %s %s\n", name, detail, r.took())
	r.mu.Unlock()
	if diag != "" {
		t.Errorf("%s: %s\n%s", name, detail, indent(diag))
	} else {
		t.Errorf("%s: %s", name, detail)
	}
}

// result records pass or fail from err.
func (r *reporter) result(t testing.TB, name, detail string, err error) bool {
	t.Helper()
	if err != nil {
		var d string
		var de *diagError
		if errors.As(err, &de) {
			d = de.diag
		}
		r.fail(t, name, err.Error(), d)
		return false
	}
	r.pass(name, detail)
	return true
}

func (r *reporter) summary(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "== %d checks in %s\n", r.passed+r.failed, d.Round(100*time.Millisecond))
	fmt.Fprintf(r.w, "e2e: %d passed, %d failed\n", r.passed, r.failed)
}

// diagError is a check failure with evidence to show under it.
type diagError struct {
	msg, diag string
}

func (e *diagError) Error() string { return e.msg }

func failf(diag string, format string, args ...any) error {
	return &diagError{msg: fmt.Sprintf(format, args...), diag: diag}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// env is what every backend shares: tools, binaries, media and the CENC keys.
type env struct {
	root       string // repository root
	tmp        string
	keydeliver string // the built server
	kdctl      string // the built admin client
	ffmpeg     string
	node       string
	chromium   string
	browserDir string // e2e/browser, with node_modules
	packager   string // Shaka Packager from the shaka-packager npm package

	sourceTS string           // the clear test video: H.264 + AAC in MPEG-TS
	ref      map[int][]string // framemd5 hashes of the decoded source, by output stream (0 video, 1 audio)

	dashDir  string    // CENC DASH: stream.mpd, video.mp4, audio.mp4
	cencKeys []cencKey // video and audio keys, imported into every backend

	foreignKey string // PEM of an EC P-256 key no server trusts
}

type cencKey struct {
	label string
	kid   [16]byte
	key   [16]byte
}

func (k cencKey) kidString() string { return uuidString(k.kid) }

// prepare checks the tools, builds the binaries, makes the media. A missing
// tool fails the suite with how to install it; nothing is skipped.
func prepare(t *testing.T, rep *reporter) *env {
	t.Helper()
	rep.header("preparing (binaries, media, packaging)")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, tmp: t.TempDir(), browserDir: filepath.Join(root, "e2e", "browser")}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("run the suite from e2e/ in the repository (go test -tags e2e ./e2e/): %v", err)
	}
	var missing []string
	look := func(name, hint string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", name, hint))
		}
		return p
	}
	e.ffmpeg = look("ffmpeg", "apt-get install ffmpeg")
	look("ffprobe", "apt-get install ffmpeg") // the SPEKE rotation check cuts the source at a keyframe
	e.node = look("node", "Node.js 20 or newer")
	look("redis-server", "apt-get install redis-server")
	look("go", "Go toolchain")
	e.chromium = os.Getenv("E2E_CHROMIUM")
	if e.chromium == "" {
		e.chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(e.chromium); err != nil {
		missing = append(missing, fmt.Sprintf("%s (apt-get install chromium, or set E2E_CHROMIUM)", e.chromium))
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	e.packager = filepath.Join(e.browserDir, "node_modules", "shaka-packager", "bin", "packager-"+runtime.GOOS+"-"+arch)
	for _, f := range append(libFiles(), "node_modules/playwright-core/package.json", e.packager) {
		if !filepath.IsAbs(f) {
			f = filepath.Join(e.browserDir, f)
		}
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, fmt.Sprintf("%s (run npm ci in e2e/browser)", f))
		}
	}
	if len(missing) > 0 {
		rep.fail(t, "preflight", "missing tools; ./scripts/e2e.sh installs them (as root)", strings.Join(missing, "\n"))
		t.FailNow()
	}

	// The real binaries, run as processes.
	bin := filepath.Join(e.tmp, "bin")
	step := time.Now()
	out, err := command(context.Background(), root, nil, "go", "build", "-o", bin+string(os.PathSeparator), "./cmd/keydelivery", "./cmd/kdctl")
	if err != nil {
		rep.fail(t, "build", "go build ./cmd/keydelivery ./cmd/kdctl failed", out)
		t.FailNow()
	}
	e.keydeliver, e.kdctl = filepath.Join(bin, "keydelivery"), filepath.Join(bin, "kdctl")
	rep.pass("build", fmt.Sprintf("keydelivery and kdctl in %s", time.Since(step).Round(100*time.Millisecond)))

	// The clear source: 6 s of H.264 + AAC, a keyframe every 2 s (one per
	// HLS segment). MP4 for Shaka Packager, the same streams remuxed into
	// MPEG-TS for the HLS segmenter and as the reference.
	step = time.Now()
	mp4 := filepath.Join(e.tmp, "source.mp4")
	e.sourceTS = filepath.Join(e.tmp, "source.ts")
	if out, err := command(context.Background(), e.tmp, nil, e.ffmpeg, "-hide_banner", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-pix_fmt", "yuv420p",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", "-y", mp4); err != nil {
		rep.fail(t, "media/source", "ffmpeg could not make the test video", out)
		t.FailNow()
	}
	if out, err := command(context.Background(), e.tmp, nil, e.ffmpeg, "-hide_banner", "-nostdin", "-v", "error",
		"-i", mp4, "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-f", "mpegts", "-y", e.sourceTS); err != nil {
		rep.fail(t, "media/source", "ffmpeg could not remux the test video to MPEG-TS", out)
		t.FailNow()
	}
	ref, out, err := framemd5(context.Background(), e.ffmpeg, nil, e.sourceTS)
	if err != nil || len(ref[0]) == 0 || len(ref[1]) == 0 {
		rep.fail(t, "media/source", fmt.Sprintf("decoding the clear source: %v", err), out)
		t.FailNow()
	}
	e.ref = ref
	rep.pass("media/source", fmt.Sprintf("6 s H.264+AAC, %d video and %d audio frames, in %s", len(ref[0]), len(ref[1]), time.Since(step).Round(100*time.Millisecond)))

	// CENC keys made here, as a packager would, imported into each backend
	// with kdctl keys import: one for video, one for audio.
	for _, label := range []string{"VIDEO", "AUDIO"} {
		k := cencKey{label: label}
		mustRand(t, k.kid[:])
		k.kid[6] = k.kid[6]&0x0f | 0x40 // a version 4 UUID
		k.kid[8] = k.kid[8]&0x3f | 0x80
		mustRand(t, k.key[:])
		e.cencKeys = append(e.cencKeys, k)
	}
	step = time.Now()
	e.dashDir = filepath.Join(e.tmp, "dash")
	if out, err := packageDASH(e, mp4); err != nil {
		rep.fail(t, "media/shaka-packager", err.Error(), out)
		t.FailNow()
	}
	rep.pass("media/shaka-packager", fmt.Sprintf("CENC DASH, raw keys %s (video) and %s (audio), in %s", e.cencKeys[0].kidString(), e.cencKeys[1].kidString(), time.Since(step).Round(100*time.Millisecond)))

	// A signing key whose certificate no server trusts.
	fk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(fk)
	if err != nil {
		t.Fatal(err)
	}
	e.foreignKey = filepath.Join(e.tmp, "foreign-signing.key")
	if err := os.WriteFile(e.foreignKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// packageDASH encrypts the source with Shaka Packager (cenc, raw keys, the
// W3C common PSSH that Chromium's ClearKey CDM reads, no clear lead) into
// an on-demand DASH presentation.
func packageDASH(e *env, mp4 string) (string, error) {
	if err := os.MkdirAll(e.dashDir, 0o700); err != nil {
		return "", err
	}
	var keys []string
	for _, k := range e.cencKeys {
		keys = append(keys, fmt.Sprintf("label=%s:key_id=%x:key=%x", k.label, k.kid, k.key))
	}
	out, err := command(context.Background(), e.dashDir, nil, e.packager,
		"in="+mp4+",stream=video,output=video.mp4,drm_label=VIDEO",
		"in="+mp4+",stream=audio,output=audio.mp4,drm_label=AUDIO",
		"--enable_raw_key_encryption", "--keys", strings.Join(keys, ","),
		"--protection_scheme", "cenc", "--protection_systems", "CommonSystem",
		"--clear_lead", "0", "--mpd_output", "stream.mpd")
	if err != nil {
		return redactKeys(out, e.cencKeys), fmt.Errorf("shaka packager failed: %v", err)
	}
	mpd, err := os.ReadFile(filepath.Join(e.dashDir, "stream.mpd"))
	if err != nil {
		return "", err
	}
	for _, k := range e.cencKeys {
		if !strings.Contains(string(mpd), k.kidString()) {
			return string(mpd), fmt.Errorf("the MPD does not name KID %s", k.kidString())
		}
	}
	// dash.js 5.2.1 passes ClearKey init data to generateRequest as
	// "keyids" whatever it is, so the W3C common PSSH that Shaka Packager
	// signals in the MPD fails (TypeError, dash.js error 113). dash.js gets
	// the DASH-IF ClearKey descriptor instead (DASH-IF IOP 4.1, 7.6.2.4),
	// from which it builds keyids init data out of cenc:default_KID. The
	// media files are the same.
	dashjs := commonPSSH.ReplaceAllString(string(mpd), `<ContentProtection schemeIdUri="urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e" value="ClearKey1.0"/>`)
	if n := strings.Count(dashjs, "e2719d58-a985-b3c9-781a-b030af78d30e"); n != 2 {
		return string(mpd), fmt.Errorf("the MPD has %d W3C common PSSH descriptors, want 2 (video, audio)", n)
	}
	return "", os.WriteFile(filepath.Join(e.dashDir, "stream-dashjs.mpd"), []byte(dashjs), 0o600)
}

// commonPSSH is the MPD descriptor of the W3C common PSSH system.
var commonPSSH = regexp.MustCompile(`(?s)<ContentProtection schemeIdUri="urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b">.*?</ContentProtection>`)

func redactKeys(s string, keys []cencKey) string {
	for _, k := range keys {
		s = strings.ReplaceAll(s, fmt.Sprintf("%x", k.key), "REDACTED")
	}
	return s
}

func mustRand(t *testing.T, b []byte) {
	t.Helper()
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
}

func uuidString(b [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ffmpegTimeout bounds one playback by ffmpeg.
const ffmpegTimeout = 60 * time.Second

// framemd5 decodes the first video and the first audio stream of input with
// ffmpeg's framemd5 muxer and returns each decoded frame's MD5 by output
// stream (0 video, 1 audio), and ffmpeg's diagnostics. pre goes before -i.
func framemd5(ctx context.Context, ffmpeg string, pre []string, input string) (map[int][]string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, ffmpegTimeout)
	defer cancel()
	args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, pre...)
	args = append(args, "-i", input, "-map", "0:v:0", "-map", "0:a:0", "-f", "framemd5", "-")
	var stdout, stderr bytes.Buffer
	err := commandIO(ctx, "", nil, nil, &stdout, &stderr, ffmpeg, args...)
	hashes := map[int][]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 6 {
			continue
		}
		idx, perr := strconv.Atoi(strings.TrimSpace(f[0]))
		if perr != nil {
			continue
		}
		hashes[idx] = append(hashes[idx], strings.TrimSpace(f[len(f)-1]))
	}
	return hashes, redactTokens(stderr.String()), err
}

var tokenInText = regexp.MustCompile(`(token=|Bearer )[A-Za-z0-9_\-.%]+`)

// redactTokens hides tokens in tool output before it is shown.
func redactTokens(s string) string { return tokenInText.ReplaceAllString(s, "${1}REDACTED") }

// hlsMedia is one backend's AES-128 HLS packaging.
type hlsMedia struct {
	dir       string            // served at /media/
	query     string            // playlist whose key URI carries ?token=
	header    string            // playlist whose key URI carries no token
	playlists map[string]string // name (bad-signature, expired, other-kid) -> playlist with that token in the key URI
}

// packageHLS does what the README tells a packager: kdctl hls keyinfo
// exports the key and writes ffmpeg's key-info file, ffmpeg segments the
// clear source into AES-128 HLS. Once with the token in the key URI (for
// players that cannot send headers), once without. The clear key files
// are removed afterwards.
func packageHLS(e *env, s *server, dir, kid string, tk tokens) (*hlsMedia, error) {
	m := &hlsMedia{dir: filepath.Join(dir, "media"), playlists: map[string]string{}}
	pack := filepath.Join(dir, "pack") // key files: never served
	for _, d := range []string{m.dir, pack} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	tokenFile := filepath.Join(pack, "token")
	if err := os.WriteFile(tokenFile, []byte(tk.hls+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, v := range []struct {
		name  string
		token bool
	}{{"query", true}, {"header", false}} {
		keyFile, infoFile := filepath.Join(pack, v.name+".key"), filepath.Join(pack, v.name+".keyinfo")
		args := []string{"hls", "keyinfo", kid, "--key-file", keyFile, "--keyinfo-file", infoFile}
		if v.token {
			args = append(args, "--token-file", tokenFile)
		}
		if _, err := s.kdctl(e, nil, args...); err != nil {
			return nil, err
		}
		playlist := v.name + ".m3u8"
		out, err := command(context.Background(), m.dir, nil, e.ffmpeg, "-hide_banner", "-nostdin", "-v", "error",
			"-i", e.sourceTS, "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod",
			"-hls_key_info_file", infoFile, "-hls_segment_filename", v.name+"%d.ts", playlist)
		if err != nil {
			return nil, failf(redactTokens(out), "ffmpeg HLS packaging (%s): %v", v.name, err)
		}
		if err := os.Remove(keyFile); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(m.dir, playlist))
		if err != nil {
			return nil, err
		}
		want := `#EXT-X-KEY:METHOD=AES-128,URI="` + s.delivery + "/keys/" + kid
		if v.token {
			want += "?token=" + url.QueryEscape(tk.hls) + `"`
		} else {
			want += `"`
		}
		if !strings.Contains(string(b), want) {
			return nil, failf(redactTokens(string(b)), "the %s playlist has no key line %q", v.name, redactTokens(want))
		}
		if v.token {
			m.query = filepath.Join(m.dir, playlist)
		} else {
			m.header = playlist
		}
	}
	// The same packaging with another token in the key URI: what a player
	// gets when the token it was handed is bad.
	q, err := os.ReadFile(m.query)
	if err != nil {
		return nil, err
	}
	for name, tok := range map[string]string{"bad-signature": tk.badSig, "expired": tk.expired, "other-kid": tk.otherKID} {
		text := strings.Replace(string(q), "token="+url.QueryEscape(tk.hls), "token="+url.QueryEscape(tok), 1)
		if text == string(q) {
			return nil, errors.New("could not put another token into the query playlist")
		}
		p := "query-" + name + ".m3u8"
		if err := os.WriteFile(filepath.Join(m.dir, p), []byte(text), 0o600); err != nil {
			return nil, err
		}
		m.playlists[name] = filepath.Join(m.dir, p)
	}
	return m, nil
}

// ffmpegPlayback is how ffmpeg reaches the key: from a local playlist with
// the token in the key URI, or from a playlist fetched over HTTP with the
// token in an Authorization header that ffmpeg forwards to the key request.
type ffmpegPlayback struct {
	input string
	pre   []string
}

// ffmpegPlay decodes the protected stream through the server and compares
// every decoded frame with the clear source. It fails unless all frames
// match and the server's access log shows the key delivered.
func ffmpegPlay(e *env, s *server, p ffmpegPlayback) (string, error) {
	off := s.logSize()
	got, diag, err := framemd5(context.Background(), e.ffmpeg, p.pre, p.input)
	keyLines := s.requests(off, "/keys/", func(l []logLine) bool { return len(l) > 0 })
	if err != nil {
		return "", failf(diag+"\n"+statuses(keyLines), "ffmpeg playback failed: %v (key requests: %s)", err, statuses(keyLines))
	}
	var parts []string
	for i, kind := range []string{"video", "audio"} {
		ref, have := e.ref[i], got[i]
		n := 0
		for n < len(ref) && n < len(have) && ref[n] == have[n] {
			n++
		}
		if n != len(ref) || len(have) != len(ref) {
			return "", failf(diag, "%s frames differ from the clear source: %d of %d identical, %d decoded (key requests: %s)", kind, n, len(ref), len(have), statuses(keyLines))
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", kind, n, len(ref)))
	}
	ok := 0
	for _, l := range keyLines {
		if l.Status != 200 {
			return "", failf(diag, "a key request was refused during a good playback: %s", statuses(keyLines))
		}
		ok++
	}
	if ok == 0 {
		return "", failf(diag, "frames match but the access log shows no key request to the server")
	}
	return fmt.Sprintf("frames identical (%s); key %s", strings.Join(parts, ", "), statuses(keyLines)), nil
}

// ffmpegRefused plays with a bad token and demands that playback fails
// (non-zero exit or no decoded frame) and that the server refused the key
// with want (status and reason) and never delivered it.
func ffmpegRefused(e *env, s *server, p ffmpegPlayback, status int, reason string) (string, error) {
	off := s.logSize()
	got, diag, err := framemd5(context.Background(), e.ffmpeg, p.pre, p.input)
	frames := len(got[0]) + len(got[1])
	keyLines := s.requests(off, "/keys/", func(l []logLine) bool {
		for _, x := range l {
			if x.Status == status {
				return true
			}
		}
		return false
	})
	exit := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		exit = ee.ExitCode()
	case err != nil:
		return "", failf(diag, "ffmpeg did not run: %v", err)
	}
	if exit == 0 && frames > 0 {
		return "", failf(diag, "playback succeeded with a bad token: %d frames decoded (key requests: %s)", frames, statuses(keyLines))
	}
	seen := false
	for _, l := range keyLines {
		if l.Status == 200 {
			return "", failf(diag, "the server delivered the key to a bad token: %s", statuses(keyLines))
		}
		if l.Status == status && (reason == "" || l.Reason == reason) {
			seen = true
		}
	}
	if !seen {
		return "", failf(diag+"\n"+s.logTail(10), "want the server to answer %d %s; the access log shows %s", status, reason, statuses(keyLines))
	}
	return fmt.Sprintf("playback refused (exit %d, %d frames); key %s", exit, frames, statuses(keyLines)), nil
}

// bearerHeader is ffmpeg's -headers option for a token, which the HLS
// demuxer passes on to the key request when the playlist came over HTTP.
func bearerHeader(tok string) []string {
	return []string{"-headers", "Authorization: Bearer " + tok + "\r\n"}
}

// ffmpegWhitelist lets a local playlist reach an http:// key URI.
var ffmpegWhitelist = []string{"-protocol_whitelist", "file,http,tcp,crypto,data"}

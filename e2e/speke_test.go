//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/cpix"
)

// System IDs the SPEKE checks ask for.
const (
	sysWidevine  = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
	sysPlayReady = "9a04f079-9840-4286-ab92-e65be0885f95"
	sysAES128    = "3ea8778f-7742-4bf9-b18b-e834b2acbd47"
	sysCommon    = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
)

// spekeAnswer is what the checks read of a SPEKE answer: each key, and each
// DRMSystem's signaling elements by "kid systemId" and element name
// (HLSSignalingData by playlist: "HLSSignalingData/media").
type spekeAnswer struct {
	keys      map[string][]byte
	signaling map[string]map[string]string
}

// spekeRequest asks the server for keys with kdctl speke request (the dev
// admin credential; admin may call SPEKE) and reads the CPIX answer.
func spekeRequest(e *env, s *server, dir string, args ...string) (*spekeAnswer, error) {
	out := filepath.Join(dir, fmt.Sprintf("speke-%d.xml", time.Now().UnixNano()))
	if _, err := s.kdctl(e, nil, append(append([]string{"speke", "request"}, args...), "--out", out)...); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	defer os.Remove(out)
	root, err := cpix.ParseTree(bytes.NewReader(b), 1<<20)
	if err != nil {
		return nil, err
	}
	a := &spekeAnswer{keys: map[string][]byte{}, signaling: map[string]map[string]string{}}
	ns := cpix.NamespaceCPIX
	for _, ck := range root.Child(ns, "ContentKeyList").ChildElements(ns, "ContentKey") {
		kid, _ := ck.AttrValue("kid")
		pv := ck.Child(ns, "Data").Child(cpix.NamespacePSKC, "Secret").Child(cpix.NamespacePSKC, "PlainValue")
		if a.keys[kid], err = base64.StdEncoding.DecodeString(pv.Text()); err != nil || len(a.keys[kid]) != 16 {
			return nil, fmt.Errorf("the SPEKE answer's key %s is not 16 bytes of base64", kid)
		}
	}
	for _, d := range root.Child(ns, "DRMSystemList").ChildElements(ns, "DRMSystem") {
		kid, _ := d.AttrValue("kid")
		sys, _ := d.AttrValue("systemId")
		m := map[string]string{}
		for _, el := range d.Elements() {
			name := el.Local
			if pl, ok := el.AttrValue("playlist"); ok {
				name += "/" + pl
			}
			m[name] = el.Text()
		}
		a.signaling[kid+" "+sys] = m
	}
	return a, nil
}

func newKID(t *testing.T) string {
	var k [16]byte
	mustRand(t, k[:])
	k[6], k[8] = k[6]&0x0f|0x40, k[8]&0x3f|0x80
	return uuidString(k)
}

// runSPEKEChecks gets keys from the server the way packagers do, with
// SPEKE v2, packages with them and checks the signaling; it returns the
// browser checks that play the result (hls.js across a key rotation,
// Shaka Player with ClearKey).
func runSPEKEChecks(t *testing.T, e *env, rep *reporter, s *server, pages *pageServer, name func(string) string, dir string) []browserCheck {
	media := filepath.Join(dir, "media")
	keyFile, certFile := filepath.Join(s.dataDir, "dev-token-signing.key"), filepath.Join(s.dataDir, "dev-token-signing.crt")
	var checks []browserCheck

	// HLS AES-128 with two key periods, ffmpeg re-keying between them.
	rotKIDs := []string{newKID(t), newKID(t)}
	var periods []*spekeAnswer
	err := func() error {
		for i, kid := range rotKIDs {
			a, err := spekeRequest(e, s, dir, "--content", "live-e2e", "--kid", kid, "--system", "aes128", "--period", strconv.Itoa(i))
			if err != nil {
				return err
			}
			periods = append(periods, a)
		}
		again, err := spekeRequest(e, s, dir, "--content", "live-e2e", "--kid", rotKIDs[0], "--system", "aes128", "--period", "0")
		if err != nil {
			return err
		}
		if !bytes.Equal(again.keys[rotKIDs[0]], periods[0].keys[rotKIDs[0]]) {
			return fmt.Errorf("the same SPEKE request answered another key")
		}
		return nil
	}()
	if !rep.result(t, name("speke/hls-aes128-periods"), fmt.Sprintf("kdctl speke request: keys %s (period 0) and %s (period 1) of content live-e2e; the same request again, the same key", rotKIDs[0], rotKIDs[1]), err) {
		return nil
	}
	// One token for the whole live content, whatever keys it rotates to:
	// the content_ids claim, not the period KIDs.
	rotToken, err := s.mintContent(e, keyFile, certFile, "live-e2e")
	if err != nil {
		rep.result(t, name("speke/ffmpeg-rotation"), "", err)
		return nil
	}
	playlist, err := packageRotation(e, s, dir, media, rotKIDs, periods)
	if !rep.result(t, name("speke/ffmpeg-rotation"), "ffmpeg -hls_flags periodic_rekey: the key info file swapped between the periods; two EXT-X-KEY URIs from SPEKE's HLSSignalingData", err) {
		return nil
	}
	detail, err := ffmpegPlay(e, s, ffmpegPlayback{input: pages.origin + "/media/" + playlist, pre: bearerHeader(rotToken)})
	rep.result(t, name("ffmpeg/speke-rotation"), detail, err)
	checks = append(checks, browserCheck{Name: "hls.js/speke-rotation", Page: "hls.html", Expect: "play", KeyPath: "/keys/", KeyStatus: 200,
		MinKeyPaths: 2, Params: map[string]any{"src": pages.origin + "/media/" + playlist, "headerToken": rotToken,
			"keyPrefix": s.delivery + "/keys/", "minTime": 4.5}})

	// CENC with ClearKey: Shaka Packager with SPEKE's keys; the Widevine
	// and PlayReady PSSH boxes compared with the ones Shaka Packager writes
	// for the same keys.
	cencKIDs := []string{newKID(t), newKID(t)}
	cenc, err := spekeRequest(e, s, dir, "--content", "vod-e2e", "--kid", cencKIDs[0], "--kid", cencKIDs[1],
		"--system", "common,clearkey,widevine,playready", "--scheme", "cenc")
	if !rep.result(t, name("speke/cenc-keys"), fmt.Sprintf("kdctl speke request: VIDEO %s, AUDIO %s of content vod-e2e (common, clearkey, widevine, playready)", cencKIDs[0], cencKIDs[1]), err) {
		return checks
	}
	dashDir := filepath.Join(media, "speke-dash")
	laURL, err := playReadyLAURL(cenc.signaling[cencKIDs[0]+" "+sysPlayReady]["PSSH"])
	if err == nil {
		err = packageSPEKEDASH(e, dashDir, cencKIDs, cenc, laURL)
	}
	if !rep.result(t, name("speke/shaka-packager"), "CENC DASH with the SPEKE keys (raw keys), Widevine, PlayReady and common PSSH", err) {
		return checks
	}
	detail, err = comparePSSH(filepath.Join(dashDir, "audio.mp4"), cencKIDs, cenc)
	rep.result(t, name("speke/pssh"), detail, err)
	clearKeyURL, err := laurl(cenc.signaling[cencKIDs[0]+" "+sysCommon]["ContentProtectionData"])
	if err == nil && clearKeyURL != s.delivery+"/clearkey/license" {
		err = fmt.Errorf("the ClearKey license URL of the signaling is %s, want %s/clearkey/license", clearKeyURL, s.delivery)
	}
	if !rep.result(t, name("speke/clearkey-signaling"), "ContentProtectionData: cenc:pssh and dashif:Laurl "+clearKeyURL, err) {
		return checks
	}
	cencToken, err := s.mint(e, keyFile, certFile, cencKIDs...)
	if err != nil {
		rep.result(t, name("speke/tokens"), "", err)
		return checks
	}
	detail, err = contentTokenRefusals(s, rotToken, rotKIDs, periods, cencKIDs[0])
	rep.result(t, name("speke/content-token"), detail, err)
	var kids []string
	for _, k := range cencKIDs {
		b, _ := hex.DecodeString(strings.ReplaceAll(k, "-", ""))
		kids = append(kids, b64url(b))
	}
	checks = append(checks, browserCheck{Name: "shaka/speke-clearkey", Page: "shaka.html", Expect: "play", KeyPath: "/clearkey/license", KeyStatus: 200,
		Params: map[string]any{"mpd": pages.origin + "/media/speke-dash/stream.mpd", "licenseUrl": clearKeyURL, "token": cencToken, "kids": kids}})
	return checks
}

// mintContent makes a token with kdctl token mint --content: it grants
// every key recorded under the contents.
func (s *server) mintContent(e *env, signingKey, cert string, contents ...string) (string, error) {
	args := []string{"token", "mint", "--signing-key", signingKey, "--cert", cert, "--issuer", devIssuer, "--audience", devAudience, "--ttl", "10m"}
	for _, c := range contents {
		args = append(args, "--content", c)
	}
	return s.kdctl(e, nil, args...)
}

// contentTokenRefusals checks the content_ids token of the live content
// directly: it gets both period keys, and a key of another content and a
// KID with no key get the same answer, 403 key_not_granted, byte for byte
// (headers too, but Date; the request ID is the caller's).
func contentTokenRefusals(s *server, tok string, kids []string, periods []*spekeAnswer, otherContentKID string) (string, error) {
	get := func(kid string) (answer, error) {
		a, err := do(http.MethodGet, s.delivery+"/keys/"+kid, map[string]string{"Authorization": "Bearer " + tok, "X-Request-ID": "content-e2e"}, nil)
		a.header.Del("Date")
		return a, err
	}
	for i, kid := range kids {
		a, err := get(kid)
		if err != nil {
			return "", err
		}
		if a.status != 200 || !bytes.Equal(a.body, periods[i].keys[kid]) {
			return "", fmt.Errorf("period %d's key %s: %v", i, kid, a)
		}
	}
	other, err := get(otherContentKID)
	if err != nil {
		return "", err
	}
	missing, err := get(newKIDString())
	if err != nil {
		return "", err
	}
	if other.status != 403 || !bytes.Contains(other.body, []byte(`"reason":"key_not_granted"`)) {
		return "", fmt.Errorf("a key of another content: %v", other)
	}
	if missing.status != other.status || !bytes.Equal(missing.body, other.body) || !maps.EqualFunc(missing.header, other.header, slices.Equal) {
		return "", failf(fmt.Sprintf("another content: %v %v\nno key:          %v %v", other, other.header, missing, missing.header),
			"a key of another content and a KID with no key are answered differently")
	}
	return fmt.Sprintf("one content_ids token (kdctl token mint --content live-e2e): both period keys; a key of content vod-e2e and a KID with no key both %d key_not_granted, identical", other.status), nil
}

// newKIDString is a random version 4 KID.
func newKIDString() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	k[6], k[8] = k[6]&0x0f|0x40, k[8]&0x3f|0x80
	return uuidString(k)
}

// packageRotation packages the clear source as live HLS with AES-128 the
// way docs/packagers.md tells: ffmpeg with -hls_flags periodic_rekey reads
// its key info file at every segment, and the key info file is swapped
// when the key period changes. The source goes to ffmpeg through a pipe in
// two parts, cut at the keyframe that starts the last segment: the first
// part under period 0's key info, and, once ffmpeg has finished the first
// segment (so period 0's key is in use), the key info of period 1, then
// the rest. The stream is the source unchanged, so its decoded frames are
// the reference's.
func packageRotation(e *env, s *server, dir, media string, kids []string, periods []*spekeAnswer) (string, error) {
	pack := filepath.Join(dir, "pack-rotation") // key files: never served
	out := filepath.Join(media, "rotation")
	for _, d := range []string{pack, out} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	infos := make([]string, len(kids))
	for i, kid := range kids {
		tag, err := base64.StdEncoding.DecodeString(periods[i].signaling[kid+" "+sysAES128]["HLSSignalingData/media"])
		if err != nil {
			return "", err
		}
		m := regexp.MustCompile(`^#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"$`).FindStringSubmatch(string(tag))
		if m == nil || m[1] != s.delivery+"/keys/"+kid {
			return "", fmt.Errorf("period %d: HLSSignalingData %q, want the key URI %s/keys/%s", i, tag, s.delivery, kid)
		}
		keyPath := filepath.Join(pack, kid+".key")
		if err := os.WriteFile(keyPath, periods[i].keys[kid], 0o600); err != nil {
			return "", err
		}
		infos[i] = m[1] + "\n" + keyPath + "\n"
	}
	cut, err := lastSegmentOffset(e)
	if err != nil {
		return "", err
	}
	src, err := os.ReadFile(e.sourceTS)
	if err != nil {
		return "", err
	}
	keyinfo := filepath.Join(pack, "keyinfo")
	if err := os.WriteFile(keyinfo, []byte(infos[0]), 0o600); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.ffmpeg, "-hide_banner", "-v", "error",
		"-probesize", "32768", "-analyzeduration", "500000", "-f", "mpegts", "-i", "pipe:0",
		"-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "event", "-hls_flags", "periodic_rekey",
		"-hls_key_info_file", keyinfo, "-hls_segment_filename", "rot%d.ts", "rotation.m3u8")
	cmd.Dir = out
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	inGroup(cmd)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	fail := func(err error) (string, error) {
		stdin.Close()
		cancel()
		<-werr
		return "", failf(stderr.String(), "%v", err)
	}
	if _, err := stdin.Write(src[:cut]); err != nil {
		return fail(fmt.Errorf("writing the first part to ffmpeg: %w", err))
	}
	playlist := filepath.Join(out, "rotation.m3u8")
	for {
		b, _ := os.ReadFile(playlist)
		if bytes.Contains(b, []byte("rot0.ts")) {
			break
		}
		select {
		case err := <-werr:
			werr <- err
			return fail(fmt.Errorf("ffmpeg ended before its first segment: %v", err))
		case <-ctx.Done():
			return fail(fmt.Errorf("ffmpeg wrote no first segment within %v", commandTimeout))
		case <-time.After(50 * time.Millisecond):
		}
	}
	tmp := keyinfo + ".tmp"
	if err := os.WriteFile(tmp, []byte(infos[1]), 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, keyinfo); err != nil { // one step: ffmpeg reads the old or the new file
		return fail(err)
	}
	if _, err := stdin.Write(src[cut:]); err != nil {
		return fail(fmt.Errorf("writing the second part to ffmpeg: %w", err))
	}
	stdin.Close()
	if err := <-werr; err != nil {
		return "", failf(stderr.String(), "ffmpeg: %v", err)
	}
	for _, kid := range kids {
		os.Remove(filepath.Join(pack, kid+".key"))
	}
	b, err := os.ReadFile(playlist)
	if err != nil {
		return "", err
	}
	uris := regexp.MustCompile(`#EXT-X-KEY:METHOD=AES-128,URI="([^"]+)"`).FindAllStringSubmatch(string(b), -1)
	var seen []string
	for _, u := range uris {
		if len(seen) == 0 || seen[len(seen)-1] != u[1] {
			seen = append(seen, u[1])
		}
	}
	if want := []string{s.delivery + "/keys/" + kids[0], s.delivery + "/keys/" + kids[1]}; !slices.Equal(seen, want) {
		return "", failf(string(b), "the playlist's keys are %v, want %v in that order", seen, want)
	}
	return "rotation/rotation.m3u8", nil
}

// lastSegmentOffset is the byte offset in the clear source of the video
// keyframe that starts its last 2 s segment (ffprobe, which comes with
// ffmpeg).
func lastSegmentOffset(e *env) (int, error) {
	ffprobe, err := exec.LookPath("ffprobe")
	if err != nil {
		return 0, err
	}
	out, err := command(context.Background(), "", nil, ffprobe, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pos,flags", "-of", "csv=p=0", e.sourceTS)
	if err != nil {
		return 0, failf(out, "ffprobe: %v", err)
	}
	var keyframes []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) >= 2 && strings.Contains(f[1], "K") {
			if pos, err := strconv.Atoi(f[0]); err == nil {
				keyframes = append(keyframes, pos)
			}
		}
	}
	if len(keyframes) != 3 {
		return 0, failf(out, "the source has %d video keyframes, want 3 (one per 2 s segment)", len(keyframes))
	}
	return keyframes[2], nil
}

// packageSPEKEDASH encrypts the source with Shaka Packager and the keys of
// the SPEKE answer (raw keys: this Shaka Packager has no CPIX), writing
// Widevine, PlayReady (LA_URL as SPEKE gave it) and common PSSH boxes.
func packageSPEKEDASH(e *env, dir string, kids []string, a *spekeAnswer, laURL string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var keys []string
	for i, label := range []string{"VIDEO", "AUDIO"} {
		keys = append(keys, fmt.Sprintf("label=%s:key_id=%s:key=%x", label, strings.ReplaceAll(kids[i], "-", ""), a.keys[kids[i]]))
	}
	mp4 := filepath.Join(e.tmp, "source.mp4")
	out, err := command(context.Background(), dir, nil, e.packager,
		"in="+mp4+",stream=video,output=video.mp4,drm_label=VIDEO",
		"in="+mp4+",stream=audio,output=audio.mp4,drm_label=AUDIO",
		"--enable_raw_key_encryption", "--keys", strings.Join(keys, ","),
		"--protection_scheme", "cenc", "--protection_systems", "Widevine,PlayReady,CommonSystem",
		"--playready_extra_header_data", "<LA_URL>"+laURL+"</LA_URL>",
		"--clear_lead", "0", "--mpd_output", "stream.mpd")
	if err != nil {
		for _, v := range a.keys {
			out = strings.ReplaceAll(out, hex.EncodeToString(v), "REDACTED")
		}
		return failf(out, "shaka packager: %v", err)
	}
	return nil
}

// psshBoxes reads the pssh boxes of an MP4 file's moov (a plain box walk,
// independent of the server's pssh package).
func psshBoxes(file string) (map[string][][]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string][][]byte{}
	var walk func(p []byte) error
	walk = func(p []byte) error {
		for len(p) >= 8 {
			size := int(binary.BigEndian.Uint32(p))
			if size < 8 || size > len(p) {
				return fmt.Errorf("a box of %d bytes in %d", size, len(p))
			}
			switch typ := string(p[4:8]); typ {
			case "moov", "trak", "mdia", "minf", "stbl":
				if err := walk(p[8:size]); err != nil {
					return err
				}
			case "pssh":
				sys := hex.EncodeToString(p[12:28])
				out[sys] = append(out[sys], p[:size])
			}
			p = p[size:]
		}
		return nil
	}
	return out, walk(b)
}

// protobufFields reads the top-level fields of a protocol buffer: bytes
// fields as their bytes, varints as their decimal text (enough for the
// Widevine header).
func protobufFields(p []byte) (map[int][]string, error) {
	out := map[int][]string{}
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 10 && i < len(p); i++ {
			v |= uint64(p[i]&0x7f) << (7 * i)
			if p[i] < 0x80 {
				p = p[i+1:]
				return v, nil
			}
		}
		return 0, io.ErrUnexpectedEOF
	}
	for len(p) > 0 {
		tag, err := varint()
		if err != nil {
			return nil, err
		}
		switch tag & 7 {
		case 0:
			v, err := varint()
			if err != nil {
				return nil, err
			}
			out[int(tag>>3)] = append(out[int(tag>>3)], strconv.FormatUint(v, 10))
		case 2:
			l, err := varint()
			if err != nil || l > uint64(len(p)) {
				return nil, io.ErrUnexpectedEOF
			}
			out[int(tag>>3)] = append(out[int(tag>>3)], string(p[:l]))
			p = p[l:]
		default:
			return nil, fmt.Errorf("wire type %d", tag&7)
		}
	}
	return out, nil
}

// comparePSSH compares the Widevine and PlayReady PSSH boxes of the SPEKE
// answer with the ones Shaka Packager wrote into the init segment for the
// same keys: the PlayReady box byte for byte (both write a 4.0.0.0 header
// with KID, CHECKSUM and LA_URL for cenc); the Widevine header field by
// field (Shaka lists every KID in one header with the protection scheme;
// SPEKE gives one header per KID with the protection scheme, and also the
// content ID and provider).
func comparePSSH(initSegment string, kids []string, a *spekeAnswer) (string, error) {
	boxes, err := psshBoxes(initSegment)
	if err != nil {
		return "", err
	}
	shakaPR := boxes[strings.ReplaceAll(sysPlayReady, "-", "")]
	shakaWV := boxes[strings.ReplaceAll(sysWidevine, "-", "")]
	if len(shakaPR) != 1 || len(shakaWV) != 1 {
		return "", fmt.Errorf("Shaka Packager wrote %d PlayReady and %d Widevine PSSH boxes, want one each", len(shakaPR), len(shakaWV))
	}
	// PlayReady: which KID Shaka's header names, then that key's box.
	header, err := playReadyHeader(shakaPR[0])
	if err != nil {
		return "", err
	}
	var prKID string
	for _, kid := range kids {
		raw, _ := hex.DecodeString(strings.ReplaceAll(kid, "-", ""))
		guid := append([]byte{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6]}, raw[8:]...)
		if strings.Contains(header, "<KID>"+base64.StdEncoding.EncodeToString(guid)+"</KID>") {
			prKID = kid
		}
	}
	if prKID == "" {
		return "", failf(header, "Shaka Packager's PlayReady header names neither KID")
	}
	ours, err := base64.StdEncoding.DecodeString(a.signaling[prKID+" "+sysPlayReady]["PSSH"])
	if err != nil {
		return "", err
	}
	if !bytes.Equal(ours, shakaPR[0]) {
		oursHeader, _ := playReadyHeader(ours)
		return "", failf("SPEKE:  "+oursHeader+"\nShaka:  "+header, "the PlayReady PSSH of KID %s differs from Shaka Packager's", prKID)
	}
	// Widevine.
	shakaFields, err := protobufFields(shakaWV[0][32:])
	if err != nil {
		return "", err
	}
	var ourKIDs []string
	for _, kid := range kids {
		box, err := base64.StdEncoding.DecodeString(a.signaling[kid+" "+sysWidevine]["PSSH"])
		if err != nil || len(box) < 32 || !bytes.Equal(box[12:28], shakaWV[0][12:28]) || box[8] != shakaWV[0][8] {
			return "", fmt.Errorf("the Widevine PSSH of KID %s is not a version %d Widevine box", kid, shakaWV[0][8])
		}
		f, err := protobufFields(box[32:])
		if err != nil {
			return "", err
		}
		if len(f[2]) != 1 || !slices.Equal(f[9], shakaFields[9]) || string(f[4][0]) != "vod-e2e" {
			return "", fmt.Errorf("the Widevine header of KID %s: key_id %d, protection_scheme %v (Shaka %v), content_id %q", kid, len(f[2]), f[9], shakaFields[9], f[4])
		}
		ourKIDs = append(ourKIDs, f[2][0])
	}
	slices.Sort(ourKIDs)
	theirs := slices.Clone(shakaFields[2])
	slices.Sort(theirs)
	if !slices.Equal(ourKIDs, theirs) {
		return "", fmt.Errorf("the Widevine headers name other KIDs than Shaka Packager's")
	}
	scheme, _ := strconv.ParseUint(shakaFields[9][0], 10, 32)
	return fmt.Sprintf("PlayReady PSSH of %s identical to Shaka Packager's (%d bytes); Widevine key_id and protection_scheme %q as Shaka's",
		prKID, len(ours), string(binary.BigEndian.AppendUint32(nil, uint32(scheme)))), nil
}

// playReadyHeader is the header XML of a PlayReady pssh box (version 0).
func playReadyHeader(box []byte) (string, error) {
	if len(box) < 42 {
		return "", fmt.Errorf("a PlayReady box of %d bytes", len(box))
	}
	pro := box[32:]
	n := int(binary.LittleEndian.Uint16(pro[8:]))
	if 10+n > len(pro) {
		return "", fmt.Errorf("a PlayReady record of %d bytes in %d", n, len(pro))
	}
	u := make([]rune, n/2)
	for i := range u {
		u[i] = rune(binary.LittleEndian.Uint16(pro[10+2*i:]))
	}
	return string(u), nil
}

// playReadyLAURL is the LA_URL of the PlayReady header in a base64 PSSH.
func playReadyLAURL(b64 string) (string, error) {
	box, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", err
	}
	h, err := playReadyHeader(box)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`<LA_URL>([^<]+)</LA_URL>`).FindStringSubmatch(h)
	if m == nil {
		return "", failf(h, "the PlayReady header has no LA_URL")
	}
	return m[1], nil
}

// laurl is the dashif:Laurl of a base64 ContentProtectionData.
func laurl(b64 string) (string, error) {
	x, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`<dashif:Laurl xmlns:dashif="https://dashif.org/CPS">([^<]+)</dashif:Laurl>`).FindStringSubmatch(string(x))
	if m == nil || !strings.Contains(string(x), "<cenc:pssh") {
		return "", failf(string(x), "the ContentProtectionData has no cenc:pssh or no dashif:Laurl")
	}
	return m[1], nil
}

package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// importKeys imports a JSON batch through kdctl.
func importKeys(t *testing.T, env map[string]string, doc string) {
	t.Helper()
	if r := kdctl(t, env, "keys", "import", writeFile(t, "keys.json", []byte(doc))); r.code != 0 {
		t.Fatalf("import: %d %s", r.code, r.stderr)
	}
}

func readMode(t *testing.T, path string) ([]byte, os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, fi.Mode().Perm()
}

func TestHLSKeyinfo(t *testing.T) {
	srv, envs := session(t, "exporter", "reader", "writer")
	env := envs["exporter"]
	const iv = "000102030405060708090a0b0c0d0e0f"
	importKeys(t, envs["writer"], `[{"Id":"`+kidA+`","Data":"`+b64("0123456789abcdef")+`","Iv":"AAECAwQFBgcICQoLDA0ODw=="},
		{"Id":"`+kidB+`","Data":"`+b64("fedcba9876543210")+`"}]`)
	stored, err := srv.keys.Get(context.Background(), mustKID(t, kidA))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	keyFile, infoFile := filepath.Join(dir, "a.key"), filepath.Join(dir, "a.keyinfo")
	tokenFile := writeFile(t, "token", []byte("eyJhbGciOiJFUzI1NiJ9.eyJraWRzIjpbXX0.c2ln\n"))
	r := kdctl(t, env, "hls", "keyinfo", kidA, "--key-file", keyFile, "--keyinfo-file", infoFile, "--token-file", tokenFile)
	if r.code != 0 || r.stdout != infoFile+"\n" {
		t.Fatalf("keyinfo: %d %q %s", r.code, r.stdout, r.stderr)
	}
	key, mode := readMode(t, keyFile)
	if !bytes.Equal(key, stored.Value[:]) || mode != 0o600 {
		t.Errorf("key file %x mode %v, want %x 0600", key, mode, stored.Value)
	}
	info, mode := readMode(t, infoFile)
	want := "https://keys.example.com/keys/" + kidA + "?token=eyJhbGciOiJFUzI1NiJ9.eyJraWRzIjpbXX0.c2ln\n" + keyFile + "\n" + iv + "\n"
	if string(info) != want || mode != 0o600 {
		t.Errorf("key-info file (mode %v):\n%s\nwant:\n%s", mode, info, want)
	}

	// Neither file is overwritten.
	r = kdctl(t, env, "hls", "keyinfo", kidB, "--key-file", keyFile, "--keyinfo-file", filepath.Join(dir, "b.keyinfo"))
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("existing key file: %d %s", r.code, r.stderr)
	}
	r = kdctl(t, env, "hls", "keyinfo", kidB, "--key-file", filepath.Join(dir, "b.key"), "--keyinfo-file", infoFile)
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("existing key-info file: %d %s", r.code, r.stderr)
	}
	if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, key) {
		t.Error("the key file changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "b.key")); err == nil {
		t.Error("a refused run left a key file behind")
	}
	// --force replaces the key-info file (key rotation), never a key file.
	r = kdctl(t, env, "hls", "keyinfo", kidB, "--key-file", filepath.Join(dir, "b.key"), "--keyinfo-file", infoFile, "--force", "--token", "a+b/c=")
	if r.code != 0 {
		t.Fatalf("--force: %d %s", r.code, r.stderr)
	}
	info, mode = readMode(t, infoFile)
	want = "https://keys.example.com/keys/" + kidB + "?token=a%2Bb%2Fc%3D\n" + filepath.Join(dir, "b.key") + "\n"
	if string(info) != want || mode != 0o600 {
		t.Errorf("replaced key-info file (mode %v):\n%s\nwant:\n%s", mode, info, want)
	}

	// Defaults: KID.key and KID.keyinfo in the working directory, the key
	// file's path written absolute; --iv when the key has none.
	work := t.TempDir()
	t.Chdir(work)
	r = kdctl(t, env, "hls", "keyinfo", "{"+strings.ToUpper(kidB)+"}", "--iv", "0x00112233445566778899AABBCCDDEEFF")
	if r.code != 0 || r.stdout != kidB+".keyinfo\n" || !strings.Contains(r.stderr, "carries no token") {
		t.Fatalf("defaults: %d %q %s", r.code, r.stdout, r.stderr)
	}
	key, _ = readMode(t, filepath.Join(work, kidB+".key"))
	info, _ = readMode(t, filepath.Join(work, kidB+".keyinfo"))
	want = "https://keys.example.com/keys/" + kidB + "\n" + filepath.Join(work, kidB+".key") + "\n00112233445566778899aabbccddeeff\n"
	if string(key) != "fedcba9876543210" || string(info) != want {
		t.Errorf("defaults: key %q, key-info:\n%s\nwant:\n%s", key, info, want)
	}

	// Refusals leave no file behind.
	for name, c := range map[string]struct {
		env  map[string]string
		args []string
		code int
		want string
	}{
		"reader":      {envs["reader"], []string{kidA}, 1, "403 forbidden/role_insufficient"},
		"unknown key": {env, []string{kidC}, 1, "404 not_found"},
		"bad iv":      {env, []string{kidA, "--iv", "0011"}, 2, "--iv"},
		"two tokens":  {env, []string{kidA, "--token", "x", "--token-file", tokenFile}, 2, "not both"},
		"spacy token": {env, []string{kidA, "--token", "a b"}, 2, "token"},
		"same files":  {env, []string{kidA, "--key-file", "x", "--keyinfo-file", "x"}, 2, "same file"},
		"no kid":      {env, nil, 2, "KID"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"hls", "keyinfo"}, c.args...)
			if !strings.Contains(strings.Join(c.args, " "), "--key-file") {
				args = append(args, "--key-file", filepath.Join(dir, "k"), "--keyinfo-file", filepath.Join(dir, "i"))
			}
			r := kdctl(t, c.env, args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%d %s, want %d and %q", r.code, r.stderr, c.code, c.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("left %v behind", entries)
			}
		})
	}
	// A deleted key is no longer exported.
	if r := kdctl(t, envs["writer"], "keys", "delete", kidA); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := kdctl(t, env, "hls", "keyinfo", kidA, "--key-file", filepath.Join(work, "d.key")); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("deleted key: %d %s", r.code, r.stderr)
	}
}

// TestHLSKeyinfoFFmpeg has ffmpeg encrypt a short stream with the files
// kdctl wrote, then checks the playlist's EXT-X-KEY and decrypts a segment
// with the stored key. ffmpeg is required (scripts/test.sh installs it).
func TestHLSKeyinfoFFmpeg(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not found: install it with `apt-get install ffmpeg` (scripts/test.sh does this when run as root)")
	}
	srv, envs := session(t, "admin")
	env := envs["admin"]
	importKeys(t, env, `[{"Id":"`+kidA+`","Data":"`+b64("0123456789abcdef")+`","Iv":"AAECAwQFBgcICQoLDA0ODw=="}]`)
	stored, err := srv.keys.Get(context.Background(), mustKID(t, kidA))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	info := filepath.Join(dir, "a.keyinfo")
	if r := kdctl(t, env, "hls", "keyinfo", kidA, "--key-file", filepath.Join(dir, "a.key"), "--keyinfo-file", info, "--token", "tok.en"); r.code != 0 {
		t.Fatalf("keyinfo: %d %s", r.code, r.stderr)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	// ffmpeg runs elsewhere than the key file: its path is absolute.
	cmd := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=10",
		"-c:v", "mpeg2video", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_key_info_file", info, "index.m3u8")
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	playlist, err := os.ReadFile(filepath.Join(out, "index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	wantKey := `#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/keys/` + kidA + `?token=tok.en",IV=0x000102030405060708090a0b0c0d0e0f`
	if !strings.Contains(string(playlist), wantKey) {
		t.Fatalf("playlist lacks %s:\n%s", wantKey, playlist)
	}
	seg, err := os.ReadFile(filepath.Join(out, "index0.ts"))
	if err != nil || len(seg) == 0 || len(seg)%aes.BlockSize != 0 {
		t.Fatalf("segment: %d bytes, %v", len(seg), err)
	}
	block, _ := aes.NewCipher(stored.Value[:])
	ivb, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f")
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(seg, seg)
	if pad := int(seg[len(seg)-1]); seg[0] != 0x47 || pad < 1 || pad > aes.BlockSize {
		t.Errorf("the segment does not decrypt to MPEG-TS with the stored key (first byte %#x, padding %d)", seg[0], pad)
	}
}

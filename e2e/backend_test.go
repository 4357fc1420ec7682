//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/internal/redistest"
)

// runBackend starts a server on one store and runs every check against it.
func runBackend(t *testing.T, e *env, rep *reporter, b backend) {
	dir := t.TempDir()
	pages := startPageServer(t, e, filepath.Join(dir, "media"))
	storeFlag, storeEnv := "bolt:"+filepath.Join(dir, "data", "keys.db"), []string(nil)
	storeName := storeFlag + " (--store)"
	if b.redis {
		rs := redistest.Start(t, redistest.Options{})
		storeFlag, storeEnv = "", []string{"KD_STORE=" + rs.URL()}
		storeName = rs.URL() + " (KD_STORE)"
	}
	rep.header("backend %s: %s; page origin %s", b.name, storeName, pages.origin)
	name := func(check string) string { return b.name + "/" + check }

	s, err := startServer(t, e, dir, pages.origin, storeFlag, storeEnv)
	if err == nil {
		want := "bolt:"
		if b.redis {
			want = "redis://"
		}
		if !strings.HasPrefix(s.store, want) {
			err = failf(s.logTail(20), "the server reports store %q, want %s...", s.store, want)
		}
	}
	if err != nil {
		rep.result(t, name("server"), "", err)
		return
	}
	rep.pass(name("server"), fmt.Sprintf("keydelivery --dev ready: delivery %s, admin %s, store %s", s.delivery, s.admin, s.store))
	// The keys, through the admin plane with kdctl.
	hlsKID, err := s.kdctl(e, nil, "keys", "create", "--quiet", "--name", "e2e-hls")
	if err != nil {
		rep.result(t, name("keys"), "", err)
		return
	}
	otherKID, err := s.kdctl(e, nil, "keys", "create", "--quiet", "--name", "e2e-other")
	if err != nil {
		rep.result(t, name("keys"), "", err)
		return
	}
	if err := importCENC(e, s, dir); err != nil {
		rep.result(t, name("keys"), "", err)
		return
	}
	tk, err := s.makeTokens(e, hlsKID, otherKID)
	if err != nil {
		rep.result(t, name("keys"), "", err)
		return
	}
	rep.pass(name("keys"), fmt.Sprintf("created %s (HLS), %s (other); imported 2 CENC keys; 7 tokens", hlsKID, otherKID))

	media, err := packageHLS(e, s, dir, hlsKID, tk)
	if !rep.result(t, name("media/ffmpeg-hls"), "AES-128 HLS, key-info files from kdctl hls keyinfo (token in the URI, and none)", err) {
		return
	}

	runCORSChecks(t, e, rep, s, pages, name, hlsKID)

	// ffmpeg, fetching the key from the server.
	play := func(check string, p ffmpegPlayback) {
		detail, err := ffmpegPlay(e, s, p)
		rep.result(t, name(check), detail, err)
	}
	refused := func(check string, p ffmpegPlayback, status int, reason string) {
		detail, err := ffmpegRefused(e, s, p, status, reason)
		rep.result(t, name(check), detail, err)
	}
	local := func(path string) ffmpegPlayback { return ffmpegPlayback{input: path, pre: ffmpegWhitelist} }
	overHTTP := func(tok string) ffmpegPlayback {
		p := ffmpegPlayback{input: pages.origin + "/media/" + media.header}
		if tok != "" {
			p.pre = bearerHeader(tok)
		}
		return p
	}
	play("ffmpeg/query-token", local(media.query))
	play("ffmpeg/header-token", overHTTP(tk.hls))
	refused("ffmpeg/query-token/bad-signature", local(media.playlists["bad-signature"]), 401, "bad_signature")
	refused("ffmpeg/query-token/expired", local(media.playlists["expired"]), 401, "expired")
	refused("ffmpeg/query-token/other-kid", local(media.playlists["other-kid"]), 403, "key_not_granted")
	refused("ffmpeg/header-token/bad-signature", overHTTP(tk.badSig), 401, "bad_signature")
	refused("ffmpeg/header-token/expired", overHTTP(tk.expired), 401, "expired")
	refused("ffmpeg/header-token/other-kid", overHTTP(tk.otherKID), 403, "key_not_granted")
	refused("ffmpeg/header-token/none", overHTTP(""), 401, "missing_token")

	runClearKeyHTTPChecks(t, e, rep, s, pages, name, tk)

	spekeChecks := runSPEKEChecks(t, e, rep, s, pages, name, dir)

	runBrowserChecks(t, e, rep, s, pages, b.name, dir, media, tk, spekeChecks...)

	// Last, as it takes the keys away for a moment.
	detail, err := deleteRestore(e, s, hlsKID, tk)
	rep.result(t, name("keys/delete-restore"), detail, err)
}

// deleteRestore soft-deletes the HLS key and a CENC key with kdctl and
// demands that delivery stops at once (despite the key cache) and comes
// back on restore.
func deleteRestore(e *env, s *server, hlsKID string, tk tokens) (string, error) {
	cencKID := e.cencKeys[0].kidString()
	license, _ := json.Marshal(clearKeyLicense{Kids: []string{b64url(e.cencKeys[0].kid[:])}, Type: "temporary"})
	statuses := func() (int, int, error) {
		a, err := do(http.MethodGet, s.delivery+"/keys/"+hlsKID, map[string]string{"Authorization": "Bearer " + tk.hls}, nil)
		if err != nil {
			return 0, 0, err
		}
		b, err := do(http.MethodPost, s.delivery+"/clearkey/license", map[string]string{"Authorization": "Bearer " + tk.cenc}, license)
		return a.status, b.status, err
	}
	for _, kid := range []string{hlsKID, cencKID} {
		if _, err := s.kdctl(e, nil, "keys", "delete", kid); err != nil {
			return "", err
		}
	}
	k, l, err := statuses()
	if err != nil {
		return "", err
	}
	if k != 404 || l != 404 {
		return "", fmt.Errorf("after kdctl keys delete: key %d, license %d; want 404 and 404", k, l)
	}
	for _, kid := range []string{hlsKID, cencKID} {
		if _, err := s.kdctl(e, nil, "keys", "restore", kid); err != nil {
			return "", err
		}
	}
	k2, l2, err := statuses()
	if err != nil {
		return "", err
	}
	if k2 != 200 || l2 != 200 {
		return "", fmt.Errorf("after kdctl keys restore: key %d, license %d; want 200 and 200", k2, l2)
	}
	return fmt.Sprintf("deleted: key %d, license %d; restored: key %d, license %d", k, l, k2, l2), nil
}

// importCENC imports the CENC keys the packager used, as a packaging
// workflow would: a JSON file [{"Id","Data"}] through kdctl keys import.
func importCENC(e *env, s *server, dir string) error {
	type entry struct {
		ID   string `json:"Id"`
		Data string `json:"Data"`
	}
	var batch []entry
	for _, k := range e.cencKeys {
		batch = append(batch, entry{ID: k.kidString(), Data: base64.StdEncoding.EncodeToString(k.key[:])})
	}
	b, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "cenc-keys.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return err
	}
	defer os.Remove(file)
	_, err = s.kdctl(e, nil, "keys", "import", file, "--format", "json", "--type", "CommonEncryption")
	return err
}

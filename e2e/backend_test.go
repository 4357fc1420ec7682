//go:build e2e

package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
)

// runBackend starts a server on one store and runs every check against it.
func runBackend(t *testing.T, e *env, rep *reporter, b backend) {
	if b.tls {
		runHTTPS(t, e, rep, b)
		return
	}
	dir := t.TempDir()
	pages := startPageServer(t, e, filepath.Join(dir, "media"), nil)
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

	runBrowserChecks(t, e, rep, s, pages, b.name, dir, media, tk, nil, spekeChecks...)

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

// runHTTPS runs the players against the delivery plane over HTTPS
// (--dev-tls, on bbolt) from pages served over HTTPS on another origin,
// Chromium trusting the two certificates by their public keys
// (--ignore-certificate-errors-spki-list), and ffmpeg over HTTPS; then it
// checks in the server's access log that the browsers' key and license
// requests used HTTP/2. The local CA is made here and put where --dev-tls
// looks for it, so the page server's certificate comes from the same CA.
func runHTTPS(t *testing.T, e *env, rep *reporter, b backend) {
	dir := t.TempDir()
	name := func(check string) string { return b.name + "/" + check }
	dataDir := filepath.Join(dir, "data")
	ca, err := tlsserve.NewCA(rand.Reader, "keydelivery e2e CA", time.Now(), 24*time.Hour)
	if err == nil {
		err = os.MkdirAll(dataDir, 0o700)
	}
	if err == nil {
		err = errors.Join(os.WriteFile(filepath.Join(dataDir, "dev-tls-ca.crt"), ca.CertPEM, 0o600),
			os.WriteFile(filepath.Join(dataDir, "dev-tls-ca.key"), ca.KeyPEM, 0o600))
	}
	var pageCert tls.Certificate
	var pageLeaf *tlsserve.Leaf
	if err == nil {
		pageLeaf, err = ca.Issue(rand.Reader, []string{"127.0.0.1", "localhost"}, time.Now(), time.Hour, false)
	}
	if err == nil {
		pageCert, err = tls.X509KeyPair(pageLeaf.CertPEM, pageLeaf.KeyPEM)
	}
	if err != nil {
		rep.result(t, name("server"), "", err)
		return
	}
	pages := startPageServer(t, e, filepath.Join(dir, "media"), &pageCert)
	rep.header("backend %s: bolt, delivery plane over HTTPS (--dev-tls); page origin %s", b.name, pages.origin)
	s, err := startServer(t, e, dir, pages.origin, "bolt:"+filepath.Join(dataDir, "keys.db"), nil, "--dev-tls")
	var serverLeaf *x509.Certificate
	if err == nil {
		if !strings.HasPrefix(s.delivery, "https://") {
			err = failf(s.logTail(20), "the delivery plane listens on %s, want https://", s.delivery)
		} else if c, rerr := tlsserve.ReadKeyPair(filepath.Join(dataDir, "dev-tls.crt"), filepath.Join(dataDir, "dev-tls.key"), time.Now()); rerr != nil {
			err = rerr
		} else if c.Leaf.CheckSignatureFrom(ca.Cert) != nil {
			err = fmt.Errorf("--dev-tls did not use the CA in the data dir")
		} else {
			serverLeaf = c.Leaf
		}
	}
	if err != nil {
		rep.result(t, name("server"), "", err)
		return
	}
	rep.pass(name("server"), fmt.Sprintf("keydelivery --dev --dev-tls ready: delivery %s, admin %s", s.delivery, s.admin))

	hlsKID, err := s.kdctl(e, nil, "keys", "create", "--quiet", "--name", "e2e-hls")
	var otherKID string
	if err == nil {
		otherKID, err = s.kdctl(e, nil, "keys", "create", "--quiet", "--name", "e2e-other")
	}
	if err == nil {
		err = importCENC(e, s, dir)
	}
	var tk tokens
	if err == nil {
		tk, err = s.makeTokens(e, hlsKID, otherKID)
	}
	if !rep.result(t, name("keys"), fmt.Sprintf("created %s (HLS); imported 2 CENC keys", hlsKID), err) {
		return
	}
	media, err := packageHLS(e, s, dir, hlsKID, tk)
	if !rep.result(t, name("media/ffmpeg-hls"), "AES-128 HLS with an https:// key URI", err) {
		return
	}

	// ffmpeg over HTTPS: the key URI in the playlist, and a playlist
	// fetched from the HTTPS page origin with the token in a header.
	httpsWhitelist := []string{"-protocol_whitelist", "file,http,https,tcp,tls,crypto,data"}
	detail, err := ffmpegPlay(e, s, ffmpegPlayback{input: media.query, pre: httpsWhitelist})
	rep.result(t, name("ffmpeg/query-token"), detail, err)
	detail, err = ffmpegPlay(e, s, ffmpegPlayback{input: pages.origin + "/media/" + media.header, pre: bearerHeader(tk.hls)})
	rep.result(t, name("ffmpeg/header-token"), detail, err)

	off := s.logSize()
	runBrowserChecks(t, e, rep, s, pages, b.name, dir, media, tk,
		[]string{tlsserve.SPKIHash(pageLeaf.Cert), tlsserve.SPKIHash(serverLeaf), tlsserve.SPKIHash(ca.Cert)})

	// Every key and license request the browsers made went over HTTP/2.
	var lines []logLine
	for _, prefix := range []string{"/keys/", "/clearkey/license"} {
		lines = append(lines, s.requests(off, prefix, func(l []logLine) bool { return len(l) > 0 })...)
	}
	protos := map[string]int{}
	for _, l := range lines {
		protos[l.Proto]++
	}
	if len(lines) == 0 || protos["HTTP/2.0"] != len(lines) {
		rep.fail(t, name("browser/http2"), fmt.Sprintf("key and license requests by protocol: %v, want every one HTTP/2.0", protos), s.logTail(20))
	} else {
		rep.pass(name("browser/http2"), fmt.Sprintf("%d key and license requests (preflights included), all HTTP/2.0", len(lines)))
	}
}

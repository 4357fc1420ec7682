//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// libFiles are the player builds the pages load, under e2e/browser.
func libFiles() []string {
	return []string{
		"node_modules/hls.js/dist/hls.min.js",
		"node_modules/shaka-player/dist/shaka-player.compiled.js",
		"node_modules/dashjs/dist/modern/umd/dash.all.min.js",
	}
}

// pageServer serves the test pages, the player libraries and the media on
// a loopback origin of its own, different from the key server's: the
// players' key and license requests are cross-origin, as in production.
type pageServer struct {
	origin string // http://127.0.0.1:PORT
	srv    *http.Server
}

// startPageServer serves e2e/browser/www at /, the player builds at
// /lib/, mediaDir at /media/ and the DASH presentation at /dash/; over
// HTTPS (HTTP/2) with cert when it is not nil.
func startPageServer(t *testing.T, e *env, mediaDir string, cert *tls.Certificate) *pageServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(filepath.Join(e.browserDir, "www"))))
	libs := libFiles()
	for name, file := range map[string]string{"/lib/hls.js": libs[0], "/lib/shaka-player.js": libs[1], "/lib/dash.js": libs[2]} {
		path := filepath.Join(e.browserDir, file)
		mux.HandleFunc(name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	}
	mux.Handle("/media/", http.StripPrefix("/media/", http.FileServer(http.Dir(mediaDir))))
	mux.Handle("/dash/", http.StripPrefix("/dash/", http.FileServer(http.Dir(e.dashDir))))
	types := map[string]string{
		".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".mpd": "application/dash+xml",
		".mp4": "video/mp4", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
		".html": "text/html; charset=utf-8",
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct, ok := types[strings.ToLower(filepath.Ext(r.URL.Path))]; ok {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
	p := &pageServer{origin: "http://" + l.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	if cert != nil {
		p.origin = "https://" + l.Addr().String()
		p.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		go func() { _ = p.srv.ServeTLS(l, "", "") }()
	} else {
		go func() { _ = p.srv.Serve(l) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.srv.Shutdown(ctx)
	})
	return p
}

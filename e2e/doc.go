// Package e2e is keydelivery's end-to-end suite with real clients. It builds
// the server and kdctl, runs them as processes on the embedded store and on
// Redis, packages video with ffmpeg (AES-128 HLS) and Shaka Packager (CENC
// DASH), and plays it back through the server with ffmpeg, hls.js, Shaka
// Player, dash.js and a raw EME page in headless Chromium.
//
// The tests carry the build tag e2e, so the main suite (go test ./...) does
// not run them. ./scripts/e2e.sh installs what they need and runs them; see
// README.md in this directory.
package e2e

#!/usr/bin/env bash
# The end-to-end suite with real clients: ./scripts/e2e.sh (or make e2e).
#
# Installs what it needs when missing: Debian's chromium, ffmpeg and
# redis-server, with apt-get when run as root, otherwise it stops with the
# command to run (Node.js 20 or newer with npm must be there: Debian 12's
# nodejs is too old for playwright-core); then the browser
# side's npm packages, pinned by e2e/browser/package-lock.json (npm ci; no
# browser is downloaded: playwright-core drives Debian's chromium). Then it
# runs the Go orchestrator, which builds the real binaries and prints one
# line per check (see e2e/README.md). Arguments go to go test, e.g.
#   ./scripts/e2e.sh -run 'TestE2E/bolt'
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt.sh # apt_install

say() { printf '==> %s\n' "$*"; }
started=$(date +%s)

if ! command -v go >/dev/null 2>&1; then
  echo "e2e.sh: Go is required (https://go.dev/dl/); none found on PATH" >&2
  exit 1
fi

chromium=${E2E_CHROMIUM:-/usr/bin/chromium}
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x "$chromium" ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} (Debian packages)"
    apt_install "${missing[@]}" # waits for another install's lock (scripts/apt.sh)
  else
    echo "e2e.sh: the end-to-end suite needs ${missing[*]}, which is not installed." >&2
    echo "        Install it with: sudo apt-get install ${missing[*]}   (or your system's packages)" >&2
    exit 1
  fi
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "e2e.sh: Node.js 20 or newer with npm is required (https://nodejs.org/); none found on PATH" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "e2e.sh: Node.js 20 or newer is required (playwright-core); found $(node --version)" >&2
  exit 1
fi
say "ffmpeg: $(ffmpeg -version | head -n1)"
say "redis-server: $(redis-server --version | head -n1)"
say "chromium: $("$chromium" --version 2>/dev/null | head -n1)"
say "node: $(node --version), npm: $(npm --version 2>/dev/null)"

# The browser side's packages, exactly as locked. npm ci starts from an
# empty node_modules, so it runs only when the lock file changed since the
# last install (a stamp in node_modules records the lock file it installed).
browser=e2e/browser
lock_sum=$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)
stamp="$browser/node_modules/.e2e-installed-lock"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  say "npm ci in $browser (playwright-core, hls.js, shaka-player, dashjs, shaka-packager)"
  (cd "$browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$stamp"
else
  say "npm packages in $browser are up to date with package-lock.json"
fi

# Every temporary file of the run (go test's build, the test's temporary
# directories: binaries, media, data dirs, Redis, the browser profile) goes
# under one directory, removed on exit, also when the run is interrupted
# and the test's own cleanups do not run.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kd-e2e.XXXXXX")
# (On an interrupt the test's children die with it, but may still be
# writing for a moment: try again.)
cleanup() {
  for _ in 1 2 3 4 5; do
    rm -rf "$tmp" 2>/dev/null && return
    sleep 1
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

say "go test -tags e2e ./e2e/"
status=0
(cd e2e && TMPDIR="$tmp" go test -tags e2e -count=1 -timeout 10m "$@") || status=$?
say "e2e finished in $(( $(date +%s) - started ))s (exit $status)"
exit $status

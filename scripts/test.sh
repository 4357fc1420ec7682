#!/usr/bin/env bash
# The whole test suite, from a fresh machine: ./scripts/test.sh
# Installs redis-server from the system packages when it is missing (as
# root, with apt-get); otherwise fails saying how to install it. Tests that
# need Redis start their own redis-server on a free loopback port.
#
# The setup (tools present) stops at the first error. The checks after it
# are stages: a stage that fails is recorded and the next one still runs,
# so one run reports everything (the fuzzing included); the script then
# names the failed stages and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt.sh # apt_install

say() { printf '==> %s\n' "$*"; }

# staticcheck, at this version only: go run builds it once into the Go
# build cache (about a minute on a clean machine) and reuses it after.
staticcheck_version=v0.8.2
staticcheck() { go run "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" "$@"; }

# stage NAME COMMAND...: runs COMMAND as one stage. Inside it errexit is
# off (bash ignores it in a tested command), so a stage of several steps
# chains them with && to stop at its own first failure.
failed=()
stage() {
  local name=$1
  shift
  say "$name"
  if ! "$@"; then
    echo "test.sh: stage failed: $name" >&2
    failed+=("$name")
  fi
}

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go is required (https://go.dev/dl/); none found on PATH" >&2
  exit 1
fi

# System packages the tests drive for real: redis-server (the Redis store),
# ffmpeg (HLS packaging with kdctl's key info files), prometheus (its
# promtool checks the /metrics exposition and the alert rules).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# deploy/'s tests validate the Compose file and the systemd unit with the
# real tools (kubectl, for the kustomize rendering, comes with the image).
command -v docker-compose >/dev/null 2>&1 || { command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; } || missing+=(docker-compose)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# kdctl's completion tests load its scripts into a real bash and zsh.
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
# The fault suite's full-disk scenario mounts a small tmpfs with unshare,
# or caps the file size with prlimit (both util-linux).
{ command -v unshare >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1; } || missing+=(util-linux)
command -v kubectl >/dev/null 2>&1 || { echo "test.sh: kubectl is required by deploy/'s tests (kustomize rendering); install it: https://kubernetes.io/docs/tasks/tools/" >&2; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} (Debian packages)"
    apt_install "${missing[@]}" # waits for another install's lock (scripts/apt.sh)
  else
    echo "test.sh: the tests need ${missing[*]}, which is not installed." >&2
    echo "         Install it with: sudo apt-get install ${missing[*]}   (or your system's packages)" >&2
    exit 1
  fi
fi
# Pebble, Let's Encrypt's test ACME CA (a Go program), for the ACME tests
# (internal/acmetest starts it): installed with go install into GOBIN (or
# GOPATH/bin) when missing, where the tests find it.
pebble_version=v2.10.3
pebble_bin="$(go env GOBIN)"; [ -n "$pebble_bin" ] || pebble_bin="$(go env GOPATH | cut -d: -f1)/bin"
if ! command -v pebble >/dev/null 2>&1 && ! [ -x "$pebble_bin/pebble" ]; then
  say "installing pebble $pebble_version (go install)"
  go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version" || {
    echo "test.sh: the ACME tests need pebble; install it with: go install github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version" >&2
    exit 1
  }
fi
say "redis-server: $(redis-server --version | head -n1)"
say "ffmpeg: $(ffmpeg -version | head -n1)"
say "promtool: $(promtool --version 2>&1 | head -n1)"
say "staticcheck: $(staticcheck -version)" # downloads and builds it the first time

check_gofmt() {
  local unformatted
  unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go')) || return
  if [ -n "$unformatted" ]; then
    echo "gofmt would change:" >&2
    echo "$unformatted" >&2
    return 1
  fi
}
stage gofmt check_gofmt

# The modules of go.work: the server at the root, loadtest/ and deploy/.
# A pattern does not cross into another module (./... at the root is the
# server's module only), so every command below names each module's tree.
mapfile -t modules < <(go work edit -json | sed -n 's/^.*"DiskPath": "\(.*\)".*$/\1/p')
[ ${#modules[@]} -gt 0 ] || { echo "test.sh: no module read from go.work" >&2; exit 1; }
pkgs=()
for m in "${modules[@]}"; do pkgs+=("$m/..."); done

say "modules: ${modules[*]}"
check_modules() {
  local m in_work alone
  for m in "${modules[@]}"; do
    (cd "$m" && go mod tidy -diff) || { echo "test.sh: go.mod or go.sum of $m is not tidy: run go mod tidy in $m" >&2; return 1; }
  done
  # The server's dependencies resolve to the same versions in the workspace
  # (how the tests and `make` build it) as from its go.mod alone (how
  # deploy/Dockerfile builds it): another module cannot raise them unseen.
  deps='{{with .Module}}{{.Path}} {{.Version}}{{end}}'
  in_work=$(go list -deps -test -f "$deps" ./... | sort -u)
  alone=$(GOWORK=off go list -deps -test -f "$deps" ./... | sort -u)
  if [ "$in_work" != "$alone" ]; then
    diff <(echo "$in_work") <(echo "$alone") >&2 || true
    echo "test.sh: another module of go.work raises a dependency of the server (< workspace, > go.mod alone); require that version in the root go.mod" >&2
    return 1
  fi
  if GOWORK=off go list -m all | grep -E '^(gonum\.org|k8s\.io)/'; then
    echo "test.sh: the server's module needs plotting or Kubernetes modules (above); they belong in loadtest/ or deploy/" >&2
    return 1
  fi
}
stage "modules" check_modules

# Each with the e2e tag too, for the end-to-end suite's Go side (run by
# scripts/e2e.sh).
vet() { go vet "${pkgs[@]}" && go vet -tags e2e ./e2e/; }
stage "go vet" vet
lint() { staticcheck "${pkgs[@]}" && staticcheck -tags e2e ./e2e/; }
stage "staticcheck" lint

# -timeout bounds a hang, nothing else: no test has a deadline of its own
# that a slow machine can reach (internal/waittest).
stage "go test -race" go test -race -count=1 -timeout 15m "${pkgs[@]}"

# The hot path's allocation checks: the race detector changes what
# allocates, so they run (only) here, without it.
stage "allocations" go test -count=1 -run 'Allocations$' ./auth/ ./delivery/

# The fault-injection suite (faults/, build tag faults), short form: the
# built server on real redis-server processes (single, Sentinel, Cluster)
# and bbolt, disturbed while an acknowledged-write ledger runs (about 2
# minutes). Its own stage, without -race: what it exercises runs as
# processes. The long form, with the bounds asserted: make faults.
faults() { go vet -tags faults ./faults/ && staticcheck -tags faults ./faults/ && go test -tags faults -count=1 -timeout 10m ./faults/; }
stage "faults (short form)" faults

# Short fuzzing runs of every parser of attacker input. Each target runs a
# fixed number of inputs (about 5 s here) rather than for a wall-clock
# -fuzztime: Go's fuzz coordinator can fail a duration-bounded run with
# "context deadline exceeded" when a worker is starved of CPU at the deadline
# (it found nothing; the shared 2-core CI machines hit it). A count has no
# deadline to race, and -timeout still bounds a hang. FUZZTIME overrides the
# counts for every target, e.g. FUZZTIME=10m for a long local run
# (then without -timeout).
for target in \
  "FuzzParseKeyID ./keystore 50000x" \
  "FuzzRecordRoundTrip ./keystore 20000x" \
  "FuzzSealAAD ./keystore 20000x" \
  "FuzzVerify ./auth 30000x" \
  "FuzzRead ./cpix 50000x" \
  "FuzzCreateKeyBody ./admin 8000x" \
  "FuzzJSONImport ./admin 20000x" \
  "FuzzParseCredentials ./admin/credentials 20000x" \
  "FuzzAMSCreateBody ./admin/amsapi 8000x" \
  "FuzzParseFilter ./admin/amsapi 20000x" \
  "FuzzClearKeyBody ./delivery 10000x" \
  "FuzzHeaderKIDs ./playready 10000x" \
  "FuzzRedact ./internal/httpedge 20000x" \
  "FuzzClientAddr ./internal/netedge 20000x" \
  "FuzzParseTree ./cpix 20000x" \
  "FuzzReadEncrypted ./cpix 5000x" \
  "FuzzParse ./pssh 20000x" \
  "FuzzRequest ./admin/speke 8000x"; do
  set -- $target
  n=${FUZZTIME:-$3} limit=5m
  [ -n "${FUZZTIME:-}" ] && limit=0 # the given -fuzztime bounds the run
  stage "fuzz $1 ($n)" go test -run='^$' -fuzz="^$1\$" -fuzztime="$n" -timeout "$limit" "$2"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: FAILED (${#failed[@]} stage(s)):" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
say "all tests passed"

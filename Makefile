# Conveniences; the README's commands work without make.
.PHONY: run test build e2e faults

run:
	go run ./cmd/keydelivery --dev

test:
	./scripts/test.sh

# Both binaries into $(BIN), with the version and commit stamped (their
# --version prints them): go build records them itself from a plain git
# clone, but not from a git worktree or under GOFLAGS=-buildvcs=false.
BIN ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN)/ ./cmd/...

e2e:
	./scripts/e2e.sh

# The fault-injection suite's long form: more writes, longer faults, three
# rounds each, the bounds asserted; its table goes to docs/reliability.md.
faults:
	go test -tags faults -count=1 -timeout 60m -v ./faults/ -long

# Conveniences; the README's commands work without make.
.PHONY: run test build e2e

run:
	go run ./cmd/keydelivery --dev

test:
	./scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...

e2e:
	./scripts/e2e.sh

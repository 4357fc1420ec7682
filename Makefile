# Conveniences; the README's commands work without make.
.PHONY: run test build e2e faults

run:
	go run ./cmd/keydelivery --dev

test:
	./scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -o bin/ ./cmd/...

e2e:
	./scripts/e2e.sh

# The fault-injection suite's long form: more writes, longer faults, three
# rounds each, the bounds asserted; its table goes to docs/reliability.md.
faults:
	go test -tags faults -count=1 -timeout 60m -v ./faults/ -long

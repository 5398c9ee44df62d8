GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PREFIX  ?= /usr
DESTDIR ?=

.PHONY: all build test unit-test kernel-test bench fuzz install clean deps demo

all: build

build:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dkms-sign-hook ./cmd/dkms-sign-hook

# Every test: unit, CLI scripts, the real sign-file/openssl/kmod oracles, the real
# dkms, SoftHSM, and a real kernel in QEMU. Tests needing root or a component skip
# on a developer's machine without it, and fail under CI=true.
test:
	$(GO) vet ./...
	$(GO) test -timeout 85m -count=1 ./...

unit-test:
	$(GO) test -short -count=1 ./...

kernel-test:
	$(GO) test -timeout 85m -count=1 -v ./test/kernel/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseTrailer -fuzztime $(FUZZTIME) ./pkg/sign
	$(GO) test -run '^$$' -fuzz FuzzParsePKCS7 -fuzztime $(FUZZTIME) ./pkg/sign

deps:
	./scripts/install-deps.sh

install: build
	install -D -m 0755 dkms-sign-hook $(DESTDIR)$(PREFIX)/sbin/dkms-sign-hook

clean:
	rm -f dkms-sign-hook

# Set everything up and sign a real DKMS package's module (as root).
demo:
	./scripts/demo.sh

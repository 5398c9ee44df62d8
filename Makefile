GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests run go too (to build the tool they test): keep it on their PATH.
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PREFIX  ?= /usr
DESTDIR ?=

.PHONY: all build test unit-test kernel-test bench bench-micro fuzz install clean deps demo

all: build

# The binary links the glibc of the machine it is built on (cgo: PKCS#11 tokens
# through their modules, RSA through the system's libcrypto), so build it on the
# release it runs on, as the .deb is. CGO=0 makes a static binary that runs on
# any Linux (Debian 11's glibc 2.31 included) without PKCS#11 (PEM keys only).
CGO ?= 1
build:
	CGO_ENABLED=$(CGO) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dkms-sign-hook ./cmd/dkms-sign-hook

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

# The write path against Debian's sign-file, xz and zstd, as subprocesses in one
# run: a table of wall time and peak RSS (docs/performance.md). Minutes; builds
# its inputs once under the test cache. BENCH_OUT=file also writes the table there.
bench:
	$(GO) test -run '^$$' -bench WritePath -benchtime 1x -timeout 0 ./test/bench

# Go micro-benchmarks of the packages.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v /test/bench)

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseTrailer -fuzztime $(FUZZTIME) ./pkg/sign
	$(GO) test -run '^$$' -fuzz FuzzParsePKCS7 -fuzztime $(FUZZTIME) ./pkg/sign
	$(GO) test -run '^$$' -fuzz FuzzXZParams -fuzztime $(FUZZTIME) ./pkg/modfile
	for f in FuzzParsePKCS11URI FuzzParsePEMKey FuzzParseCertificate FuzzDecryptPBES2; do \
		$(GO) test -run '^$$' -fuzz $$f -fuzztime $(FUZZTIME) ./pkg/keys || exit 1; done
	$(GO) test -run '^$$' -fuzz FuzzParseProcKeys -fuzztime $(FUZZTIME) ./pkg/kerneltrust
	for f in FuzzParsePublicKey FuzzParsePKCS8; do \
		$(GO) test -run '^$$' -fuzz $$f -fuzztime $(FUZZTIME) ./pkg/mldsa || exit 1; done

deps:
	./scripts/install-deps.sh

# The paths the code expects (cmd/dkms-sign-hook/dkmsctx.go, contrib/dkms):
# nothing is enabled and no key is installed; `dkms-sign-hook enable` does that.
# Those paths are fixed under /usr, so keep PREFIX=/usr for a working system
# (another PREFIX or DESTDIR only stages files).
SYSCONFDIR ?= /etc
DOCDIR     ?= $(PREFIX)/share/doc/dkms-sign-hook
install: build
	install -D -m 0755 dkms-sign-hook $(DESTDIR)$(PREFIX)/sbin/dkms-sign-hook
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/dkms-sign-hook
	ln -sfn ../../sbin/dkms-sign-hook $(DESTDIR)$(PREFIX)/lib/dkms-sign-hook/sign-file
	install -D -m 0644 contrib/dkms/dkms-override.conf $(DESTDIR)$(PREFIX)/share/dkms-sign-hook/dkms-override.conf
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/dkms-sign-hook
	install -D -m 0644 contrib/dkms-sign-hook.conf $(DESTDIR)$(DOCDIR)/examples/dkms-sign-hook.conf
	install -D -m 0644 contrib/dkms/framework.conf.d/dkms-sign-hook.conf $(DESTDIR)$(DOCDIR)/examples/framework.conf.d/dkms-sign-hook.conf
	install -D -m 0644 contrib/dkms/README.md $(DESTDIR)$(DOCDIR)/README.dkms.md
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	./dkms-sign-hook completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/dkms-sign-hook
	chmod 0644 $(DESTDIR)$(PREFIX)/share/bash-completion/completions/dkms-sign-hook
	install -D -m 0644 docs/fleet.md $(DESTDIR)$(DOCDIR)/fleet.md
	install -d -m 0755 $(DESTDIR)$(DOCDIR)/examples/fleet
	install -m 0644 contrib/fleet/* $(DESTDIR)$(DOCDIR)/examples/fleet/
	$(if $(wildcard README.md),install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md)

# The .deb, built by dpkg-buildpackage in a copy of the tree (tracked and
# untracked-but-not-ignored files) under $(DIST)/build, so the checkout gets no
# build debris; the .deb lands in $(DIST).
DIST ?= dist
.PHONY: deb
deb:
	rm -rf $(DIST)/build
	mkdir -p $(DIST)/build/src
	{ git ls-files -z --cached --others --exclude-standard 2>/dev/null || \
	  find . -path ./.git -prune -o -path './$(DIST)' -prune -o ! -type d -print0; } | \
	  tar --null --ignore-failed-read -cf - -T - | tar -xf - -C $(DIST)/build/src
	cd $(DIST)/build/src && dpkg-buildpackage -b -us -uc
	cp $(DIST)/build/*.deb $(DIST)/

clean:
	rm -f dkms-sign-hook

# Set everything up and sign a real DKMS package's module (as root).
demo:
	./scripts/demo.sh

# KeyStone build, test and benchmark entry points.
GO       ?= go
PKGS     ?= ./...
BIN      ?= bin
export CGO_ENABLED ?= 0

.PHONY: all build examples test vet fmt-check lint bench bench-idle demo clean fuzz package package-check package-test

all: build examples

# version, commit and build date, shown by keystonectl version and keystone-agent version.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  ?= -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/keystone-agent ./cmd/keystonectl ./cmd/keystone-shim

# The programs the example recipes run (recipes/examples); see docs/recipes.md.
examples:
	@mkdir -p $(BIN)/examples
	$(GO) build -o $(BIN)/examples/ ./recipes/examples/hello-http
	install -m 0755 recipes/examples/sysload/collect.sh $(BIN)/examples/sysload-collect.sh
	GOOS=wasip1 GOARCH=wasm $(GO) build -o $(BIN)/examples/sysload.wasm ./recipes/examples/sysload-wasm

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# -race needs cgo; the shipped binaries stay CGO_ENABLED=0.
test: vet fmt-check
	CGO_ENABLED=1 $(GO) test -race -timeout 25m $(PKGS)

lint: vet fmt-check

# Benchmarks print named figures; see docs/benchmarks.md.
BENCHTIME ?= 1x
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem $(PKGS)

# Only the comparison with s6 and supervisord: memory (PSS), wake-ups,
# restart latency and cold start (docs/benchmarks.md#memory); root.
bench-idle:
	$(GO) test -run '^$$' -bench '^BenchmarkIdle50$$' -benchtime 1x ./internal/e2e/

# Short fuzz runs of every parser fuzz target (FUZZTIME each).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./recipes -run '^$$' -fuzz '^FuzzParseRecipe$$' -fuzztime $(FUZZTIME)
	$(GO) test ./recipes -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./recipes -run '^$$' -fuzz '^FuzzInterpolate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./agent -run '^$$' -fuzz '^FuzzDecodeDeploymentRequest$$' -fuzztime $(FUZZTIME) -parallel 1

demo:
	./scripts/demo.sh

# Debian packages keystone and keystone-fleet for each PKG_ARCHES, into DIST
# (see docs/install.md). package-check runs lintian, systemd-analyze verify
# and the layout checks; package-test installs, upgrades, removes and purges
# them in a debootstrapped Debian (root; cached under PACKAGE_TEST_CACHE).
DIST       ?= dist
PKG_ARCHES ?= amd64 arm64
package:
	GO=$(GO) packaging/build.sh $(DIST) $(PKG_ARCHES)

package-check: package
	packaging/check.sh $(DIST) $(PKG_ARCHES)

package-test: package-check
	GO=$(GO) packaging/test/package-test.sh $(DIST)

clean:
	rm -rf $(BIN) demo $(DIST)

# orproxy: `make run` serves on the defaults, `make test` runs every check.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
DATE      ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS   := -s -w -X github.com/orproxy/orproxy/internal/version.Version=$(VERSION) -X github.com/orproxy/orproxy/internal/version.Commit=$(COMMIT) -X github.com/orproxy/orproxy/internal/version.Date=$(DATE)
STATICCHECK_VERSION := v0.8.2
GORELEASER_VERSION  := v2.15.1
GORELEASER          := $(BIN)/goreleaser-$(GORELEASER_VERSION)
FAKE_KEY  := sk-or-v1-fakefakefakefakefakefakefakefakefakefakefakefakefakefake0001

E2E_DEPS  := test/e2e/node_modules/.installed

.PHONY: build install run test lint fmt vet cross fake clean e2e-deps demo bench bench-warm fuzz soak release-check release-snapshot

# Fuzz targets as package:Name. `make fuzz` runs each for FUZZTIME; `make test`
# runs each for TEST_FUZZTIME. Seed corpora are in <package>/testdata/fuzz/.
FUZZ_TARGETS  := internal/config:FuzzDecode auth:FuzzDecodeCredential auth:FuzzDecodeBrokerAnswer \
                 login:FuzzParseCallback websearch:FuzzPatch websearch:FuzzScan usage:FuzzTap
FUZZTIME      ?= 10s
TEST_FUZZTIME ?= 3s

BUILD_ORPROXY := $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/orproxy ./cmd/orproxy

build: ## build bin/orproxy and bin/orproxy-fake
	$(BUILD_ORPROXY)
	$(GO) build -trimpath -o $(BIN)/orproxy-fake ./cmd/orproxy-fake

install: ## install orproxy into $(go env GOPATH)/bin, or GOBIN: a stable path for the service
	$(GO) install -trimpath -ldflags '$(LDFLAGS)' ./cmd/orproxy
	@dir=$$($(GO) env GOBIN); [ -n "$$dir" ] || dir=$$($(GO) env GOPATH)/bin; echo "installed $$dir/orproxy"

run: ## build bin/orproxy (only) and run the proxy in the foreground on its defaults (127.0.0.1:8765)
	$(BUILD_ORPROXY)
	$(BIN)/orproxy serve

test: lint $(E2E_DEPS) ## vet, staticcheck, gofmt, every test with the race detector (end-to-end tests included), a short fuzz run
	$(GO) test -race -count=1 ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

SOAK_DURATION ?= 10m

soak: ## load the proxy for SOAK_DURATION (default 10 min) through key revocations; figures in bench/README.md
	$(GO) run ./bench/cmd/soak -duration $(SOAK_DURATION)

fuzz: ## run each fuzz target for FUZZTIME (default 10s), one after another
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name in ./$$pkg for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./$$pkg/; \
	done

e2e-deps: $(E2E_DEPS) ## install the real clients the end-to-end tests drive (Node.js 20+)

# No lock file: one written here would list only this platform's OpenCode binary.
$(E2E_DEPS): test/e2e/package.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "the end-to-end tests need Node.js 20 or newer and npm on PATH"; exit 1; }
	cd test/e2e && npm install --no-audit --no-fund --no-package-lock
	touch $@

lint: vet cross $(BIN)/staticcheck ## go vet (also for macOS and Windows), staticcheck and a gofmt check
	$(BIN)/staticcheck ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

cross: ## vet and build for macOS and Windows too
	GOOS=darwin $(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) build -o /dev/null ./cmd/orproxy
	GOOS=windows $(GO) build -o /dev/null ./cmd/orproxy

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

$(BIN)/staticcheck:
	GOBIN=$(CURDIR)/$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

release-check: $(GORELEASER) ## goreleaser's own check of .goreleaser.yaml (the first run installs goreleaser: minutes)
	$(GORELEASER) check

# In a checkout without a remote goreleaser stamps the commit and its date as
# unknown; a remote named for git alone (nothing is fetched) keeps them.
SNAPSHOT_GIT = $(if $(shell git remote 2>/dev/null),,GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/orproxy/orproxy.git)

release-snapshot: $(GORELEASER) ## every release artifact into dist/, offline: archives, checksums, .deb, .rpm, Homebrew formula
	$(SNAPSHOT_GIT) $(GORELEASER) release --snapshot --clean
	$(GO) run ./packaging/homebrew -dist dist

# Only the release targets install goreleaser, never make test or .ci/run. The
# version in the file name makes a changed pin install again.
$(GORELEASER):
	GOBIN=$(CURDIR)/$(BIN)/.goreleaser $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
	mv $(BIN)/.goreleaser/goreleaser $@
	rmdir $(BIN)/.goreleaser

fake: build ## run the fake OpenRouter on 127.0.0.1:8766 with one valid key
	@echo "fake OpenRouter with the key $(FAKE_KEY)"
	$(BIN)/orproxy-fake openrouter --listen 127.0.0.1:8766 --key $(FAKE_KEY) --chunk-delay 150ms

demo: build ## log in, stream, revoke and rotate against the fakes; no network needed
	BIN=$(BIN) bash scripts/demo.sh

bench: ## compare orproxy with direct and nginx, over plain HTTP and HTTPS to the upstream; prints markdown tables (see bench/README.md)
	bash bench/run.sh

WARM_FLAGS ?=

bench-warm: ## a one-shot client after 2 and 10 min idle, keepalive on and off, over a 50 ms link (13 min; WARM_FLAGS=-quick: 1 min)
	$(GO) run ./bench/cmd/warmbench $(WARM_FLAGS)

clean:
	rm -rf $(BIN)

# smtp_exporter
GO        ?= go
BIN       ?= smtp_exporter
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILDUSER ?= $(shell id -un)@$(shell hostname)
BUILDDATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
PKG       := github.com/prometheus/common/version
LDFLAGS   := -X $(PKG).Version=$(VERSION) -X $(PKG).Revision=$(REVISION) -X $(PKG).Branch=$(BRANCH) \
             -X $(PKG).BuildUser=$(BUILDUSER) -X $(PKG).BuildDate=$(BUILDDATE)
GOLANGCI_LINT_VERSION ?= v2.15.0

.PHONY: all build test unit lint bench load clean

all: lint build test

## build: the binary, with version information stamped in (./smtp_exporter --version)
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

## test: every test, as CI runs them (installs Postfix and Prometheus when root)
test:
	./scripts/test

## unit: the Go tests only, quickly
unit:
	$(GO) test -race ./...

## lint: golangci-lint v2, installed with go install
lint:
	@command -v golangci-lint >/dev/null 2>&1 || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" golangci-lint run ./...

## bench: the Go benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## load: the side-by-side load run against smtp-sink (see README, Performance)
load: build
	./scripts/load

clean:
	rm -f $(BIN)

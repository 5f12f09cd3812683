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
# make image: podman (or buildah's podman) when installed, else docker.
CONTAINER_ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE     ?= smtp_exporter:$(VERSION)
IMAGE_SOURCE ?= https://github.com/smtp-exporter/smtp_exporter
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_CONTEXT := dist/image
# podman: commit the final image only, no intermediate image per step.
IMAGE_BUILD_FLAGS ?= $(if $(findstring podman,$(notdir $(firstword $(CONTAINER_ENGINE)))),--layers=false)

.PHONY: all build test unit lint bench load image clean

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

## image: the container image (Dockerfile): a static binary, the CA bundle and
## example.yml, staged in dist/image, so that the build pulls nothing
image:
	@test -n "$(CONTAINER_ENGINE)" || { echo "make image: neither podman nor docker is installed" >&2; exit 1; }
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/etc $(IMAGE_CONTEXT)/examples
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(IMAGE_CONTEXT)/smtp_exporter .
	cp $(CA_BUNDLE) $(IMAGE_CONTEXT)/ca-certificates.crt
	cp example.yml $(IMAGE_CONTEXT)/config.yml
	cp examples/*.password examples/*.secret $(IMAGE_CONTEXT)/examples/
	printf 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >$(IMAGE_CONTEXT)/etc/passwd
	printf 'nobody:x:65534:\n' >$(IMAGE_CONTEXT)/etc/group
	$(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS) -f Dockerfile -t $(IMAGE) \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg SOURCE=$(IMAGE_SOURCE) --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  $(IMAGE_CONTEXT)

clean:
	rm -f $(BIN)
	rm -rf $(IMAGE_CONTEXT)

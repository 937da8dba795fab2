# qnuma: NUMA-placed QEMU launcher.
GO      ?= go
BIN     := build/qnuma
MODULE  := github.com/qnuma/qnuma
GOFLAGS ?=
export GOFLAGS

.PHONY: all build deps test unit fuzz demo bench vet fmt clean vm-assets boot-test

all: build

# A static binary (no cgo) starts a few milliseconds sooner: no dynamic loader.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/qnuma

# Installs (apt-get) only what is missing: qemu-system-x86, numactl, busybox-static, ...
deps:
	@scripts/deps.sh

# go vet, gofmt, go.mod/go.sum as `go mod tidy` leaves them, staticcheck
# (built at its pinned version into build/tools by scripts/tools.sh), and no
# test package (qemutest, affinitytest, ...) in the binary.
vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	@$(GO) mod tidy -diff || { echo "vet: go.mod/go.sum differ from what go mod tidy writes (above): run go mod tidy" >&2; exit 1; }
	@tools=$$(GO=$(GO) scripts/tools.sh) && echo "staticcheck ./..." && "$$tools/staticcheck" ./...
	@! $(GO) list -deps ./cmd/qnuma | grep -E '^$(MODULE)/.*test$$|^testing$$' || { echo "vet: test packages (above) are compiled into qnuma" >&2; exit 1; }

# The packages with goroutines of their own run under the race detector
# (cgo: gcc); the rest without it, so that make test takes not twice as long.
RACE_PKGS := qmp launcher ledger numastat control

# Everything: unit tests with the fuzz seeds, real-QEMU tests, multi-node
# test host scenarios.
test: deps build vet
	CGO_ENABLED=1 $(GO) test -count=1 -race -timeout 30m $(addprefix ./,$(RACE_PKGS))
	$(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -vxF $(foreach p,$(RACE_PKGS),-e $(MODULE)/$(p)))

# Unit tests only (no QEMU started).
unit:
	$(GO) test -count=1 -short ./...

# Every Fuzz target of the module, found by scripts/fuzz.sh, FUZZTIME each;
# FUZZ=REGEXP picks targets by name. make test runs only their seeds.
FUZZTIME ?= 30s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZ='$(FUZZ)' scripts/fuzz.sh

# The Debian kernel and busybox initramfs of the test host and tiny guest (cached in build/vm).
vm-assets: deps
	@scripts/vm-assets.sh

# Boots the tiny guest under qnuma run; passes when its marker reaches the console.
# Extra qnuma run flags: make boot-test ARGS="--vcpus 4 --memory 512M"
boot-test: deps build
	@scripts/boot-test.sh $(ARGS)

demo: deps build
	@scripts/demo.sh

bench: deps build
	@scripts/deps.sh bench
	@scripts/bench.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf build

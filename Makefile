# longctx build, test, benchmark and demo entry points.
# GoMLX's fast CPU kernels need GOEXPERIMENT=simd; Beam builds and runs with it too.
export GOEXPERIMENT := simd
export GOTOOLCHAIN := local
GO ?= go
BIN := bin/longctx
# Packages cheap enough to run under the race detector within CI time.
RACE_PKGS := ./config/... ./storage/... ./progress/...

.PHONY: build test race bench demo lint clean

build:
	$(GO) build -o $(BIN) ./cmd/longctx

test: lint
	$(GO) test -count=1 -timeout 25m ./...
	$(GO) test -count=1 -race -timeout 10m $(RACE_PKGS)

bench: build
	$(GO) run ./benchmarks

demo: build
	./$(BIN) --help

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin demo-out

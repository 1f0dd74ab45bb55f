# longctx build, test, benchmark and demo entry points.
# GoMLX's fast CPU kernels need GOEXPERIMENT=simd; Beam builds and runs with it too.
export GOEXPERIMENT := simd
export GOTOOLCHAIN := local
# Go's asynchronous preemption (a signal every 10 ms to a running goroutine)
# leaves the vector unit in a state where math.Exp, which mixes VEX and
# legacy SSE instructions, runs at ~4-5 µs per call instead of ~15 ns under
# GOEXPERIMENT=simd on these machines (trainer/ops_bench_test.go): the Go
# backend's Exp and Sigmoid ops would dominate every training step. Every
# binary and test built here carries GODEBUG asyncpreemptoff=1 as its
# default (an environment GODEBUG still overrides it).
GO_LDFLAGS := -X=runtime.godebugDefault=asyncpreemptoff=1
export GOFLAGS := -ldflags=$(GO_LDFLAGS)
GO ?= go
BIN := bin/longctx
# Packages cheap enough to run under the race detector within CI time.
RACE_PKGS := ./config/... ./storage/... ./progress/... ./mixture/... ./shards/... ./rope/...
# The reference encoder (npm tokenizers@0.23.2) the tokenizer's golden tests compare against.
HF_TOKENIZERS := tokenizer/testdata/gen/node_modules/.package-lock.json

.PHONY: build build-train test bench bench-deps opsbench demo evidence sweep lint clean

build:
	$(GO) build -o $(BIN) ./cmd/longctx

# Trainer-only binary (no Beam): the one that travels to a GPU machine.
build-train:
	$(GO) build -trimpath -ldflags='-s -w $(GO_LDFLAGS)' -o bin/longctx-train ./cmd/longctx-train

$(HF_TOKENIZERS): tokenizer/testdata/gen/package-lock.json
	npm ci --prefix tokenizer/testdata/gen --no-audit --no-fund

test: lint $(HF_TOKENIZERS)
	$(GO) test -count=1 -timeout 25m ./...
	$(GO) test -count=1 -race -timeout 10m $(RACE_PKGS)

# The trainer benchmark's anchor: Debian's PyTorch on OpenBLAS (without
# libopenblas0 torch falls back to the reference BLAS at a few GFLOP/s).
# Installed only when missing.
bench-deps:
	@if dpkg -s python3-torch libopenblas0 >/dev/null 2>&1; then :; else \
		echo "installing python3-torch and libopenblas0 for benchmarks/trainer"; \
		apt-get update && apt-get install -y python3-torch libopenblas0; fi

# Each benchmark runs its anchor side by side and prints ratios; results go to out/.
bench: build bench-deps $(HF_TOKENIZERS)
	$(GO) run ./benchmarks/tokenizer
	$(GO) run ./benchmarks/prepare
	$(GO) run ./benchmarks/mix
	$(GO) run ./benchmarks/rope
	$(GO) run ./benchmarks/trainer
	$(GO) run ./benchmarks/eval

# Per-op costs of the Go backend (what the trainer's graph is shaped around).
opsbench:
	$(GO) test ./trainer -run '^$$' -bench Op -benchtime 3x

# The whole recipe at toy scale; report in demo-out/REPORT.md.
demo: build
	./$(BIN) demo --config configs/demo.yaml

# The experiments with statistics (~60 min on 2 cores): a toy model with
# retrieval and arithmetic skills, base raised vs kept, Liu et al.'s
# short-length tuning, math share; report in evidence-out/REPORT.md.
evidence: build
	./$(BIN) evidence --config configs/evidence.yaml

# A 4-point math-weight sweep over the demo corpus (run after make demo).
sweep: build
	./$(BIN) sweep --config configs/sweeps/demo-math.yaml

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin demo-out evidence-out sweep-out out

#!/usr/bin/env bash
# Builds the trainer-only binary (no Beam) that run.sh carries to a GPU
# machine: trainer/device/bin/longctx-train (~28 MiB, links only libc).
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOEXPERIMENT=simd GOTOOLCHAIN=local CGO_ENABLED=1
go build -trimpath -o trainer/device/bin/longctx-train ./cmd/longctx-train
ls -l trainer/device/bin/longctx-train

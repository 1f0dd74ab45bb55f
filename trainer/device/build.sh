#!/usr/bin/env bash
# Builds the trainer-only binary (no Beam) that run.sh carries to a GPU
# machine: trainer/device/bin/longctx-train (~48 MiB stripped, links only libc;
# it reads shards from local disk or gs://, so it carries the GCS client). The
# device machine takes at most 64 MiB of files: keep it stripped.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOEXPERIMENT=simd GOTOOLCHAIN=local CGO_ENABLED=1
go build -trimpath -ldflags='-s -w' -o trainer/device/bin/longctx-train ./cmd/longctx-train
ls -l trainer/device/bin/longctx-train

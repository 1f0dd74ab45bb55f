#!/usr/bin/env bash
# Device check: a short SmolLM2-360M-shape training at 16k tokens from a
# random init, on one NVIDIA GPU through GoMLX's XLA backend and the PJRT
# CUDA plugin installed on the machine (nothing is downloaded). Prints
# tokens/s, TFLOP/s, MFU and peak GPU memory.
#
# Here:   trainer/device/build.sh          (needs Go; makes trainer/device/bin/longctx-train)
# There:  trainer/device/run.sh [OUTDIR]   (needs only the binary, configs/ and nvidia-smi)
#   PJRT_PLUGIN=/abs/path/plugin.so   overrides the plugin search
#   STEPS=8 SEQ_LEN=16384             override the run length
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=trainer/device/bin/longctx-train
OUT=${1:-${OUT:-/tmp}/longctx-device}
STEPS=${STEPS:-8}
SEQ_LEN=${SEQ_LEN:-16384}
mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "missing $BIN: run trainer/device/build.sh first" >&2; exit 1; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no nvidia-smi" >&2; exit 1; }
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)

# The PJRT CUDA plugin: jax's cuda plugin wheel (jax_cuda12_plugin / jax_cuda13_plugin) or any
# pjrt_c_api_gpu_plugin.so / xla_cuda_plugin.so on the machine.
PLUGIN=${PJRT_PLUGIN:-}
if [ -z "$PLUGIN" ]; then
  PLUGIN=$(find / -xdev \( -name 'xla_cuda_plugin.so' -o -name 'pjrt_c_api_gpu_plugin.so' -o -name 'pjrt_plugin_cuda*.so' \) \
             -not -path '/proc/*' 2>/dev/null | head -1)
fi
[ -n "$PLUGIN" ] || { echo "no PJRT CUDA plugin found (set PJRT_PLUGIN)" >&2; exit 1; }
echo "PJRT plugin: $PLUGIN"
# XLA needs libdevice/ptxas: the nvidia/cu13 (or cuda_nvcc) directory of the same site-packages.
SITE=$(dirname "$(dirname "$PLUGIN")")
for d in "$SITE/nvidia/cu13" "$SITE/nvidia/cuda_nvcc" "$SITE/nvidia/cu12" /usr/local/cuda; do
  if [ -d "$d/nvvm/libdevice" ]; then export XLA_FLAGS="--xla_gpu_cuda_data_dir=$d ${XLA_FLAGS:-}"; break; fi
done
echo "XLA_FLAGS=${XLA_FLAGS:-}"
# Let CUDA libraries of the wheel be found by the plugin.
for d in "$SITE"/nvidia/*/lib "$SITE"/nvidia/cu*/lib; do [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}

# bf16 dense peak for the MFU estimate.
case "$GPU" in
  *H100*|*H200*|*GH200*) PEAK=989 ;;
  *A100*) PEAK=312 ;;
  *L40S*) PEAK=362 ;;
  *) PEAK=0 ;;
esac

# Peak GPU memory: poll nvidia-smi (no preallocation, so usage is real).
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu_mem.log" 2>/dev/null &
SMI=$!
export GOMLX_BACKEND="xla:$PLUGIN,preallocate=false"
T0=$(date +%s)
timeout 560 "$BIN" --config configs/train/smollm2-360m-16k.yaml --model_config configs/model/smollm2-360m.yaml \
  --seq_len "$SEQ_LEN" --steps "$STEPS" --synthetic_tokens $(( SEQ_LEN * (STEPS + 2) )) \
  --peak_tflops "$PEAK" --out "$OUT/360m-16k" 2>&1 | tee "$OUT/train.log"
RC=${PIPESTATUS[0]}
kill $SMI 2>/dev/null
PEAK_MIB=$(sort -n "$OUT/gpu_mem.log" | tail -1)
echo "DEVICE gpu=\"$GPU\" rc=$RC wall_s=$(( $(date +%s) - T0 )) peak_gpu_mem_mib=${PEAK_MIB:-?} peak_tflops_assumed=$PEAK"
exit $RC

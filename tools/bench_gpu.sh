#!/usr/bin/env bash
# Every GPU check and benchmark of the fused-attention work in one command, each stage under a
# time limit (one that fails or runs over does not stop the rest), logs in one folder. Exits 1
# at the end, naming the stages, when any stage failed or ran over its limit.
#
#   tools/bench_gpu.sh [OUT_DIR] [STAGE ...]     # default: runs/bench-gpu, all default stages
#   PYTHON="python3 -P" tools/bench_gpu.sh "$OUT" check targets   # e.g. on the lent machine
#
# Default stages (about 10 minutes on one H200 with a cold Triton cache, compilation included;
# measured 2026-12-04, docs/gpu-bench-2026-12-04.txt). The lent machine runs one command for at
# most 10 minutes, so there run it as two calls on the warm machine: `check targets`, then
# `decode train`.
#   check    tools/check_attention_gpu.py   correctness in bf16/fp16, decode, torch.compile
#   targets  tools/bench_attention.py       the target shapes (L 8192, D 128, B4 H16)
#   decode   tools/bench_decode.py          ms per step of the 336M decode configuration
#   train    tools/bench_train.py           tokens/s and MFU, 336M model, batch 8 x 4096
# Extra stage: matrix (bench_attention.py, every mask of performance.md section 3, D 64 and 128).
# DRY_RUN=1 runs each stage's --dry-run on the CPU instead (tiny shapes, Triton interpreter; CI
# does).
set -u
out=${1:-runs/bench-gpu}
shift || true
stages=${*:-check targets decode train}
py=${PYTHON:-python3}
mkdir -p "$out"
failed=()

stage() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" > >(tee "$out/$name.log") 2>&1
  local status=$?
  if [ $status -eq 0 ]; then
    echo "== $name exit 0 after $((SECONDS - start))s"
    return
  fi
  local why="exit $status"
  if [ $status -eq 124 ]; then why="timed out after ${limit}s"; fi
  echo "== $name FAILED ($why) after $((SECONDS - start))s"
  failed+=("$name ($why)")
}

dry=()
if [ "${DRY_RUN:-0}" = 1 ]; then
  dry=(--dry-run)
else
  nvidia-smi --query-gpu=name,power.limit,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.csv"
fi
$py -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
for s in $stages; do
  case $s in
    check) stage check 240 $py tools/check_attention_gpu.py "${dry[@]}" ;;
    targets) stage targets 120 $py tools/bench_attention.py --masks F8K,C8K --head-dims 128 \
      --tokens 32768 --only ours,sdpa,flex --out "$out/targets.json" "${dry[@]}" ;;
    decode) stage decode 150 $py tools/bench_decode.py "${dry[@]}" ;;
    train) stage train 300 $py tools/bench_train.py --variants compile-sdpa,compile-triton \
      "${dry[@]}" ;;
    matrix) stage matrix 420 $py tools/bench_attention.py --out "$out/matrix.json" "${dry[@]}" ;;
    *) echo "unknown stage $s (check, targets, decode, train, matrix)" >&2; exit 2 ;;
  esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "== failed stages: ${failed[*]}" >&2
  exit 1
fi
echo "== every stage passed: $stages"

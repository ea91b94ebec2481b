#!/usr/bin/env bash
# Everything the GPU machine does, as one script for one call (issue #27), each step inside its
# own time cap, a step that no longer fits the call's budget skipped with a line that says so:
#   a  correctness: tests/ marked cuda (every 2-D code through the fused path against the direct
#      form, forward and gradients, fp32 and bf16/fp16 autocast)               1 min
#   b  benchmarks/attention.py: ours against mmcv at res4, batch 2 and 8      1 min
#   c  benchmarks/train_step.py: step time and peak memory of the paper models 3 min
#   d  benchmarks/gpu_mini.py: the mini-study on CamVid, trials sharing the GPU,
#      then attnlab findings and attnlab effects on its store                  4 min
# Tables, logs and the MLflow store go under $OUT (default ./gpu-out).
#
#   benchmarks/gpu_carry.sh                       # here, first: the wheels and data, in .carry/
#   benchmarks/gpu_run.sh                         # there: run(command=..., carry=[".carry"])
#   benchmarks/gpu_run.sh --dry-run               # on a CPU, tiny sizes (CI runs this)
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT=${OUT:-$PWD/gpu-out}
BUDGET_S=${BUDGET_S:-540}  # the call's 9 minutes, installation included
mkdir -p "$OUT"
START=$SECONDS
PY=${PYTHON:-python3}

if (( DRY )); then
  DEVICE=cpu
else
  DEVICE=cuda
  # The machine has no registry: attnlab and what its image lacks come as wheels in .carry/.
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .carry/whl/*.whl || { echo "installing .carry/whl failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/site/bin:$PATH
  export ATTNLAB_DATASETS=$PWD/.carry/datasets
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/machine.txt" 2>&1
  "$PY" -c "import sys, torch, lightning; print(sys.version.split()[0], torch.__version__, lightning.__version__)" \
    >> "$OUT/machine.txt" 2>&1
fi
echo "attnlab gpu_run: device $DEVICE, budget ${BUDGET_S}s, out $OUT"

# step NAME CAP_S COMMAND...: run inside min(CAP, what the budget has left), output to $OUT/NAME.txt.
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET_S - (SECONDS - START) - 10))
  (( left < cap )) && cap=$left
  if (( cap < 20 )); then
    echo "step $name: skipped, ${left}s of the budget left" | tee "$OUT/$name.txt"
    return
  fi
  local t0=$SECONDS
  timeout --signal=INT --kill-after=15 "$cap" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.txt"
  echo "step $name: exit $rc after $((SECONDS - t0))s (cap ${cap}s)" | tee -a "$OUT/$name.txt"
}

if (( DRY )); then
  step a-correctness 60 "$PY" -m pytest -q -p no:cacheprovider tests/lightning_modules/test_cuda.py \
    tests/lightning_modules/test_attention_2d.py -k "cuda or flex"
  step b-attention 60 "$PY" benchmarks/attention.py --device cpu --codes all --shape 1 32 10 12 --heads 4 --reps 1
  step c-train-step 180 "$PY" benchmarks/train_step.py --dry-run --specs w/o 1111+deform --json "$OUT/train_step.json"
  step d-mini-study 240 "$PY" benchmarks/gpu_mini.py --dry-run --out "$OUT/mini" --store "$OUT/mini-store"
else
  step a-correctness 60 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/lightning_modules/test_cuda.py
  step b-attention 60 bash -c "'$PY' benchmarks/attention.py --device cuda --codes all --reps 10 --shape 2 256 50 84 \
    && '$PY' benchmarks/attention.py --device cuda --reps 10 --shape 8 256 50 84"
  step c-train-step 180 "$PY" benchmarks/train_step.py --device cuda --json "$OUT/train_step.json"
  # The specs the findings compare (tune/presets.py MINI_SEGMENTATION_SPECS), two seeds, 8 at a time.
  step d-mini-study 240 "$PY" benchmarks/gpu_mini.py --preset mini-segmentation --size gpu --max-epochs 3 \
    --specs w/o 1000 0100 0011 1100 0110 1001 1111 deform 0010+deform --seeds 0 1 \
    --concurrency 8 --threads 2 --deadline-s 200 --out "$OUT/mini"
fi
echo "gpu_run: done in $((SECONDS - START))s"

#!/usr/bin/env bash
# The GPU check, under 8 minutes on one GPU: (1) training throughput and MFU of XLM-R base
# (random weights, bf16) against the usual recipe, (2) the smoke study on device: cuda,
# (3) what `plan` puts the full study at, at the throughput just measured.
#
# On a GPU machine whose Python has torch and transformers but no package index: first, where pip
# works, `benchmarks/gpu_wheels.sh .whl`; carry .whl along; then `benchmarks/gpu.sh .whl`.
# With the project's environment active (`make env`), `benchmarks/gpu.sh` alone.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${1:-}
# DEVICE=cpu EXAMPLES=32 EVAL_EXAMPLES=32 runs the same steps on a CPU, to check the script
DEVICE=${DEVICE:-cuda}
EXAMPLES=${EXAMPLES:-8192}
EVAL_EXAMPLES=${EVAL_EXAMPLES:-2490}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}
if ! $PY -c "import datasets, pydantic, papermill, nbconvert, ipykernel" 2>/dev/null; then
  if [ -z "$WHEELS" ] || [ ! -d "$WHEELS" ]; then
    echo "gpu.sh: this Python lacks the study's packages; run benchmarks/gpu_wheels.sh where pip works" \
         "and pass the wheel folder: benchmarks/gpu.sh .whl" >&2
    exit 2
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/xnli-site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/xnli-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
  export JUPYTER_PATH=/tmp/xnli-site/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}  # nbconvert's templates
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"

echo "== 1. training throughput: XLM-R base, random weights, bf16 (the usual recipe against the project's path)"
SAVE=$(mktemp -d)
$PY benchmarks/training_throughput.py --random-init xlm-roberta-base --examples "$EXAMPLES" --eval-examples "$EVAL_EXAMPLES" --device "$DEVICE" --save-to "$SAVE"

echo "== 2. the smoke study on device: $DEVICE"
RUN=$(mktemp -d)
sed -e "s/^device: cpu/device: $DEVICE/" -e "s#^output_dir: .*#output_dir: $RUN#" params/smoke.yaml > "$RUN/smoke-cuda.yaml"
start=$(date +%s)
$PY -m xnli_study.cli run --params "$RUN/smoke-cuda.yaml" --quiet
echo "smoke study on $DEVICE: $(( $(date +%s) - start )) s"
$PY - "$RUN/smoke/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
acc = s["xnli_accuracy"]
print("XNLI accuracy (mean over seeds), English / non-English mean:",
      {c: (round(v["en"], 3), round(s["xnli_accuracy_avg"][c]["avg_non_en"], 3)) for c, v in acc.items()})
PY

echo "== 3. the full study at the measured throughput"
$PY -m xnli_study.cli plan --params params/full.yaml --tokens-per-second \
  "$($PY -c "import json,sys; d=json.load(open('$SAVE/.cache/throughput.json')); print(d['12x768:$DEVICE']['train_tokens_per_second'])")" \
  | grep -E "^(plan|encoder|throughput|total)"

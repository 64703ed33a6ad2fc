#!/bin/bash
# The study on one node with several GPUs: one shard per GPU side by side, then the run that puts
# the stages together (tables, statistics, report).
#
#   scripts/gpus_one_node.sh params/full.yaml outputs/full        # every GPU nvidia-smi lists
#   scripts/gpus_one_node.sh params/full.yaml outputs/full 4      # the first 4
#
# Each shard's output goes to logs/shard-<i>.out; its own log and manifest fragment are in the
# run folder's shards/<i>-of-<N>/. Run the same command again to resume: complete units are
# skipped and only what failed or was interrupted runs.
set -euo pipefail
PARAMS=${1:?usage: scripts/gpus_one_node.sh PARAMS RUN_FOLDER [GPUS]}
OUT=${2:?usage: scripts/gpus_one_node.sh PARAMS RUN_FOLDER [GPUS]}
N=${3:-$(nvidia-smi -L | wc -l)}
XNLI_STUDY=${XNLI_STUDY:-.venv/bin/xnli-study}
mkdir -p logs
pids=()
for ((i = 0; i < N; i++)); do
    CUDA_VISIBLE_DEVICES=$i "$XNLI_STUDY" run --params "$PARAMS" --out "$OUT" --quiet --shard "$i/$N" \
        > "logs/shard-$i.out" 2>&1 &
    pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "shard $i/$N failed: $(tail -n 1 "logs/shard-$i.out")" >&2
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "run this script again to retry what failed (complete units are kept)" >&2
    exit 1
fi
exec "$XNLI_STUDY" run --params "$PARAMS" --out "$OUT"

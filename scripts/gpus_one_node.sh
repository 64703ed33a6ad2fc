#!/bin/bash
# The study on one node with several GPUs: shards side by side, each on its own GPUs, then the run
# that puts the stages together (tables, statistics, report).
#
#   scripts/gpus_one_node.sh params/full.yaml outputs/full        # a shard per GPU
#   PER_SHARD=2 scripts/gpus_one_node.sh params/full.yaml outputs/full
#                                   # 2 GPUs per shard, for distributed.processes: 2
#
# The GPUs are those CUDA_VISIBLE_DEVICES lists, else every GPU nvidia-smi lists. Each shard's
# output goes to logs/shard-<i>.out; its own log and manifest fragment are in the run folder's
# shards/<i>-of-<N>/. Ctrl-C stops every shard. Run the same command again to resume: complete
# units are skipped and only what failed or was interrupted runs.
set -euo pipefail
PARAMS=${1:?usage: scripts/gpus_one_node.sh PARAMS RUN_FOLDER}
OUT=${2:?usage: scripts/gpus_one_node.sh PARAMS RUN_FOLDER}
PER_SHARD=${PER_SHARD:-1}
XNLI_STUDY=${XNLI_STUDY:-.venv/bin/xnli-study}
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    IFS=, read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
else
    mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader)
fi
N=$(( ${#gpus[@]} / PER_SHARD ))
if [ "$N" -lt 1 ]; then
    echo "found ${#gpus[@]} GPUs, fewer than PER_SHARD=$PER_SHARD" >&2
    exit 2
fi
mkdir -p logs
pids=()
stop() {
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait
    exit 130
}
trap stop INT TERM
for ((i = 0; i < N; i++)); do
    mine=$(IFS=,; echo "${gpus[*]:$((i * PER_SHARD)):$PER_SHARD}")
    CUDA_VISIBLE_DEVICES=$mine "$XNLI_STUDY" run --params "$PARAMS" --out "$OUT" --quiet --shard "$i/$N" \
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

#!/bin/bash
# The study on a Slurm cluster: one shard per array task, one GPU each, into one shared run folder.
#
#   sbatch --array=0-7 scripts/slurm_array.sh params/full.yaml /shared/runs/full
#   sbatch --dependency=afterok:<the array's job id> --export=ALL,HF_HUB_OFFLINE=1 --wrap \
#       ".venv/bin/xnli-study run --params params/full.yaml --out /shared/runs/full"
#
# The second job finds every chain complete and puts the stages together (tables, statistics,
# report). Run `xnli-study prefetch --params params/full.yaml` once on a login node first when
# the compute nodes cannot reach the Hugging Face hub. To resume after a failure, a time limit or
# a pre-emption, submit the same array again: complete units are skipped, an interrupted training
# resumes from its last checkpoint, and only the failed units run. The array must be one range
# (0-7 or 1-8, no step): its tasks are numbered from its first.
#SBATCH --job-name=xnli-study
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%A_%a.out
# SIGTERM to the batch shell (here: xnli-study itself, through exec) two minutes before the limit
#SBATCH --signal=B:TERM@120
set -euo pipefail
PARAMS=${1:?usage: sbatch --array=0-N scripts/slurm_array.sh PARAMS RUN_FOLDER}
OUT=${2:?usage: sbatch --array=0-N scripts/slurm_array.sh PARAMS RUN_FOLDER}
XNLI_STUDY=${XNLI_STUDY:-.venv/bin/xnli-study}
INDEX=$((SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN))
COUNT=$((SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1))
# the compute nodes read what `xnli-study prefetch` cached (the same HF_HOME as the login node)
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec "$XNLI_STUDY" run --params "$PARAMS" --out "$OUT" --quiet --shard "$INDEX/$COUNT"

#!/usr/bin/env bash
# STAR-R1 stage 1: SFT cold start of Qwen2.5-VL-7B-Instruct on the filtered three-step chains of
# thought, one node of 8 GPUs (80 GB each, e.g. H100 / A100-80GB), with torchrun.
#
#   bash run_star_r1_sft_8gpu.sh [key=value ...]        # extra overrides go last and win
#
# Environment:
#   STAR_VERL_DATA     data root (default ~/data/star_verl); the recipe reads $STAR_VERL_DATA/sft/{train,val}.parquet
#   MODEL              the base model (default: the recipe's)
#   CKPT_DIR           checkpoints (default ./checkpoints/star_r1_sft); the last step's
#                      $CKPT_DIR/global_step_<N>/huggingface is stage 2's SFT_CKPT
#   STAR_VERL_DRY_RUN  set to 1 to print the commands instead of running them
#
# It first runs `star-verl doctor` with the same overrides and stops if any check fails. The recipe
# holds every training value (its dynamic batch size and offload notes, the multi-view pixel budget
# of recipes/base/multiview.yaml); this script adds only the paths above and the process count.
set -euo pipefail

CKPT_DIR=${CKPT_DIR:-$PWD/checkpoints/star_r1_sft}
NPROC=8  # torchrun's processes, one per GPU: the trainer's n_gpus_per_node

ARGS=(
  trainer.default_local_dir=$CKPT_DIR
  trainer.n_gpus_per_node=$NPROC
)
if [[ -n "${MODEL:-}" ]]; then ARGS+=(model.path=$MODEL); fi

run() {
  if [[ -n "${STAR_VERL_DRY_RUN:-}" ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

run star-verl doctor +recipe=star_r1_sft "${ARGS[@]}" "$@"
run torchrun --standalone --nnodes=1 --nproc-per-node=$NPROC -m verl.trainer.sft_trainer +recipe=star_r1_sft "${ARGS[@]}" "$@"

#!/usr/bin/env bash
# STAR-R1 TVR: GRPO of Qwen2.5-VL-7B-Instruct on one node of 8 GPUs (80 GB each, e.g. H100 / A100-80GB).
#
#   bash run_star_r1_tvr_8gpu.sh [key=value ...]        # extra overrides go last and win
#
# Environment:
#   STAR_VERL_DATA     data root (default ~/data/star_verl); the recipe reads $STAR_VERL_DATA/tvr/{train,val}.parquet,
#                      built by `python data_prep/build_tvr.py --synthetic 20000` or `--trance DIR`
#   MODEL              the policy to start from (default: the recipe's base model; the paper uses no SFT here)
#   CKPT_DIR           checkpoints and rollout dumps (default ./checkpoints/star_r1_tvr)
#   STAR_VERL_DRY_RUN  set to 1 to print the commands instead of running them
#
# It first runs `star-verl doctor` with the same overrides (environment, GPUs, recipe, data sample)
# and stops if any check fails. The recipe holds every training value, including the cluster's
# (recipes/base/grpo.yaml explains the offload and rollout memory settings); this script adds only
# the paths above and the batch packing for 80 GB GPUs. On OOM lower, in this order,
# ppo_max_token_len_per_gpu, rollout.gpu_memory_utilization, then turn on the actor's offload.
set -euo pipefail

CKPT_DIR=${CKPT_DIR:-$PWD/checkpoints/star_r1_tvr}

ARGS=(
  trainer.default_local_dir=$CKPT_DIR
  # (the recipe writes rollouts and validation generations to $CKPT_DIR/rollouts and /validation)

  # Dynamic batch size: instead of a fixed micro-batch count, pack sequences up to
  # actor.ppo_max_token_len_per_gpu tokens (veRL's default 16384 ~ 5 full-length sequences) per GPU
  # per forward/backward. Activation memory scales with it (gradient checkpointing is on); it must
  # be >= max_prompt_length + max_response_length = 3072. The reference and old-policy log-probs
  # follow use_dynamic_bsz and are forward-only: twice the tokens fit.
  actor_rollout_ref.actor.use_dynamic_bsz=true
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768
)
if [[ -n "${MODEL:-}" ]]; then ARGS+=(actor_rollout_ref.model.path=$MODEL); fi

run() {
  if [[ -n "${STAR_VERL_DRY_RUN:-}" ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

run star-verl doctor +recipe=star_r1_tvr "${ARGS[@]}" "$@"
run python3 -m verl.trainer.main_ppo +recipe=star_r1_tvr "${ARGS[@]}" "$@"

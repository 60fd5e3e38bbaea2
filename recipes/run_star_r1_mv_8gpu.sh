#!/usr/bin/env bash
# STAR-R1 stage 2: reference-aware GRPO on MindCube + SPAR-7M from the SFT checkpoint, one node of
# 8 GPUs (80 GB each, e.g. H100 / A100-80GB).
#
#   SFT_CKPT=<sft run>/global_step_<N>/huggingface bash run_star_r1_mv_8gpu.sh [key=value ...]
#
# Environment:
#   SFT_CKPT           required: the stage-1 checkpoint (run_star_r1_sft_8gpu.sh writes it, with hf_model);
#                      the recipe reads it as its model path
#   STAR_VERL_DATA     data root (default ~/data/star_verl); the recipe reads $STAR_VERL_DATA/multiview/{rl_train,val}.parquet,
#                      built by `python data_prep/build_mindcube_spar.py --mindcube ... --spar ... --out $STAR_VERL_DATA/multiview`
#   CKPT_DIR           checkpoints and rollout dumps (default ./checkpoints/star_r1_mv)
#   STAR_VERL_DRY_RUN  set to 1 to print the commands instead of running them
#
# It first runs `star-verl doctor` with the same overrides and stops if any check fails. The recipe
# holds every training value, including the cluster's (recipes/base/grpo.yaml) and the pixel budget
# (recipes/base/multiview.yaml); this script adds only the paths above and the batch packing for
# 80 GB GPUs (the same as TVR's). Memory: up to 5 images per prompt and 2048-token prompts make this
# stage heavier than TVR; on OOM lower, in this order, ppo_max_token_len_per_gpu,
# data.star.total_max_pixels, rollout.gpu_memory_utilization.
set -euo pipefail

: "${SFT_CKPT:?set SFT_CKPT to the SFT checkpoint (<trainer.default_local_dir>/global_step_<N>/huggingface)}"
CKPT_DIR=${CKPT_DIR:-$PWD/checkpoints/star_r1_mv}

ARGS=(
  trainer.default_local_dir=$CKPT_DIR
  # (the recipe writes rollouts and validation generations to $CKPT_DIR/rollouts and /validation)

  # Dynamic batch size: pack sequences up to actor.ppo_max_token_len_per_gpu tokens (veRL's default
  # 16384; >= max_prompt_length + max_response_length = 4096) per GPU per forward/backward.
  # Activation memory scales with it. The forward-only log-prob passes follow use_dynamic_bsz with
  # twice the tokens.
  actor_rollout_ref.actor.use_dynamic_bsz=true
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768
)

run() {
  if [[ -n "${STAR_VERL_DRY_RUN:-}" ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

run star-verl doctor +recipe=star_r1_mv "${ARGS[@]}" "$@"
run python3 -m verl.trainer.main_ppo +recipe=star_r1_mv "${ARGS[@]}" "$@"

#!/usr/bin/env bash
# STAR-R1 stage 2: reference-aware GRPO on MindCube + SPAR-7M from the SFT checkpoint, one node of
# 8 GPUs (80 GB each, e.g. H100 / A100-80GB).
#
#   SFT_CKPT=<sft run>/global_step_<N>/huggingface bash run_star_r1_mv_8gpu.sh [key=value ...]
#
# Environment:
#   SFT_CKPT           required: the stage-1 checkpoint (run_star_r1_sft_8gpu.sh writes it, with hf_model)
#   STAR_VERL_DATA     data root (default ~/data/star_verl); reads $STAR_VERL_DATA/multiview/{rl_train,val}.parquet,
#                      built by `python data_prep/build_mindcube_spar.py --mindcube ... --spar ... --out $STAR_VERL_DATA/multiview`
#   CKPT_DIR           checkpoints and rollout dumps (default ./checkpoints/star_r1_mv)
#   STAR_VERL_DRY_RUN  set to 1 to print the commands instead of running them
#
# It first runs `star-verl doctor` with the same overrides and stops if any check fails.
# Memory: up to 5 images per prompt and 2048-token prompts make this stage heavier than TVR; on OOM
# lower, in this order, ppo_max_token_len_per_gpu, data.star.total_max_pixels, rollout.gpu_memory_utilization.
set -euo pipefail

DATA=${STAR_VERL_DATA:-$HOME/data/star_verl}
SFT_CKPT=${SFT_CKPT:?set SFT_CKPT to the SFT checkpoint (<trainer.default_local_dir>/global_step_<N>/huggingface)}
CKPT_DIR=${CKPT_DIR:-$PWD/checkpoints/star_r1_mv}

ARGS=(
  data.train_files=$DATA/multiview/rl_train.parquet
  data.val_files=$DATA/multiview/val.parquet
  actor_rollout_ref.model.path=$SFT_CKPT
  trainer.n_gpus_per_node=8
  trainer.nnodes=1
  trainer.default_local_dir=$CKPT_DIR
  # (the recipe writes rollouts and validation generations to $CKPT_DIR/rollouts and /validation)

  # Pixel budget: each image at most max_pixels (90000 px ~ 115 tokens, MindCube's budget) and a
  # sample's images together at most total_max_pixels (360000 px ~ 460 tokens), split evenly over
  # its images, so a 5-view SPAR sample costs no more image tokens than a 4-view MindCube one.
  # The SFT stage used the same budget (recipe star_r1_sft): keep them equal.
  data.star.min_pixels=3136
  data.star.max_pixels=90000
  data.star.total_max_pixels=360000
  data.max_prompt_length=2048

  # Dynamic batch size: pack sequences up to this many tokens per GPU per forward/backward
  # (>= max_prompt_length + max_response_length = 4096). Activation memory scales with it.
  actor_rollout_ref.actor.use_dynamic_bsz=true
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384
  actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.model.enable_gradient_checkpointing=true

  # Offload: FSDP shards the actor's fp32 weights, gradients and Adam states (~133 GB for 8.3B
  # params) to ~17 GB per GPU; no offload on 80 GB (set both to true on 40-48 GB GPUs). The
  # reference model (KL term) waits on the CPU between uses.
  actor_rollout_ref.actor.fsdp_config.param_offload=false
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=false
  actor_rollout_ref.ref.fsdp_config.param_offload=true

  # Rollout (vLLM): 4 replicas of TP 2; 60% of each GPU for vLLM's weights + KV cache while it
  # generates. limit_images must cover the largest image count in the data (doctor checks it).
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.tensor_model_parallel_size=2
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  actor_rollout_ref.rollout.free_cache_engine=true
  actor_rollout_ref.rollout.limit_images=5
)

run() {
  if [[ -n "${STAR_VERL_DRY_RUN:-}" ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

run star-verl doctor +recipe=star_r1_mv "${ARGS[@]}" "$@"
run python3 -m verl.trainer.main_ppo +recipe=star_r1_mv "${ARGS[@]}" "$@"

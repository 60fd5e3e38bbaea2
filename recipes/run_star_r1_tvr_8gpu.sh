#!/usr/bin/env bash
# STAR-R1 TVR: GRPO of Qwen2.5-VL-7B-Instruct on one node of 8 GPUs (80 GB each, e.g. H100 / A100-80GB).
#
#   bash run_star_r1_tvr_8gpu.sh [key=value ...]        # extra overrides go last and win
#
# Environment:
#   STAR_VERL_DATA     data root (default ~/data/star_verl); reads $STAR_VERL_DATA/tvr/{train,val}.parquet,
#                      built by `python data_prep/build_tvr.py --synthetic 20000` or `--trance DIR`
#   MODEL              the policy to start from (default Qwen/Qwen2.5-VL-7B-Instruct; the paper uses no SFT here)
#   CKPT_DIR           checkpoints and rollout dumps (default ./checkpoints/star_r1_tvr)
#   STAR_VERL_DRY_RUN  set to 1 to print the commands instead of running them
#
# It first runs `star-verl doctor` with the same overrides (environment, GPUs, recipe, data sample)
# and stops if any check fails. Memory: the settings below fit 8 x 80 GB; on OOM lower, in this
# order, ppo_max_token_len_per_gpu, rollout.gpu_memory_utilization, then turn on the actor's offload.
set -euo pipefail

DATA=${STAR_VERL_DATA:-$HOME/data/star_verl}
MODEL=${MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
CKPT_DIR=${CKPT_DIR:-$PWD/checkpoints/star_r1_tvr}

ARGS=(
  data.train_files=$DATA/tvr/train.parquet
  data.val_files=$DATA/tvr/val.parquet
  actor_rollout_ref.model.path=$MODEL
  trainer.n_gpus_per_node=8
  trainer.nnodes=1
  trainer.default_local_dir=$CKPT_DIR
  # (the recipe writes rollouts and validation generations to $CKPT_DIR/rollouts and /validation)

  # Pixel budget: every image is resized to at most max_pixels before the processor, so the image
  # tokens per prompt are bounded (tokens = pixels / 28^2). TRANCE renders are 320x240 -> 308x252 ->
  # 99 tokens each, two images per prompt: the prompt stays well inside data.max_prompt_length=1024.
  data.star.min_pixels=3136
  data.star.max_pixels=78400

  # Dynamic batch size: instead of a fixed micro-batch count, pack sequences up to this many tokens
  # per GPU per forward/backward. Activation memory scales with it (gradient checkpointing is on);
  # it must be >= max_prompt_length + max_response_length = 3072. 16384 ~ 5 full-length sequences.
  actor_rollout_ref.actor.use_dynamic_bsz=true
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384
  # the reference and old-policy log-probs are forward-only: twice the tokens fit
  actor_rollout_ref.ref.log_prob_use_dynamic_bsz=true
  actor_rollout_ref.ref.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true
  actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=32768
  actor_rollout_ref.model.enable_gradient_checkpointing=true

  # Offload: the actor's fp32 weights, gradients and Adam states (16 bytes x 8.3B params ~ 133 GB)
  # are sharded by FSDP over 8 GPUs (~17 GB each): no offload needed on 80 GB. On 40-48 GB GPUs set
  # both actor offloads to true (slower steps, CPU RAM >= 150 GB). The reference model is only used
  # for the KL term's log-probs: its weights live on the CPU between uses.
  actor_rollout_ref.actor.fsdp_config.param_offload=false
  actor_rollout_ref.actor.fsdp_config.optimizer_offload=false
  actor_rollout_ref.ref.fsdp_config.param_offload=true

  # Rollout (vLLM): each replica spans tensor_model_parallel_size GPUs (2 -> 4 replicas of the 7B);
  # gpu_memory_utilization is the share of each GPU vLLM takes for weights + KV cache while it
  # generates (freed again for training: free_cache_engine). 0.6 leaves room for the actor's
  # sharded states, which stay resident. limit_images = images per prompt vLLM accepts.
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.tensor_model_parallel_size=2
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  actor_rollout_ref.rollout.free_cache_engine=true
  actor_rollout_ref.rollout.limit_images=2
)

run() {
  if [[ -n "${STAR_VERL_DRY_RUN:-}" ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

run star-verl doctor +recipe=star_r1_tvr "${ARGS[@]}" "$@"
run python3 -m verl.trainer.main_ppo +recipe=star_r1_tvr "${ARGS[@]}" "$@"

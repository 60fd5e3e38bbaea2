#!/usr/bin/env bash
# STAR-R1 stage 1: SFT cold start of Qwen2.5-VL-7B-Instruct on the filtered three-step chains of
# thought, one node of 8 GPUs (80 GB each, e.g. H100 / A100-80GB), with torchrun.
#
#   bash run_star_r1_sft_8gpu.sh [key=value ...]        # extra overrides go last and win
#
# Environment:
#   STAR_VERL_DATA     data root (default ~/data/star_verl); reads $STAR_VERL_DATA/sft/{train,val}.parquet
#   MODEL              the base model (default Qwen/Qwen2.5-VL-7B-Instruct)
#   CKPT_DIR           checkpoints (default ./checkpoints/star_r1_sft); the last step's
#                      $CKPT_DIR/global_step_<N>/huggingface is stage 2's SFT_CKPT
#   STAR_VERL_DRY_RUN  set to 1 to print the commands instead of running them
#
# It first runs `star-verl doctor` with the same overrides and stops if any check fails.
# Memory: on OOM lower data.max_token_len_per_gpu first, then turn on the engine's offload.
set -euo pipefail

DATA=${STAR_VERL_DATA:-$HOME/data/star_verl}
MODEL=${MODEL:-Qwen/Qwen2.5-VL-7B-Instruct}
CKPT_DIR=${CKPT_DIR:-$PWD/checkpoints/star_r1_sft}
NPROC=8

ARGS=(
  data.train_files=$DATA/sft/train.parquet
  data.val_files=$DATA/sft/val.parquet
  model.path=$MODEL
  trainer.n_gpus_per_node=$NPROC
  trainer.nnodes=1
  trainer.default_local_dir=$CKPT_DIR

  # Pixel budget: the same as stage 2 (star_r1_mv), so the model is trained on the image sizes it
  # will see in RL: at most 90000 px per image (~115 tokens), 360000 px per sample.
  data.star.min_pixels=3136
  data.star.max_pixels=90000
  data.star.total_max_pixels=360000
  data.max_length=4096

  # Dynamic batch size: each GPU packs whole conversations up to this many tokens per micro-batch
  # (>= data.max_length); the global batch is data.train_batch_size conversations.
  data.use_dynamic_bsz=true
  data.max_token_len_per_gpu=8192
  model.enable_gradient_checkpointing=true

  # Offload: FSDP2 shards the fp32 weights, gradients and Adam states (~133 GB) to ~17 GB per GPU,
  # so nothing is offloaded on 80 GB; on 40-48 GB GPUs set both to true.
  engine.param_offload=false
  engine.optimizer_offload=false
)

run() {
  if [[ -n "${STAR_VERL_DRY_RUN:-}" ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

run star-verl doctor +recipe=star_r1_sft "${ARGS[@]}" "$@"
run torchrun --standalone --nnodes=1 --nproc-per-node=$NPROC -m verl.trainer.sft_trainer +recipe=star_r1_sft "${ARGS[@]}" "$@"

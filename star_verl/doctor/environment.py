"""doctor's environment checks: veRL, torch, torchvision, transformers, the GPUs, the rollout engine and
flash-attn; and the seams through which doctor sees the environment (tests replace these, never veRL or torch)."""

from __future__ import annotations

import importlib
import importlib.metadata
import re

from star_verl.doctor.context import FAIL, NO_GPU, PASS, SKIP, Check, Context, short

# The veRL release star-verl is tested against, and the range pyproject.toml accepts.
VERL_TESTED = "0.9.1"
VERL_RANGE = ">=0.9.1,<0.10"
VERL_INSTALL = 'pip install "verl[verl-core]==0.9.1"'
# rollout.name -> the distribution that provides it
ROLLOUT_DISTRIBUTIONS = {"vllm": "vllm", "sglang": "sglang", "trtllm": "tensorrt_llm"}


# ---------------------------------------------------------------------------------------------
# the seams


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements(distribution: str) -> list[str]:
    """The requirement lines an installed distribution declares ([] when it is not installed)."""
    try:
        return list(importlib.metadata.requires(distribution) or [])
    except importlib.metadata.PackageNotFoundError:
        return []


def import_module(name: str):
    """Import a module by name (the one place doctor imports what it checks)."""
    return importlib.import_module(name)


def gpu_count() -> int:
    """GPUs this process sees (CUDA_VISIBLE_DEVICES applies); 0 without torch or CUDA."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - torch's own check reports why
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver reads as no GPU; the torch row shows the version
        return 0


# ---------------------------------------------------------------------------------------------
# requirements and versions


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _requirements_on(distribution: str, name: str):
    """`distribution`'s requirements on `name` (packaging Requirements, base and extras)."""
    from packaging.requirements import Requirement

    return [req for req in map(Requirement, requirements(distribution)) if _canon(req.name) == _canon(name)]


def _verl_requirements(name: str):
    """veRL's own requirements on `name`: its extras pin the engines it is built against (vllm, sglang, flash-attn)."""
    return _requirements_on("verl", name)


def _verl_range(name: str):
    """veRL's base (unconditional) requirement on `name`, or None."""
    return next((req for req in _verl_requirements(name) if req.marker is None), None)


def _verl_pin(name: str) -> str | None:
    """The version veRL's extras pin `name` to (e.g. vllm==0.24.0), if any."""
    for req in _verl_requirements(name):
        for spec in req.specifier:
            if spec.operator == "==":
                return spec.version
    return None


def _same_minor(a: str, b: str) -> bool:
    from packaging.version import Version

    va, vb = Version(a), Version(b)
    return (va.major, va.minor) == (vb.major, vb.minor)


# ---------------------------------------------------------------------------------------------
# the checks


def check_verl(ctx: Context) -> Check:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    version = installed_version("verl")
    if version is None:
        return Check("verl", FAIL, "not installed", VERL_INSTALL)
    if Version(version) not in SpecifierSet(VERL_RANGE):
        return Check("verl", FAIL, f"{version} is outside the supported range {VERL_RANGE} (tested: {VERL_TESTED})", VERL_INSTALL)
    note = "the tested pin" if version == VERL_TESTED else f"in range {VERL_RANGE}; tested with {VERL_TESTED}"
    return Check("verl", PASS, f"{version} ({note})")


def check_torch(ctx: Context) -> Check:
    version = installed_version("torch")
    if version is None:
        return Check("torch", FAIL, "not installed", "install the torch build for your CUDA, e.g. pip install torch==2.11.0 (veRL 0.9.1's pin)")
    try:
        torch = import_module("torch")
    except Exception as exc:  # noqa: BLE001
        return Check("torch", FAIL, f"{version} does not import: {short(exc)}", "reinstall torch for this platform")
    cuda = getattr(torch.version, "cuda", None)
    pin = _verl_pin("torch")
    pin_note = f"; veRL's engine extras pin torch=={pin}" if pin and pin != version.split("+")[0] else ""
    return Check("torch", PASS, f"{version} (CUDA {cuda or 'none'}){pin_note}")


def check_torchvision(ctx: Context) -> Check:
    version = installed_version("torchvision")
    fix = "pip install torchvision built for your torch (torch 2.11.0 -> torchvision 0.26.0); without it veRL's hf_processor returns None and image samples are dropped"
    if version is None:
        return Check("torchvision", FAIL, "not installed: the Qwen2.5-VL processor and qwen_vl_utils need it", fix)
    try:
        import_module("torchvision")
    except Exception as exc:  # noqa: BLE001 - e.g. "operator torchvision::nms does not exist" (torch mismatch)
        return Check("torchvision", FAIL, f"{version} does not import ({short(exc)}): the Qwen2.5-VL processor and qwen_vl_utils need it", fix)
    return Check("torchvision", PASS, version)


def check_transformers(ctx: Context) -> Check:
    version = installed_version("transformers")
    req = _verl_range("transformers")
    spec = str(req.specifier) if req is not None else ""
    fix = f'pip install "transformers{spec}"' if spec else "pip install transformers"
    if version is None:
        return Check("transformers", FAIL, "not installed", fix)
    if req is not None and not req.specifier.contains(version, prereleases=True):
        return Check("transformers", FAIL, f"{version} is outside veRL's range {spec}", fix)
    return Check("transformers", PASS, f"{version}" + (f" (veRL needs {spec})" if spec else ""))


def count_gpus(ctx: Context) -> tuple[int, Check]:
    """Stage "GPUs": this node's GPUs against the recipe's `n_gpus_per_node` (its share of the cluster)."""
    gpus = gpu_count()
    if ctx.recipe is None:
        need, nodes = None, 1
    else:
        need, nodes = int(ctx.recipe.cfg.trainer.n_gpus_per_node), int(ctx.recipe.cfg.trainer.nnodes)
    share = f"the recipe needs {need} per node x {nodes} node(s) = {need * nodes}" if need is not None else "no composed recipe"
    if gpus == 0:
        if ctx.options.cpu_ok:
            return gpus, Check("GPUs", SKIP, f"{NO_GPU} (--cpu-ok); {share}")
        return gpus, Check(
            "GPUs",
            FAIL,
            f"no GPU visible; {share}",
            "run doctor on a GPU node of the cluster (check nvidia-smi and CUDA_VISIBLE_DEVICES), or pass --cpu-ok to check only the recipe and data",
        )
    if need is not None and gpus < need:
        return gpus, Check(
            "GPUs",
            FAIL,
            f"{gpus} visible on this node, {share}",
            f"set trainer.n_gpus_per_node={gpus} (and keep data.train_batch_size * rollout.n divisible by the GPU count), or run on a node with {need} GPUs",
        )
    extra = f"; run doctor on each of the {nodes} nodes" if nodes > 1 else ""
    return gpus, Check("GPUs", PASS, f"{gpus} visible" + (f"; {share}{extra}" if need is not None else ""))


def _gpu_package(ctx: Context, name: str, dist: str, needed_by: str, install: str) -> Check:
    """A GPU-only package: present, importable (on a GPU node) and in veRL's tested series."""
    version = installed_version(dist)
    pin = _verl_pin(dist)
    if version is None:
        if ctx.gpus == 0 and ctx.options.cpu_ok:
            return Check(name, SKIP, f"{NO_GPU}; not installed here ({needed_by} needs it on the GPU nodes)")
        return Check(name, FAIL, f"not installed; {needed_by} needs it", install)
    if pin and not _same_minor(version, pin):
        return Check(
            name, FAIL, f"{version}; veRL {installed_version('verl')} is built and tested against {dist}=={pin}", f'pip install "{dist}=={pin}"'
        )
    torch_version = installed_version("torch")
    for req in _requirements_on(dist, "torch"):
        if req.marker is None and torch_version and not req.specifier.contains(torch_version.split("+")[0], prereleases=True):
            return Check(
                name,
                FAIL,
                f"{dist} {version} requires torch{req.specifier}; torch {torch_version} is installed",
                f"install the torch {dist} was built for: {install}",
            )
    if ctx.gpus == 0:
        return Check(name, SKIP, f"{version} installed; import not tried: {NO_GPU}")
    try:
        import_module(dist.replace("-", "_"))
    except Exception as exc:  # noqa: BLE001 - an ABI mismatch with torch shows here
        return Check(
            name, FAIL, f"{version} does not import: {short(exc)}", f"reinstall {dist} built for torch {installed_version('torch')}: {install}"
        )
    return Check(name, PASS, version + (f" (veRL pins {pin})" if pin else ""))


def check_rollout_engine(ctx: Context) -> Check:
    if ctx.recipe is None or not ctx.recipe.rl:
        return Check("rollout engine", SKIP, "no composed RL recipe" if ctx.recipe is None else "not an RL recipe")
    engine = str(ctx.recipe.cfg.actor_rollout_ref.rollout.name)
    dist = ROLLOUT_DISTRIBUTIONS.get(engine)
    if dist is None:
        return Check(
            "rollout engine",
            FAIL,
            f"actor_rollout_ref.rollout.name={engine!r}; veRL 0.9.1 serves rollouts with {sorted(ROLLOUT_DISTRIBUTIONS)}",
            "set actor_rollout_ref.rollout.name=vllm (or sglang)",
        )
    install = f'pip install "verl[{engine}]==0.9.1"' if engine in ("vllm", "sglang") else f"install {dist}"
    return _gpu_package(ctx, f"rollout engine ({engine})", dist, f"actor_rollout_ref.rollout.name={engine}", install)


def check_flash_attn(ctx: Context) -> Check:
    if ctx.recipe is None:
        return Check("flash-attn", SKIP, "no composed recipe")
    key = ctx.recipe.model_key
    attn = str((ctx.recipe.model.get("override_config") or {}).get("attn_implementation", "flash_attention_2"))
    if "flash_attention" not in attn:
        return Check("flash-attn", SKIP, f"not needed: {key}.override_config.attn_implementation={attn}")
    return _gpu_package(
        ctx,
        "flash-attn",
        "flash-attn",
        f"{key}.override_config.attn_implementation={attn} (veRL's default)",
        f'pip install "flash-attn=={_verl_pin("flash-attn") or "2.8.3"}" --no-build-isolation, or +{key}.override_config.attn_implementation=sdpa',
    )

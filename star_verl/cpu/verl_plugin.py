"""What veRL imports in every process of a CPU run (`VERL_USE_EXTERNAL_MODULES=star_verl.cpu.verl_plugin`
with `VERL_PLATFORM=cpu`, both set by `star_verl.cpu.cpu_env()`): registers the CPU platform and
applies the patches of `star_verl.cpu.patches`. Importing it without `VERL_PLATFORM=cpu` is an error,
so that a GPU run never gets CPU patches by a stray variable."""

from __future__ import annotations

import os

from star_verl.cpu.patches import VERL_VERSION, CPUSupportError, apply_all, require_version

if os.environ.get("VERL_PLATFORM", "").strip().lower() != "cpu":
    raise CPUSupportError(
        f"{__name__} is star-verl's support for running veRL without a GPU: it is loaded only with VERL_PLATFORM=cpu "
        f"(VERL_PLATFORM is {os.environ.get('VERL_PLATFORM')!r}); remove it from VERL_USE_EXTERNAL_MODULES for a GPU run"
    )
require_version("verl", VERL_VERSION, "the CPU platform")

from star_verl.cpu import platform  # noqa: E402,F401  (registers the "cpu" platform)

apply_all()

"""`star-verl doctor`: a preflight check of the environment, a recipe and its data, in seconds.

    star-verl doctor                                   # the environment only
    star-verl doctor +recipe=star_r1_tvr [key=value ...]   # the same overrides as the training command
    star-verl doctor --cpu-ok +recipe=star_r1_mv actor_rollout_ref.model.path=CKPT   # on a machine without GPUs

It finds, before a cluster spends an hour starting up, what would break a run later: a veRL outside
the tested range, torchvision missing (veRL's `hf_processor` then silently returns None and every
image sample is dropped), no rollout engine, too few GPUs, a recipe that does not compose or that
veRL's `validate_config` refuses, a `pkg://` path that does not import, a model whose processor does
not load or whose chat template drops the system prompt, data files that are missing or whose rows
fail the dataset's own validation (placeholders vs images, images that do not decode, ground truth
that does not parse, prompts over `data.max_prompt_length`), `rollout.limit_images` below the
largest image count in the data, keys veRL 0.9.1 composes but silently ignores (the legacy
`reward_model.reward_manager`, top-level `custom_reward_function`), and a train set smaller than one
batch (veRL then trains nothing, without an error).

GPUs. Without `--cpu-ok`, no visible GPU is a failure: doctor is meant to run on a node of the
cluster the recipe trains on. With `--cpu-ok` (a laptop, CI, a login node) the GPU count and the
GPU-only packages (rollout engine, flash-attn) report SKIP ("skipped: no GPU") when no GPU is
visible; everything else is checked as usual. A node with GPUs, but fewer than the recipe's
`trainer.n_gpus_per_node`, always fails. On a multi-node recipe each node must hold
`n_gpus_per_node` GPUs: doctor checks this node's share (run it on every node).

Data rows are sampled (the first `--rows` of each file, so row numbers in messages are the file's),
never read whole; only the text column is scanned over the whole file, for the image counts.

Output: a table of checks (check, status PASS/FAIL/SKIP, detail) with each failure's fix on the line
below it (`--json`: the same four fields per check); exit status 1 when any check fails, 0 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NO_GPU = "skipped: no GPU"

# The veRL release star-verl is tested against, and the range pyproject.toml accepts.
VERL_TESTED = "0.9.1"
VERL_RANGE = ">=0.9.1,<0.10"
VERL_INSTALL = 'pip install "verl[verl-core]==0.9.1"'
# rollout.name -> the distribution that provides it
ROLLOUT_DISTRIBUTIONS = {"vllm": "vllm", "sglang": "sglang", "trtllm": "tensorrt_llm"}
DEFAULT_ROWS = 32
# Top-level config blocks veRL 0.9.1 composes for old command lines but main_ppo ignores (reward.* replaced them).
LEGACY_REWARD_KEYS = ("custom_reward_function", "reward_model", "sandbox_fusion")


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""
    fix: str = ""


# ---------------------------------------------------------------------------------------------
# the environment seams (tests replace these, never veRL or torch)


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
# helpers


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def _walk(node: Any, parents: tuple = ()) -> Iterator[tuple[tuple, Mapping]]:
    if isinstance(node, Mapping):
        yield parents, node
        for key, value in node.items():
            yield from _walk(value, (*parents, (key, node)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*parents, (i, node)))


def pkg_references(cfg) -> list[tuple[str, str, str | None]]:
    """(config key, pkg:// path, object name or None) for every `pkg://` path in a composed config.
    The object's name sits next to the path (`custom_cls.name`), or, for an importlib reward
    manager, one level up (`reward_manager.name` beside `reward_manager.module.path`)."""
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    refs = []
    for parents, node in _walk(tree):
        path = node.get("path")
        if not (isinstance(path, str) and path.startswith("pkg://")):
            continue
        keys = [str(k) for k, _ in parents]
        name = node.get("name")
        if keys and keys[-1] == "module" and len(parents) >= 1:
            name = parents[-1][1].get("name")
        refs.append((".".join([*keys, "path"]), path, name if isinstance(name, str) and name else None))
    return refs


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# ---------------------------------------------------------------------------------------------
# the checks


class Doctor:
    def __init__(self, recipe: str | None, overrides: list[str], *, cpu_ok: bool = False, rows: int = DEFAULT_ROWS):
        self.recipe, self.overrides, self.cpu_ok, self.rows = recipe, list(overrides), cpu_ok, rows
        self.checks: list[Check] = []
        self.cfg = None
        self.config_name: str | None = None
        self.gpus = 0
        self.processor = None
        self.tokenizer = None
        self.max_images: int | None = None  # the largest image count in the data files read
        self.data_settings = None  # StarDataSettings, once data.star passed the dataset's checks
        self.file_rows: dict[str, int] = {}  # data file -> row count

    def add(self, name: str, status: str, detail: str = "", fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    def guarded(self, name: str, fn: Callable[[], None], fix: str) -> None:
        """Run a check; an unexpected exception is that check's failure, never doctor's crash."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            self.add(name, FAIL, _short(exc), fix)

    # -- environment -------------------------------------------------------------------------

    def check_verl(self) -> None:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        version = installed_version("verl")
        if version is None:
            self.add("verl", FAIL, "not installed", VERL_INSTALL)
        elif Version(version) not in SpecifierSet(VERL_RANGE):
            self.add("verl", FAIL, f"{version} is outside the supported range {VERL_RANGE} (tested: {VERL_TESTED})", VERL_INSTALL)
        else:
            note = "the tested pin" if version == VERL_TESTED else f"in range {VERL_RANGE}; tested with {VERL_TESTED}"
            self.add("verl", PASS, f"{version} ({note})")

    def check_torch(self) -> None:
        version = installed_version("torch")
        if version is None:
            self.add("torch", FAIL, "not installed", "install the torch build for your CUDA, e.g. pip install torch==2.11.0 (veRL 0.9.1's pin)")
            return
        try:
            torch = import_module("torch")
        except Exception as exc:  # noqa: BLE001
            self.add("torch", FAIL, f"{version} does not import: {_short(exc)}", "reinstall torch for this platform")
            return
        cuda = getattr(torch.version, "cuda", None)
        pin = _verl_pin("torch")
        pin_note = f"; veRL's engine extras pin torch=={pin}" if pin and pin != version.split("+")[0] else ""
        self.add("torch", PASS, f"{version} (CUDA {cuda or 'none'}){pin_note}")

    def check_torchvision(self) -> None:
        version = installed_version("torchvision")
        fix = "pip install torchvision built for your torch (torch 2.11.0 -> torchvision 0.26.0); without it veRL's hf_processor returns None and image samples are dropped"
        if version is None:
            self.add("torchvision", FAIL, "not installed: the Qwen2.5-VL processor and qwen_vl_utils need it", fix)
            return
        try:
            import_module("torchvision")
        except Exception as exc:  # noqa: BLE001 - e.g. "operator torchvision::nms does not exist" (torch mismatch)
            self.add("torchvision", FAIL, f"{version} does not import ({_short(exc)}): the Qwen2.5-VL processor and qwen_vl_utils need it", fix)
            return
        self.add("torchvision", PASS, version)

    def check_transformers(self) -> None:
        version = installed_version("transformers")
        req = _verl_range("transformers")
        spec = str(req.specifier) if req is not None else ""
        fix = f'pip install "transformers{spec}"' if spec else "pip install transformers"
        if version is None:
            self.add("transformers", FAIL, "not installed", fix)
        elif req is not None and not req.specifier.contains(version, prereleases=True):
            self.add("transformers", FAIL, f"{version} is outside veRL's range {spec}", fix)
        else:
            self.add("transformers", PASS, f"{version}" + (f" (veRL needs {spec})" if spec else ""))

    def check_gpus(self) -> None:
        self.gpus = gpu_count()
        if self.cfg is None:
            need, nodes = None, 1
        else:
            need, nodes = int(self.cfg.trainer.n_gpus_per_node), int(self.cfg.trainer.nnodes)
        share = f"the recipe needs {need} per node x {nodes} node(s) = {need * nodes}" if need is not None else "no composed recipe"
        if self.gpus == 0:
            if self.cpu_ok:
                self.add("GPUs", SKIP, f"{NO_GPU} (--cpu-ok); {share}")
            else:
                self.add("GPUs", FAIL, f"no GPU visible; {share}",
                         "run doctor on a GPU node of the cluster (check nvidia-smi and CUDA_VISIBLE_DEVICES), or pass --cpu-ok to check only the recipe and data")
            return
        if need is not None and self.gpus < need:
            self.add("GPUs", FAIL, f"{self.gpus} visible on this node, {share}",
                     f"set trainer.n_gpus_per_node={self.gpus} (and keep data.train_batch_size * rollout.n divisible by the GPU count), or run on a node with {need} GPUs")
            return
        extra = f"; run doctor on each of the {nodes} nodes" if nodes > 1 else ""
        self.add("GPUs", PASS, f"{self.gpus} visible" + (f"; {share}{extra}" if need is not None else ""))

    def _gpu_package(self, name: str, dist: str, needed_by: str, install: str) -> None:
        """A GPU-only package: present, importable (on a GPU node) and in veRL's tested series."""
        version = installed_version(dist)
        pin = _verl_pin(dist)
        if version is None:
            if self.gpus == 0 and self.cpu_ok:
                self.add(name, SKIP, f"{NO_GPU}; not installed here ({needed_by} needs it on the GPU nodes)")
            else:
                self.add(name, FAIL, f"not installed; {needed_by} needs it", install)
            return
        if pin and not _same_minor(version, pin):
            self.add(name, FAIL, f"{version}; veRL {installed_version('verl')} is built and tested against {dist}=={pin}", f'pip install "{dist}=={pin}"')
            return
        torch_version = installed_version("torch")
        for req in _requirements_on(dist, "torch"):
            if req.marker is None and torch_version and not req.specifier.contains(torch_version.split("+")[0], prereleases=True):
                self.add(name, FAIL, f"{dist} {version} requires torch{req.specifier}; torch {torch_version} is installed",
                         f"install the torch {dist} was built for: {install}")
                return
        if self.gpus == 0:
            self.add(name, SKIP, f"{version} installed; import not tried: {NO_GPU}")
            return
        try:
            import_module(dist.replace("-", "_"))
        except Exception as exc:  # noqa: BLE001 - an ABI mismatch with torch shows here
            self.add(name, FAIL, f"{version} does not import: {_short(exc)}", f"reinstall {dist} built for torch {installed_version('torch')}: {install}")
            return
        self.add(name, PASS, version + (f" (veRL pins {pin})" if pin else ""))

    def check_rollout_engine(self) -> None:
        if self.config_name != "ppo_trainer":
            self.add("rollout engine", SKIP, "no composed RL recipe" if self.cfg is None else "not an RL recipe")
            return
        engine = str(self.cfg.actor_rollout_ref.rollout.name)
        dist = ROLLOUT_DISTRIBUTIONS.get(engine)
        if dist is None:
            self.add("rollout engine", FAIL, f"actor_rollout_ref.rollout.name={engine!r}; veRL 0.9.1 serves rollouts with {sorted(ROLLOUT_DISTRIBUTIONS)}",
                     "set actor_rollout_ref.rollout.name=vllm (or sglang)")
            return
        install = f'pip install "verl[{engine}]==0.9.1"' if engine in ("vllm", "sglang") else f"install {dist}"
        self._gpu_package(f"rollout engine ({engine})", dist, f"actor_rollout_ref.rollout.name={engine}", install)

    def check_flash_attn(self) -> None:
        if self.cfg is None:
            self.add("flash-attn", SKIP, "no composed recipe")
            return
        model = self.cfg.actor_rollout_ref.model if self.config_name == "ppo_trainer" else self.cfg.model
        key = "actor_rollout_ref.model" if self.config_name == "ppo_trainer" else "model"
        attn = str((model.get("override_config") or {}).get("attn_implementation", "flash_attention_2"))
        if "flash_attention" not in attn:
            self.add("flash-attn", SKIP, f"not needed: {key}.override_config.attn_implementation={attn}")
            return
        self._gpu_package("flash-attn", "flash-attn", f"{key}.override_config.attn_implementation={attn} (veRL's default)",
                          f'pip install "flash-attn=={_verl_pin("flash-attn") or "2.8.3"}" --no-build-isolation, or +{key}.override_config.attn_implementation=sdpa')

    # -- recipe ------------------------------------------------------------------------------

    def check_recipe(self) -> None:
        from star_verl.recipes import compose_recipe, recipe_config_name, recipe_files, validate_recipe_config

        if self.recipe is None:
            self.add("recipe", SKIP, "no +recipe=NAME given: only the environment was checked")
            return
        if self.recipe not in recipe_files():
            self.add("recipe", FAIL, f"unknown recipe {self.recipe!r}", f"choose one of {sorted(recipe_files())} (star-verl recipes)")
            return
        try:
            config_name = recipe_config_name(self.recipe)
            self.cfg = compose_recipe(self.recipe, self.overrides)
            self.config_name = config_name
        except Exception as exc:  # noqa: BLE001 - Hydra's message names the bad override
            self.add("recipe composes", FAIL, _short(exc, 500), "fix the override (a key new to veRL's schema needs a leading +; +recipe= needs the +)")
            return
        self.add("recipe composes", PASS, f"{self.recipe} with {len(self.overrides)} override(s) on veRL's {self.config_name}")
        try:
            import warnings
            from contextlib import redirect_stdout
            from io import StringIO

            # veRL prints a banner and warns that GRPO disables the critic: noise in a table
            with redirect_stdout(StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                validate_recipe_config(self.cfg, self.config_name)
        except Exception as exc:  # noqa: BLE001
            self.add("veRL validate_config", FAIL, _short(exc, 500), "fix the batch sizes / micro-batch settings named in the message")
            return
        self.add("veRL validate_config", PASS, "all configuration checks passed")

    def check_legacy_keys(self) -> None:
        """Keys veRL 0.9.1 still composes (legacy_reward_impl.yaml) but main_ppo never reads: only the
        fully-async trainer migrates them, so a value set there is silently lost."""
        if self.config_name != "ppo_trainer":
            self.add("ignored legacy keys", SKIP, "not an RL recipe")
            return
        from omegaconf import OmegaConf

        set_keys = []
        for top in LEGACY_REWARD_KEYS:
            tree = OmegaConf.to_container(self.cfg[top], resolve=False) if top in self.cfg else {}
            for parents, node in _walk({top: tree}):
                set_keys += [".".join([*(str(k) for k, _ in parents), k]) for k, v in node.items() if v is not None and not isinstance(v, Mapping)]
        if set_keys:
            self.add("ignored legacy keys", FAIL, f"veRL 0.9.1's main_ppo ignores {', '.join(sorted(set_keys))}",
                     "move them under reward.: reward.custom_reward_function.*, reward.reward_manager.{source,name,module.path}, reward.reward_model.*, reward.sandbox_fusion.*")
        else:
            self.add("ignored legacy keys", PASS, f"none of {', '.join(LEGACY_REWARD_KEYS)} set")

    def check_pkg_paths(self) -> None:
        from verl.utils.import_utils import load_extern_object

        refs = pkg_references(self.cfg)
        if not refs:
            self.add("pkg:// imports", SKIP, "the recipe has no pkg:// path")
            return
        bad = []
        for key, path, name in refs:
            try:
                if name is None:
                    import_module(path.removeprefix("pkg://").replace("/", "."))
                else:
                    load_extern_object(path, name)
            except Exception as exc:  # noqa: BLE001
                bad.append(f"{key}={path}" + (f" ({name})" if name else "") + f": {_short(exc, 200)}")
        if bad:
            self.add("pkg:// imports", FAIL, "; ".join(bad), "install star-verl (and any module named) in this environment on every node, or fix the path/name")
        else:
            self.add("pkg:// imports", PASS, ", ".join(f"{path}" + (f":{name}" if name else "") for _, path, name in refs))

    def check_reward_settings(self) -> None:
        reward = self.cfg.get("reward") if self.config_name == "ppo_trainer" else None
        fn = (reward or {}).get("custom_reward_function") or {}
        if not fn or fn.get("path") != "pkg://star_verl.rewards":
            self.add("reward settings", SKIP, "no star-verl reward function in the recipe")
            return
        from omegaconf import OmegaConf

        from star_verl.rewards import split_reward_kwargs

        kwargs = OmegaConf.to_container(fn.get("reward_kwargs") or {}, resolve=True)
        try:
            split_reward_kwargs(kwargs)
        except Exception as exc:  # noqa: BLE001
            self.add("reward settings", FAIL, _short(exc, 400), "fix reward.custom_reward_function.reward_kwargs (names: star_verl.rewards.tvr.TVRRewardSettings, multiview.MultiViewRewardSettings)")
            return
        self.add("reward settings", PASS, f"{len(kwargs)} reward_kwargs accepted")

    def check_data_settings(self) -> None:
        if not self._star_dataset():
            self.add("data settings", SKIP, "data.custom_cls is not a star-verl dataset")
            return
        from star_verl.data.settings import DatasetError, StarDataSettings, check_data_config

        try:  # the checks the dataset class makes before it reads a file
            if self.config_name == "ppo_trainer":
                settings = check_data_config(self.cfg.data)
            else:
                settings = StarDataSettings.from_config(self.cfg.data)
        except DatasetError as exc:
            self.add("data settings", FAIL, str(exc), "fix the data.* key named in the message")
            return
        self.data_settings = settings
        total = f", {settings.total_max_pixels} per sample" if settings.total_max_pixels else ""
        overlong = "dropped" if settings.drop_overlong else "an error"
        self.add("data settings", PASS, f"template {settings.template}; {settings.min_pixels}..{settings.max_pixels} pixels per image{total}; overlong prompts are {overlong}")

    # -- model -------------------------------------------------------------------------------

    def _model_path(self) -> str:
        return str(self.cfg.actor_rollout_ref.model.path if self.config_name == "ppo_trainer" else self.cfg.model.path)

    def check_processor(self) -> None:
        key = "actor_rollout_ref.model.path" if self.config_name == "ppo_trainer" else "model.path"
        try:
            path = self._model_path()
        except Exception as exc:  # noqa: BLE001 - MissingMandatoryValue for '???'
            self.add("model processor", FAIL, f"{key} is not set ({_short(exc, 150)})", f"pass {key}=<checkpoint> (star_r1_mv: the SFT checkpoint's huggingface folder)")
            return
        from transformers import AutoProcessor, AutoTokenizer

        trust = bool(self.cfg.data.get("trust_remote_code", False))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
            processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust)
        except Exception as exc:  # noqa: BLE001 - veRL's hf_processor would swallow this and return None
            if "torchvision" in str(exc).lower():
                fix = "install torchvision (see its row); veRL's hf_processor returns None on this error and image samples are dropped"
            else:
                fix = f"set {key} to a local Hugging Face folder, or a hub id this node can download (or find in HF_HOME's cache)"
            self.add("model processor", FAIL, f"{path}: {_short(exc, 400)}", fix)
            return
        if getattr(processor, "image_processor", None) is None:
            self.add("model processor", FAIL, f"{path}: {type(processor).__name__} has no image processor (not a vision-language model)", "use a Qwen2.5-VL checkpoint")
            return
        self.processor = processor
        self.add("model processor", PASS, f"{path}: {type(processor).__name__} / {type(processor.image_processor).__name__}")

    def _templates(self, sources: set[str]) -> dict[str, Any]:
        """template name -> PromptTemplate for the data sources seen (every default one for `auto` without data)."""
        from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE

        settings = self.data_settings
        known = sorted(s for s in (sources or DEFAULT_TEMPLATE_FOR_SOURCE) if s in DEFAULT_TEMPLATE_FOR_SOURCE)
        templates = [settings.template_for(s) for s in known] if settings.template == "auto" else [settings.template_for("")]
        return {t.name: t for t in templates}

    def check_chat_template(self, sources: set[str]) -> None:
        if self.processor is None:
            self.add("chat template", SKIP, "the processor did not load")
            return
        if self.data_settings is None:
            self.add("chat template", SKIP, "no valid star-verl data settings (data.star)")
            return
        from verl.utils.tokenizer.chat_template import apply_chat_template

        from star_verl.prompts import IMAGE_PART, prompt_messages

        image_token = getattr(self.processor, "image_token", None)
        problems, names = [], []
        for name, template in self._templates(sources).items():
            names.append(name)
            messages = prompt_messages(template, "<image>Question?", [IMAGE_PART])
            kwargs = dict(self.cfg.data.get("apply_chat_template_kwargs") or {})
            try:
                text = apply_chat_template(self.processor, messages, tokenize=False, add_generation_prompt=True, **kwargs)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{name}: does not render ({_short(exc, 200)})")
                continue
            if template.system.strip() and template.system.strip() not in text:
                problems.append(f"{name}: the rendered prompt lacks the template's system text")
            if image_token and text.count(image_token) != 1:
                problems.append(f"{name}: one <image> rendered {text.count(image_token)} {image_token} tokens")
            if "Question?" not in text:
                problems.append(f"{name}: the question text is missing from the rendered prompt")
        if problems:
            self.add("chat template", FAIL, "; ".join(problems), "use the model's own chat template (Qwen2.5-VL), or fix actor_rollout_ref.model.custom_chat_template / data.apply_chat_template_kwargs")
        else:
            self.add("chat template", PASS, f"renders {', '.join(names)} (system text, 1 image, generation prompt)")

    # -- data --------------------------------------------------------------------------------

    def _data_layout(self) -> tuple[str, str, str, str]:
        """(kind, text column, image column, length key) of the recipe's dataset."""
        data = self.cfg.data
        if self.config_name == "ppo_trainer":
            return "rl", str(data.get("prompt_key", "prompt")), str(data.get("image_key", "images")), "data.max_prompt_length"
        return "sft", str(data.get("messages_key", "messages")), str(data.get("image_key", "images")), "data.max_length"

    def _star_dataset(self) -> bool:
        custom = self.cfg.data.get("custom_cls") or {}
        return str(custom.get("path") or "").startswith("pkg://star_verl.data.")

    def check_data(self) -> set[str]:
        """Each data file: exists, parses, and its first rows pass the dataset's validation. Returns
        the data sources seen; records the largest image count for limit_images."""
        sources: set[str] = set()
        files = {"data.train_files": _files(self.cfg.data.get("train_files")), "data.val_files": _files(self.cfg.data.get("val_files"))}
        if not any(files.values()):
            self.add("data files", FAIL, "data.train_files is not set", "pass data.train_files=PATH (and data.val_files=PATH)")
            return sources
        kind, text_key, image_key, length_key = self._data_layout()
        seen: set[str] = set()
        for key, paths in files.items():
            for path in paths:
                if path in seen:
                    continue
                seen.add(path)
                self.guarded(f"data {Path(path).name}", lambda key=key, path=path: sources.update(self._check_file(key, path, kind, text_key, image_key, length_key)),
                             f"fix or rebuild {path} (data_prep/*.py)")
        self.check_training_steps(files["data.train_files"])
        return sources

    def check_training_steps(self, train_files: list[str]) -> None:
        """veRL's trainers run len(dataset) // data.train_batch_size steps per epoch (the last partial
        batch is dropped): a train set smaller than one batch trains nothing, without an error."""
        if not train_files or any(f not in self.file_rows for f in train_files):
            self.add("training steps", SKIP, "a train file could not be read")
            return
        rows = sum(self.file_rows[f] for f in train_files)
        limit = int(self.cfg.data.get("train_max_samples") or -1)
        if limit > 0:
            rows = min(rows, limit)
        batch, epochs = int(self.cfg.data.train_batch_size), int(self.cfg.trainer.total_epochs)
        steps = rows // batch
        detail = f"{rows} train rows // data.train_batch_size={batch} = {steps} step(s) per epoch x {epochs} epoch(s)"
        if steps == 0:
            self.add("training steps", FAIL, detail + ": nothing would be trained", f"lower data.train_batch_size to at most {rows}, or add data")
        else:
            self.add("training steps", PASS, detail + (f"; {rows - steps * batch} row(s) left over each epoch" if rows % batch else ""))

    def _check_file(self, key: str, path: str, kind: str, text_key: str, image_key: str, length_key: str) -> set[str]:
        name = f"data {key.split('.')[-1].removesuffix('_files')}: {Path(path).name}"
        if not os.path.exists(path):
            self.add(name, FAIL, f"{path} does not exist ({key})", "build it (python data_prep/build_tvr.py / build_mindcube_spar.py) or set STAR_VERL_DATA / " + key)
            return set()
        rows, total, image_counts = self._read_sample(path, text_key)
        self.file_rows[path] = total
        if image_counts:
            self.max_images = max(self.max_images or 0, max(image_counts))
        sources = {str(r.get("data_source")) for r in rows}
        if not self._star_dataset():
            self.add(name, PASS, f"{total} rows; parsed (row validation skipped: data.custom_cls is not a star-verl dataset)")
            return sources
        if self.processor is None and any(image_counts):
            self.add(name, SKIP, f"{total} rows; row validation needs the model's processor, which did not load")
            return sources
        if self.data_settings is None:
            self.add(name, SKIP, f"{total} rows; row validation needs valid data settings (see above)")
            return sources
        from star_verl.data.lengths import MeasureContext, measure_rows
        from star_verl.data.settings import DatasetError

        settings = self.data_settings
        # the patch size the dataset resizes with: the AgentLoop uses the processor's (StarRLDataset),
        # the SFT dataset data.image_patch_size if set (veRL's MultiTurnSFTDataset)
        patch = int(getattr(getattr(self.processor, "image_processor", None), "patch_size", 14))
        if kind == "sft":
            patch = int(self.cfg.data.get("image_patch_size") or patch)
        ctx = MeasureContext(kind, settings, self.tokenizer, self.processor, text_key, image_key,
                             dict(self.cfg.data.get("apply_chat_template_kwargs") or {}), patch)
        try:
            lengths = measure_rows(ctx, rows, path)
        except DatasetError as exc:
            self.add(name, FAIL, str(exc).replace("\n", " "), f"fix the rows named (or rebuild {Path(path).name} with data_prep/)")
            return sources
        limit = int(self.cfg.data.max_prompt_length if kind == "rl" else self.cfg.data.max_length)
        over = [i for i, n in enumerate(lengths.tolist()) if n > limit]
        detail = f"{total} rows; first {len(rows)} valid; longest {int(lengths.max()) if len(lengths) else 0} tokens <= {length_key}={limit}"
        if over and not settings.drop_overlong:
            self.add(name, FAIL, f"rows {over[:10]} of the first {len(rows)} exceed {length_key}={limit} (longest {int(lengths.max())} tokens)",
                     f"raise {length_key}, lower data.star.max_pixels / total_max_pixels, or set data.star.drop_overlong=true")
        elif over:
            self.add(name, PASS, f"{total} rows; {len(over)} of the first {len(rows)} over {length_key}={limit} will be dropped (data.star.drop_overlong)")
        else:
            self.add(name, PASS, detail)
        return sources

    def _read_sample(self, path: str, text_key: str) -> tuple[list[dict[str, Any]], int, list[int]]:
        """(first rows, row count, placeholder count of every row). Only the text column is read whole."""
        from star_verl.templates import IMAGE_PLACEHOLDER

        def count(value: Any) -> int:
            if isinstance(value, str):
                return value.count(IMAGE_PLACEHOLDER)
            if isinstance(value, list):  # chat messages
                return sum(count(m.get("content")) if isinstance(m, Mapping) else 0 for m in value)
            return 0

        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            total = pf.metadata.num_rows
            batch = next(pf.iter_batches(batch_size=max(self.rows, 1)), None)
            rows = batch.to_pylist()[: self.rows] if batch is not None else []
            if text_key in pf.schema_arrow.names:
                counts = [count(v) for v in pf.read(columns=[text_key]).column(text_key).to_pylist()]
            else:
                counts = []
            return rows, total, counts
        if path.endswith((".json", ".jsonl")):
            with open(path, encoding="utf-8") as f:
                if path.endswith(".jsonl"):
                    all_rows = [json.loads(line) for line in f if line.strip()]
                else:
                    all_rows = json.load(f)
            return all_rows[: self.rows], len(all_rows), [count(r.get(text_key)) for r in all_rows]
        raise ValueError(f"{path}: unsupported file format (expected .parquet, .json or .jsonl)")

    def check_limit_images(self) -> None:
        if self.config_name != "ppo_trainer":
            self.add("rollout.limit_images", SKIP, "not an RL recipe")
            return
        if self.max_images is None:
            self.add("rollout.limit_images", SKIP, "no data read")
            return
        rollout = self.cfg.actor_rollout_ref.rollout
        limit = rollout.get("limit_images")
        if str(rollout.name) != "vllm":
            self.add("rollout.limit_images", SKIP, f"only vLLM uses it (rollout.name={rollout.name}); largest image count {self.max_images}")
            return
        if limit is None and self.max_images > 1:
            self.add("rollout.limit_images", FAIL, f"unset (vLLM's default limit applies); the data has up to {self.max_images} images per prompt",
                     f"set actor_rollout_ref.rollout.limit_images={self.max_images}")
        elif limit is not None and int(limit) < self.max_images:
            self.add("rollout.limit_images", FAIL, f"{limit} < {self.max_images}, the largest image count in the data",
                     f"set actor_rollout_ref.rollout.limit_images={self.max_images}")
        else:
            self.add("rollout.limit_images", PASS, f"{limit} >= {self.max_images}, the largest image count in the data")

    # -- all ---------------------------------------------------------------------------------

    def run(self) -> list[Check]:
        self.guarded("verl", self.check_verl, VERL_INSTALL)
        self.guarded("torch", self.check_torch, "reinstall torch")
        self.guarded("torchvision", self.check_torchvision, "pip install torchvision")
        self.guarded("transformers", self.check_transformers, "reinstall transformers")
        self.guarded("recipe", self.check_recipe, "see the message")
        self.guarded("GPUs", self.check_gpus, "check the CUDA driver")
        self.guarded("rollout engine", self.check_rollout_engine, "install the rollout engine")
        self.guarded("flash-attn", self.check_flash_attn, "install flash-attn")
        if self.cfg is None:
            return self.checks
        self.guarded("ignored legacy keys", self.check_legacy_keys, "use the reward.* keys")
        self.guarded("pkg:// imports", self.check_pkg_paths, "install star-verl")
        self.guarded("reward settings", self.check_reward_settings, "fix reward_kwargs")
        self.guarded("data settings", self.check_data_settings, "fix data.star")
        self.guarded("model processor", self.check_processor, "fix the model path")
        sources: set[str] = set()

        def data() -> None:
            sources.update(self.check_data())

        self.guarded("data files", data, "fix the data files")
        self.guarded("chat template", lambda: self.check_chat_template(sources), "fix the chat template")
        self.guarded("rollout.limit_images", self.check_limit_images, "set actor_rollout_ref.rollout.limit_images")
        return self.checks


# ---------------------------------------------------------------------------------------------
# output


def format_table(checks: list[Check], width: int = 100) -> str:
    """A plain-text table: check | status | detail, with each failure's fix on the line below."""
    name_w = max([len("check"), *(len(c.name) for c in checks)])
    head = f"{'check':<{name_w}}  status  detail"
    lines = [head, "-" * max(len(head), 40)]
    indent = " " * (name_w + 10)
    for c in checks:
        detail = textwrap.wrap(c.detail, width=max(width - len(indent), 30), break_long_words=False, break_on_hyphens=False) or [""]
        lines.append(f"{c.name:<{name_w}}  {c.status:<6}  {detail[0]}")
        lines.extend(indent + more for more in detail[1:])
        if c.fix and c.status == FAIL:
            for i, part in enumerate(textwrap.wrap(c.fix, width=max(width - len(indent) - 5, 30), break_long_words=False, break_on_hyphens=False)):
                lines.append(indent + ("fix: " if i == 0 else "     ") + part)
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, SKIP)}
    lines.append("")
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="star-verl doctor",
        description="Preflight check of the environment, a recipe (+recipe=NAME and key=value overrides, as on the training command line) and its data.",
        epilog="Exit status: 0 when nothing failed, 1 when a check failed, 2 on a usage error.",
    )
    p.add_argument("--cpu-ok", action="store_true", help="on a machine without GPUs, report the GPU checks as SKIP instead of FAIL")
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows of each data file to validate (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")
    p.add_argument("overrides", nargs="*", help="+recipe=NAME and key=value overrides")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    recipe, overrides = None, []
    for item in args.overrides:
        if item.startswith("+recipe="):
            if recipe is not None:
                print("star-verl doctor: give +recipe= once", file=sys.stderr)
                return 2
            recipe = item.split("=", 1)[1]
        elif item.startswith("recipe=") or item.startswith("++recipe="):
            print(f"star-verl doctor: write +recipe=NAME (veRL's Hydra needs the +), got {item!r}", file=sys.stderr)
            return 2
        else:
            overrides.append(item)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    checks = Doctor(recipe, overrides, cpu_ok=args.cpu_ok, rows=args.rows).run()
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=1))
    else:
        print(format_table(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())

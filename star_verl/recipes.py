"""The shipped recipes: where they are and what each is for (`star-verl recipes`)."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

RECIPE_GROUP = "recipe"
PACKAGE_HEADER = "# @package _global_"


def recipe_dir() -> Path:
    """The folder Hydra reads `+recipe=NAME` from (inside the package, wheel or editable)."""
    return Path(str(resources.files("star_verl.config").joinpath(RECIPE_GROUP)))


def recipe_files() -> dict[str, Path]:
    """The recipes: the folder's own yaml files (`base/` holds the blocks they share, not recipes)."""
    return {p.stem: p for p in sorted(recipe_dir().glob("*.yaml"))}


def recipe_summary(path: Path) -> str:
    """The recipe's one-line description: its first comment line after the package header."""
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def main(argv: list[str] | None = None) -> int:
    from star_verl.cli import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="star-verl recipes",
        description="List the recipes star-verl ships: name, the veRL entry point that runs it (python -m verl.trainer.ENTRY +recipe=NAME), purpose.",
        formatter_class=HelpFormatter,
    )
    parser.parse_args(argv)
    files = recipe_files()
    width = max(len(name) for name in files)
    entries = {name: recipe_entry_point(name) for name in files}
    entry_width = max(map(len, entries.values()))
    for name, path in files.items():
        print(f"{name:<{width}}  {entries[name]:<{entry_width}}  {recipe_summary(path)}")
    return 0


def recipe_value(name: str, key: str):
    """The value recipe `name` sets for the dotted `key`, read from its yaml files the way Hydra merges
    them (each `defaults` entry in order, the file's own keys where `_self_` stands, last when it is not
    listed), without composing veRL's config (no veRL import). KeyError when no file of the recipe sets
    the key (veRL's default then applies) or the value is an interpolation only Hydra can resolve."""
    import yaml

    def merged(path: Path) -> dict:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        defaults = list(data.pop("defaults", []))
        if "_self_" not in defaults:
            defaults.append("_self_")
        out: dict = {}
        for entry in defaults:
            if entry == "_self_":
                part = data
            elif isinstance(entry, str) and entry.startswith(f"/{RECIPE_GROUP}/"):
                part = merged(recipe_dir() / f"{entry.removeprefix(f'/{RECIPE_GROUP}/')}.yaml")
            else:
                raise KeyError(f"{path}: defaults entry {entry!r} is not a star-verl recipe block")
            _merge(out, part)
        return out

    files = recipe_files()
    if name not in files:
        raise KeyError(f"unknown recipe {name!r}; available: {sorted(files)}")
    node = merged(files[name])
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"recipe {name} does not set {key}")
        node = node[part]
    if isinstance(node, str) and "${" in node:
        raise KeyError(f"recipe {name} sets {key} to the interpolation {node!r}, which only Hydra resolves")
    return node


def _merge(into: dict, part: dict) -> None:
    for k, v in part.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


# Top-level keys only veRL's SFT trainer config has; a recipe naming one of them is for `sft_trainer`.
_SFT_ONLY_KEYS = {"model", "engine", "optim", "checkpoint"}
PPO_CONFIG, SFT_CONFIG = "ppo_trainer", "sft_trainer_engine"
VERL_CONFIG_MODULE = "verl.trainer.config"


def recipe_entry_point(name: str) -> str:
    """The veRL module that runs recipe `name`, as in `python -m verl.trainer.<entry> +recipe=NAME`."""
    return {PPO_CONFIG: "main_ppo", SFT_CONFIG: "sft_trainer"}[recipe_config_name(name)]


def recipe_config_name(name: str) -> str:
    """The veRL config a recipe composes with: `ppo_trainer` (main_ppo) or `sft_trainer_engine` (sft_trainer)."""
    import yaml

    files = recipe_files()
    if name not in files:
        raise KeyError(f"unknown recipe {name!r}; available: {sorted(files)}")
    keys = set(yaml.safe_load(files[name].read_text(encoding="utf-8")) or {})
    return SFT_CONFIG if keys & _SFT_ONLY_KEYS else PPO_CONFIG


def compose_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()):
    """The config `python -m verl.trainer.{main_ppo|sft_trainer} +recipe=NAME OVERRIDES` runs with."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=VERL_CONFIG_MODULE, version_base=None):
        return compose(config_name=recipe_config_name(name), overrides=[f"+recipe={name}", *overrides])


def validate_recipe_config(cfg, config_name: str) -> None:
    """The checks veRL runs on a composed config before it starts any worker.

    main_ppo: `verl.utils.config.validate_config`, as `main_ppo.main` calls it. sft_trainer has no
    such function: its trainer builds the engine, optimizer and checkpoint dataclasses (which check
    their fields) and splits the global batch over the ranks, which needs an even division.
    """
    if config_name == PPO_CONFIG:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        return
    from verl.utils.config import omega_conf_to_dataclass

    for section in ("engine", "optim", "checkpoint"):
        omega_conf_to_dataclass(cfg[section])
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    if int(cfg.data.train_batch_size) % world:
        raise ValueError(f"data.train_batch_size={cfg.data.train_batch_size} is not divisible by the {world} GPUs of the recipe")

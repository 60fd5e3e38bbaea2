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
    parser = argparse.ArgumentParser(prog="star-verl recipes", description="List the recipes star-verl ships.")
    parser.parse_args(argv)
    files = recipe_files()
    width = max(len(name) for name in files)
    for name, path in files.items():
        print(f"{name:<{width}}  {recipe_summary(path)}")
    return 0


# Top-level keys only veRL's SFT trainer config has; a recipe naming one of them is for `sft_trainer`.
_SFT_ONLY_KEYS = {"model", "engine", "optim", "checkpoint"}
PPO_CONFIG, SFT_CONFIG = "ppo_trainer", "sft_trainer_engine"
VERL_CONFIG_MODULE = "verl.trainer.config"


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

"""doctor's recipe checks: it composes and passes veRL's `validate_config`, sets no key veRL 0.9.1
composes but silently ignores, names `pkg://` objects that import, and reward settings the scorer accepts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import star_verl.doctor.environment as environment
from star_verl.doctor.context import FAIL, PASS, SKIP, Check, Context, Recipe, short

# Top-level config blocks veRL 0.9.1 composes for old command lines but main_ppo ignores (reward.* replaced them).
LEGACY_REWARD_KEYS = ("custom_reward_function", "reward_model", "sandbox_fusion")


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


def compose(ctx: Context) -> tuple[Recipe | None, list[Check]]:
    """Stage "recipe": the recipe composed as the training command composes it, then veRL's own
    config checks. The recipe counts as composed even when veRL's checks fail (the rest still runs)."""
    from star_verl.recipes import compose_recipe, recipe_config_name, recipe_files, validate_recipe_config

    name, overrides = ctx.options.recipe, list(ctx.options.overrides)
    if name is None:
        return None, [Check("recipe", SKIP, "no +recipe=NAME given: only the environment was checked")]
    if name not in recipe_files():
        return None, [Check("recipe", FAIL, f"unknown recipe {name!r}", f"choose one of {sorted(recipe_files())} (star-verl recipes)")]
    try:
        recipe = Recipe(name, compose_recipe(name, overrides), recipe_config_name(name))
    except Exception as exc:  # noqa: BLE001 - Hydra's message names the bad override
        return None, [
            Check(
                "recipe composes",
                FAIL,
                short(exc, 500),
                "check the key's spelling against the recipe (star-verl recipes; the key may be misspelt), or add a leading + for a key new to veRL's schema (+recipe= needs the +)",
            )
        ]
    checks = [Check("recipe composes", PASS, f"{name} with {len(overrides)} override(s) on veRL's {recipe.config_name}")]
    try:
        import warnings
        from contextlib import redirect_stdout
        from io import StringIO

        # veRL prints a banner and warns that GRPO disables the critic: noise in a table
        with redirect_stdout(StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_recipe_config(recipe.cfg, recipe.config_name)
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("veRL validate_config", FAIL, short(exc, 500), "fix the batch sizes / micro-batch settings named in the message"))
    else:
        checks.append(Check("veRL validate_config", PASS, "all configuration checks passed"))
    return recipe, checks


def check_legacy_keys(ctx: Context) -> Check:
    """Keys veRL 0.9.1 still composes (legacy_reward_impl.yaml) but main_ppo never reads: only the
    fully-async trainer migrates them, so a value set there is silently lost."""
    if not ctx.recipe.rl:
        return Check("ignored legacy keys", SKIP, "not an RL recipe")
    from omegaconf import OmegaConf

    cfg = ctx.recipe.cfg
    set_keys = []
    for top in LEGACY_REWARD_KEYS:
        tree = OmegaConf.to_container(cfg[top], resolve=False) if top in cfg else {}
        for parents, node in _walk({top: tree}):
            set_keys += [".".join([*(str(k) for k, _ in parents), k]) for k, v in node.items() if v is not None and not isinstance(v, Mapping)]
    if set_keys:
        return Check(
            "ignored legacy keys",
            FAIL,
            f"veRL 0.9.1's main_ppo ignores {', '.join(sorted(set_keys))}",
            "move them under reward.: reward.custom_reward_function.*, reward.reward_manager.{source,name,module.path}, reward.reward_model.*, reward.sandbox_fusion.*",
        )
    return Check("ignored legacy keys", PASS, f"none of {', '.join(LEGACY_REWARD_KEYS)} set")


def check_pkg_paths(ctx: Context) -> Check:
    from verl.utils.import_utils import load_extern_object

    refs = pkg_references(ctx.recipe.cfg)
    if not refs:
        return Check("pkg:// imports", SKIP, "the recipe has no pkg:// path")
    bad = []
    for key, path, name in refs:
        try:
            if name is None:
                environment.import_module(path.removeprefix("pkg://").replace("/", "."))
            else:
                load_extern_object(path, name)
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{key}={path}" + (f" ({name})" if name else "") + f": {short(exc, 200)}")
    if bad:
        return Check(
            "pkg:// imports", FAIL, "; ".join(bad), "install star-verl (and any module named) in this environment on every node, or fix the path/name"
        )
    return Check("pkg:// imports", PASS, ", ".join(f"{path}" + (f":{name}" if name else "") for _, path, name in refs))


def check_reward_settings(ctx: Context) -> Check:
    reward = ctx.recipe.cfg.get("reward") if ctx.recipe.rl else None
    fn = (reward or {}).get("custom_reward_function") or {}
    if not fn or fn.get("path") != "pkg://star_verl.rewards":
        return Check("reward settings", SKIP, "no star-verl reward function in the recipe")
    from omegaconf import OmegaConf

    from star_verl.rewards import split_reward_kwargs

    kwargs = OmegaConf.to_container(fn.get("reward_kwargs") or {}, resolve=True)
    try:
        split_reward_kwargs(kwargs)
    except Exception as exc:  # noqa: BLE001
        return Check(
            "reward settings",
            FAIL,
            short(exc, 400),
            "fix reward.custom_reward_function.reward_kwargs (names: star_verl.rewards.tvr.TVRRewardSettings, multiview.MultiViewRewardSettings)",
        )
    return Check("reward settings", PASS, f"{len(kwargs)} reward_kwargs accepted")

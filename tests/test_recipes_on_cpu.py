"""Every shipped recipe composes with veRL 0.9.1's own config through Hydra, lands at the root,
points at importable star-verl objects, passes veRL's config validation, and yields to the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from star_verl.recipes import (
    PACKAGE_HEADER,
    PPO_CONFIG,
    SFT_CONFIG,
    compose_recipe,
    recipe_config_name,
    recipe_dir,
    recipe_files,
    validate_recipe_config,
)

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
EXPECTED = {
    "star_r1_tvr": PPO_CONFIG,
    "star_r1_sft": SFT_CONFIG,
    "star_r1_mv": PPO_CONFIG,
    "star_r1_tvr_no_obj": PPO_CONFIG,
    "star_r1_tvr_no_attr": PPO_CONFIG,
    "star_r1_tvr_no_under": PPO_CONFIG,
    "star_r1_tvr_no_incorrect": PPO_CONFIG,
    "star_r1_tvr_naive": PPO_CONFIG,
    "star_r1_tvr_naive_count": PPO_CONFIG,
}
# what each TVR ablation changes, and nothing else in the reward settings (paper's Table 3 rows)
ABLATIONS = {
    "star_r1_tvr_no_obj": {"tvr_index_weight": 0.0},
    "star_r1_tvr_no_attr": {"tvr_attr_weight": 0.0},
    "star_r1_tvr_no_under": {"tvr_under_penalty": 0.0},
    "star_r1_tvr_no_incorrect": {"tvr_incorrect_penalty": 0.0, "tvr_max_items": 130},  # 10 objects x 13 changes: the enumeration read whole
    "star_r1_tvr_naive": {"tvr_mode": "naive"},
    "star_r1_tvr_naive_count": {"tvr_mode": "count_diff"},
}


@pytest.fixture(scope="module")
def composed() -> dict[str, DictConfig]:
    return {name: compose_recipe(name) for name in EXPECTED}


def pkg_references(cfg) -> list[tuple[str, str, str]]:
    """(config key, pkg:// path, object name) for every object a config loads by `pkg://` path."""
    found = []

    def walk(node, key):
        if isinstance(node, dict):
            path = node.get("path")
            manager_module = key == "reward.reward_manager.module"  # its `name` is unused in importlib mode
            if isinstance(path, str) and path.startswith("pkg://") and isinstance(node.get("name"), str) and not manager_module:
                found.append((key, path, node["name"]))
            for child, value in node.items():
                walk(value, f"{key}.{child}" if key else str(child))

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    if "reward" in cfg and cfg.reward.reward_manager.source == "importlib":  # class name is one level up in importlib mode
        found.append(("reward.reward_manager", cfg.reward.reward_manager.module.path, cfg.reward.reward_manager.name))
    return found


def test_the_shipped_recipes_are_the_designed_ones():
    assert set(recipe_files()) == set(EXPECTED)
    assert {p.name for p in REPO_RECIPES.glob("*.yaml")} == {f"{n}.yaml" for n in EXPECTED}
    # the package's recipe folder is the repository's recipes/ (source and editable installs)
    assert recipe_dir().resolve() == REPO_RECIPES.resolve()
    # the shared blocks are no recipes, and each is used
    assert set(BASE) == {"star_r1", "grpo", "multiview"} and not set(BASE) & set(recipe_files())
    used = {entry for path in [*recipe_files().values(), *BASE.values()] for entry in defaults_of(path)}
    assert {f"/recipe/base/{name}" for name in BASE} <= used


BASE = {p.stem: p for p in sorted((REPO_RECIPES / "base").glob("*.yaml"))}


def defaults_of(path: Path) -> list[str]:
    import yaml

    return [entry for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("defaults", []) if entry != "_self_"]


def recipe_chain(path: Path) -> list[Path]:
    """The yaml files a recipe composes, in merge order (its defaults first, itself last)."""
    chain = []
    for entry in defaults_of(path):
        assert entry.startswith("/recipe/"), entry
        for file in recipe_chain(REPO_RECIPES / f"{entry.removeprefix('/recipe/')}.yaml"):
            if file not in chain:
                chain.append(file)
    return [*chain, path]


def leaves(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "defaults":
                yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


@pytest.mark.parametrize("header_file", sorted(BASE))
def test_base_block_header_is_line_one(header_file):
    assert BASE[header_file].read_text(encoding="utf-8").splitlines()[0] == PACKAGE_HEADER


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_states_each_value_once(name):
    """No file of a recipe's composition sets a key to the value an earlier file already gave it."""
    import yaml

    seen: dict[str, tuple[object, str]] = {}
    for path in recipe_chain(recipe_files()[name]):
        for key, value in leaves(yaml.safe_load(path.read_text(encoding="utf-8"))):
            if key in seen:
                assert seen[key][0] != value, f"{path.name} sets {key}={value!r} again (already in {seen[key][1]})"
            seen[key] = (value, path.name)


def test_sft_and_multiview_grpo_share_the_template_and_pixel_budget(composed):
    """The cold start is trained on the prompts and image sizes stage 2 then sees. Stage 2 adds only the
    settings of its validation set (star_verl.data.validation), which shape no prompt."""
    sft, mv = (OmegaConf.to_container(composed[n].data.star) for n in ("star_r1_sft", "star_r1_mv"))
    validation_only = {"skip_missing_val_files": True, "val_subset": 1500}
    assert {k: mv.pop(k) for k in validation_only} == validation_only
    assert sft == mv and sft["template"] == "three_step" and sft["total_max_pixels"] == 360000


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_header_is_line_one(name):
    assert recipe_files()[name].read_text(encoding="utf-8").splitlines()[0] == PACKAGE_HEADER


def test_a_recipe_without_the_header_nests_silently(tmp_path):
    """Why the header test exists: Hydra does not complain, it nests the recipe under `recipe:`."""
    (tmp_path / "recipe").mkdir()
    # the GRPO block without its header and its defaults list (which would pull in the headed base blocks)
    lines = BASE["grpo"].read_text().splitlines()[1:]
    start = lines.index("defaults:")
    body = "\n".join(lines[:start] + lines[start + 3 :])
    assert "adv_estimator: grpo" in body and "defaults" not in body
    (tmp_path / "recipe" / "headerless.yaml").write_text(body)
    GlobalHydra.instance().clear()
    from hydra import initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        cfg = compose("ppo_trainer", overrides=[f"hydra.searchpath=[file://{tmp_path}]", "+recipe=headerless"])
    assert "recipe" in cfg and cfg.algorithm.adv_estimator == "gae"
    assert recipe_files()["star_r1_tvr"].read_text().splitlines()[0] == PACKAGE_HEADER


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_composes_at_the_root(composed, name):
    cfg = composed[name]
    assert recipe_config_name(name) == EXPECTED[name]
    assert "recipe" not in cfg
    if EXPECTED[name] == PPO_CONFIG:
        assert cfg.algorithm.adv_estimator == "grpo"
        assert cfg.data.custom_cls.path == "pkg://star_verl.data.rl_dataset"
        assert cfg.reward.reward_manager.source == "importlib"
        assert cfg.reward.custom_reward_function.path == "pkg://star_verl.rewards"
    else:
        assert cfg.data.custom_cls.path == "pkg://star_verl.data.sft_dataset"
        assert "hf_model" in cfg.checkpoint.save_contents


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_pkg_paths_resolve(composed, name):
    from verl.utils.import_utils import load_extern_object

    refs = pkg_references(composed[name])
    assert refs, "a recipe must load star-verl's objects"
    for key, path, obj_name in refs:
        obj = load_extern_object(path, obj_name)
        assert obj is not None and getattr(obj, "__name__", obj_name) == obj_name, key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_passes_verl_validation_for_its_gpu_count(composed, name, capsys):
    cfg = composed[name]
    assert cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes == 8  # documented in each recipe: one node of 8 GPUs
    validate_recipe_config(cfg, EXPECTED[name])


def test_recipe_validation_catches_a_bad_cluster_size():
    cfg = compose_recipe("star_r1_tvr", ["trainer.n_gpus_per_node=7"])
    with pytest.raises((AssertionError, ValueError)):
        validate_recipe_config(cfg, PPO_CONFIG)
    cfg = compose_recipe("star_r1_sft", ["trainer.n_gpus_per_node=3"])
    with pytest.raises(ValueError, match="not divisible"):
        validate_recipe_config(cfg, SFT_CONFIG)


@pytest.mark.parametrize("name,settings", sorted(ABLATIONS.items()))
def test_ablation_changes_only_its_reward_setting(composed, name, settings):
    base = OmegaConf.to_container(composed["star_r1_tvr"], resolve=False)
    ablation = OmegaConf.to_container(composed[name], resolve=False)
    base_kwargs = base["reward"]["custom_reward_function"]["reward_kwargs"]
    assert ablation["reward"]["custom_reward_function"]["reward_kwargs"] == {**base_kwargs, **settings}
    for section in ("trainer", "reward"):
        ablation[section].pop("experiment_name", None), base[section].pop("experiment_name", None)
    ablation["reward"]["custom_reward_function"].pop("reward_kwargs"), base["reward"]["custom_reward_function"].pop("reward_kwargs")
    assert ablation == base


def test_reward_kwargs_are_valid_reward_settings(composed):
    from star_verl.rewards import split_reward_kwargs

    for name in EXPECTED:
        if EXPECTED[name] == PPO_CONFIG:
            split_reward_kwargs(OmegaConf.to_container(composed[name].reward.custom_reward_function.reward_kwargs))


def test_command_line_beats_the_recipe():
    overrides = [
        "actor_rollout_ref.rollout.n=8",
        "data.star.template=plain",
        "algorithm.adv_estimator=rloo",
        "reward.custom_reward_function.reward_kwargs.tvr_exact_weight=4.0",
        "trainer.n_gpus_per_node=4",
    ]
    cfg = compose_recipe("star_r1_tvr", overrides)
    assert cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.data.star.template == "plain"
    assert cfg.algorithm.adv_estimator == "rloo"
    assert cfg.reward.custom_reward_function.reward_kwargs.tvr_exact_weight == 4.0
    assert cfg.trainer.n_gpus_per_node == 4
    sft = compose_recipe("star_r1_sft", ["optim.lr=3e-6", "data.star.max_pixels=50176"])
    assert sft.optim.lr == 3e-6 and sft.data.star.max_pixels == 50176


def test_recipe_values_flow_through_verl_interpolations():
    cfg = compose_recipe("star_r1_mv", ["actor_rollout_ref.model.path=/models/sft"])
    assert cfg.actor_rollout_ref.rollout.prompt_length == cfg.data.max_prompt_length == 2048
    assert cfg.actor_rollout_ref.rollout.limit_images == 5
    assert cfg.data.star.template == "three_step"


def test_unknown_recipe_lists_the_available_ones():
    with pytest.raises(Exception) as info:
        GlobalHydra.instance().clear()
        from hydra import initialize_config_module

        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            compose("ppo_trainer", overrides=["+recipe=no_such_recipe"])
    message = str(info.value)
    assert "recipe/no_such_recipe" in message
    for name in EXPECTED:
        assert name in message


def test_other_hydra_apps_do_not_see_the_recipes(tmp_path):
    (tmp_path / "config.yaml").write_text("x: 1\n")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        sources = [s.path for s in GlobalHydra.instance().config_loader().get_sources()]
        # without a `recipe` group, Hydra reads `+recipe=...` as a plain new key: nothing is merged
        cfg = compose("config", overrides=["+recipe=star_r1_tvr"])
    assert not any("star_verl" in p for p in sources)
    assert OmegaConf.to_container(cfg) == {"x": 1, "recipe": "star_r1_tvr"}


def test_a_missing_value_would_keep_verls_default_model(tmp_path):
    """Why star_r1_mv reads $SFT_CKPT: a `???` merged over veRL's own actor_rollout_ref.model.path
    keeps veRL's default model (OmegaConf leaves a set value under a missing one), silently."""
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "missing_model.yaml").write_text(f"{PACKAGE_HEADER}\nactor_rollout_ref:\n  model:\n    path: ???\n")
    GlobalHydra.instance().clear()
    from hydra import initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        cfg = compose("ppo_trainer", overrides=[f"hydra.searchpath=[file://{tmp_path}]", "+recipe=missing_model"])
    assert not OmegaConf.is_missing(cfg.actor_rollout_ref.model, "path")
    assert cfg.actor_rollout_ref.model.path == "~/models/deepseek-llm-7b-chat"


def test_multiview_recipe_never_starts_from_the_base_model(monkeypatch):
    """Stage 2 must start from the SFT checkpoint: no inherited default model path survives."""
    from omegaconf.errors import InterpolationResolutionError

    monkeypatch.delenv("SFT_CKPT", raising=False)
    cfg = compose_recipe("star_r1_mv")
    with pytest.raises(InterpolationResolutionError, match="SFT_CKPT"):
        OmegaConf.resolve(cfg)
    monkeypatch.setenv("SFT_CKPT", "/ckpt/sft/global_step_9/huggingface")
    assert compose_recipe("star_r1_mv").actor_rollout_ref.model.path == "/ckpt/sft/global_step_9/huggingface"

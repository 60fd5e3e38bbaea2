"""Hydra search-path plugin: puts star-verl's recipes on the search path of veRL's apps only.

Hydra imports every module of the `hydra_plugins` namespace package at start-up, in every Hydra app,
so this module stays import-light (no verl, no torch) and touches only search paths that already
hold veRL's own config (`main_ppo`, `sft_trainer`, `sft_trainer_ray`, and `hydra.compose` on
`verl.trainer.config`). `+recipe=NAME` then finds `star_verl/config/recipe/NAME.yaml`.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

STAR_VERL_CONFIG = "pkg://star_verl.config"


def is_verl_search_path(search_path: ConfigSearchPath) -> bool:
    for element in search_path.get_path():
        path = (element.path or "").replace("\\", "/").rstrip("/")
        if path == "pkg://verl.trainer.config" or path.endswith("verl/trainer/config"):
            return True
    return False


class StarVerlSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if is_verl_search_path(search_path):
            search_path.append(provider="star-verl", path=STAR_VERL_CONFIG)

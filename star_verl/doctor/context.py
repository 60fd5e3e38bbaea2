"""What doctor's checks read and return: the command's options, the context its stages build, and
one check's result.

The context grows in stages, in the order of `star_verl.doctor.CHECKS`: each stage fills one field
(the composed recipe, the GPU count, the data settings, the model, the data sample), and a check
reads only the fields of the stages before it. A field is None (`gpus`: 0) when its stage did not
run or did not succeed; the checks that need it then report SKIP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from star_verl.recipes import PPO_CONFIG

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
NO_GPU = "skipped: no GPU"
DEFAULT_ROWS = 32


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Options:
    recipe: str | None = None  # +recipe=NAME
    overrides: tuple[str, ...] = ()  # the training command's key=value overrides
    cpu_ok: bool = False  # no GPU is a SKIP, not a FAIL
    rows: int | None = DEFAULT_ROWS  # rows of each data file to validate (None: every row, --rows all)


@dataclass(frozen=True)
class Recipe:
    """A recipe composed with veRL's config as the training command composes it."""

    name: str
    cfg: Any
    config_name: str  # veRL's config: ppo_trainer (main_ppo) or sft_trainer_engine (sft_trainer)

    @property
    def rl(self) -> bool:
        return self.config_name == PPO_CONFIG

    @property
    def model_key(self) -> str:
        return "actor_rollout_ref.model" if self.rl else "model"

    @property
    def model(self) -> Any:
        return self.cfg.actor_rollout_ref.model if self.rl else self.cfg.model


@dataclass(frozen=True)
class Model:
    """What loaded of the recipe's model: the processor only when it has an image processor."""

    tokenizer: Any = None
    processor: Any = None


@dataclass(frozen=True)
class DataSample:
    """What the data files told: row counts, the largest image count, the data sources seen."""

    file_rows: Mapping[str, int]  # data file -> row count (files that could be read)
    max_images: int | None  # the largest image count over the files read
    sources: frozenset[str]  # data_source values of the rows validated


@dataclass(frozen=True)
class Context:
    options: Options
    recipe: Recipe | None = None  # stage "recipe": it composed
    gpus: int = 0  # stage "GPUs": GPUs this process sees
    data_settings: Any = None  # stage "data settings": StarDataSettings that passed the dataset's checks
    model: Model | None = None  # stage "model processor"
    data: DataSample | None = None  # stage "data files"


def short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."

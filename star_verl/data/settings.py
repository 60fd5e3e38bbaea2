"""`data.star`: star-verl's keys of a recipe's data config, read and checked once for both dataset
classes (and for `eval generate` and `doctor`, which read them through this class too)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from star_verl.pixels import PixelBudget
from star_verl.prompts import template_for
from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE, TEMPLATES, PromptTemplate

# Processor kwargs that would resize images behind the budget's back (and the cached lengths).
PIXEL_KWARGS = ("min_pixels", "max_pixels", "size", "resized_height", "resized_width")


class DatasetError(ValueError):
    """Bad input data or settings, with the file, row and problem named."""


@dataclass(frozen=True)
class StarDataSettings:
    """`data.star` of a recipe. Defaults are Qwen2.5-VL's processor defaults (no budget)."""

    template: str = "auto"  # a name in star_verl.templates.TEMPLATES, or auto (per data_source)
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 16384 * 28 * 28
    total_max_pixels: int | None = None  # per sample, over all its images
    drop_overlong: bool = False
    cache_dir: str | None = None
    # the validation set only (star_verl.data.validation): leave out files not built; a stratified in-training subset
    skip_missing_val_files: bool = False
    val_subset: int | None = None

    @classmethod
    def from_config(cls, data_config: Mapping[str, Any] | None) -> StarDataSettings:
        star = (data_config or {}).get("star") or {}
        if hasattr(star, "items") and not isinstance(star, dict):
            from omegaconf import OmegaConf

            star = OmegaConf.to_container(star, resolve=True)
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(star) - fields)
        if unknown:
            raise DatasetError(f"unknown data.star key(s) {unknown}; valid: {sorted(fields)}")
        values = {k: v for k, v in star.items() if v is not None or k in ("total_max_pixels", "cache_dir", "val_subset")}
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.template != "auto" and self.template not in TEMPLATES:
            raise DatasetError(f"data.star.template={self.template!r}: expected 'auto' or one of {sorted(TEMPLATES)}")
        for key in ("min_pixels", "max_pixels"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) <= 0:
                raise DatasetError(f"data.star.{key} must be a positive integer, got {getattr(self, key)!r}")
        if self.min_pixels > self.max_pixels:
            raise DatasetError(f"data.star.min_pixels={self.min_pixels} > data.star.max_pixels={self.max_pixels}")
        for key in ("drop_overlong", "skip_missing_val_files"):
            if not isinstance(getattr(self, key), bool):
                raise DatasetError(f"data.star.{key} must be true or false, got {getattr(self, key)!r}")
        if self.val_subset is not None and (isinstance(self.val_subset, bool) or not isinstance(self.val_subset, int) or self.val_subset < 1):
            raise DatasetError(f"data.star.val_subset must be null or a positive number of rows, got {self.val_subset!r}")
        if self.total_max_pixels is not None and (not isinstance(self.total_max_pixels, int) or self.total_max_pixels < self.min_pixels):
            raise DatasetError(f"data.star.total_max_pixels must be null or an integer >= min_pixels, got {self.total_max_pixels!r}")

    def template_for(self, data_source: str) -> PromptTemplate:
        return template_for(self.template, data_source)

    @property
    def budget(self) -> PixelBudget:
        return PixelBudget(self.min_pixels, self.max_pixels, self.total_max_pixels)

    def template_fingerprint(self) -> dict[str, Any]:
        names = sorted(set(DEFAULT_TEMPLATE_FOR_SOURCE.values())) if self.template == "auto" else [self.template]
        texts = {name: asdict(TEMPLATES[name]) for name in names}
        mapping = DEFAULT_TEMPLATE_FOR_SOURCE if self.template == "auto" else None
        return {"template": self.template, "sha256": sha256_json({"texts": texts, "mapping": mapping})}


def check_data_config(config: Any, kind: str = "rl") -> StarDataSettings:
    """The data-config checks a dataset class makes before it reads a file (`star-verl doctor` runs
    them too): `data.star`, no processor kwargs that resize behind the budget's back, and for RL
    ("rl") no veRL overlong filter."""
    settings = StarDataSettings.from_config(config)
    if kind == "rl" and config.get("filter_overlong_prompts", False):
        raise DatasetError(
            "data.filter_overlong_prompts=true: StarRLDataset measures every prompt itself (veRL's filter turns any "
            "per-sample error into 'too long' and can empty a dataset); set data.filter_overlong_prompts=false and "
            "choose with data.star.drop_overlong whether overlong prompts are an error (false) or dropped (true)"
        )
    clash = sorted(set(config.get("mm_processor_kwargs") or {}) & set(PIXEL_KWARGS))
    if clash:
        raise DatasetError(
            f"data.mm_processor_kwargs sets {clash}: set the pixel budget with data.star.min_pixels / max_pixels / total_max_pixels instead"
        )
    return settings


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_text(json.dumps(value, sort_keys=True, default=str))

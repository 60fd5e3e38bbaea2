"""The pixel budget: how Qwen2-VL-family processors size an image, and the per-sample budget of
multi-view rows. Pure Python (PIL), so data prep, the datasets and evaluation share it.

Qwen2.5-VL cuts an image into 14x14 patches merged 2x2, so each side must be a multiple of 28 and
an image of W x H pixels costs (W/28) * (H/28) tokens. `fit_size` is the processor's own rounding
(`smart_resize`): an image resized to it passes through the processor unchanged, so the token cost
computed here is the cost the model sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

FACTOR = 28  # patch 14 x spatial merge 2
DEFAULT_PATCH_SIZE = 14  # Qwen2-VL / 2.5-VL; what veRL assumes when the processor names none
SPATIAL_MERGE_SIZE = 2  # Qwen2-VL / 2.5-VL / 3-VL merge 2x2 patches into one token
MAX_ASPECT_RATIO = 200


class BudgetError(ValueError):
    """A pixel budget that cannot hold a sample's images, or an image processor whose range is unreadable."""


def fit_size(width: int, height: int, *, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> tuple[int, int]:
    """(width, height) rounded to multiples of `factor` with min_pixels <= w*h <= max_pixels,
    keeping the aspect ratio as Qwen2-VL's `smart_resize` does."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds {MAX_ASPECT_RATIO}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels {min_pixels} > max_pixels {max_pixels}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return w, h


def image_tokens(width: int, height: int, factor: int = FACTOR) -> int:
    """Tokens of an image already at a fitted size."""
    return (width // factor) * (height // factor)


def per_image_max_pixels(n_images: int, max_pixels: int, total_max_pixels: int | None) -> int:
    """Each image's cap in a sample of `n_images`: the per-image cap, lowered so the sample's total
    stays within `total_max_pixels` (None: no total budget)."""
    if n_images <= 0 or total_max_pixels is None:
        return max_pixels
    return max(FACTOR * FACTOR, min(max_pixels, total_max_pixels // n_images))


def resize_to_budget(image: Image.Image, *, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> Image.Image:
    """The image in RGB at its fitted size (unchanged if it already is)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    size = fit_size(image.width, image.height, min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


# ---------------------------------------------------------------------------------------------
# patch size and the processor's own range


def merge_factor(image_patch_size: int) -> int:
    """Pixels per side of one image token: the patch size times the 2x2 spatial merge."""
    return int(image_patch_size) * SPATIAL_MERGE_SIZE


def processor_patch_size(processor: Any) -> int:
    """The patch size veRL's AgentLoop resizes a rollout's images with: the image processor's."""
    return int(getattr(getattr(processor, "image_processor", None), "patch_size", None) or DEFAULT_PATCH_SIZE)


def dataset_patch_size(kind: str, processor: Any, data_config: Mapping[str, Any] | None) -> int:
    """The patch size a dataset's images are resized with at run time: for RL ("rl") the AgentLoop's
    (it does not read data.image_patch_size); for SFT ("sft") MultiTurnSFTDataset's,
    data.image_patch_size when set, else the processor's."""
    if kind == "sft" and (data_config or {}).get("image_patch_size"):
        return int(data_config["image_patch_size"])
    return processor_patch_size(processor)


def processor_pixel_range(processor: Any) -> tuple[int, int] | None:
    """(min_pixels, max_pixels) the image processor itself resizes to, or None without one."""
    ip = getattr(processor, "image_processor", None)
    if ip is None:
        return None
    size = getattr(ip, "size", None) or {}
    low = size.get("shortest_edge") if hasattr(size, "get") else None
    high = size.get("longest_edge") if hasattr(size, "get") else None
    low = low if low is not None else getattr(ip, "min_pixels", None)
    high = high if high is not None else getattr(ip, "max_pixels", None)
    if low is None or high is None:
        raise BudgetError(f"cannot read the pixel range of image processor {type(ip).__name__} (size={size!r})")
    return int(low), int(high)


# ---------------------------------------------------------------------------------------------
# the budget of a sample


@dataclass(frozen=True)
class PixelBudget:
    """`data.star`'s pixel settings: each image within [min_pixels, max_pixels], and a sample's images
    within `total_max_pixels` together (None: no total), the total split evenly over the images."""

    min_pixels: int
    max_pixels: int
    total_max_pixels: int | None = None

    def image_range(self, n_images: int) -> tuple[int, int]:
        """(min_pixels, max_pixels) of each image of a sample with `n_images` images."""
        cap = per_image_max_pixels(n_images, self.max_pixels, self.total_max_pixels)
        if cap < self.min_pixels:
            raise BudgetError(
                f"data.star.total_max_pixels={self.total_max_pixels} over {n_images} images leaves {cap} pixels per image, "
                f"below data.star.min_pixels={self.min_pixels}"
            )
        return self.min_pixels, cap

    def fitted_sizes(self, sizes: Sequence[tuple[int, int]], image_patch_size: int, processor_range: tuple[int, int] | None) -> list[tuple[int, int]]:
        """The (width, height) each image of a sample reaches the model at: the budget's fit, then the
        processor's own fit of that (a no-op whenever the budget lies inside the processor's range)."""
        low, high = self.image_range(len(sizes))
        factor = merge_factor(image_patch_size)
        out = []
        for w, h in sizes:
            w, h = fit_size(w, h, min_pixels=low, max_pixels=high, factor=factor)
            if processor_range is not None:
                w, h = fit_size(w, h, min_pixels=processor_range[0], max_pixels=processor_range[1], factor=factor)
            out.append((w, h))
        return out

    def resize(self, images: Sequence[Image.Image], image_patch_size: int) -> list[Image.Image]:
        """A sample's images in RGB at the sizes `fitted_sizes` predicts for the budget: what the
        processor receives (and then leaves unchanged inside its own range)."""
        if not images:
            return []
        low, high = self.image_range(len(images))
        factor = merge_factor(image_patch_size)
        return [resize_to_budget(image, min_pixels=low, max_pixels=high, factor=factor) for image in images]

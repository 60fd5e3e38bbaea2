"""The pixel budget: how Qwen2.5-VL sizes an image, and the per-sample budget of multi-view rows.

Qwen2.5-VL cuts an image into 14x14 patches merged 2x2, so each side must be a multiple of 28 and
an image of W x H pixels costs (W/28) * (H/28) tokens. `fit_size` is the processor's own rounding
(`smart_resize`): an image resized to it passes through the processor unchanged, so the token cost
computed here is the cost the model sees.
"""

from __future__ import annotations

import math

from PIL import Image

FACTOR = 28  # patch 14 x spatial merge 2
MAX_ASPECT_RATIO = 200


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

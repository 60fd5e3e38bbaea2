"""The images of the tests, made and read back in one place: the fixtures and tests import these
(and the benchmarks that reuse the fixtures), so every encoded image in a test comes from here.

- `solid`: one flat color (small files; the color identifies the image);
- `noise`: random pixels (the encoded size is realistic and decoding does real work);
- `gradient`: a seeded color gradient with a few random boxes (unique content per seed text, compresses well);
- `decode`: encoded bytes back to an RGB image.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (8, 6), fmt: str = "PNG") -> bytes:
    return encode(Image.new("RGB", size, color), fmt)


def noise(size: tuple[int, int], seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)), fmt)


def gradient(seed_text: str, size: tuple[int, int] = (96, 72), fmt: str = "JPEG") -> bytes:
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    w, h = size
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, w)[None, :, None]
    row = (c0[None, None, :] * (1 - t) + c1[None, None, :] * t).astype(np.uint8)
    image = Image.fromarray(np.repeat(row, h, axis=0), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
        x1, y1 = int(rng.integers(x0 + 1, w)), int(rng.integers(y0 + 1, h))
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return encode(image, fmt)


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")

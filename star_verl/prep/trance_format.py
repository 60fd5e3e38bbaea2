"""Facts of the TRANCE release format (Hong et al., CVPR 2021; github.com/hughplay/TVR,
`trance/resource/properties.json` and `trance/configs/standard.yaml`) that the converter
(`star_verl.prep.trance`) and the synthetic generator (`star_verl.prep.synthetic_tvr`) share.

The vocabularies and the grid geometry are the task's (`star_verl.tasks.tvr`, used by the reward and
the metrics too); this module adds what only reading and rendering TRANCE needs. Positions are
integer grid coordinates (one unit = 0.15 Blender units): valid x, y in [-40, 40], the visible area
x, y in [-20, 20]; x grows "behind" (away from the center camera), y grows "right".
"""

from __future__ import annotations

from star_verl.tasks.tvr import (
    ALL_ATTRIBUTES,
    ATTRIBUTES,
    COLORS,
    DIRECTIONS,
    MATERIALS,
    MIN_GAP,
    RADIUS,
    SHAPES,
    SIZES,
    STEPS,
    VALID_MAX,
    VIEWS,
    VISIBLE_MAX,
    VOCAB,
)

__all__ = [
    "ALL_ATTRIBUTES", "ATTRIBUTES", "COLORS", "DIRECTIONS", "MATERIALS", "SHAPES", "SIZES", "STEPS", "VALID_MAX", "VIEWS", "VISIBLE_MAX", "VOCAB",
    "COLOR_RGB", "SIZE_SCALE", "OBJECT_KEYS", "GRID_UNIT", "N_OBJECTS", "OCCLUSION_PIXELS", "WIDTH", "HEIGHT", "CAMERAS",
    "INITIAL_CAMERA", "is_visible", "overlaps",
]  # fmt: skip

# Render colors (properties.json "color"), in the task's color order.
COLOR_RGB: dict[str, tuple[int, int, int]] = dict(
    zip(
        COLORS,
        [(87, 87, 87), (173, 35, 35), (42, 75, 215), (29, 105, 20), (129, 74, 25), (129, 38, 192), (41, 208, 208), (255, 238, 51)],
        strict=True,
    )
)
# Blender scale of each size; its footprint radius in grid units is ceil(scale / GRID_UNIT) = RADIUS.
SIZE_SCALE: dict[str, float] = {"large": 0.9, "medium": 0.6, "small": 0.3}
OBJECT_KEYS = ("color", "material", "shape", "size", "position")  # what a TVR ground truth keeps of an object
GRID_UNIT = 0.15
N_OBJECTS = 10
OCCLUSION_PIXELS = 150  # fewer visible pixels than this (at 320x240) = occluded (TRANCE's occlusion_threshold)
WIDTH, HEIGHT = 320, 240

# Our view names -> TRANCE's camera names, in the task's view order (center, left, right).
CAMERAS: dict[str, str] = dict(zip(VIEWS, ("Camera_Center", "Camera_Left", "Camera_Right"), strict=True))
INITIAL_CAMERA = CAMERAS["center"]


def is_visible(position) -> bool:
    """An object lies in the visible area (TRANCE renders only those)."""
    x, y = position
    return abs(x) <= VISIBLE_MAX and abs(y) <= VISIBLE_MAX


def overlaps(pos_a, size_a: str, pos_b, size_b: str) -> bool:
    """TRANCE's overlap rule (`Scene.is_overlapped`), in grid units."""
    limit = RADIUS[size_a] + RADIUS[size_b] + MIN_GAP
    dx, dy = pos_a[0] - pos_b[0], pos_a[1] - pos_b[1]
    return dx * dx + dy * dy < limit * limit

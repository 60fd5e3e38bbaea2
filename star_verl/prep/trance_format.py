"""Facts of the TRANCE format (Hong et al., CVPR 2021; github.com/hughplay/TVR, `trance/resource/*.json`
and `trance/configs/standard.yaml`), shared by the converter (`star_verl.prep.trance`) and the
synthetic generator (`star_verl.prep.synthetic_tvr`).

Positions are integer grid coordinates (one unit = 0.15 Blender units): valid x, y in [-40, 40], the
visible area x, y in [-20, 20]. x grows "behind" (away from the center camera), y grows "right".
"""

from __future__ import annotations

COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SHAPES = ("cube", "sphere", "cylinder")
# Blender scale of each size; its footprint radius in grid units is ceil(scale / GRID_UNIT).
SIZES: dict[str, float] = {"large": 0.9, "medium": 0.6, "small": 0.3}
SIZE_RADIUS: dict[str, int] = {"large": 6, "medium": 4, "small": 2}
MATERIALS = ("rubber", "metal", "glass")
DIRECTIONS: dict[str, tuple[int, int]] = {
    "behind": (1, 0),
    "front": (-1, 0),
    "right": (0, 1),
    "left": (0, -1),
    "behind-right": (1, 1),
    "behind-left": (1, -1),
    "front-right": (-1, 1),
    "front-left": (-1, -1),
}
STEPS = (1, 2)

# Attribute -> its values. Position values are [direction, step] pairs, checked separately.
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "size": tuple(SIZES),
    "material": MATERIALS,
}
ATTRIBUTES = ("color", "shape", "size", "material", "position")
OBJECT_KEYS = ("color", "material", "shape", "size", "position")

GRID_UNIT = 0.15
GRID_LIMIT = 40  # valid positions: |x|, |y| <= 40
VISIBLE_LIMIT = 20  # visible area: |x|, |y| <= 20 (objects outside it are not rendered)
STEP_UNITS = 10  # one move step = 1.5 Blender units
MIN_GAP = 1  # two objects overlap when their centres are closer than r1 + r2 + MIN_GAP
N_OBJECTS = 10
OCCLUSION_PIXELS = 150  # fewer visible pixels than this (at 320x240) = occluded (TRANCE's threshold)
WIDTH, HEIGHT = 320, 240

# Our view names and TRANCE's camera names, in TRANCE's view order (Center, Left, Right).
VIEWS: dict[str, str] = {"center": "Camera_Center", "left": "Camera_Left", "right": "Camera_Right"}
INITIAL_CAMERA = "Camera_Center"


def is_visible(position) -> bool:
    """An object is in the visible (rendered) area."""
    x, y = position
    return abs(x) <= VISIBLE_LIMIT and abs(y) <= VISIBLE_LIMIT


def overlaps(pos_a, size_a: str, pos_b, size_b: str) -> bool:
    """TRANCE's overlap rule (`Scene.is_overlapped`), in grid units."""
    limit = SIZE_RADIUS[size_a] + SIZE_RADIUS[size_b] + MIN_GAP
    dx, dy = pos_a[0] - pos_b[0], pos_a[1] - pos_b[1]
    return dx * dx + dy * dy < limit * limit

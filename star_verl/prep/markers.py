"""SPAR-7M's visual markers, drawn the way SPAR's own tooling draws them (`datasets/draw_marker.py`
of fudan-zvg/spar), so a model trained here sees what SPAR-Bench shows (its images come with the
markers already drawn).

SPAR-7M images are clean: a record carries the marker geometry in 0-1000 normalized coordinates
(`red_point: [[x, y]]`, `blue_bbox: [[x1, y1, x2, y2]]`, ...) and, for multi-view tasks, which image
each marker goes on (`point_img_idx` / `bbox_img_idx`, `[[i, j, ...]]`). The rules, per task:

- a point is a filled circle of radius 20 px around the scaled point (PIL's named color);
- a box is a rectangle outline of width 20 drawn inside the scaled box grown by 20 * 7/8 px on
  every side (so the stroke straddles the object's box);
- coordinates are scaled to the *original* image size and truncated to int, before any resizing;
- colors are PIL's names: red (255,0,0), blue (0,0,255), green (0,128,0), yellow (255,255,0).

Which marker goes on which image is task specific (`MULTIVIEW_MARKERS` below). The plan is a plain
tuple (hashable), so the image cache can key an encoded image on (file, markers drawn on it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw

POINT_RADIUS = 20
BOX_STROKE = 20
BOX_EXTEND = BOX_STROKE * 7 / 8
COLORS = ("red", "blue", "green", "yellow")
# the fields of a SPAR-7M record (jsonl) or release row (parquet column) that carry marker geometry
MARKER_FIELDS = (*(f"{c}_{k}" for k in ("point", "bbox") for c in COLORS), "point_img_idx", "bbox_img_idx")

# A marker drawn on one image: (kind, color, normalized coordinates).
Marker = tuple[str, str, tuple[float, ...]]
# One entry per image of the question: the markers drawn on it, in drawing order.
MarkerPlan = tuple[tuple[Marker, ...], ...]


class MarkerError(ValueError):
    """A SPAR record whose marker fields do not fit its task's drawing rule."""


def _first(record: Mapping[str, Any], key: str, size: int) -> tuple[float, ...]:
    value = record.get(key)
    if not value or not isinstance(value, Sequence) or not isinstance(value[0], Sequence) or len(value[0]) != size:
        raise MarkerError(f"{key} must be [[{', '.join('v' * size)}]] in 0-1000 coordinates, got {value!r}")
    try:
        coords = tuple(float(v) for v in value[0])
    except (TypeError, ValueError):
        raise MarkerError(f"{key} has non-numeric coordinates: {value!r}") from None
    return coords


def _present(record: Mapping[str, Any], key: str) -> bool:
    value = record.get(key)
    return value is not None and len(value) > 0


def _idx(record: Mapping[str, Any], key: str, n_needed: int) -> list[int]:
    value = record.get(key)
    if not value or not isinstance(value[0], Sequence) or len(value[0]) < n_needed:
        raise MarkerError(f"{key} must be [[i, ...]] with at least {n_needed} image indices, got {value!r}")
    return [int(i) for i in value[0]]


# task -> (index key or None, [(color, kind, position in the index list)]); kind "point" or "bbox".
# Position None: the marker goes on the first image (position_matching draws on images[0]).
_FIXED: dict[str, tuple[str | None, list[tuple[str, str, int | None]]]] = {
    "position_matching": (None, [("red", "bbox", None)]),
    "view_change_infer": (None, []),
    "camera_motion_infer": (None, []),
    "distance_infer_center_oc_mv": (None, []),
    "depth_prediction_oc_mv": ("point_img_idx", [("red", "point", 0), ("blue", "point", 1)]),
    "depth_prediction_oo_mv": ("point_img_idx", [("red", "point", 0), ("blue", "point", 1), ("green", "point", 2)]),
    "distance_prediction_oc_mv": ("point_img_idx", [("red", "point", 0)]),
    "distance_prediction_oo_mv": ("point_img_idx", [("red", "point", 0), ("blue", "point", 1)]),
    "distance_infer_center_oo_mv": ("point_img_idx", [("red", "point", 0), ("green", "point", 1), ("blue", "point", 2)]),
    "spatial_imagination_oc_mv": ("bbox_img_idx", [("red", "bbox", 2), ("green", "bbox", 0), ("blue", "bbox", 1)]),
    "spatial_imagination_oo_mv": ("bbox_img_idx", [("red", "bbox", 2), ("green", "bbox", 0), ("blue", "bbox", 1), ("yellow", "bbox", 3)]),
}
MULTIVIEW_MARKER_TASKS = (*_FIXED, "obj_spatial_relation_oc_mv", "obj_spatial_relation_oo_mv")


def marker_plan(task: str, record: Mapping[str, Any], n_images: int) -> MarkerPlan:
    """The markers to draw on each of the `n_images` images of a SPAR-7M multi-view record."""
    per_image: list[list[Marker]] = [[] for _ in range(n_images)]

    def put(image_index: int, color: str, kind: str) -> None:
        if not 0 <= image_index < n_images:
            raise MarkerError(f"{color}_{kind} goes on image {image_index}, but the question has {n_images} images")
        per_image[image_index].append((kind, color, _first(record, f"{color}_{kind}", 2 if kind == "point" else 4)))

    if task in _FIXED:
        key, markers = _FIXED[task]
        indices = _idx(record, key, 1 + max(pos for _, _, pos in markers)) if key else []
        for color, kind, pos in markers:
            put(0 if pos is None else indices[pos], color, kind)
    elif task == "obj_spatial_relation_oc_mv":
        # every box present goes on the first listed image
        target = _idx(record, "bbox_img_idx", 1)[0]
        present = [c for c in ("red", "blue", "green") if _present(record, f"{c}_bbox")]
        if not present:
            raise MarkerError("obj_spatial_relation_oc_mv needs at least one of red/blue/green_bbox")
        for color in present:
            put(target, color, "bbox")
    elif task == "obj_spatial_relation_oo_mv":
        # exactly two of red/blue/green boxes: the first present color on idx[0], the second on idx[1]
        present = [c for c in ("red", "blue", "green") if _present(record, f"{c}_bbox")]
        if len(present) != 2:
            raise MarkerError(f"obj_spatial_relation_oo_mv needs exactly two of red/blue/green_bbox, got {present}")
        indices = _idx(record, "bbox_img_idx", 2)
        put(indices[0], present[0], "bbox")
        put(indices[1], present[1], "bbox")
    else:
        raise MarkerError(f"no marker rule for task {task!r}; known multi-view tasks: {sorted(MULTIVIEW_MARKER_TASKS)}")
    return tuple(tuple(markers) for markers in per_image)


def point_box(point: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The ellipse box of a point marker in pixels (truncated like SPAR's int())."""
    x, y = int(point[0] / 1000 * width), int(point[1] / 1000 * height)
    return x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS


def bbox_outline(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The outer rectangle of a box marker in pixels; the stroke runs BOX_STROKE px inwards from it."""
    x1, y1, x2, y2 = bbox[0] / 1000 * width, bbox[1] / 1000 * height, bbox[2] / 1000 * width, bbox[3] / 1000 * height
    return int(x1 - BOX_EXTEND), int(y1 - BOX_EXTEND), int(x2 + BOX_EXTEND), int(y2 + BOX_EXTEND)


def draw_markers(image: Image.Image, markers: Sequence[Marker]) -> Image.Image:
    """`image` (converted to RGB) with the markers drawn, at its original size."""
    image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if not markers:
        return image
    draw = ImageDraw.Draw(image)
    for kind, color, coords in markers:
        if kind == "point":
            draw.ellipse(point_box(coords, image.width, image.height), fill=color)
        elif kind == "bbox":
            draw.rectangle(bbox_outline(coords, image.width, image.height), outline=color, width=BOX_STROKE)
        else:
            raise MarkerError(f"unknown marker kind {kind!r}")
    return image

"""TRANCE-format fixtures written by the tests themselves (records shaped as the TVR release's
`data.jsonl`, see datasets.md section 4), and a small synthetic TVR parquet set for other tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.images import solid

CAMERAS = ("Camera_Left", "Camera_Center", "Camera_Right")

# Ten objects as TRANCE stores them; 3 and 7 lie outside the visible area (|x| or |y| > 20).
OBJECTS = [
    {"color": "gray", "material": "metal", "shape": "cylinder", "size": "small", "position": [-19, 17]},
    {"color": "red", "material": "rubber", "shape": "cube", "size": "large", "position": [-5, -12]},
    {"color": "yellow", "material": "glass", "shape": "sphere", "size": "medium", "position": [10, 3]},
    {"color": "blue", "material": "rubber", "shape": "sphere", "size": "large", "position": [-19, 37]},
    {"color": "brown", "material": "metal", "shape": "cube", "size": "small", "position": [18, -18]},
    {"color": "green", "material": "rubber", "shape": "cylinder", "size": "medium", "position": [5, 15]},
    {"color": "purple", "material": "glass", "shape": "cube", "size": "small", "position": [-12, 5]},
    {"color": "cyan", "material": "metal", "shape": "sphere", "size": "medium", "position": [33, -30]},
    {"color": "gray", "material": "rubber", "shape": "sphere", "size": "small", "position": [16, 12]},
    {"color": "yellow", "material": "rubber", "shape": "cube", "size": "medium", "position": [-15, -1]},
]
VISIBLE = [0, 1, 2, 4, 5, 6, 8, 9]


def image_names(idx: int) -> tuple[str, dict[str, str]]:
    """TRANCE's renderer names: {prefix}_{problem}_img_{idx:06d}-{stage}.{camera}.png."""
    initial = f"TRANCE_standard_img_{idx:06d}-initial.Camera_Center.png"
    return initial, {cam: f"TRANCE_standard_img_{idx:06d}-final.{cam}.png" for cam in CAMERAS}


def record(idx: int, transformations: list[dict[str, Any]], objects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A sample as in data.jsonl: the final state is the initial one with the transformations applied."""
    objects = copy.deepcopy(objects if objects is not None else OBJECTS)
    final = copy.deepcopy(objects)
    for t in transformations:
        if t["attr"] == "position":
            from star_verl.tasks.tvr import DIRECTIONS, STEP_UNITS

            dx, dy = DIRECTIONS[t["val"][0]]
            x, y = final[t["obj_idx"]]["position"]
            final[t["obj_idx"]]["position"] = [x + dx * t["val"][1] * STEP_UNITS, y + dy * t["val"][1] * STEP_UNITS]
        else:
            final[t["obj_idx"]][t["attr"]] = t["val"]
    initial, finals = image_names(idx)
    trans = [dict(t, options=t.get("options", [t["val"]])) for t in transformations]
    return {
        "idx": idx,
        "states": [{"objects": objects, "images": {"Camera_Center": initial}}, {"objects": final, "images": finals}],
        "transformations": trans,
    }


def color_change(idx: int) -> dict[str, Any]:
    """A valid sample: 1 to 4 transformations on visible objects, varying with idx."""
    pool = [
        {"obj_idx": 2, "attr": "color", "val": "cyan"},
        {"obj_idx": 4, "attr": "size", "val": "medium"},
        {"obj_idx": 9, "attr": "material", "val": "metal"},
        {"obj_idx": 1, "attr": "shape", "val": "cylinder"},
    ]
    return record(idx, pool[: 1 + idx % 4])


def write_trance(root: Path, records: list[Any], *, skip_images: tuple[str, ...] = ()) -> Path:
    """data.jsonl (a str entry is written as a raw line) + image/ with a distinct PNG per file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "image").mkdir(exist_ok=True)
    lines = []
    for i, rec in enumerate(records):
        if isinstance(rec, str):
            lines.append(rec)
            continue
        lines.append(json.dumps(rec))
        names = [rec["states"][0]["images"]["Camera_Center"], *rec["states"][-1]["images"].values()]
        for k, name in enumerate(names):
            if name not in skip_images:
                (root / "image" / name).write_bytes(solid(((37 * i) % 256, 60 * k, 200)))
    (root / "data.jsonl").write_text("\n".join(lines) + "\n")
    return root


def synthetic_tvr_set(out_dir: Path, n: int = 6, seed: int = 0) -> Path:
    """A small synthetic TVR parquet set (train/val/test.parquet in out_dir), built like the default data."""
    from star_verl.prep.build_tvr import main

    rc = main(["--synthetic", str(n), "--seed", str(seed), "--out", str(out_dir), "--workers", "1", "--no-progress"])
    assert rc == 0
    return out_dir

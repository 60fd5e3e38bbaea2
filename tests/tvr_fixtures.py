"""TVR scenes for the reward, metrics and manager tests: TRANCE-like, 10 objects, hand-checkable."""

from __future__ import annotations

import json

# A 3 x 3 grid of visible positions 15 grid units apart (more than two large radii + gap = 13, so
# no overlap whatever the sizes) plus one object outside the visible area, as TRANCE places them.
GRID = [(-15, -15), (-15, 0), (-15, 15), (0, -15), (0, 0), (0, 15), (15, -15), (15, 0), (15, 15), (30, 30)]


def scene(n: int = 10, **overrides) -> list[dict]:
    """`n` gray small rubber cubes on GRID; overrides: {index: {attr: value}}."""
    objs = [{"color": "gray", "material": "rubber", "shape": "cube", "size": "small", "position": list(GRID[i])} for i in range(n)]
    for idx, attrs in overrides.items():
        objs[int(idx.lstrip("o"))].update(attrs)
    return objs


def tvr_gt(transformations, objects=None, view="center", as_json=False):
    gt = {
        "transformations": [t if isinstance(t, dict) else {"obj_idx": t[0], "attr": t[1], "val": t[2]} for t in transformations],
        "objects": objects if objects is not None else scene(),
        "view": view,
        "task": "tvr",
    }
    return json.dumps(gt) if as_json else gt


# The worked example: ground truth {2.color.cyan, 4.color.brown}.
WORKED_GT = tvr_gt([(2, "color", "cyan"), (4, "color", "brown")])


def tagged(answer: str, think: str = "compare the two images") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"

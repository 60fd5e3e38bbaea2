"""MindCube (`MLL-Lab/MindCube`, `data.zip` unzipped to `data/`): training questions from
`raw/MindCube_train.jsonl`, the MindCube-Tiny benchmark from `raw/MindCube_tinybench.jsonl`.

A record: `id` (the setting is a substring of it: around / among / rotation / translation),
`category`, `type`, `meta_info`, `question` (options inline at the end: "... A. TV B. Sofa"),
`images` (paths relative to `data/`, in the order the question refers to them), `gt_answer` (a letter).

References (`ground_truth.references`, per view: `{"1": [...], "2": [...]}`) come from MindCube's
grounded cognitive map, which MindCube derives from `meta_info` with fixed layouts on a 10x10 grid
(x right, y down; `src/scaffold_curation/cogmap/generators.py`), and every view's place and facing:

- among: 5 objects, obj0 at the center [5,5], obj1 [5,8], obj2 [2,5], obj3 [5,2], obj4 [8,5]; each
  view is placed by its file-name prefix: front [5,6] facing up, left [4,5] facing right, right
  [6,5] facing left, back [5,4] facing down (4 unrecognized names: front, left, back, right).
- around: 2-4 objects in a row (2: x=4,5; 3: x=4,5,6; 4: x=3,4,5,6; y=5); each view's global
  direction comes from its own image's `<k>_frame` index through the group's view table (which depends
  on the group size and on the source: ids `aroundnew_*` are self-collected, others DL3DV-10K).
- rotation: one object per view direction, all views at the center, one facing per view: 2 views
  (view 1 up; view 2 right (clockwise: objects [5,3], [7,5]), left (counterclockwise: [5,3], [3,5]) or
  down (opposite: [5,3], [5,7])), 3 views (left, up, right; objects [3,5], [5,3], [7,5]) or 4 views
  (+ down, [5,7]).

Image k's key references are the relations between the objects image k shows, in image k's own
frame, with the words left / right / front / behind ("front": nearer that image's viewer):
- which objects an image shows: for among and rotation, those ahead of the view within 45 degrees of
  its facing (an among view stands between the center and one surrounding object and sees the center
  and the object behind it; a rotation view sees the object it faces); for around, every object of
  the row (the around views circle the group, and the map's view places are schematic);
- among: the object behind the center relative to the central object; around: each object relative
  to the next one in the row; rotation: the object relative to the observer (`[obj, "observer", rel]`).
Translation questions (not in MindCube-Tiny) are not used for training (counted).
A record whose `meta_info` fits no layout is written without references; the row is counted and
listed per setting in the summary (`Sample.reference_loss`), and `--require-references` makes it an
error naming the file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from star_verl.prep.multiview import OBSERVER, BadInput, BadInputLog, Catalog, ImageRef, Sample, choice_ground_truth, with_placeholders
from star_verl.tasks.registry import MINDCUBE_SETTINGS, MINDCUBE_TRAINING_SETTINGS, mindcube_setting

TRAIN_FILE = "MindCube_train.jsonl"
TINY_FILE = "MindCube_tinybench.jsonl"

_FACING = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
_VIEW_FACING = {"front": "up", "left": "right", "right": "left", "back": "down"}
_AMONG_POS = ([5, 5], [5, 8], [2, 5], [5, 2], [8, 5])
_AROUND_POS = {2: ([4, 5], [5, 5]), 3: ([4, 5], [5, 5], [6, 5]), 4: ([3, 5], [4, 5], [5, 5], [6, 5])}
_AMONG_VIEW_POS = {"front": [5, 6], "left": [4, 5], "right": [6, 5], "back": [5, 4]}
_CENTER = [5, 5]
# rotation type -> (each view's facing, each object's position); every view stands at the center
_ROTATION = {
    "two_view_clockwise": (("up", "right"), ([5, 3], [7, 5])),
    "two_view_counterclockwise": (("up", "left"), ([5, 3], [3, 5])),
    "two_view_opposite": (("up", "down"), ([5, 3], [5, 7])),
    "three_view": (("left", "up", "right"), ([3, 5], [5, 3], [7, 5])),
    "four_view": (("left", "up", "right", "down"), ([3, 5], [5, 3], [7, 5], [5, 7])),
}
_OPTION = re.compile(r"(?<![A-Za-z0-9])([A-E])\.\s")


def find_raw(root: Path, name: str) -> Path:
    """`name` under MindCube's data folder (`root/raw/name`, or `root/data/raw/name`)."""
    for candidate in (root / "raw" / name, root / "data" / "raw" / name, root / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} not found under {root} (looked in raw/, data/raw/ and the folder itself)")


def image_root(jsonl: Path) -> Path:
    """Image paths are relative to `data/`, the parent of `raw/`."""
    return jsonl.parent.parent if jsonl.parent.name == "raw" else jsonl.parent


def parse_options(question: str) -> list[str]:
    """Letters of the inline options: the last run "A. ... B. ... C. ..." in the question."""
    matches = list(_OPTION.finditer(question))
    for start in range(len(matches) - 1, -1, -1):
        if matches[start].group(1) != "A":
            continue
        letters = ["A"]
        for m in matches[start + 1 :]:
            if m.group(1) == chr(ord(letters[-1]) + 1):
                letters.append(m.group(1))
        if len(letters) >= 2:
            return letters
    return []


def _frame(delta: tuple[float, float], facing: str) -> tuple[float, float]:
    """(forward, lateral) of a displacement on the map for a viewer facing `facing`: forward is along
    the facing direction, lateral along it turned clockwise (its right; y points down)."""
    fx, fy = _FACING[facing]
    return delta[0] * fx + delta[1] * fy, delta[0] * (-fy) + delta[1] * fx


def _in_view(p: list[int], viewer: list[int], facing: str) -> bool:
    """Ahead of a viewer at `viewer` facing `facing`, within 45 degrees of the facing."""
    forward, lateral = _frame((p[0] - viewer[0], p[1] - viewer[1]), facing)
    return forward > 0 and abs(lateral) <= forward


def _relation(delta: tuple[float, float], facing: str) -> str:
    """Word for a displacement on the map, seen by a viewer facing `facing`."""
    forward, lateral = _frame(delta, facing)
    if abs(lateral) >= abs(forward):
        return "right" if lateral > 0 else "left"
    return "behind" if forward > 0 else "front"


def _pair(a: list[int], b: list[int], facing: str) -> str:
    """Relation of an object at `a` to one at `b`: farther along the view is behind."""
    return _relation((a[0] - b[0], a[1] - b[1]), facing)


def _to_observer(p: list[int], facing: str) -> str:
    """Relation of an object at `p` to the observer at the center: ahead of the viewer is front."""
    word = _relation((p[0] - _CENTER[0], p[1] - _CENTER[1]), facing)
    return {"behind": "front", "front": "behind"}.get(word, word)


def _name(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() and value.strip() not in ("None", "null") else None


def _around_view(image: str, qid: str, n_group: int) -> str:
    m = re.search(r"(\d+)_frame(?:_[^.]+)?\.(?:png|jpg|jpeg)", Path(image).name)
    if not m:
        raise ValueError(f"around image name {image!r} has no '<k>_frame' index")
    k = 3 if int(m.group(1)) == 33 else int(m.group(1))  # MindCube's own fix of a typo in DL3DV names
    self_collected = qid.split("_")[0].replace("around", "") == "new"
    tables = {
        3: ["front", "left", "right"] if self_collected else ["front", "left", "right", "back"],
        4: ["front", "left", "right", "back"],
        5: ["front", "left", "right", "left", "right"],
        6: ["front", "left", "right", "left", "right", "back"] if self_collected else ["front", "left", "right", "front", "left", "right"],
    }
    if n_group not in tables or not 1 <= k <= len(tables[n_group]):
        raise ValueError(f"around view index {k} does not fit a group of {n_group} views")
    return tables[n_group][k - 1]


def _among_views(images: list[str]) -> list[str]:
    prefixes = [Path(p).name.split("_")[0] for p in images]
    if all(p in _VIEW_FACING for p in prefixes):
        return prefixes
    if len(images) == 4:
        return ["front", "left", "back", "right"]  # MindCube's fallback for unrecognized names
    raise ValueError(f"among image names {prefixes} are not front/left/right/back")


def references(record: dict[str, Any], setting: str) -> dict[int, list[list[Any]]]:
    """Each image's key reference triplets in its own frame (image number -> triplets; see the module
    docstring); raises ValueError when `meta_info` does not fit its setting's layout."""
    meta, images, qid = record.get("meta_info"), record.get("images") or [], str(record.get("id", ""))
    refs: dict[int, list[list[Any]]] = {}
    if setting == "among":
        objects = meta[0]
        if len(objects) != 5:
            raise ValueError(f"among meta_info needs 5 objects, got {len(objects)}")
        center = _name(objects[0])
        for k, view in enumerate(_among_views(images), 1):
            viewer, facing = _AMONG_VIEW_POS[view], _VIEW_FACING[view]
            if not (center and _in_view(_AMONG_POS[0], viewer, facing)):
                continue
            seen = [i for i in range(1, 5) if _name(objects[i]) and _in_view(_AMONG_POS[i], viewer, facing)]
            refs[k] = [[_name(objects[i]), center, _pair(_AMONG_POS[i], _AMONG_POS[0], facing)] for i in seen]
    elif setting == "around":
        n_group, (n_obj, objects) = meta[0][0], meta[1][:2]
        if n_obj != len(objects) or n_obj not in _AROUND_POS:
            raise ValueError(f"around meta_info: {n_obj} objects listed as {objects!r}")
        pos = _AROUND_POS[n_obj]
        for k, image in enumerate(images, 1):
            facing = _VIEW_FACING[_around_view(image, qid, int(n_group))]
            refs[k] = [
                [_name(objects[i]), _name(objects[i + 1]), _pair(pos[i], pos[i + 1], facing)]
                for i in range(n_obj - 1)
                if _name(objects[i]) and _name(objects[i + 1])
            ]
    elif setting == "rotation":
        kind = str(record.get("type", ""))
        if kind not in _ROTATION:
            raise ValueError(f"rotation type {kind!r} is not one of {sorted(_ROTATION)}")
        facings, positions = _ROTATION[kind]
        if not isinstance(meta, list) or len(meta) != len(positions):
            raise ValueError(f"rotation {kind} needs {len(positions)} objects, got {meta!r}")
        if len(images) != len(facings):
            raise ValueError(f"rotation {kind} has {len(facings)} views, but the question has {len(images)} images")
        for k, facing in enumerate(facings, 1):
            refs[k] = [
                [_name(obj), OBSERVER, _to_observer(p, facing)]
                for obj, p in zip(meta, positions, strict=True)
                if _name(obj) and _in_view(p, _CENTER, facing)
            ]
    else:
        raise ValueError(f"no cognitive-map layout for setting {setting!r}")
    return {k: v for k, v in refs.items() if v}


def to_sample(record: Any, *, root: Path, where: str, origin: str, split_setting: str | None = None) -> Sample:
    """One MindCube question as a Sample (bad input raises BadInput naming `where`)."""
    if not isinstance(record, dict):
        raise BadInput(where, f"expected a JSON object, got {type(record).__name__}")
    missing = [k for k in ("id", "question", "images", "gt_answer") if k not in record]
    if missing:
        raise BadInput(where, f"missing field(s) {missing}")
    if not isinstance(record["question"], str):
        raise BadInput(where, f"question must be a string, got {type(record['question']).__name__}")
    qid = str(record["id"])
    setting = split_setting or mindcube_setting(qid)
    if setting is None:
        raise BadInput(where, f"unknown task type: id {qid!r} names none of the settings {MINDCUBE_SETTINGS}")
    images = record["images"]
    if not isinstance(images, list) or not images or not all(isinstance(p, str) for p in images):
        raise BadInput(where, f"images must be a non-empty list of paths, got {images!r}")
    options = parse_options(record["question"])
    if not options:
        raise BadInput(where, "no inline options 'A. ... B. ...' in the question")
    loss = None
    try:
        refs = references(record, setting)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        # the question stays, without references; the loss is counted and listed by the writer (an
        # error with --require-references)
        refs, loss = [], f"meta_info {record.get('meta_info')!r} fits no {setting} layout ({type(exc).__name__}: {exc})"
    gt = choice_ground_truth(record["gt_answer"], options, setting, refs, where)
    question = with_placeholders(record["question"], len(images), where)
    group = str(Path(images[0]).parent)
    return Sample(
        data_source="mindcube",
        origin=origin,
        task=setting,
        question_id=qid,
        question=question,
        images=[ImageRef(label=p, path=root / p) for p in images],
        ground_truth=gt,
        group=group,
        where=where,
        reference_loss=loss,
    )


def read_jsonl(path: Path, bad: BadInputLog, origin: str) -> list[tuple[int, Any]]:
    """(line number, decoded object) for each non-empty line; undecodable lines are bad input."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as exc:
                bad.report(origin, BadInput(f"{path}:{lineno}", f"not JSON: {exc}"))
    return rows


def tinybench_samples(path: Path, bad: BadInputLog) -> list[Sample]:
    """Every MindCube-Tiny question (the official scorer's set), setting per question."""
    root = image_root(path)
    samples = []
    for lineno, record in read_jsonl(path, bad, "mindcube_tiny"):
        try:
            samples.append(to_sample(record, root=root, where=f"{path}:{lineno}", origin="mindcube_tiny"))
        except BadInput as exc:
            bad.report("mindcube_tiny", exc)
    return samples


class MindCubeCatalog(Catalog):
    """MindCube_train.jsonl by setting (among / around / rotation); translation is counted, not used."""

    origin = "mindcube"

    def __init__(self, root: Path, bad: BadInputLog, filename: str = TRAIN_FILE):
        super().__init__()
        self.path = find_raw(root, filename)
        self.root = image_root(self.path)
        self.bad = bad
        self.rows = read_jsonl(self.path, bad, self.origin)
        by_setting: dict[str, list[int]] = {s: [] for s in MINDCUBE_TRAINING_SETTINGS}
        for i, (lineno, record) in enumerate(self.rows):
            setting = mindcube_setting(str(record.get("id", ""))) if isinstance(record, dict) else None
            if setting in by_setting:
                by_setting[setting].append(i)
            elif setting == "translation":
                self.exclude("translation setting (not in MindCube-Tiny's metric)", setting)
            else:
                bad.report(
                    self.origin,
                    BadInput(
                        f"{self.path}:{lineno}",
                        f"unknown task type: id {record.get('id') if isinstance(record, dict) else record!r} names none of {MINDCUBE_SETTINGS}",
                    ),
                )
        self._categories = {s: np.asarray(v, dtype=np.int64) for s, v in by_setting.items() if v}

    def categories(self) -> dict[str, np.ndarray]:
        return self._categories

    def load(self, category: str, location: Any) -> Sample:
        lineno, record = self.rows[int(location)]
        return to_sample(record, root=self.root, where=f"{self.path}:{lineno}", origin=self.origin, split_setting=category)

"""TVR (Transformation-Driven Visual Reasoning, TRANCE scenes): answer format, ground truth, official metrics.

Pure Python (no torch, no veRL). The reward (`star_verl.rewards.tvr`) and the evaluation both read
answers with `parse_tvr_answer` / `response_triplets`: one parser for training and scoring.

Answer format: `index.attribute.value` items (0-based object index) separated by commas or new
lines inside the last `<answer>...</answer>` block, e.g. `2.color.cyan, 4.size.small`. The parser
is tolerant of case and of spaces around the dots, keeps the order, and keeps duplicates (each is
a prediction the reward can penalize). Position moves, which STAR-R1 leaves out but TRANCE has,
read `index.position.direction.step` (`3.position.behind-left.2`), so a converter run with position
moves still scores. Any `N.word.word` item is a prediction, also with an index outside the scene or
a value outside the vocabulary: such an item can never be an exact match but it still counts.

Official metrics (TVR's `src/criterion/components/evaluator.py`, `EventEvaluator`/`ViewEvaluator`,
on text predictions): the predicted transformations are applied in order to the initial objects
and the result is compared with the final state (the ground-truth transformations applied to the
same objects). Per sample (`tvr_sample_metrics`):
- `diff`: TVR's attribute distance: for every object, 1 per attribute (color, shape, size,
  material, position) that differs from the final state; positions are equal when they are equal
  and visible, or when both are outside the visible area.
- `ndiff`: diff / number of ground-truth transformations.
- `loose`: 1.0 when diff == 0.
- `strict`: TVR's accuracy: diff == 0 and no step of the prediction, applied in order, makes an
  object overlap another (checked after size and position steps, all objects, with TRANCE's radii)
  or moves one outside the valid area; here also every predicted item must be applicable (an
  index outside the scene or a value outside the vocabulary is an invalid step, which TVR's
  networks cannot produce).
- `err_overlap`, `err_invalid`: the two reasons a loose hit is not strict.
- `obj_acc`, `attr_acc`, `val_acc`: TVR's Basic-setting object/attribute/value accuracy extended to
  several steps with the reward's one-to-one matching: ground-truth transformations matched at
  object level (any tier), at attribute level (index+attribute or exact) and exactly, divided by
  max(n_gt, n_pred) so that enumerating does not raise them.
- `step_diff`: n_pred - n_gt (TVR's avg_step_diff).

`aggregate_tvr_metrics` averages them per view (center = in distribution, left/right = cross-view)
and in total. The 11 metrics reported (no source lists the paper's 11; this is our list):
 1. TAcc: mean of the three view accuracies (the paper's 61.4 = (76.3 + 2 x 53.9) / 3)
 2-4. Acc per view: center, left, right (strict)
 5. Acc over all samples (strict)   6. LAcc (loose)   7. Diff   8. NDiff
 9. ObjAcc   10. AttrAcc   11. ValAcc
plus every per-sample metric per view (`<view>/<metric>`) and `step_diff`, `n`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from star_verl.tasks.tags import TaggedResponse, as_text, parse_tags

# TRANCE's vocabularies (trance/resource/values.json, properties.json)
COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SHAPES = ("cube", "sphere", "cylinder")
SIZES = ("large", "medium", "small")
MATERIALS = ("rubber", "metal", "glass")
VOCAB: dict[str, tuple[str, ...]] = {"color": COLORS, "shape": SHAPES, "size": SIZES, "material": MATERIALS}
ATTRIBUTES = tuple(VOCAB)  # the attributes STAR-R1's task uses
# Position moves: direction -> grid vector (x, y); one step is 1.5 Blender units = 10 grid units.
DIRECTIONS = {
    "behind": (1, 0), "front": (-1, 0), "right": (0, 1), "left": (0, -1),
    "behind-right": (1, 1), "behind-left": (1, -1), "front-right": (-1, 1), "front-left": (-1, -1),
}  # fmt: skip
STEPS = (1, 2)
POSITION_VALUES = tuple(f"{d}.{s}" for d in DIRECTIONS for s in STEPS)
ALL_ATTRIBUTES = ATTRIBUTES + ("position",)
VIEWS = ("center", "left", "right")

# TRANCE geometry in grid units (unit 0.15 Blender units): radii 0.9/0.6/0.3, min gap 0.15,
# valid positions [-6, 6], visible area [-3, 3] (Blender units).
RADIUS = {"large": 6.0, "medium": 4.0, "small": 2.0}
MIN_GAP = 1.0
STEP_UNITS = 10
VALID_MAX = 40
VISIBLE_MAX = 20
_EPS = 1e-4  # TVR's EPSILON


class Triplet(NamedTuple):
    obj_idx: int
    attr: str
    val: str  # position moves: "direction.step"


@dataclass(frozen=True)
class TVRTransformation:
    obj_idx: int
    attr: str
    val: str
    options: tuple[str, ...]  # values accepted as exact (TRANCE lists every "out" move); (val,) otherwise

    def accepts(self, triplet: Triplet) -> bool:
        return triplet.obj_idx == self.obj_idx and triplet.attr == self.attr and triplet.val in self.options

    def to_dict(self) -> dict[str, Any]:
        return {
            "obj_idx": self.obj_idx,
            "attr": self.attr,
            "val": _value_json(self.attr, self.val),
            "options": [_value_json(self.attr, o) for o in self.options],
        }


@dataclass(frozen=True)
class TVRObject:
    color: str
    material: str
    shape: str
    size: str
    position: tuple[float, float]  # the numbers as written (TRANCE's are integer grid coordinates)

    def to_dict(self) -> dict[str, Any]:
        return {"color": self.color, "material": self.material, "shape": self.shape, "size": self.size, "position": list(self.position)}


@dataclass(frozen=True)
class TVRGroundTruth:
    transformations: tuple[TVRTransformation, ...]
    objects: tuple[TVRObject, ...]
    view: str
    task: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN.md (`parse_tvr_ground_truth` reads it back to an equal object)."""
        return {
            "transformations": [t.to_dict() for t in self.transformations],
            "objects": [o.to_dict() for o in self.objects],
            "view": self.view,
            "task": self.task,
        }

    @cached_property
    def initial(self) -> tuple[dict[str, Any], ...]:
        """The initial objects as the evaluator's state dicts (shared, never mutated: copy on write)."""
        return tuple({"color": o.color, "material": o.material, "shape": o.shape, "size": o.size, "position": o.position} for o in self.objects)

    @cached_property
    def final(self) -> _State:
        """The final state: the ground-truth transformations applied to the initial objects."""
        state = _State(self.initial)
        for t in self.transformations:
            state.apply(Triplet(t.obj_idx, t.attr, t.val))
        return state


# ---------------------------------------------------------------- ground truth


def _value_text(attr: str, value: Any, where: str) -> str:
    if attr == "position":
        if not (isinstance(value, (list, tuple)) and len(value) == 2):
            raise ValueError(f"{where}: position value must be [direction, step], got {value!r}")
        direction, step = value
        text = f"{direction}.{step}"
        if text not in POSITION_VALUES:
            raise ValueError(f"{where}: unknown position move {value!r}; directions {sorted(DIRECTIONS)}, steps {STEPS}")
        return text
    if value not in VOCAB[attr]:
        raise ValueError(f"{where}: unknown {attr} value {value!r}; expected one of {VOCAB[attr]}")
    return value


def _value_json(attr: str, text: str) -> str | list[Any]:
    """A value in the JSON form: a position move as TRANCE writes it, [direction, step]."""
    if attr == "position":
        direction, step = text.split(".")
        return [direction, int(step)]
    return text


def _number(p: Any) -> bool:
    return (type(p) is int or type(p) is float) and math.isfinite(p)


def _parse_object(i: int, obj: Any) -> TVRObject:
    where = f"objects[{i}]"
    if not isinstance(obj, Mapping):
        raise TypeError(f"{where} must be an object, got {type(obj).__name__}")
    for attr in ATTRIBUTES:
        if attr not in obj:
            raise KeyError(f"{where} has no {attr!r}")
        if obj[attr] not in VOCAB[attr]:
            _value_text(attr, obj[attr], where)  # raises with the vocabulary
    pos = obj.get("position")
    if not (isinstance(pos, (list, tuple)) and len(pos) == 2 and _number(pos[0]) and _number(pos[1])):
        raise ValueError(f"{where}: position must be [x, y] numbers, got {pos!r}")
    return TVRObject(obj["color"], obj["material"], obj["shape"], obj["size"], (pos[0], pos[1]))


def parse_tvr_ground_truth(gt: Mapping[str, Any]) -> TVRGroundTruth:
    """The TVR ground truth of DESIGN.md; raises ValueError/KeyError/TypeError naming the problem."""
    if not isinstance(gt, Mapping):
        raise TypeError(f"TVR ground truth must be an object, got {type(gt).__name__}")
    for key in ("transformations", "objects", "view"):
        if key not in gt:
            raise KeyError(f"TVR ground truth has no {key!r} (keys: {sorted(gt)})")
    objs = gt["objects"]
    if not isinstance(objs, list) or not objs:
        raise ValueError(f"'objects' must be a non-empty list, got {objs!r:.200}")
    objects = tuple(_parse_object(i, o) for i, o in enumerate(objs))
    trans = gt["transformations"]
    if not isinstance(trans, list) or not trans:
        raise ValueError(f"'transformations' must be a non-empty list (TVR samples have 1 to 4), got {trans!r:.200}")
    parsed = []
    for i, t in enumerate(trans):
        where = f"transformations[{i}]"
        if not isinstance(t, Mapping):
            raise TypeError(f"{where} must be an object, got {type(t).__name__}")
        for key in ("obj_idx", "attr", "val"):
            if key not in t:
                raise KeyError(f"{where} has no {key!r}")
        idx, attr = t["obj_idx"], t["attr"]
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(objects):
            raise ValueError(f"{where}: obj_idx {idx!r} is outside the {len(objects)} objects")
        if attr not in ALL_ATTRIBUTES:
            raise ValueError(f"{where}: unknown attr {attr!r}; expected one of {ALL_ATTRIBUTES}")
        val = _value_text(attr, t["val"], where)
        options = t.get("options")
        if options is None:
            opts = (val,)
        else:
            if not isinstance(options, list) or not options:
                raise ValueError(f"{where}: options must be a non-empty list, got {options!r}")
            opts = tuple(dict.fromkeys(_value_text(attr, o, f"{where}.options") for o in options))
            if val not in opts:
                raise ValueError(f"{where}: val {t['val']!r} is not among its options {options!r}")
        parsed.append(TVRTransformation(idx, attr, val, opts))
    view = gt["view"]
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    task = gt.get("task", "tvr")
    if not isinstance(task, str):
        raise TypeError(f"'task' must be a string, got {task!r}")
    return TVRGroundTruth(transformations=tuple(parsed), objects=objects, view=view, task=task)


# ---------------------------------------------------------------- answers

# An item: index, attribute, value; position moves carry a step. Spaces around dots and any case
# are accepted; the index must not continue a number or word ("1. 2.color.red" reads item 2).
_ITEM = re.compile(r"(?<![\w.])(\d+)\s*\.\s*(?:(position)\s*\.\s*([a-z]+(?:-[a-z]+)*)\s*\.\s*(\d+)|([a-z_]+)\s*\.\s*([a-z]+(?:-[a-z]+)*))")
_BIG_INDEX = 10**9  # stands for any index too long to be a real object
# Characters of the answer block read, by the reward and by the metrics alike (a right answer is < 100
# characters; a 16k-token generation is far shorter): bounded work on any response, one reading.
MAX_ANSWER_CHARS = 65536


def _triplet(m: re.Match) -> Triplet:
    digits = m.group(1).lstrip("0") or "0"
    idx = int(digits) if len(digits) < 10 else _BIG_INDEX
    if m.group(2):
        return Triplet(idx, "position", f"{m.group(3)}.{int(m.group(4)) if len(m.group(4)) < 10 else m.group(4)}")
    return Triplet(idx, m.group(5), m.group(6))


def parse_tvr_answer(answer_text: object, limit: int | None = None, max_chars: int | None = None) -> list[Triplet]:
    """The `index.attribute.value` items of an answer block, in order, duplicates kept; at most
    `limit` of them, read from at most the first `max_chars` characters (the rest is not read:
    bounded work on enumerations and junk).

    >>> parse_tvr_answer("2.color.cyan, 4 . Size . small, 3.position.behind-left.2")  # doctest: +NORMALIZE_WHITESPACE
    [Triplet(obj_idx=2, attr='color', val='cyan'), Triplet(obj_idx=4, attr='size', val='small'),
     Triplet(obj_idx=3, attr='position', val='behind-left.2')]
    >>> parse_tvr_answer("1.color.red, 1.color.red, 5.shape.cube", limit=2)
    [Triplet(obj_idx=1, attr='color', val='red'), Triplet(obj_idx=1, attr='color', val='red')]
    """
    items: list[Triplet] = []
    if limit is not None and limit <= 0:
        return items
    text = as_text(answer_text)
    for m in _ITEM.finditer((text[:max_chars] if max_chars is not None else text).lower()):
        items.append(_triplet(m))
        if limit is not None and len(items) >= limit:
            break
    return items


def response_triplets(response: object, limit: int | None = None, max_chars: int | None = None) -> list[Triplet]:
    """The items of a full model response (or its TaggedResponse): those of its last `<answer>`
    block; a response without a closed answer block predicts nothing.

    >>> response_triplets("<think>0.color.red?</think><answer>1.shape.cube</answer>"), response_triplets("0.color.red")
    ([Triplet(obj_idx=1, attr='shape', val='cube')], [])
    """
    answer = (response if isinstance(response, TaggedResponse) else parse_tags(response)).answer
    return parse_tvr_answer(answer, limit, max_chars) if answer is not None else []


# ---------------------------------------------------------------- matching


@dataclass(frozen=True)
class Match:
    """One-to-one tiered matching of predictions against the ground truth.

    Identical predictions are matched once (the first occurrence); as many exact matches as possible
    are taken first, then index+attribute, then index only; each ground-truth transformation is used
    at most once. No other one-to-one assignment has more exact matches, nor (with as many) more
    index+attribute ones, nor more index-only ones after them (tests/test_matchers_brute_force_on_cpu.py)."""

    n_exact: int
    n_attr: int
    n_index: int
    exact_gt: frozenset[int]  # ground-truth positions matched exactly
    n_unique: int


def match_triplets(pred: Sequence[Triplet], gt: Sequence[TVRTransformation], tiers: tuple[bool, bool] = (True, True)) -> Match:
    """`tiers` = (match index+attribute, match index only); a switched-off tier matches nothing.

    >>> gt = [TVRTransformation(0, "color", "red", ("red",)), TVRTransformation(1, "size", "large", ("large",))]
    >>> match_triplets(parse_tvr_answer("0.color.red, 0.color.red, 1.size.small, 1.shape.cube"), gt)
    Match(n_exact=1, n_attr=1, n_index=0, exact_gt=frozenset({0}), n_unique=3)
    >>> match_triplets(parse_tvr_answer("1.size.small"), gt, tiers=(False, True)).n_index
    1
    """
    unique = list(dict.fromkeys(pred))
    exact = _exact_matching(unique, gt)
    free = [gi for gi in range(len(gt)) if gi not in exact]
    matched = set(exact.values())
    left = [pi for pi in range(len(unique)) if pi not in matched]

    def take(same) -> int:
        used = set()
        for pi in list(left):
            for gi in free:
                if same(unique[pi], gt[gi]):
                    free.remove(gi)
                    left.remove(pi)
                    used.add(gi)
                    break
        return len(used)

    # within one object (and attribute) any transformation serves any prediction, so first come, first served is best
    n_attr = take(lambda p, g: p.obj_idx == g.obj_idx and p.attr == g.attr) if tiers[0] else 0
    n_index = take(lambda p, g: p.obj_idx == g.obj_idx) if tiers[1] else 0
    return Match(len(exact), n_attr, n_index, frozenset(exact), len(unique))


def _exact_matching(unique: Sequence[Triplet], gt: Sequence[TVRTransformation]) -> dict[int, int]:
    """A maximum one-to-one matching of predictions with the transformations that accept them, as
    {ground-truth position: prediction position}: first come, first served, then an augmenting path
    (Kuhn) for each prediction left out while a transformation accepting it was taken. That happens
    where two transformations of one object and attribute accept a common value (never in converted
    data: the converters merge them), or where one transformation accepts several predictions."""
    owner: dict[int, int] = {}
    blocked = []
    for pi, p in enumerate(unique):
        accepted = False
        for gi, g in enumerate(gt):
            if g.accepts(p):
                if gi not in owner:
                    owner[gi] = pi
                    break
                accepted = True
        else:
            if accepted:
                blocked.append(pi)

    def place(pi: int, seen: set[int]) -> bool:
        for gi, g in enumerate(gt):
            if gi not in seen and g.accepts(unique[pi]):
                seen.add(gi)
                if gi not in owner or place(owner[gi], seen):
                    owner[gi] = pi
                    return True
        return False

    for pi in blocked:
        place(pi, set())
    return owner


# ---------------------------------------------------------------- official metrics


class _State:
    """Objects as TVR's evaluator holds them: attributes plus grid positions. Copy on write: an
    object no step touched is the very dict of the initial state (the distance skips it fast)."""

    def __init__(self, initial: Sequence[dict[str, Any]]):
        self.objs = list(initial)

    def valid(self, t: Triplet) -> bool:
        if not 0 <= t.obj_idx < len(self.objs):
            return False
        return t.val in (POSITION_VALUES if t.attr == "position" else VOCAB.get(t.attr, ()))

    def apply(self, t: Triplet) -> tuple[bool, bool]:
        """Apply one valid step; (overlap error, invalid position error) as TVR's transform_step."""
        obj = self.objs[t.obj_idx] = dict(self.objs[t.obj_idx])
        if t.attr == "position":
            direction, step = t.val.split(".")
            dx, dy = DIRECTIONS[direction]
            x, y = obj["position"]
            obj["position"] = (x + dx * int(step) * STEP_UNITS, y + dy * int(step) * STEP_UNITS)
        else:
            obj[t.attr] = t.val
        out = t.attr == "position" and _visibility(obj["position"]) == "invalid"
        overlap = t.attr in ("position", "size") and self.overlaps(t.obj_idx)
        return overlap, out

    def overlaps(self, i: int) -> bool:
        x, y = self.objs[i]["position"]
        r = RADIUS[self.objs[i]["size"]]
        for j, other in enumerate(self.objs):
            if j != i:
                ox, oy = other["position"]
                if math.hypot(ox - x, oy - y) + _EPS < r + RADIUS[other["size"]] + MIN_GAP:
                    return True
        return False


def _visibility(pos: tuple[float, float]) -> str:
    x, y = pos
    if not (-VALID_MAX <= x <= VALID_MAX and -VALID_MAX <= y <= VALID_MAX):
        return "invalid"
    return "visible" if (-VISIBLE_MAX <= x <= VISIBLE_MAX and -VISIBLE_MAX <= y <= VISIBLE_MAX) else "invisible"


def _distance(pred: _State, target: _State) -> int:
    """TVR's compute_diff: differing attributes over all objects; position per visibility rule."""
    n = 0
    for p, t in zip(pred.objs, target.objs, strict=True):
        vis_t = _visibility(t["position"])
        if p is t:  # untouched in both: only an invalid position differs (TVR never equates those)
            n += vis_t == "invalid"
            continue
        n += sum(p[a] != t[a] for a in ATTRIBUTES)
        same = all(abs(a - b) < _EPS for a, b in zip(p["position"], t["position"], strict=True))
        pos_equal = (vis_t == "visible" and same) or (vis_t == "invisible" and _visibility(p["position"]) == "invisible")
        n += not pos_equal
    return n


def apply_prediction(pred: Iterable[Triplet], gt: TVRGroundTruth) -> dict[str, Any]:
    """Apply the prediction in order to the initial objects; distance to the final state and errors."""
    state = _State(gt.initial)
    overlap = out = invalid = False
    for t in pred:
        if not state.valid(t):
            invalid = True  # skipped: it names no object or no value of TRANCE
            continue
        o, e = state.apply(t)
        overlap |= o
        out |= e
    return {"diff": _distance(state, gt.final), "err_overlap": overlap, "err_out": out, "err_item": invalid}


METRIC_KEYS = ("strict", "loose", "diff", "ndiff", "obj_acc", "attr_acc", "val_acc", "step_diff", "err_overlap", "err_invalid")


def tvr_sample_metrics(prediction: object, gt: Mapping[str, Any] | TVRGroundTruth) -> dict[str, float]:
    """Per-sample official metrics. `prediction`: a full model response (its last `<answer>` block
    is read, as the reward does, within its first MAX_ANSWER_CHARS characters; no block means no
    prediction) or a list of Triplets (to score a baseline that answers without tags, pass
    `parse_tvr_answer(text)`)."""
    g = gt if isinstance(gt, TVRGroundTruth) else parse_tvr_ground_truth(gt)
    pred = list(prediction) if isinstance(prediction, (list, tuple)) else response_triplets(prediction, max_chars=MAX_ANSWER_CHARS)
    pred = [p if isinstance(p, Triplet) else Triplet(*p) for p in pred]
    applied = apply_prediction(pred, g)
    m = match_triplets(pred, g.transformations)
    n_gt, n_pred = len(g.transformations), len(pred)
    denom = max(n_gt, n_pred)
    loose = applied["diff"] == 0
    invalid = applied["err_out"] or applied["err_item"]
    return {
        "strict": float(loose and not applied["err_overlap"] and not invalid),
        "loose": float(loose),
        "diff": float(applied["diff"]),
        "ndiff": applied["diff"] / n_gt,
        "obj_acc": (m.n_exact + m.n_attr + m.n_index) / denom,
        "attr_acc": (m.n_exact + m.n_attr) / denom,
        "val_acc": m.n_exact / denom,
        "step_diff": float(n_pred - n_gt),
        "err_overlap": float(applied["err_overlap"]),
        "err_invalid": float(invalid),
    }


def aggregate_tvr_metrics(samples: Iterable[tuple[str, Mapping[str, float]]]) -> dict[str, float]:
    """Aggregate (view, per-sample metrics) pairs: means in total and per view (`center/strict`, ...),
    `acc` (strict, all samples), `lacc`, `tacc` (mean of the view accuracies present), counts `n`, `<view>/n`."""
    sums: dict[str, dict[str, float]] = {}
    for view, metrics in samples:
        if view not in VIEWS:
            raise ValueError(f"unknown TVR view {view!r}; expected one of {VIEWS}")
        for group in ("all", view):
            acc = sums.setdefault(group, {"n": 0.0})
            acc["n"] += 1
            for key in METRIC_KEYS:
                acc[key] = acc.get(key, 0.0) + float(metrics[key])
    out: dict[str, float] = {}
    for group, acc in sums.items():
        prefix = "" if group == "all" else f"{group}/"
        out[f"{prefix}n"] = acc["n"]
        for key in METRIC_KEYS:
            out[f"{prefix}{key}"] = acc[key] / acc["n"]
    if "all" in sums:
        views = [v for v in VIEWS if v in sums]
        out["acc"] = out["strict"]
        out["lacc"] = out["loose"]
        out["tacc"] = sum(out[f"{v}/strict"] for v in views) / len(views)
    return out


# ---------------------------------------------------------------- the headline as a row mean

OOD_VIEWS = ("left", "right")  # cross-view; center is in distribution
VIEW_ROWS_KEY = "view_rows"  # extra_info key StarRLDataset adds to its validation rows: the set's TVR rows per view


def view_weights(view: str, view_rows: Mapping[str, int]) -> tuple[float, float, float]:
    """(TAcc, ID, OOD) weights of a row of `view` in a set with `view_rows` TVR rows per view: the
    plain mean over the set's rows of weight x strict is TAcc (the mean of the per-view accuracies,
    as `aggregate_tvr_metrics` computes it), the center accuracy and the mean of the left and right
    accuracies, for any number of rows per view. veRL's validation averages each reward key over the
    rows of a data source, so these weighted keys log the paper's numbers exactly (up to float
    rounding). A row of a view the set does not count raises ValueError: the counts are not its set's."""
    counts = {v: int(view_rows.get(v, 0)) for v in VIEWS}
    if counts.get(view, 0) <= 0:
        raise ValueError(f"{VIEW_ROWS_KEY}={dict(view_rows)} counts no {view!r} row: it is not the set this row belongs to")
    n = sum(counts.values())
    present = [v for v in VIEWS if counts[v] > 0]
    ood = [v for v in OOD_VIEWS if counts[v] > 0]
    n_view = counts[view]
    tacc = n / (len(present) * n_view)
    acc_id = n / n_view if view == "center" else 0.0
    acc_ood = n / (len(ood) * n_view) if view in ood else 0.0
    return tacc, acc_id, acc_ood

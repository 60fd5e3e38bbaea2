"""A synthetic multi-view set in MindCube's style, generated from known 3D scenes (`star-verl
build-multiview --synthetic N`): CLEVR-like objects rendered by the TVR renderer
(`star_verl.prep.synthetic_tvr.render`) from 2 to 4 cameras, in MindCube's three settings:

- rotation: the camera stands at the center and turns in place by multiples of 90 degrees; one object
  in each direction it faces (MindCube's rotation layout);
- around: 2 to 4 objects near the center; the camera moves around them on a circle, facing them,
  by multiples of 90 degrees;
- among: a central object with one object on each of its four sides; each view stands between the
  center and one side object, facing the center (it sees the center and the object behind it).

One question per scene, with four options; the answer letter of question i is "ABCD"[i % 4], so the
letters are balanced. Questions (MindCube's kinds): which object is to your left / right / behind
when standing at view k (rotation, among); how the camera turned (rotation) or moved (around)
between two views; where one object is relative to another from view k (around, among). The right
option comes from the scene's geometry (`direction_of`, `relation_of` on the objects' ground
positions and the cameras' poses), never from rendered text.

Every view's key references are exact: the objects the view shows (at least `MIN_PIXELS` pixels
in the renderer's object-index map), related in that view's own frame with MindCube's rules
(rotation: each seen object to the observer; among: each seen object to the center; around: each
seen object to the next seen one), a relation kept only when it is clear (the larger of the lateral
and the depth offset at least `CLEAR_RATIO` times the smaller). The oracle chain of a question
(`oracle_chain`) states exactly those references in Step 1, maps the views onto the first one in
Step 2 and derives the answer in Step 3, in the three-step template's format.

Same (seed, index) -> the same scene, question and images, whatever the number of worker processes.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from star_verl.prep.multiview import OBSERVER, Catalog, ImageRef, Sample, choice_ground_truth, question_text_key, with_placeholders
from star_verl.prep.synthetic_tvr import Camera, encode_png, pixel_counts, render
from star_verl.prep.trance_format import COLORS, GRID_UNIT, SHAPES
from star_verl.tasks.registry import MINDCUBE_TRAINING_SETTINGS

ORIGIN = "synthetic_mv"
LETTERS = ("A", "B", "C", "D")
MIN_PIXELS = 150  # visible pixels for an object to count as shown in a view (TRANCE's occlusion threshold at 320x240)
CLEAR_RATIO = 1.5  # a relation is stated only when max(|lateral|, |depth|) >= CLEAR_RATIO * min(...)
MATERIALS = ("rubber", "metal")  # glass is left out: a see-through object is hard to name in a small view
SIZE = "small"  # TRANCE's sizes: small objects fit every layout in the renderer's visible area
NAMES = tuple(f"{color} {shape}" for color in COLORS for shape in SHAPES)
_HFOV = math.radians(60.0)
_LOOK_AHEAD = {"rotation": 2.3, "among": 1.9}  # around: the distance to the center
# split fractions of N questions: validation, SFT pool, the rest RL (each at least one question)
VAL_FRACTION, SFT_POOL_FRACTION = 1 / 6, 1 / 3
ORACLE_VAL_FRACTION = 0.2  # share of the SFT pool's questions whose oracle chain goes to sft/val.parquet

DIRECTIONS = ("front", "right", "behind", "left")  # clockwise, seen from above: a 90-degree turn right is one step
_YOU = {"left": "to your left", "right": "to your right", "behind": "behind you", "front": "in front of you"}
_RELATION_TEXT = {"left": "left of", "right": "right of", "front": "in front of", "behind": "behind"}
_PLACE = {"front": "ahead of", "behind": "behind", "left": "to the left of", "right": "to the right of"}
_FACING_TEXT = ("facing the same way as image 1", "facing 90 degrees to the right of image 1", "facing opposite to image 1",
                "facing 90 degrees to the left of image 1")  # fmt: skip
TURN_OPTIONS = ("turned left by 90 degrees", "turned right by 90 degrees", "turned around by 180 degrees", "did not turn")
MOVE_OPTIONS = ("moved to its left around the objects", "moved to its right around the objects", "moved to the opposite side", "did not move")


# --------------------------------------------------------------------------------------------
# geometry on the ground plane: world X right, Y away from the first camera (the TVR renderer's frame)


@dataclass(frozen=True)
class View:
    """A camera's pose on the ground: its position and the unit direction it faces (its yaw)."""

    x: float
    y: float
    yaw: float  # radians; 0 faces +Y, pi/2 faces +X (a turn to the right)

    @property
    def forward(self) -> tuple[float, float]:
        return math.sin(self.yaw), math.cos(self.yaw)

    @property
    def right(self) -> tuple[float, float]:
        return math.cos(self.yaw), -math.sin(self.yaw)

    def frame(self, dx: float, dy: float) -> tuple[float, float]:
        """(lateral, depth) of a ground displacement in this view's frame: lateral > 0 to its right, depth > 0 ahead."""
        (fx, fy), (rx, ry) = self.forward, self.right
        return dx * rx + dy * ry, dx * fx + dy * fy


def _word(lateral: float, depth: float, ahead: str, back: str) -> str | None:
    if max(abs(lateral), abs(depth)) < CLEAR_RATIO * min(abs(lateral), abs(depth)):
        return None
    if abs(lateral) > abs(depth):
        return "right" if lateral > 0 else "left"
    return ahead if depth > 0 else back


def direction_of(view: View, point: tuple[float, float]) -> str | None:
    """Where a point lies seen by a viewer at `view`: front / right / behind / left, None when unclear."""
    return _word(*view.frame(point[0] - view.x, point[1] - view.y), "front", "behind")


def relation_of(view: View, a: tuple[float, float], b: tuple[float, float]) -> str | None:
    """Relation of an object at `a` to one at `b` in the view's frame (farther along the view: behind;
    MindCube's rule), None when unclear."""
    return _word(*view.frame(a[0] - b[0], a[1] - b[1]), "behind", "front")


def turn_between(a: View, b: View) -> int:
    """Quarter turns to the right from pose a's facing to pose b's (0..3)."""
    return round((b.yaw - a.yaw) / (math.pi / 2)) % 4


# --------------------------------------------------------------------------------------------
# scenes


@dataclass
class Scene:
    setting: str
    names: list[str]
    points: list[tuple[float, float]]  # ground positions of the objects (world units), from their grid cells
    views: list[View]
    heights: list[float]  # camera heights
    center: int | None = None  # among: the central object
    objects: list[dict[str, Any]] = field(default_factory=list)  # the renderer's object records

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "objects": [{"name": n, "x": round(p[0], 4), "y": round(p[1], 4)} for n, p in zip(self.names, self.points, strict=True)],
            "cameras": [{"x": round(v.x, 4), "y": round(v.y, 4), "yaw_degrees": round(math.degrees(v.yaw), 4), "z": h} for v, h in zip(self.views, self.heights, strict=True)],
            "center": self.center,
        }  # fmt: skip


def _grid(x: float, y: float) -> list[int]:
    """World ground position -> the TVR grid cell [behind, right] (the renderer's object position)."""
    return [round(y / GRID_UNIT), round(x / GRID_UNIT)]


def _sample_scene(rng: np.random.Generator, setting: str) -> Scene:
    n_views = int(rng.integers(2, 5))
    steps = [0, *(int(s) for s in rng.permutation([1, 2, 3])[: n_views - 1])]  # quarter turns of each view from view 1
    base = float(rng.uniform(0, 2 * math.pi))
    center = None
    if setting == "rotation":  # the camera at the center; one object in each direction a view faces
        views = [View(0.0, 0.0, base + s * math.pi / 2) for s in steps]
        dist = [float(rng.uniform(2.0, 2.6)) for _ in steps]
        raw = [(d * v.forward[0], d * v.forward[1]) for d, v in zip(dist, views, strict=True)]
        heights = [1.0] * n_views
    elif setting == "around":  # 2-4 objects near the center; the camera circles them
        n_obj = int(rng.integers(2, 5))
        raw = []
        while len(raw) < n_obj:
            p = (float(rng.uniform(-1.3, 1.3)), float(rng.uniform(-1.3, 1.3)))
            if all(math.dist(p, q) > 0.9 for q in raw):
                raw.append(p)
        radius = float(rng.uniform(4.3, 4.9))
        views = []
        for s in steps:
            yaw = base + s * math.pi / 2
            views.append(View(-radius * math.sin(yaw), -radius * math.cos(yaw), yaw))
        heights = [2.7] * n_views
    else:  # among: a center object and four side objects; each view between the center and a side object
        d = float(rng.uniform(2.2, 2.6))
        raw = [(0.0, 0.0)] + [(d * math.sin(base + k * math.pi / 2), d * math.cos(base + k * math.pi / 2)) for k in range(4)]
        center = 0
        views = []
        for s in steps:  # view s stands on side (s + 2) % 4, facing the center (so side s is behind the center)
            yaw = base + s * math.pi / 2
            views.append(View(-1.3 * math.sin(yaw), -1.3 * math.cos(yaw), yaw))
        heights = [1.9] * n_views
    names = [str(n) for n in rng.choice(NAMES, size=len(raw), replace=False)]
    cells = [_grid(*p) for p in raw]
    points = [(c[1] * GRID_UNIT, c[0] * GRID_UNIT) for c in cells]
    objects = [
        {
            "color": name.split(" ")[0],
            "shape": name.split(" ")[1],
            "material": str(rng.choice(MATERIALS)),
            "size": SIZE,
            "position": cell,
            "rotation": round(float(rng.uniform(0, 2 * math.pi)), 4),
            "name": f"Object_{i}",
        }
        for i, (name, cell) in enumerate(zip(names, cells, strict=True))
    ]
    return Scene(setting, names, points, views, heights, center, objects)


def camera_of(scene: Scene, k: int) -> Camera:
    """The renderer's camera of view k: at its pose and height, looking along its yaw and down."""
    v, h = scene.views[k], scene.heights[k]
    reach = _LOOK_AHEAD.get(scene.setting, math.hypot(v.x, v.y))  # how far ahead on the ground it looks (around: the center)
    target = (v.x + reach * v.forward[0], v.y + reach * v.forward[1], 0.2)
    return Camera.looking_at((v.x, v.y, h), target, hfov=_HFOV)


def view_references(scene: Scene, seen: Sequence[Sequence[int]]) -> dict[int, list[list[Any]]]:
    """Each view's key references (view number from 1 -> triplets), from the objects it shows."""
    refs: dict[int, list[list[Any]]] = {}
    for k, (view, shown) in enumerate(zip(scene.views, seen, strict=True), 1):
        triplets = []
        if scene.setting == "rotation":
            for i in shown:
                word = direction_of(view, scene.points[i])
                if word is not None:
                    triplets.append([scene.names[i], OBSERVER, word])
        elif scene.setting == "among":
            for i in shown:
                if i != scene.center and scene.center in shown:
                    word = relation_of(view, scene.points[i], scene.points[scene.center])
                    if word is not None:
                        triplets.append([scene.names[i], scene.names[scene.center], word])
        else:
            for a, b in zip(shown, shown[1:], strict=False):
                word = relation_of(view, scene.points[a], scene.points[b])
                if word is not None:
                    triplets.append([scene.names[a], scene.names[b], word])
        refs[k] = triplets
    return refs


# --------------------------------------------------------------------------------------------
# questions


@dataclass(frozen=True)
class Question:
    kind: str  # direction | turn | move | relation
    text: str  # without the images' placeholders and the options
    options: tuple[str, ...]  # in letter order
    answer: str  # the letter
    reasoning: str  # Step 3 of the oracle chain


def _options(rng: np.random.Generator, right: str, wrong: Sequence[str], letter: str) -> tuple[str, ...]:
    others = [str(o) for o in rng.permutation(list(wrong))[:3]]
    slot = LETTERS.index(letter)
    return tuple(others[:slot] + [right] + others[slot:])


def _distractor_names(rng: np.random.Generator, scene: Scene, right: str) -> list[str]:
    """Other objects of the scene first, then names not in the scene, to make three wrong options."""
    inside = [n for n in scene.names if n != right]
    outside = [n for n in NAMES if n not in scene.names]
    return [str(n) for n in rng.permutation(inside)] + [str(n) for n in rng.permutation(outside)[: max(0, 3 - len(inside))]]


def _question(rng: np.random.Generator, scene: Scene, seen: Sequence[Sequence[int]], letter: str) -> Question | None:
    n = len(scene.views)
    shown_anywhere = sorted({i for s in seen for i in s})
    kinds = {"rotation": ("direction", "turn"), "around": ("relation", "move"), "among": ("direction", "relation")}[scene.setting]
    kind = str(rng.choice(kinds))
    if kind == "direction":  # which object is to your left / right / behind at view i (the object must be shown in some view)
        candidates = []
        for vi in range(n):
            for i in shown_anywhere:
                word = direction_of(scene.views[vi], scene.points[i])
                if word in ("left", "right", "behind") and [direction_of(scene.views[vi], p) for p in scene.points].count(word) == 1:
                    candidates.append((vi, i, word))
        if not candidates:
            return None
        vi, i, word = candidates[int(rng.integers(len(candidates)))]
        right = scene.names[i]
        text = f"You stand where image {vi + 1} was taken, facing the way image {vi + 1} looks. Which object is {_YOU[word]}?"
        why = f"Standing at image {vi + 1}'s position and facing its way, the {right} lies {_YOU[word]}; no other option does. So the answer is {letter}."
        return Question("direction", text, _options(rng, right, _distractor_names(rng, scene, right), letter), letter, why)
    if kind in ("turn", "move"):
        a, b = (int(x) for x in rng.choice(n, size=2, replace=False))
        quarter = turn_between(scene.views[a], scene.views[b])
        labels = TURN_OPTIONS if kind == "turn" else MOVE_OPTIONS
        # turning in place by a quarter to the right faces right; circling the center while facing it, a quarter
        # turn to the right moves the camera to its left (it stands at minus its facing times the radius)
        right = labels[({3: 0, 1: 1, 2: 2, 0: 3} if kind == "turn" else {1: 0, 3: 1, 2: 2, 0: 3})[quarter]]
        names = " and the ".join(scene.names[i] for i in shown_anywhere)
        if kind == "turn":
            text = f"The camera stays in one place among the {names}. From image {a + 1} to image {b + 1}, how did the camera turn?"
            side = DIRECTIONS[quarter]
            why = (
                f"Image {b + 1} faces the direction that is {_YOU[side]} at image {a + 1}, so from image {a + 1} to image {b + 1} the camera {right}."
            )
        else:
            text = f"The camera moves around the {names}, facing them. From image {a + 1} to image {b + 1}, how did the camera move?"
            side = direction_of(scene.views[a], (scene.views[b].x, scene.views[b].y)) or "front"
            why = (f"Seen from image {a + 1}'s camera, image {b + 1}'s camera stands {_YOU[side]} and faces the objects, "
                   f"so from image {a + 1} to image {b + 1} the camera {right}.")  # fmt: skip
        return Question(kind, text, _options(rng, right, [x for x in labels if x != right], letter), letter, why)
    # relation: where is object X relative to object Y, seen from view i (among: Y is the center)
    candidates = []
    for vi in range(n):
        pairs = [(x, scene.center) for x in shown_anywhere if x != scene.center] if scene.setting == "among" else [
            (x, y) for x in shown_anywhere for y in shown_anywhere if x != y]  # fmt: skip
        for x, y in pairs:
            if y in shown_anywhere:
                word = relation_of(scene.views[vi], scene.points[x], scene.points[y])
                if word is not None:
                    candidates.append((vi, x, y, word))
    if not candidates:
        return None
    vi, x, y, word = candidates[int(rng.integers(len(candidates)))]
    right = _RELATION_TEXT[word]
    text = f"From the viewpoint of image {vi + 1}, where is the {scene.names[x]} relative to the {scene.names[y]}?"
    why = f"In image {vi + 1}'s frame the {scene.names[x]} is {right} the {scene.names[y]}. So the answer is {letter}."
    return Question("relation", text, _options(rng, right, [t for t in _RELATION_TEXT.values() if t != right], letter), letter, why)


def question_text(question: Question, n_images: int) -> str:
    """The row's question: the images first (MindCube's convention), then the text and the inline options."""
    options = " ".join(f"{letter}. {option}" for letter, option in zip(LETTERS, question.options, strict=True))
    return with_placeholders(f"{question.text} {options}", n_images, "synthetic_mv")


# --------------------------------------------------------------------------------------------
# the oracle chain


def _place(word: str | None) -> str:
    return _PLACE[word] if word else "diagonal to"


def oracle_chain(scene: Scene, refs: dict[int, list[list[Any]]], question: Question) -> str:
    """The three-step chain from the geometry: Step 1 states each view's key references exactly,
    Step 2 maps every view and object onto image 1's frame, Step 3 derives the answer."""
    step1 = "\n".join(f"Image {k}: " + " ".join(f"[{a}, {b}, {r}]" for a, b, r in refs[k]) for k in sorted(refs))
    first = scene.views[0]
    poses = []
    for k, view in enumerate(scene.views[1:], 2):
        facing = _FACING_TEXT[turn_between(first, view)]
        if scene.setting == "rotation":
            poses.append(f"image {k} is taken from the same place, {facing}")
        else:
            poses.append(f"image {k}'s camera stands {_place(direction_of(first, (view.x, view.y)))} image 1's camera, {facing}")
    places = [f"the {name} is {_place(direction_of(first, p))} it" for name, p in zip(scene.names, scene.points, strict=True)]
    places[0] = places[0].replace(" it", " image 1's camera", 1)
    step2 = "; ".join(poses) + ". Seen from image 1, " + ", ".join(places) + "."
    return (
        f"<think>Step 1 (per-view reference analysis):\n{step1}\n"
        f"Step 2 (cross-view spatial mapping): {step2[0].upper() + step2[1:]}\n"
        f"Step 3 (spatial reasoning): {question.reasoning}</think><answer>{question.answer}</answer>"
    )


# --------------------------------------------------------------------------------------------
# samples


@dataclass
class SyntheticQuestion:
    """One generated question: its sample (images as PNG bytes), its oracle chain and its scene record."""

    sample: Sample
    chain: str
    record: dict[str, Any]


def question_id(seed: int, idx: int) -> str:
    return f"synthetic_mv_{seed}_{idx:06d}"


def setting_of(idx: int) -> str:
    return MINDCUBE_TRAINING_SETTINGS[idx % len(MINDCUBE_TRAINING_SETTINGS)]


def generate_question(idx: int, seed: int, salt: int = 0) -> SyntheticQuestion:
    """Question idx of the set (seed): depends only on (seed, idx, salt); `salt` > 0 draws another
    scene (used when a question's text repeats an earlier one's)."""
    rng = np.random.default_rng([seed, idx, salt])
    setting, letter = setting_of(idx), LETTERS[idx % len(LETTERS)]
    for _attempt in range(200):
        scene = _sample_scene(rng, setting)
        rendered = [render(scene.objects, camera_of(scene, k)) for k in range(len(scene.views))]
        seen = []
        for _, ids in rendered:
            counts = pixel_counts(ids)
            seen.append([i for i in range(len(scene.names)) if counts.get(i, 0) >= MIN_PIXELS])
        refs = view_references(scene, seen)
        if not all(refs.values()):
            continue  # every view must show a key reference (Step 1 has a triplet under every image)
        question = _question(rng, scene, seen, letter)
        if question is None:
            continue
        qid = question_id(seed, idx)
        where = f"synthetic_mv seed {seed} question {idx}"
        n = len(scene.views)
        gt = choice_ground_truth(question.answer, LETTERS, setting, refs, where)
        labels = [f"synthetic_mv/{qid}_view{k}.png" for k in range(1, n + 1)]
        sample = Sample(
            data_source="mindcube",
            origin=ORIGIN,
            task=setting,
            question_id=qid,
            question=question_text(question, n),
            images=[ImageRef(label=label, data=encode_png(image)) for label, (image, _) in zip(labels, rendered, strict=True)],
            ground_truth=gt,
            group=qid,
            where=where,
        )
        record = {
            "question_id": qid,
            "kind": question.kind,
            "question": question.text,
            "options": dict(zip(LETTERS, question.options, strict=True)),
            "answer": question.answer,
            "references": {str(k): v for k, v in refs.items()},
            "seen": [[scene.names[i] for i in s] for s in seen],
            "scene": scene.to_dict(),
        }
        return SyntheticQuestion(sample, oracle_chain(scene, refs, question), record)
    raise RuntimeError(f"synthetic multi-view question {idx} (seed {seed}): no valid scene in 200 attempts")


def _generate(args: tuple[int, int, int]) -> SyntheticQuestion:
    return generate_question(*args)


def generate_questions(n: int, seed: int, *, workers: int = 1) -> list[SyntheticQuestion]:
    """Questions 0..n-1; a question whose text repeats an earlier one's (the leakage check's question
    key) is drawn again with the next salt, in index order, so the set does not depend on `workers`."""
    from concurrent.futures import ProcessPoolExecutor

    if n < 3:
        raise ValueError(f"--synthetic needs at least 3 questions (one each for validation, RL and the SFT pool), got {n}")
    jobs = [(i, seed, 0) for i in range(n)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            out = list(pool.map(_generate, jobs, chunksize=2))
    else:
        out = [_generate(job) for job in jobs]
    seen: set[str] = set()
    for i in range(n):
        salt = 0
        while question_text_key(out[i].sample.question) in seen:
            salt += 1
            out[i] = generate_question(i, seed, salt)
        seen.add(question_text_key(out[i].sample.question))
    return out


def split_sizes(n: int) -> dict[str, int]:
    """Validation, RL and SFT-pool sizes of N questions (each at least one)."""
    n_val = max(1, round(n * VAL_FRACTION))
    n_sft = max(1, round(n * SFT_POOL_FRACTION))
    return {"val": n_val, "train": n - n_val - n_sft, "sft_pool": n_sft}


class SyntheticCatalog(Catalog):
    """The generated questions by setting, for the converters' split drawing (`draw_splits`)."""

    origin = ORIGIN

    def __init__(self, questions: Sequence[SyntheticQuestion]):
        super().__init__()
        self.questions = list(questions)
        self._categories = {
            s: np.asarray([i for i, q in enumerate(self.questions) if q.sample.task == s], dtype=np.int64) for s in MINDCUBE_TRAINING_SETTINGS
        }

    def categories(self) -> dict[str, np.ndarray]:
        return {s: v for s, v in self._categories.items() if len(v)}

    def load(self, category: str, location: Any) -> Sample:
        return self.questions[int(location)].sample


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------
# the oracle chains as star_r1_sft's data

ORACLE_MODEL = "synthetic oracle chains (star_verl.prep.synthetic_mv: written from the scene geometry, no teacher)"


def write_oracle_chains(pool_path: Path, generated: Sequence[SyntheticQuestion], out_dir: Path) -> dict[str, Any]:
    """Each SFT-pool question's oracle chain, judged by the teacher's SFT filter (`judge_chain`) and
    written by the teacher's writer to `out_dir/{train,val}.parquet` (+ report.json/.md saying they are
    synthetic oracle chains; every row's extra_info.origin is `synthetic_mv`). A chain the filter refuses
    is a generator bug: an error naming the question and the reasons, nothing written."""
    from star_verl.prep.teacher.filter import judge_chain
    from star_verl.prep.teacher.outputs import Outputs, rates, val_questions, write_outputs
    from star_verl.prep.teacher.pool import load_pool
    from star_verl.prep.teacher.settings import TEMPLATE_NAME

    questions = load_pool(pool_path)
    chains = {q.sample.question_id: q.chain for q in generated}
    refused = []
    per_cat: dict[str, Counter] = {}
    for q in questions:
        decision = judge_chain(chains[q.question_id], data_source=q.data_source, ground_truth=q.ground_truth, extra_info=q.extra_info)
        if not decision.keep:
            refused.append(f"{q.question_id}: {'; '.join(decision.reasons)}")
        c = per_cat.setdefault(q.category, Counter())
        c.update({"questions": 1, "samples": 1, "answered": 1, "kept": int(decision.keep), "questions_kept": int(decision.keep)})
    if refused:
        raise RuntimeError("oracle chains the SFT filter refuses (a bug of the generator):\n  " + "\n  ".join(refused))
    kept = {q.question_id: [chains[q.question_id].strip()] for q in questions}
    val_ids = frozenset(val_questions(list(kept), ORACLE_VAL_FRACTION))
    total = sum(per_cat.values(), Counter())
    report = {
        "pool": f"{pool_path.parent.name}/{pool_path.name}",  # relative: the output does not depend on where it is built
        "model": ORACLE_MODEL,
        "chains": "synthetic_oracle",
        "template": TEMPLATE_NAME,
        "samples_per_question": 1,
        "val_fraction": ORACLE_VAL_FRACTION,
        "length_check": {"checked": False, "tokenizer": None, "max_response_length": None},
        "total": rates(total),
        "rows": {"train": len(kept) - len(val_ids), "val": len(val_ids)},
        "tokens": {"prompt": 0, "completion": 0},
        "categories": {name: {**rates(per_cat[name]), "rejected_by": {}} for name in sorted(per_cat)},
        "rejected_by": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(Outputs(kept=kept, val_ids=val_ids, rejected=[], failed=[], report=report), pool_path, out_dir, questions)
    return {"out": str(out_dir), **report["rows"]}

"""SPAR-7M (training, multi-view tasks) and SPAR-Bench (evaluation).

SPAR-7M layout (`--spar` = the `spar/` folder, or one dataset folder in it):
`<dataset>/qa_jsonl/train/<task>/<format>/<format>_<N>.jsonl` and `<dataset>/images/<scene>/...`.
A record: `id`, `conversations` ([human question, gpt answer]), `image` (paths relative to
`<dataset>/images`), `type` (the task), marker geometry (`red_point`, `blue_bbox`, ..., in 0-1000
coordinates) and for multi-view tasks `point_img_idx` / `bbox_img_idx`. The images are clean: the
markers are drawn here (`star_verl.prep.markers`).

Used: the multi-view tasks (`SPAR7M_MULTIVIEW_TASKS` of `star_verl.tasks.registry`, which holds
every task name SPAR defines), format `select` (a letter among the question's "A. ..." lines) for
all of them, and `fill` where the answer is a number (depth and distance prediction) or the
view-change string (view_change_infer). `sentence` and `judge` answers and the
other `fill`s (boxes, coordinates, names) cannot be scored by rule: counted, not used. Single-view and
video tasks are counted, not read. A task folder or `type` that SPAR does not define is bad input.

SPAR-Bench (`--sparbench` = the folder with `test-0000{0..3}-of-00004.parquet`): `id`, `image`
(list of {bytes, path}, markers already drawn), `question` (options included), `answer`, `task`,
`img_type`, `format_type`, `source`. The task decides the answer kind, as in the official scorer.

References (never from the answer: R_ref must ground, not repeat R_ans): the objects SPAR marks,
named in the question ("sink (red bbox)", "books (red point)", "the red bbox of mat").
- SPAR-7M, per view (`{"1": [...], ...}`): image k's references come only from the markers drawn on
  image k (`star_verl.prep.markers.marker_plan`), as left/right in that image (0-1000 coordinates; a
  point spans one x, a box its x1..x2): two marked objects `[a, b, left]` when a's extent ends at least
  `MARKER_GAP` left of b's start; a marked object and the camera `[a, "observer", left]` when its
  extent ends at least `MARKER_GAP` left of the image centre (right likewise). Anything closer is left
  out, and so are above/below and front/behind (image height and marker size do not tell them). In
  image 1 (the primary view) a relation of the kind the answer states there is left out too:
  object-camera for `obj_spatial_relation_oc_mv`, object-object for `obj_spatial_relation_oo_mv`
  (`ANSWER_RELATIONS_IN_PRIMARY_VIEW`). A marked object image k relates to nothing is bare there
  (`[name, null, null]`); a marker whose colour the question names for no object is left out (one
  object named without a colour, "sink (bbox)", is the one drawn colour no mention names).
- SPAR-Bench (markers already drawn, no coordinates released): bare references, one per marked
  object, flat (the image is not known).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from star_verl.prep.markers import Marker, MarkerError, MarkerPlan, marker_plan
from star_verl.prep.multiview import (
    OBSERVER,
    BadInput,
    BadInputLog,
    Catalog,
    ImageRef,
    References,
    Sample,
    choice_ground_truth,
    numeric_ground_truth,
    parquet_samples,
    view_change_ground_truth,
    with_placeholders,
)
from star_verl.tasks.multiview import MultiViewGroundTruth
from star_verl.tasks.references import normalize_object
from star_verl.tasks.registry import SPAR7M_ANSWER_FORMATS, SPAR7M_MULTIVIEW_TASKS, SPAR7M_TASKS, spar_answer_type

_LINE_OPTION = re.compile(r"^\s*([A-Z])\s*[.)]\s?(.*)$", re.MULTILINE)
_MARKED = re.compile(r"([A-Za-z][A-Za-z0-9\-' ]*?)\s*\((?:(red|blue|green|yellow)\s+)?(point|bbox)\)")
_BBOX_OF = re.compile(r"\b(red|blue|green|yellow) (?:bbox|point) of (?:the )?([A-Za-z][A-Za-z0-9\-' ]*?)(?= in\b| on\b|[,.?])")
_STOP = {
    "the",
    "a",
    "an",
    "of",
    "is",
    "are",
    "object",
    "with",
    "to",
    "and",
    "if",
    "how",
    "what",
    "where",
    "from",
    "relative",
    "that",
    "at",
    "in",
    "on",
    "by",
    "for",
    "faces",
    "face",
    "moves",
    "move",
    "deep",
    "far",
    "between",
    "describe",
    "which",
    "does",
    "do",
    "be",
    "it",
    "its",
    "as",
    "assume",
    "given",
    "depth",
    "distance",
    "center",
    "centre",
    "observer",
    "located",
    "position",
    "spatial",
    "situated",
    "than",
    "facing",
    "moving",
    "moved",
    "orienting",
    "oriented",
    "towards",
    "toward",
    "after",
    "before",
    "about",
    "then",
    "both",
    "or",
}
MARKER_GAP = 50  # 0-1000 image coordinates: a left/right relation needs this much horizontal room
_CENTRE_X = 500.0
# tasks whose answer states a relation in image 1's frame: that kind of relation is left out of image 1
ANSWER_RELATIONS_IN_PRIMARY_VIEW = {"obj_spatial_relation_oc_mv": "observer", "obj_spatial_relation_oo_mv": "pair"}


def parse_line_options(question: str) -> dict[str, str]:
    """Options on their own lines ("A. left, above, front"): letter -> text, in order from A."""
    options: dict[str, str] = {}
    for m in _LINE_OPTION.finditer(question):
        letter = m.group(1)
        if letter == "A":
            options = {}  # the last run starting at A is the option list
        if letter == chr(ord("A") + len(options)):
            options[letter] = m.group(2).strip()
    return options if len(options) >= 2 else {}


def parse_choice_answer(answer: str, options: dict[str, str]) -> str:
    """The letter of a select answer: "C", "C.", "(C)", "C. text", or the text of one option."""
    text = str(answer).strip()
    m = re.match(r"^\(?([A-Z])\)?(?:[.:)]|\s|$)", text)
    if m:
        return m.group(1)
    matches = [k for k, v in options.items() if v.strip().casefold() == text.casefold()]
    return matches[0] if len(matches) == 1 else text


def _object_name(phrase: str) -> str | None:
    words = phrase.strip().split()
    kept: list[str] = []
    for word in reversed(words):
        if word.lower() in _STOP or len(kept) == 4:
            break
        kept.append(word)
    return " ".join(reversed(kept)) or None


def marked_objects(question: str) -> list[tuple[str | None, str]]:
    """(colour or None, name) of each marker mention in the question, in order (a name may come
    twice: "whiteboard (yellow bbox)" and "facing whiteboard (blue bbox)")."""
    found: list[tuple[int, str | None, str]] = []
    for m in _MARKED.finditer(question):
        name = _object_name(m.group(1))
        if name:
            found.append((m.start(), m.group(2), name))
    for m in _BBOX_OF.finditer(question):
        name = _object_name(m.group(2))
        if name:
            found.append((m.start(), m.group(1), name))
    return [(colour, name) for _, colour, name in sorted(found)]


def _names_by_colour(question: str, plan: MarkerPlan) -> dict[str, str]:
    """Marker colour -> the name of the object it marks: the colour's first mention; one object named
    without a colour ("sink (bbox)") is the one drawn colour no mention names, when there is exactly one."""
    mentions = marked_objects(question)
    by_colour = {c: n for c, n in reversed(mentions) if c}
    uncoloured = {n for c, n in mentions if c is None and n not in by_colour.values()}
    free = {m[1] for markers in plan for m in markers} - set(by_colour)
    if len(uncoloured) == 1 and len(free) == 1:
        by_colour[free.pop()] = uncoloured.pop()
    return by_colour


def _extent(marker: Marker) -> tuple[float, float]:
    kind, _, coords = marker
    return (coords[0], coords[0]) if kind == "point" else (min(coords[0], coords[2]), max(coords[0], coords[2]))


def _side(a: tuple[float, float], b: tuple[float, float]) -> str | None:
    """ "left" when extent a ends at least MARKER_GAP before b starts, "right" for the mirror case, else None."""
    if a[1] + MARKER_GAP <= b[0]:
        return "left"
    if b[1] + MARKER_GAP <= a[0]:
        return "right"
    return None


def spar7m_references(task: str, question: str, plan: MarkerPlan) -> dict[int, list[list[Any]]]:
    """Each image's references from its own markers (see the module docstring): image number -> triplets."""
    by_colour = _names_by_colour(question, plan)
    leave_out = ANSWER_RELATIONS_IN_PRIMARY_VIEW.get(task)
    refs: dict[int, list[list[Any]]] = {}
    for k, markers in enumerate(plan, 1):
        objects: dict[str, tuple[float, float]] = {}
        for marker in markers:
            name = by_colour.get(marker[1])
            if name is not None and name not in objects:
                objects[name] = _extent(marker)
        view: list[list[Any]] = []
        if not (k == 1 and leave_out == "pair"):
            for (a, ea), (b, eb) in combinations(objects.items(), 2):
                relation = _side(ea, eb)
                if relation and normalize_object(a) != normalize_object(b):
                    view.append([a, b, relation])
        if not (k == 1 and leave_out == "observer"):
            for name, extent in objects.items():
                relation = _side(extent, (_CENTRE_X, _CENTRE_X))
                if relation:
                    view.append([name, OBSERVER, relation])
        related = {n for r in view for n in r[:2]}
        view += [[n, None, None] for n in objects if n not in related]
        if view:
            refs[k] = view
    return refs


def sparbench_references(question: str) -> list[list[Any]]:
    """SPAR-Bench's references: one bare reference per marked object named in the question."""
    return [[n, None, None] for n in dict.fromkeys(n for _, n in marked_objects(question))]


def _fill_kind(task: str) -> str | None:
    """The ground-truth type of a `fill` answer a rule can score (a number or a view change, as
    SPAR-Bench scores the task), None for the others (boxes, coordinates, names)."""
    kind = spar_answer_type(task)
    return kind if kind in ("numeric", "view_change") else None


def _ground_truth(kind: str, task: str, question: str, answer: Any, references: References, where: str) -> MultiViewGroundTruth:
    if kind == "choice":
        options = parse_line_options(question)
        if not options:
            raise BadInput(where, "no options 'A. ...' on their own lines in the question")
        return choice_ground_truth(parse_choice_answer(answer, options), list(options), task, references, where)
    if kind == "numeric":
        return numeric_ground_truth(answer, task, references, where)
    if kind == "view_change":
        return view_change_ground_truth(answer, task, references, where)
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------
# SPAR-7M


def _line_offsets(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets and 1-based line numbers of the non-empty lines of a file (random access
    without parsing it)."""
    starts = [np.zeros(1, dtype=np.int64)]
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            starts.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10).astype(np.int64) + size + 1)
            size += len(chunk)
    offsets = np.concatenate(starts)
    offsets = offsets[offsets < size]
    ends = np.append(offsets[1:], size)
    keep = ends - offsets > 1  # a blank line is just "\n"
    return offsets[keep], np.flatnonzero(keep) + 1


class Spar7MCatalog(Catalog):
    """SPAR-7M's multi-view training questions by task type."""

    origin = "spar7m"

    def __init__(self, root: Path, bad: BadInputLog, split: str = "train", progress: bool = True):
        self.bad = bad
        self.excluded: Counter = Counter()
        if (root / "qa_jsonl").is_dir():
            datasets = {root.name: root}
        else:
            datasets = {d.name: d for d in sorted(root.iterdir()) if (d / "qa_jsonl").is_dir()}
        if not datasets:
            raise FileNotFoundError(f"{root}: no <dataset>/qa_jsonl folders (expected SPAR-7M's spar/ folder)")
        self.files: list[tuple[str, str, str, Path, Path]] = []  # (dataset, task, format, jsonl, image root)
        self._offsets: list[tuple[np.ndarray, np.ndarray]] = []
        by_task: dict[str, list[np.ndarray]] = {}
        for dataset, ddir in datasets.items():
            qa = ddir / "qa_jsonl" / split
            if not qa.is_dir():
                raise FileNotFoundError(f"{qa} does not exist")
            for tdir in sorted(p for p in qa.iterdir() if p.is_dir()):
                task = tdir.name
                if task not in SPAR7M_TASKS:
                    bad.report(self.origin, BadInput(str(tdir), f"unknown task type {task!r}"))
                    continue
                if task not in SPAR7M_MULTIVIEW_TASKS:
                    self.excluded["single-view/video/map task folders"] += 1  # not multi-view: not read
                    continue
                for fdir in sorted(p for p in tdir.iterdir() if p.is_dir()):
                    fmt = fdir.name
                    if fmt not in SPAR7M_ANSWER_FORMATS:
                        bad.report(self.origin, BadInput(str(fdir), f"unknown answer format folder {fmt!r}; SPAR uses {SPAR7M_ANSWER_FORMATS}"))
                        continue
                    if fmt in ("sentence", "judge") or (fmt == "fill" and _fill_kind(task) is None):
                        self.excluded[f"{fmt} answer files (not scorable by rule)"] += sum(1 for _ in fdir.glob("*.jsonl"))
                        continue
                    for jsonl in tqdm(
                        sorted(fdir.glob("*.jsonl")), desc=f"indexing {dataset}/{task}/{fmt}", unit="file", disable=not progress, leave=False
                    ):
                        offsets, lines = _line_offsets(jsonl)
                        fi = len(self.files)
                        self.files.append((dataset, task, fmt, jsonl, ddir / "images"))
                        self._offsets.append((offsets, lines))
                        by_task.setdefault(task, []).append(np.stack([np.full(len(offsets), fi), np.arange(len(offsets))], axis=1))
        self._categories = {t: np.concatenate(v) for t, v in by_task.items() if sum(len(a) for a in v)}

    def categories(self) -> dict[str, np.ndarray]:
        return self._categories

    def load(self, category: str, location: Any) -> Sample:
        fi, li = int(location[0]), int(location[1])
        dataset, task, fmt, jsonl, images_root = self.files[fi]
        offsets, lines = self._offsets[fi]
        with jsonl.open("rb") as f:
            f.seek(int(offsets[li]))
            line = f.readline()
        where = f"{jsonl}:{lines[li]}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(where, f"not JSON: {exc}") from None
        return spar7m_sample(record, task=task, fmt=fmt, dataset=dataset, images_root=images_root, where=where)


def spar7m_sample(record: Any, *, task: str, fmt: str, dataset: str, images_root: Path, where: str) -> Sample:
    if not isinstance(record, dict):
        raise BadInput(where, f"expected a JSON object, got {type(record).__name__}")
    kind_of_record = record.get("type", task)
    if kind_of_record not in SPAR7M_TASKS:
        raise BadInput(where, f"unknown task type {kind_of_record!r}")
    if kind_of_record != task:
        raise BadInput(where, f"record type {kind_of_record!r} in the folder of task {task!r}")
    try:
        human, gpt = record["conversations"][0]["value"], record["conversations"][1]["value"]
    except (KeyError, IndexError, TypeError):
        human = gpt = None
    if not isinstance(human, str) or not isinstance(gpt, (str, int, float)):
        raise BadInput(where, "conversations must be [{from: human, value: question}, {from: gpt, value: answer}]")
    images = record.get("image")
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not images:
        raise BadInput(where, f"image must be a non-empty list of paths, got {images!r}")
    question = with_placeholders(human, len(images), where)
    try:
        plan = marker_plan(task, record, len(images))
    except MarkerError as exc:
        raise BadInput(where, str(exc)) from None
    kind = "choice" if fmt == "select" else _fill_kind(task)
    gt = _ground_truth(kind, task, question, gpt, spar7m_references(task, question, plan), where)
    return Sample(
        data_source="spar",
        origin="spar7m",
        task=task,
        question_id=f"{dataset}/{task}/{fmt}/{record.get('id', where)}",
        question=question,
        images=[ImageRef(label=p, path=images_root / p, markers=markers) for p, markers in zip(images, plan, strict=True)],
        ground_truth=gt,
        group=f"{dataset}/{Path(images[0]).parts[0]}",
        where=where,
    )


# --------------------------------------------------------------------------------------------
# SPAR-Bench


def sparbench_files(root: Path) -> list[Path]:
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no SPAR-Bench parquet shards")
    return files


def sparbench_rows(root: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sparbench_files(root))


def sparbench_samples(root: Path, bad: BadInputLog) -> Iterator[Sample]:
    """Every SPAR-Bench question, streamed shard by shard (the images are bytes)."""
    for path in sparbench_files(root):
        yield from parquet_samples(path, ("id", "image", "question", "answer", "task"), "a SPAR-Bench shard", "sparbench", sparbench_sample, bad)


def sparbench_sample(row: dict[str, Any], *, where: str) -> Sample:
    task = str(row["task"])
    kind = spar_answer_type(task)
    if kind is None:
        raise BadInput(where, f"unknown task type {task!r}")
    images = row["image"] or []
    refs = []
    for i, im in enumerate(images):
        data = im.get("bytes") if isinstance(im, dict) else im
        if not data:
            raise BadInput(where, f"image {i} has no bytes")
        refs.append(ImageRef(label=(im.get("path") if isinstance(im, dict) else None) or f"sparbench/{row['id']}/{i}", data=data))
    question = with_placeholders(str(row["question"]), len(refs), where)
    gt = _ground_truth(kind, task, question, row["answer"], sparbench_references(question), where)
    return Sample(
        data_source="spar",
        origin="sparbench",
        task=task,
        question_id=str(row["id"]),
        question=question,
        images=refs,
        ground_truth=gt,
        group=str(row["id"]),
        where=where,
    )

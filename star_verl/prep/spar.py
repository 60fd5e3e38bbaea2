"""SPAR-7M (training, multi-view tasks) and SPAR-Bench (evaluation).

SPAR-7M comes in two layouts; `--spar` selects one (`spar7m_catalog`), the parquet when both are there:
- the current release (HF `jasonzhango/SPAR-7M`, revision of 2025-09-28): a folder holding
  `spar-dataset-train.parquet` (or the file itself), one row per question (`Spar7MParquetCatalog`:
  `id`, `qa_type`, `qa_format`, `image`, `question`, `answer`, and when present `split`,
  `base_dataset` and the marker columns). It ships no images: the user lays out ScanNet, ScanNet++,
  Structured3D (and Matterport3D) under `spar/<source>/images/` with the release's
  `prepare_*_layout.py` scripts;
- the jsonl layout (`--spar` = the `spar/` folder, or one dataset folder in it): the older release,
  and the current release's per-source annotation archives,
  `<dataset>/qa_jsonl/train/<task>/<format>/<format>_<N>.jsonl` and `<dataset>/images/<scene>/...`.
  A record: `id`, `conversations` ([human question, gpt answer]), `image` (paths relative to
  `<dataset>/images`), `type` (the task), marker geometry (`red_point`, `blue_bbox`, ..., in 0-1000
  coordinates) and for multi-view tasks `point_img_idx` / `bbox_img_idx`.
The same question gives the same row from either layout. The images are clean: the markers are
drawn here (`star_verl.prep.markers`). A question whose image is missing from the layout is not used;
such questions are counted per source with the first paths and the command that lays them out.

Used: the multi-view tasks (`SPAR7M_MULTIVIEW_TASKS` of `star_verl.tasks.registry`, which holds
every task name SPAR defines), format `select` (a letter among the question's "A. ..." lines) for
all of them, and `fill` where the answer is a number (depth and distance prediction) or the
view-change string (view_change_infer). `sentence` and `judge` answers and the
other `fill`s (boxes, coordinates, names) cannot be scored by rule, and single-view, video and map
tasks are not multi-view: all counted in questions per task, not used. A task or format that SPAR
does not define is bad input.

SPAR-Bench (`--sparbench` = the folder with `test-0000{0..3}-of-00004.parquet`): `id`, `image`
(list of {bytes, path}, markers already drawn), `question` (options included), `answer`, `task`,
`img_type`, `format_type`, `source`. The task decides the answer kind, as in the official scorer.

Names (`marked_objects`): the objects SPAR marks, named in the question before their marker
("sink (red bbox)", "Using bucket (red point) ..." -> "bucket") or after it ("the red bbox of mat",
"the red point marking the center of toilet paper"). Two marked objects with the same name keep
their marker's color ("books (red)", "books (blue)"). A marker whose object no name is read for is a
reference loss (`reference_loss`), counted per task in the summary.

References (never from the answer: R_ref must ground, not repeat R_ans): the marked objects, by the
names above.
- SPAR-7M, per view (`{"1": [...], ...}`): image k's references come only from the markers drawn on
  image k (`star_verl.prep.markers.marker_plan`), as left/right in that image (0-1000 coordinates; a
  point spans one x, a box its x1..x2): two marked objects `[a, b, left]` when a's extent ends at least
  `MARKER_GAP` left of b's start; a marked object and the camera `[a, "observer", left]` when its
  extent ends at least `MARKER_GAP` left of the image center (right likewise). Anything closer is left
  out, and so are above/below and front/behind (image height and marker size do not tell them). In
  image 1 (the primary view) a relation of the kind the answer states there is left out too:
  object-camera for `obj_spatial_relation_oc_mv`, object-object for `obj_spatial_relation_oo_mv`
  (`ANSWER_RELATIONS_IN_PRIMARY_VIEW`). A marked object image k relates to nothing is bare there
  (`[name, null, null]`); a marker whose color the question names for no object is left out (one
  object named without a color, "sink (bbox)", is the one drawn color no mention names).
- SPAR-Bench (markers already drawn, no coordinates released): bare references, one per marked
  object, flat (the image is not known).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import combinations
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from star_verl.prep.markers import MARKER_FIELDS, Marker, MarkerError, MarkerPlan, marker_plan
from star_verl.prep.multiview import (
    OBSERVER,
    BadInput,
    BadInputLog,
    Catalog,
    ImageRef,
    References,
    Sample,
    check_columns,
    choice_ground_truth,
    numeric_ground_truth,
    parquet_samples,
    view_change_ground_truth,
    with_placeholders,
)
from star_verl.tasks.multiview import MultiViewGroundTruth
from star_verl.tasks.references import normalize_object
from star_verl.tasks.registry import (
    SPAR7M_ANSWER_FORMATS,
    SPAR7M_MAP_TASKS,
    SPAR7M_MULTIVIEW_TASKS,
    SPAR7M_SINGLE_VIEW_TASKS,
    SPAR7M_TASKS,
    SPAR7M_VIDEO_TASKS,
    spar_answer_type,
)

_LINE_OPTION = re.compile(r"^\s*([A-Z])\s*[.)]\s?(.*)$", re.MULTILINE)
_COLORS = "red|blue|green|yellow"
_NAME = r"[A-Za-z][A-Za-z0-9\-' ]*?"
# "sink (red bbox)", "books (red point)", "sink (bbox)": the name is the words before the marker
_MARKED = re.compile(rf"({_NAME})\s*\((?:({_COLORS})\s+)?(point|bbox)\)")
# "the red bbox of mat", "the red point marking the center of toilet paper": the name follows the marker
_MARKER_OF = re.compile(
    rf"\b({_COLORS}) (?:bbox|point|box)\s+(?:(?:that|which)\s+)?"
    r"(?:of|on|at|for|marks|marking|marked on|indicates|indicating|highlights|highlighting|denotes|denoting)\s+"
    rf"(?:the\s+)?(?:(?:3D\s+)?(?:center|centre)\s+(?:point\s+)?of\s+(?:the\s+)?)?({_NAME})"
    r"(?=\s+(?:in|on|is|are|was|has|and|with|to|from|relative|as|at|located|positioned|situated|when|while|if|than|which|that)\b"
    r"|\s*[,.?;:!()\n]|\s*$)"
)
# every marker a question mentions, named or not: "(red point)", "(bbox)", "the blue bbox"
_MENTION = re.compile(rf"\(\s*(?:({_COLORS})\s+)?(point|bbox)\s*\)|\b({_COLORS})\s+(point|bbox|box)\b")
# words that end an object name when read backwards from its marker ("Using bucket (red point)" -> "bucket")
_STOP = {
    "the", "a", "an", "of", "is", "are", "was", "were", "be", "been", "object", "objects", "with", "to", "and", "if", "how",
    "what", "where", "from", "relative", "that", "at", "in", "on", "by", "for", "faces", "face", "moves", "move", "deep",
    "far", "between", "describe", "which", "does", "do", "it", "its", "as", "assume", "assuming", "given", "depth",
    "distance", "center", "centre", "observer", "located", "position", "spatial", "situated", "than", "facing", "moving",
    "moved", "orienting", "oriented", "towards", "toward", "after", "before", "about", "then", "both", "or", "using", "use",
    "taking", "take", "considering", "consider", "suppose", "supposing", "knowing", "treat", "treating", "regarding", "let",
    "find", "estimate", "determine", "calculate", "measure", "compare", "identify", "locate", "imagine", "when", "while",
    "has", "have", "had", "this", "these", "those", "there", "here", "please", "can", "could", "would", "should", "will",
    "show", "shows", "showing", "marked", "marks", "marking", "either", "whether", "closer", "farther", "nearer",
}  # fmt: skip
MARKER_GAP = 50  # 0-1000 image coordinates: a left/right relation needs this much horizontal room
_CENTER_X = 500.0
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
    """(color or None, name) of each marked object the question names, in order. A name may come
    twice for one marker ("chair (red bbox)" ... "the chair (red bbox)"); a name that two marker
    colors share is two objects and keeps each marker's color ("books (red bbox)" and "books (blue
    bbox)" give "books (red)" and "books (blue)"; `star_verl.tasks.references` reads "(red)" as part
    of the name), so each marked object stays a distinct reference."""
    found: list[tuple[int, str | None, str]] = []
    for m in _MARKED.finditer(question):
        name = _object_name(m.group(1))
        if name:
            found.append((m.start(), m.group(2), name))
    for m in _MARKER_OF.finditer(question):
        name = _object_name(m.group(2))
        if name:
            found.append((m.start(), m.group(1), name))
    found.sort()
    colors: dict[str, set[str]] = {}
    for _, color, name in found:
        if color:
            colors.setdefault(name, set()).add(color)
    return [(color, f"{name} ({color})" if color and len(colors[name]) > 1 else name) for _, color, name in found]


def unnamed_markers(question: str) -> list[str]:
    """The markers the question mentions ("red point", "bbox") for which no object name is read:
    their objects are missing from the references."""
    named = {color for color, _ in marked_objects(question)}
    unnamed: list[str] = []
    for m in _MENTION.finditer(question):
        color, kind = m.group(1) or m.group(3), m.group(2) or m.group(4)
        label = f"{color} {kind}" if color else kind
        if color not in named and label not in unnamed:
            unnamed.append(label)
    return unnamed


def reference_loss(question: str) -> str | None:
    """Why the question's references miss a marked object (`Sample.reference_loss`), or None."""
    unnamed = unnamed_markers(question)
    return f"no object name read for the marker(s) {', '.join(unnamed)}" if unnamed else None


def _names_by_color(question: str, plan: MarkerPlan) -> dict[str, str]:
    """Marker color -> the name of the object it marks: the color's first mention; one object named
    without a color ("sink (bbox)") is the one drawn color no mention names, when there is exactly one."""
    mentions = marked_objects(question)
    by_color = {c: n for c, n in reversed(mentions) if c}
    uncolored = {n for c, n in mentions if c is None and n not in by_color.values()}
    free = {m[1] for markers in plan for m in markers} - set(by_color)
    if len(uncolored) == 1 and len(free) == 1:
        by_color[free.pop()] = uncolored.pop()
    return by_color


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
    by_color = _names_by_color(question, plan)
    leave_out = ANSWER_RELATIONS_IN_PRIMARY_VIEW.get(task)
    refs: dict[int, list[list[Any]]] = {}
    for k, markers in enumerate(plan, 1):
        objects: dict[str, tuple[float, float]] = {}
        for marker in markers:
            name = by_color.get(marker[1])
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
                relation = _side(extent, (_CENTER_X, _CENTER_X))
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

RELEASE_PARQUET = "spar-dataset-train.parquet"  # the current release's questions (revision of 2025-09-28)
RELEASE_COLUMNS = ("id", "qa_type", "qa_format", "image", "question", "answer")  # needed
RELEASE_OPTIONAL_COLUMNS = ("split", "base_dataset", *MARKER_FIELDS)  # read when the file has them
# what lays out each source's images (the scripts come with the release's download)
PREPARE_LAYOUT = {
    "scannet": "python prepare_scannet_layout.py --scannet-root <ScanNet> --out-root {images}",
    "scannetpp": "python prepare_scannetpp_layout.py --scannetpp-root <ScanNet++> --out-root {images}",
    "structured3d": "python prepare_structured3d_layout.py --structured3d-root <Structured3D> --out-root {images}",
}
NO_PREPARE_SCRIPT = "the release has no prepare script for this source: place its images under {images} as the paths name them"


def excluded_because(task: str, fmt: str) -> str | None:
    """Why a SPAR-7M question is not used (counted per task), or None when it is."""
    if task in SPAR7M_SINGLE_VIEW_TASKS:
        return "single-view task"
    if task in SPAR7M_VIDEO_TASKS:
        return "video task"
    if task in SPAR7M_MAP_TASKS:
        return "map task (answered on a map)"
    if fmt in ("sentence", "judge"):
        return f"{fmt} answers (no rule scores them)"
    if fmt == "fill" and _fill_kind(task) is None:
        return "fill answers no rule scores (boxes, coordinates, names)"
    return None


class ImageLayout:
    """Which of SPAR-7M's images the user's layout holds. The current release ships no images: users
    obtain ScanNet, ScanNet++, Structured3D and Matterport3D and lay them out under
    `<spar>/<source>/images/` with the release's `prepare_*_layout.py` scripts. A question whose image
    is missing is not used; such questions and image references are counted per source, with the
    first missing paths and the command that lays the source out. Memory follows the image folders
    (scenes), not the questions: one flag per folder and a bounded cache of file checks (paths are
    plain strings here: this runs once per question of the release)."""

    FIRST = 5
    CACHE = 1 << 16

    def __init__(self, spar_dir: Path):
        self.spar_dir = spar_dir
        self.missing: dict[str, dict[str, Any]] = {}  # source -> questions, image_refs, first, lay_out_with
        self._folders: dict[str, bool] = {}
        self._files: dict[str, bool] = {}
        self._prefix: dict[str, str] = {}  # source -> "<spar>/<source>/images/"

    def images(self, source: str) -> Path:
        return self.spar_dir / source / "images"

    def _exists(self, path: str) -> bool:
        folder = path.rpartition("/")[0]
        known = self._folders.get(folder)
        if known is None:
            known = self._folders[folder] = os.path.isdir(folder)
        if not known:
            return False
        found = self._files.get(path)
        if found is None:
            if len(self._files) >= self.CACHE:
                self._files.clear()
            found = self._files[path] = os.path.isfile(path)
        return found

    def has_images(self, source: str, relative: Sequence[str]) -> bool:
        """True when every image (paths relative to the source's images folder) exists; otherwise the
        question is counted as missing images."""
        images = self._prefix.get(source) or self._prefix.setdefault(source, f"{self.images(source)}/")
        absent = [images + p for p in relative if not self._exists(images + p)]
        if not absent:
            return True
        entry = self.missing.setdefault(
            source,
            {
                "questions": 0,
                "image_refs": 0,
                "first": [],
                "lay_out_with": PREPARE_LAYOUT.get(source, NO_PREPARE_SCRIPT).format(images=self.images(source)),
            },
        )
        entry["questions"] += 1
        entry["image_refs"] += len(absent)
        entry["first"].extend(p for p in absent if len(entry["first"]) < self.FIRST and p not in entry["first"])
        return False

    def describe(self) -> str:
        return "; ".join(
            f"{source}: {e['questions']} questions miss {e['image_refs']} images (first: {', '.join(e['first'])}); lay them out with: {e['lay_out_with']}"
            for source, e in sorted(self.missing.items())
        )


class Spar7MCatalog(Catalog):
    """SPAR-7M's multi-view training questions by task type (either layout)."""

    origin = "spar7m"
    read_from = ""  # which layout, for the summary

    def __init__(self, bad: BadInputLog, layout: ImageLayout):
        super().__init__()
        self.bad = bad
        self.layout = layout
        self._categories: dict[str, np.ndarray] = {}

    def categories(self) -> dict[str, np.ndarray]:
        return self._categories

    def missing_images(self) -> dict[str, dict[str, Any]]:
        return self.layout.missing

    def _check_usable(self, where: Path) -> None:
        if not self._categories and self.layout.missing:
            raise FileNotFoundError(f"{where}: no SPAR-7M question has all its images in the layout: {self.layout.describe()}")


def spar7m_catalog(root: Path, bad: BadInputLog, *, split: str = "train", progress: bool = True) -> Spar7MCatalog:
    """`--spar`: SPAR-7M's current release (a folder holding `spar-dataset-train.parquet`, or the file),
    else the jsonl layout (`<dataset>/qa_jsonl/`, or one dataset folder)."""
    if root.is_file():
        return Spar7MParquetCatalog(root, bad, split=split, progress=progress)
    if (root / RELEASE_PARQUET).is_file():
        return Spar7MParquetCatalog(root / RELEASE_PARQUET, bad, split=split, progress=progress)
    return Spar7MJsonlCatalog(root, bad, split=split, progress=progress)


_IMAGE_FIELD = re.compile(rb'"image"\s*:\s*(\[[^\]]*\]|"(?:[^"\\]|\\.)*")')


def _record_images(line: bytes) -> list[str] | None:
    """The `image` paths of a jsonl record, read without parsing the whole line; None when they
    cannot be read so (the record is then judged when it is loaded)."""
    m = _IMAGE_FIELD.search(line)
    try:
        images = json.loads(m.group(1)) if m else None
    except json.JSONDecodeError:
        return None
    images = [images] if isinstance(images, str) else images
    return images if isinstance(images, list) and images and all(isinstance(p, str) for p in images) else None


def _count_records(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


class Spar7MJsonlCatalog(Spar7MCatalog):
    """SPAR-7M in the jsonl layout: `<dataset>/qa_jsonl/<split>/<task>/<format>/<format>_<N>.jsonl` and
    `<dataset>/images/` (the older release with its images, or the current release's annotation
    archives with images laid out by its prepare scripts). Records are indexed by byte offset."""

    def __init__(self, root: Path, bad: BadInputLog, split: str = "train", progress: bool = True):
        if (root / "qa_jsonl").is_dir():
            datasets = {root.name: root}
        else:
            datasets = {d.name: d for d in sorted(root.iterdir()) if (d / "qa_jsonl").is_dir()} if root.is_dir() else {}
        if not datasets:
            raise FileNotFoundError(
                f"{root}: neither SPAR-7M's {RELEASE_PARQUET} (the current release) nor <dataset>/qa_jsonl folders (the jsonl layout)"
            )
        super().__init__(bad, ImageLayout(next(iter(datasets.values())).parent))
        self.read_from = f"jsonl layout under {root}"
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
                if task not in SPAR7M_MULTIVIEW_TASKS:  # not read, only counted
                    self.exclude(excluded_because(task, ""), task, sum(_count_records(f) for f in sorted(tdir.rglob("*.jsonl"))))
                    continue
                for fdir in sorted(p for p in tdir.iterdir() if p.is_dir()):
                    fmt = fdir.name
                    if fmt not in SPAR7M_ANSWER_FORMATS:
                        bad.report(self.origin, BadInput(str(fdir), f"unknown answer format folder {fmt!r}; SPAR uses {SPAR7M_ANSWER_FORMATS}"))
                        continue
                    reason = excluded_because(task, fmt)
                    if reason is not None:
                        self.exclude(reason, task, sum(_count_records(f) for f in sorted(fdir.glob("*.jsonl"))))
                        continue
                    for jsonl in tqdm(
                        sorted(fdir.glob("*.jsonl")), desc=f"indexing {dataset}/{task}/{fmt}", unit="file", disable=not progress, leave=False
                    ):
                        offsets, lines = self._index(jsonl, dataset)
                        fi = len(self.files)
                        self.files.append((dataset, task, fmt, jsonl, ddir / "images"))
                        self._offsets.append((offsets, lines))
                        by_task.setdefault(task, []).append(np.stack([np.full(len(offsets), fi), np.arange(len(offsets))], axis=1))
        self._categories = {t: np.concatenate(v) for t, v in by_task.items() if sum(len(a) for a in v)}
        self._check_usable(root)

    def _index(self, jsonl: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        """Byte offsets and 1-based line numbers of the file's records whose images the layout holds."""
        offsets, lines, position = [], [], 0
        with jsonl.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                start, position = position, position + len(line)
                if not line.strip():
                    continue
                images = _record_images(line)
                if images is not None and not self.layout.has_images(dataset, images):
                    continue
                offsets.append(start)
                lines.append(lineno)
        return np.asarray(offsets, dtype=np.int64), np.asarray(lines, dtype=np.int64)

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


def release_image_paths(images: Any, base_dataset: Any) -> tuple[str, list[str]]:
    """(source, paths relative to `<spar>/<source>/images`) of a release row's `image` list. The
    release writes `spar/<source>/images/<scene>/...`; a path relative to the images folder (the
    jsonl's form) takes its source from `base_dataset`. Raises ValueError."""
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not images or not all(isinstance(p, str) and p for p in images):
        raise ValueError(f"image must be a non-empty list of paths, got {images!r}")
    sources, relative = set(), []
    for path in images:
        parts = [part for part in path.split("/") if part not in ("", ".")]
        parts = parts[1:] if parts and parts[0] == "spar" else parts
        if len(parts) >= 3 and parts[1] == "images":
            sources.add(parts[0])
            relative.append("/".join(parts[2:]))
        elif base_dataset:
            relative.append("/".join(parts))
        else:
            raise ValueError(f"image path {path!r} names no source (expected spar/<source>/images/<scene>/...)")
    if base_dataset:
        sources.add(str(base_dataset))
    if len(sources) != 1:
        raise ValueError(f"image paths {images} and base_dataset {base_dataset!r} name several sources {sorted(sources)}")
    return sources.pop(), relative


class Spar7MParquetCatalog(Spar7MCatalog):
    """SPAR-7M's current release: `spar-dataset-train.parquet` (one row per question: `id`, `qa_type`,
    `qa_format`, `image` = `spar/<source>/images/<scene>/...` paths, `question` with one `<image>` per
    image, `answer`, and when present `split`, `base_dataset` and the marker columns of the jsonl
    records), with the images laid out by the user under `<spar>/<source>/images/`. `<spar>` is the
    `spar/` folder beside the parquet file, else the parquet's own folder.

    Streamed in batches: indexing reads only the task, format, split, source and image columns and
    keeps the row numbers of the usable questions (8 bytes each); the rows drawn are read in one pass
    per split (`prefetch`), so memory does not grow with the file."""

    INDEX_BATCH = 8192
    LOAD_BATCH = 1024

    def __init__(self, path: Path, bad: BadInputLog, split: str = "train", progress: bool = True):
        self.path = path
        self._file = pq.ParquetFile(path)
        found = self._file.schema_arrow.names
        check_columns(path, found, RELEASE_COLUMNS, f"SPAR-7M's {RELEASE_PARQUET}")
        spar_dir = path.parent / "spar" if (path.parent / "spar").is_dir() else path.parent
        super().__init__(bad, ImageLayout(spar_dir))
        self.read_from = f"parquet release {path}"
        self._columns = [*RELEASE_COLUMNS, *(c for c in RELEASE_OPTIONAL_COLUMNS if c in found)]
        self._prefetched: dict[int, dict[str, Any]] = {}
        meta = self._file.metadata
        self._starts = np.cumsum([0, *(meta.row_group(g).num_rows for g in range(meta.num_row_groups))])
        index_columns = [c for c in ("qa_type", "qa_format", "image", "split", "base_dataset") if c in found]
        by_task: dict[str, list[np.ndarray]] = {}
        row = 0
        with tqdm(total=meta.num_rows, desc=f"indexing {path.name}", unit="q", disable=not progress, leave=False) as bar:
            for batch in self._file.iter_batches(batch_size=self.INDEX_BATCH, columns=index_columns):
                values = {c: batch.column(c).to_pylist() for c in index_columns}
                usable: dict[str, list[int]] = {}
                for i in range(batch.num_rows):
                    task = self._usable(row + i, {c: v[i] for c, v in values.items()}, split)
                    if task is not None:
                        usable.setdefault(task, []).append(row + i)
                for task, rows in usable.items():
                    by_task.setdefault(task, []).append(np.asarray(rows, dtype=np.int64))
                row += batch.num_rows
                bar.update(batch.num_rows)
        self._categories = {t: np.concatenate(v) for t, v in by_task.items()}
        self._check_usable(path)

    def _where(self, row: int) -> str:
        return f"{self.path}:row {row + 1}"

    def _usable(self, row: int, values: dict[str, Any], split: str) -> str | None:
        """The task of a usable row; otherwise the row is counted (excluded, missing images) or bad input."""
        task, fmt = values["qa_type"], values["qa_format"]
        if task not in SPAR7M_TASKS:
            self.bad.report(self.origin, BadInput(self._where(row), f"unknown task type (qa_type) {task!r}"))
            return None
        if fmt not in SPAR7M_ANSWER_FORMATS:
            self.bad.report(self.origin, BadInput(self._where(row), f"unknown answer format (qa_format) {fmt!r}; SPAR uses {SPAR7M_ANSWER_FORMATS}"))
            return None
        if "split" in values and values["split"] != split:
            self.exclude(f"split {values['split']!r} (not {split})", task)
            return None
        reason = excluded_because(task, fmt)
        if reason is not None:
            self.exclude(reason, task)
            return None
        try:
            source, relative = release_image_paths(values["image"], values.get("base_dataset"))
        except ValueError as exc:
            self.bad.report(self.origin, BadInput(self._where(row), str(exc)))
            return None
        return task if self.layout.has_images(source, relative) else None

    def prefetch(self, wanted: Mapping[str, np.ndarray]) -> None:
        arrays = [np.asarray(v, dtype=np.int64) for v in wanted.values() if len(v)]
        self._prefetched = self._read_rows(np.unique(np.concatenate(arrays))) if arrays else {}

    def _read_rows(self, rows: np.ndarray) -> dict[int, dict[str, Any]]:
        """The given rows (sorted row numbers), reading only the row groups that hold them."""
        out: dict[int, dict[str, Any]] = {}
        groups = np.searchsorted(self._starts, rows, side="right") - 1
        for group in np.unique(groups):
            start = int(self._starts[group])
            wanted = rows[groups == group] - start
            offset = 0
            for batch in self._file.iter_batches(batch_size=self.LOAD_BATCH, row_groups=[int(group)], columns=self._columns):
                lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                if hi > lo:
                    for k, record in zip(wanted[lo:hi], batch.take(pa.array(wanted[lo:hi] - offset)).to_pylist(), strict=True):
                        out[start + int(k)] = record
                offset += batch.num_rows
                if offset > wanted[-1]:
                    break
        return out

    def load(self, category: str, location: Any) -> Sample:
        row = int(location)
        record = self._prefetched.pop(row, None)
        if record is None:  # beyond the prefetched candidates: read on its own
            record = self._read_rows(np.asarray([row], dtype=np.int64))[row]
        return spar7m_release_sample(record, spar_dir=self.layout.spar_dir, where=self._where(row))


def spar7m_sample(record: Any, *, task: str, fmt: str, dataset: str, images_root: Path, where: str) -> Sample:
    """A record of the jsonl layout."""
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
    return _spar7m_sample(
        rid=record.get("id", where), task=task, fmt=fmt, dataset=dataset, question=human, answer=gpt, images=images, markers=record,
        images_root=images_root, where=where,
    )  # fmt: skip


def spar7m_release_sample(row: Mapping[str, Any], *, spar_dir: Path, where: str) -> Sample:
    """A row of the current release's parquet file: the same sample as the same record in the jsonl layout."""
    task, fmt = row["qa_type"], row["qa_format"]
    if task not in SPAR7M_TASKS:
        raise BadInput(where, f"unknown task type (qa_type) {task!r}")
    if fmt not in SPAR7M_ANSWER_FORMATS:
        raise BadInput(where, f"unknown answer format (qa_format) {fmt!r}; SPAR uses {SPAR7M_ANSWER_FORMATS}")
    try:
        source, relative = release_image_paths(row["image"], row.get("base_dataset"))
    except ValueError as exc:
        raise BadInput(where, str(exc)) from None
    question, answer = row["question"], row["answer"]
    if not isinstance(question, str) or not isinstance(answer, (str, int, float)):
        raise BadInput(where, f"question must be text and answer text or a number, got {type(question).__name__} and {type(answer).__name__}")
    markers = {k: row[k] for k in MARKER_FIELDS if row.get(k) is not None}
    return _spar7m_sample(
        rid=row["id"], task=task, fmt=fmt, dataset=source, question=question, answer=answer, images=relative, markers=markers,
        images_root=spar_dir / source / "images", where=where,
    )  # fmt: skip


def _spar7m_sample(
    *, rid: Any, task: str, fmt: str, dataset: str, question: str, answer: Any, images: list[str], markers: Mapping[str, Any], images_root: Path,
    where: str,
) -> Sample:  # fmt: skip
    question = with_placeholders(question, len(images), where)
    try:
        plan = marker_plan(task, markers, len(images))
    except MarkerError as exc:
        raise BadInput(where, str(exc)) from None
    kind = "choice" if fmt == "select" else _fill_kind(task)
    gt = _ground_truth(kind, task, question, answer, spar7m_references(task, question, plan), where)
    return Sample(
        data_source="spar",
        origin="spar7m",
        task=task,
        question_id=f"{dataset}/{task}/{fmt}/{rid}",
        question=question,
        images=[ImageRef(label=p, path=images_root / p, markers=m) for p, m in zip(images, plan, strict=True)],
        ground_truth=gt,
        group=f"{dataset}/{PurePosixPath(images[0]).parts[0]}",
        where=where,
        reference_loss=reference_loss(question),
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
        question_id=str(row["id"]),  # the release's own id (DESIGN.md's row contract)
        question=question,
        images=refs,
        ground_truth=gt,
        group=str(row["id"]),
        where=where,
        reference_loss=reference_loss(question),
    )

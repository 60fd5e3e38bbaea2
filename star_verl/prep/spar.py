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

References: the objects SPAR marks, named in the question ("sink (red bbox)", "books (red point)",
"the red bbox of mat"), and the relations the answer states. A relation answer is comma-separated
slots (empty = indistinguishable). Object-camera tasks (`*_oc*`): 3 slots (left/right, above/below,
front/behind) say where the target stands relative to the observer -> `[target, "observer", word]`.
Object-object tasks (`*_oo*`): left/right, above/below, closer/farther of the first object relative to
the second -> `[obj1, obj2, word]`, and with 5 slots each object in front of / behind the observer
-> `[obj_i, "observer", word]`; the pair is the two marked objects, red and yellow in the
imagination tasks (green and blue place the moved observer). closer/farther become front/behind
("front" = nearer the viewer). Other marked objects (imagination anchors, depth/distance objects) are
bare references `[name, null, null]`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from star_verl.prep.markers import MarkerError, marker_plan
from star_verl.prep.multiview import (
    OBSERVER,
    BadInput,
    BadInputLog,
    Catalog,
    ImageRef,
    Sample,
    choice_ground_truth,
    numeric_ground_truth,
    parquet_samples,
    view_change_ground_truth,
    with_placeholders,
)
from star_verl.tasks.multiview import MultiViewGroundTruth
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
RELATION_WORDS = {"left", "right", "above", "below", "front", "behind", "closer", "farther"}
# "closer"/"farther" (object 1 nearer the observer than object 2, or not) in the reward's words:
# "front" is nearer the viewer, as in MindCube's references.
_AS_REFERENCE = {"closer": "front", "farther": "behind"}


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
    """(color or None, name) of each marker mention in the question, in order (a name may come
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
    return [(color, name) for _, color, name in sorted(found)]


def _slots(text: str) -> list[str] | None:
    slots = [s.strip().lower() for s in text.split(",")]
    if all(s in RELATION_WORDS or s == "" for s in slots) and any(slots):
        return [_AS_REFERENCE.get(s, s) for s in slots]
    return None


def references(task: str, question: str, answer_text: str | None) -> list[list[Any]]:
    """Marked objects and the relations the answer states (see the module docstring)."""
    mentions = marked_objects(question)
    names = list(dict.fromkeys(n for _, n in mentions))
    by_color = {c: n for c, n in reversed(mentions) if c}  # a color's first mention
    slots = _slots(answer_text) if answer_text else None
    refs: list[list[Any]] = []
    if slots is not None and "_oo" in task:
        # object-object tasks: the imagination ones relate red and yellow (green and blue place the
        # observer), the others their two marked objects
        pair = [by_color.get("red"), by_color.get("yellow")] if task.startswith("spatial_imagination") else names[:2]
        if len(pair) == 2 and all(pair) and pair[0] != pair[1]:
            a, b = pair
            refs = [[a, b, w] for w in slots[:3] if w]
            if len(slots) == 5:  # then each object in front of / behind the observer
                refs += [[n, OBSERVER, w] for n, w in zip((a, b), slots[3:], strict=True) if w]
    elif slots is not None and len(slots) == 3:
        target = by_color.get("red") or (names[0] if names else None)
        if target:
            refs = [[target, OBSERVER, w] for w in slots if w]
    named = {r[0] for r in refs} | {r[1] for r in refs}
    refs += [[n, None, None] for n in names if n not in named]
    return refs


def _fill_kind(task: str) -> str | None:
    """The ground-truth type of a `fill` answer a rule can score (a number or a view change, as
    SPAR-Bench scores the task), None for the others (boxes, coordinates, names)."""
    kind = spar_answer_type(task)
    return kind if kind in ("numeric", "view_change") else None


def _ground_truth(kind: str, task: str, question: str, answer: Any, where: str) -> MultiViewGroundTruth:
    if kind == "choice":
        options = parse_line_options(question)
        if not options:
            raise BadInput(where, "no options 'A. ...' on their own lines in the question")
        letter = parse_choice_answer(answer, options)
        return choice_ground_truth(letter, list(options), task, references(task, question, options.get(letter)), where)
    refs = references(task, question, None)
    if kind == "numeric":
        return numeric_ground_truth(answer, task, refs, where)
    if kind == "view_change":
        return view_change_ground_truth(answer, task, refs, where)
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
    gt = _ground_truth(kind, task, question, gpt, where)
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
    gt = _ground_truth(kind, task, question, row["answer"], where)
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

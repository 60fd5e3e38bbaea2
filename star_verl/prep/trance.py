"""TRANCE (the TVR authors' release) -> veRL parquet rows for STAR-R1's TVR task.

Input: a TRANCE folder with `data.jsonl` + `image/` (the release), or `data.h5` (the output of TVR's
`scripts/preprocess.py`, images at 160x120; needs h5py). Output: `train.parquet`, `val.parquet`,
`test.parquet` in the row schema of `star_verl.prep.schema`, plus `summary.json`.

Rules (see the README section "TVR data"):
- Splits follow the order of `data.jsonl` (TRANCE: the first 500k train, then 10k val, 20k test);
  `data.h5` already has its split groups.
- A sample is kept when all its transformations are in the selected attributes (default: color,
  shape, size, material, as in STAR-R1; samples with position moves are skipped and counted).
- Evaluation splits (val, test) get one row per (sample, final view) for `views`, so each view's
  metrics come out separately; train rows use `train_views` (default center: left and right are
  then the cross-view test). The first image is always the initial state from Camera_Center.
- The question lists the initial objects with their TRANCE indices (0-based positions in
  `states[0].objects`, kept as they are, so answers use the dataset's own indices). Only objects in
  the visible area are listed: the others are not rendered and, without position moves, never
  transformed. With position selected, all objects are listed and those outside are marked.
- Transformations of the same (object, attribute) are merged into their net effect (TRANCE's
  generator may recolor an object twice); a net change back to the initial value is dropped.
- Bad input (unreadable line, unknown attribute or value, a transformation pointing at no object,
  a final state that disagrees with the transformations, a missing image) stops the conversion
  with the file and line, unless `skip_bad` is set: then it is counted and listed.
"""

from __future__ import annotations

import ast
import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from star_verl.prep.schema import ParquetRowWriter, image_entry, make_extra_info, make_rl_row
from star_verl.prep.trance_format import ALL_ATTRIBUTES, ATTRIBUTES, CAMERAS, DIRECTIONS, INITIAL_CAMERA, OBJECT_KEYS, STEPS, VIEWS, VOCAB, is_visible
from star_verl.tasks.ground_truth import GroundTruthError, parse_ground_truth
from star_verl.tasks.registry import origins_of
from star_verl.tasks.tvr import TVRGroundTruth

SPLITS = ("train", "val", "test")
TRANCE_SPLIT_SIZES = (500_000, 10_000, 20_000)
DEFAULT_ATTRIBUTES = ATTRIBUTES  # color, shape, size, material: the attributes of STAR-R1's task
DATA_SOURCE = "tvr"
TASK = "tvr"
SUMMARY_FILE = "summary.json"
# A folder written by star_verl.prep.synthetic_tvr carries this file; its rows get origin "synthetic".
SYNTHETIC_MARKER = "synthetic.json"


class BadSampleError(ValueError):
    """A TRANCE sample that cannot be converted; the message names the file and line."""


@dataclass(frozen=True)
class TranceConvertConfig:
    views: tuple[str, ...] = VIEWS  # final views of the evaluation splits
    train_views: tuple[str, ...] = ("center",)
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    split_sizes: tuple[int, int, int] = TRANCE_SPLIT_SIZES  # by order of data.jsonl
    limit: int | None = None  # at most this many kept samples per split
    skip_bad: bool = False
    overwrite: bool = False
    origin: str | None = None  # None: "synthetic" for a folder written by our generator, else "trance"
    max_pixels: int | None = None  # resize each image to this pixel budget (Qwen rounding); None: bytes as read
    min_pixels: int = 28 * 28
    progress: bool = True
    # "at (x, y)" after each listed object (TRANCE's grid units). The paper's prompt is not published and
    # may not have them; on by default because they tell apart listed objects with the same four attributes
    # (7.3% of the synthetic generator's scenes, measured on 20,000; about 1 in 5 scenes with 10 visible
    # objects), whose index the answer could not otherwise name.
    object_positions: bool = True

    def __post_init__(self) -> None:
        for name, views in (("views", self.views), ("train_views", self.train_views)):
            bad = [v for v in views if v not in VIEWS]
            if bad or not views or len(set(views)) != len(views):
                raise ValueError(f"{name} must be distinct names from {VIEWS}, got {views}")
        bad = [a for a in self.attributes if a not in ALL_ATTRIBUTES]
        if bad or not self.attributes:
            raise ValueError(f"attributes must be a non-empty subset of {ALL_ATTRIBUTES}, got {self.attributes}")
        if len(self.split_sizes) != 3 or any(int(n) < 0 for n in self.split_sizes):
            raise ValueError(f"split_sizes must be three non-negative counts (train, val, test), got {self.split_sizes}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.origin is not None and self.origin not in origins_of(DATA_SOURCE):
            raise ValueError(f"origin must be one of {origins_of(DATA_SOURCE)}, got {self.origin!r}")

    def views_for(self, split: str) -> tuple[str, ...]:
        return self.train_views if split == "train" else self.views


@dataclass
class ConversionReport:
    source: str
    origin: str
    out_dir: str
    rows: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {} for s in SPLITS})
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    n_transformations: dict[str, dict[int, int]] = field(default_factory=lambda: {s: {} for s in SPLITS})
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> samples (filtered by the rules, not errors)
    bad: list[str] = field(default_factory=list)  # "file:line: problem" of bad samples skipped with skip_bad
    merged: int = 0  # repeated (object, attribute) transformations merged into their net effect
    beyond_splits: int = 0  # lines after the last split
    short_of: int = 0  # data.jsonl: samples missing to fill the splits (the file ended first)
    over_limit: int = 0  # samples left out by `limit`

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def format(self) -> str:
        lines = [f"TVR conversion: {self.source} -> {self.out_dir} (origin {self.origin})"]
        views = sorted({v for r in self.rows.values() for v in r}, key=list(VIEWS).index)
        head = f"{'split':<6} {'samples':>8} {'rows':>8} " + " ".join(f"{v:>8}" for v in views) + "   samples by number of transformations"
        lines.append(head)
        for s in SPLITS:
            per_view = " ".join(f"{self.rows[s].get(v, 0):>8}" for v in views)
            n_tr = ", ".join(f"{k}: {n}" for k, n in sorted(self.n_transformations[s].items())) or "-"
            lines.append(f"{s:<6} {self.samples[s]:>8} {sum(self.rows[s].values()):>8} {per_view}   {n_tr}")
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"skipped {n} sample(s): {reason}")
        if self.merged:
            lines.append(f"merged {self.merged} repeated (object, attribute) transformation(s) into their net effect")
        if self.over_limit:
            lines.append(f"left out {self.over_limit} sample(s) beyond --limit")
        if self.beyond_splits:
            lines.append(f"ignored {self.beyond_splits} line(s) after the last split")
        if self.short_of:
            lines.append(
                f"warning: the file ended {self.short_of} sample(s) before the end of the splits (--split-sizes): the last split(s) are short"
            )
        if self.bad:
            lines.append(f"skipped {len(self.bad)} bad sample(s) (--skip-bad):")
            lines.extend(f"  {b}" for b in self.bad[:20])
            if len(self.bad) > 20:
                lines.append(f"  ... and {len(self.bad) - 20} more (all of them in {SUMMARY_FILE})")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class RawSample:
    """One record as read, with where it came from and how to read its images."""

    where: str  # "path:line" or "path:split/key"
    split: str | None  # known for data.h5; None for data.jsonl (decided by order)
    record: dict[str, Any] | None  # None: unreadable (error in `problem`)
    read_image: Callable[[str], bytes]
    position: int  # 0-based position in the source (the sample's idx when the record has none)
    problem: str | None = None


def _jsonl_samples(root: Path) -> Iterator[tuple[int, bytes]]:
    with open(root / "data.jsonl", "rb") as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                yield line_no, line


def _image_reader(image_dir: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = image_dir / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BadSampleError(f"missing image file {path}") from None

    return read


def _h5_samples(path: Path) -> Iterator[RawSample]:
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading {path} needs h5py (pip install h5py); or point --trance at the folder with data.jsonl and image/") from None
    import numpy as np
    from PIL import Image

    with h5py.File(path, "r") as f:
        for split in SPLITS:
            if split not in f:
                continue
            group = f[split]

            def read(name: str, group=group) -> bytes:
                if name not in group["image"]:
                    raise BadSampleError(f"missing image {name!r} in {path}:{group.name}/image")
                buf = io.BytesIO()
                Image.fromarray(np.asarray(group["image"][name][()], dtype=np.uint8)).save(buf, format="PNG")
                return buf.getvalue()

            raw_keys = group["keys"][()]
            keys = ast.literal_eval(raw_keys.decode() if isinstance(raw_keys, bytes) else str(raw_keys))
            for position, key in enumerate(keys):
                where = f"{path}:{split}/data/{key}"
                raw = group["data"][str(key)][()]
                try:
                    record, problem = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)), None
                except json.JSONDecodeError as exc:
                    record, problem = None, f"unreadable JSON ({exc.msg} at char {exc.pos})"
                yield RawSample(where, split, record, read, position, problem)


# ---------------------------------------------------------------------------------------------
# Checking one record


def _check_object(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadSampleError(f"{where}: object is not a JSON object: {obj!r}")
    missing = [k for k in OBJECT_KEYS if k not in obj]
    if missing:
        raise BadSampleError(f"{where}: object lacks {missing}")
    for attr, values in VOCAB.items():
        if obj[attr] not in values:
            raise BadSampleError(f"{where}: unknown {attr} value {obj[attr]!r} (expected one of {values})")
    pos = obj["position"]
    if not (isinstance(pos, (list, tuple)) and len(pos) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in pos)):
        raise BadSampleError(f"{where}: position must be two integers, got {pos!r}")
    return {k: (list(obj[k]) if k == "position" else obj[k]) for k in OBJECT_KEYS}


def _check_value(attr: str, val: Any, where: str) -> Any:
    if attr == "position":
        ok = isinstance(val, (list, tuple)) and len(val) == 2 and val[0] in DIRECTIONS and val[1] in STEPS
        if not ok:
            raise BadSampleError(f"{where}: unknown position value {val!r} (expected [direction, step])")
        return [val[0], int(val[1])]
    if val not in VOCAB[attr]:
        raise BadSampleError(f"{where}: unknown {attr} value {val!r} (expected one of {VOCAB[attr]})")
    return val


@dataclass
class Sample:
    idx: int
    objects: list[dict[str, Any]]  # initial objects, the five TRANCE keys
    transformations: list[dict[str, Any]]  # net, in order of first appearance
    initial_image: str
    final_images: dict[str, str]  # view -> file name
    attributes: set[str]  # attributes of the raw transformations
    merged: int


def parse_sample(record: Any, where: str, fallback_idx: int) -> Sample:
    """Check a TRANCE record and reduce it to what a TVR row needs (BadSampleError otherwise)."""
    if not isinstance(record, dict):
        raise BadSampleError(f"{where}: a sample must be a JSON object")
    states = record.get("states")
    if not isinstance(states, list) or len(states) < 2:
        raise BadSampleError(f"{where}: 'states' must list the initial and final states")
    first, last = states[0], states[-1]
    for name, st in (("initial", first), ("final", last)):
        if not isinstance(st, dict) or not isinstance(st.get("objects"), list) or not isinstance(st.get("images"), dict):
            raise BadSampleError(f"{where}: the {name} state needs 'objects' (list) and 'images' (object)")
    objects = [_check_object(o, f"{where}: states[0].objects[{i}]") for i, o in enumerate(first["objects"])]
    if not objects:
        raise BadSampleError(f"{where}: the initial state has no objects")
    final_objects = last["objects"]
    if len(final_objects) != len(objects):
        raise BadSampleError(f"{where}: {len(objects)} initial objects but {len(final_objects)} final objects")
    if INITIAL_CAMERA not in first["images"]:
        raise BadSampleError(f"{where}: the initial state has no {INITIAL_CAMERA} image")
    trans = record.get("transformations")
    if not isinstance(trans, list) or not trans:
        raise BadSampleError(f"{where}: 'transformations' must be a non-empty list")

    net: dict[tuple[int, str], dict[str, Any]] = {}
    attributes = set()
    for i, t in enumerate(trans):
        tw = f"{where}: transformations[{i}]"
        if not isinstance(t, dict) or not {"obj_idx", "attr", "val"} <= set(t):
            raise BadSampleError(f"{tw}: needs obj_idx, attr and val")
        obj, attr = t["obj_idx"], t["attr"]
        if not isinstance(obj, int) or isinstance(obj, bool) or not 0 <= obj < len(objects):
            raise BadSampleError(f"{tw}: obj_idx {obj!r} points at no object (the scene has {len(objects)}, indices 0-{len(objects) - 1})")
        if attr not in ALL_ATTRIBUTES:
            raise BadSampleError(f"{tw}: unknown attribute {attr!r} (expected one of {ALL_ATTRIBUTES})")
        val = _check_value(attr, t["val"], tw)
        attributes.add(attr)
        item = {"obj_idx": obj, "attr": attr, "val": val}
        if "options" in t:
            if not isinstance(t["options"], list):
                raise BadSampleError(f"{tw}: options must be a list")
            item["options"] = [_check_value(attr, o, f"{tw}.options") for o in t["options"]]
        if attr == "position" and (obj, attr) in net:
            raise BadSampleError(f"{tw}: object {obj} moves twice; merging moves is not supported")
        if attr != "position" and not is_visible(objects[obj]["position"]):
            raise BadSampleError(f"{tw}: {attr} change of object {obj}, which lies outside the visible area {objects[obj]['position']}")
        net.pop((obj, attr), None)  # re-insert: a merged change takes the place of its last step
        net[(obj, attr)] = item
    merged = len(trans) - len(net)
    out = []
    for (obj, attr), item in net.items():
        if attr == "position":
            out.append(item)
            continue
        final_val = final_objects[obj].get(attr) if isinstance(final_objects[obj], dict) else None
        if final_val != item["val"]:
            raise BadSampleError(f"{where}: transformations set object {obj}'s {attr} to {item['val']!r} but the final state has {final_val!r}")
        if item["val"] != objects[obj][attr]:  # a change back to the initial value leaves nothing to see
            out.append(item)
    # Every other attribute must be unchanged: a change the list misses would make the answer wrong.
    for i, (before, after) in enumerate(zip(objects, final_objects, strict=True)):
        for attr in OBJECT_KEYS:
            if (i, attr) in net or not isinstance(after, dict):
                continue
            value = list(after[attr]) if attr == "position" and isinstance(after.get(attr), (list, tuple)) else after.get(attr)
            if value != before[attr]:
                raise BadSampleError(f"{where}: object {i}'s {attr} changes from {before[attr]!r} to {value!r} but no transformation says so")
    images = {view: last["images"].get(cam) for view, cam in CAMERAS.items()}
    idx = record.get("idx", fallback_idx)
    if not isinstance(idx, int):
        raise BadSampleError(f"{where}: idx must be an integer, got {idx!r}")
    return Sample(idx, objects, out, first["images"][INITIAL_CAMERA], images, attributes, merged)


# ---------------------------------------------------------------------------------------------
# Rows


def describe_object(obj: dict[str, Any], *, position: bool = True) -> str:
    text = f"{obj['size']} {obj['color']} {obj['material']} {obj['shape']}"
    if position:
        x, y = obj["position"]
        text += f" at ({x}, {y})"
    return text


def build_question(objects: Sequence[dict[str, Any]], *, with_positions_outside: bool, object_positions: bool = True) -> str:
    """The raw TVR question: two <image> placeholders (initial, final) and the initial objects with
    their TRANCE indices, with their grid coordinates unless `object_positions` is off. Templates (the
    task instructions, the answer format) are added at load time."""
    lines = [
        "<image>",
        "<image>",
        "The first image is the initial state of the scene, seen from the center camera. "
        "The second image is the final state, seen from the center, left or right camera.",
        "Objects in the initial state, as index: size color material shape at (x, y), where x grows away "
        "from the center camera, y grows to its right, and the visible area spans -20 to 20 on both:"
        if object_positions
        else "Objects in the initial state, as index: size color material shape:",
    ]
    for i, obj in enumerate(objects):
        if is_visible(obj["position"]):
            lines.append(f"{i}: {describe_object(obj, position=object_positions)}")
        elif with_positions_outside:
            lines.append(f"{i}: {describe_object(obj, position=object_positions)} (outside the visible area)")
    lines.append("Which transformations turn the initial state into the final state?")
    return "\n".join(lines)


def ground_truth(sample: Sample, view: str) -> TVRGroundTruth:
    """The typed ground truth of one row, made by the reward's own parser (GroundTruthError when the
    reward could not score it)."""
    return parse_ground_truth(DATA_SOURCE, {"transformations": sample.transformations, "objects": sample.objects, "view": view, "task": TASK})


def _encode(data: bytes, name: str, config: TranceConvertConfig) -> bytes:
    if config.max_pixels is None:
        if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
            raise BadSampleError(f"image {name} is neither PNG nor JPEG")
        return data
    from PIL import Image

    from star_verl.pixels import resize_to_budget

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises many types for broken files
        raise BadSampleError(f"image {name} cannot be decoded: {exc}") from None
    image = resize_to_budget(image, min_pixels=config.min_pixels, max_pixels=config.max_pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def sample_rows(
    sample: Sample,
    split: str,
    origin: str,
    views: Sequence[str],
    read_image: Callable[[str], bytes],
    config: TranceConvertConfig,
    where: str,
    first_index: int,
) -> list[dict[str, Any]]:
    """The rows of one sample: one per final view."""

    def load(name: str | None, what: str) -> dict[str, Any]:
        if not name:
            raise BadSampleError(f"{where}: the final state has no image for {what}")
        try:
            return image_entry(_encode(read_image(name), name, config), name)
        except BadSampleError as exc:
            raise BadSampleError(f"{where}: {exc}") from None

    initial = load(sample.initial_image, INITIAL_CAMERA)
    question = build_question(sample.objects, with_positions_outside="position" in config.attributes, object_positions=config.object_positions)
    rows = []
    for k, view in enumerate(views):
        final = load(sample.final_images[view], CAMERAS[view])
        info = make_extra_info(
            index=first_index + k, split=split, origin=origin, task=TASK, view=view, question_id=f"{origin}-{sample.idx:06d}-{view}", n_images=2
        )
        try:
            gt = ground_truth(sample, view)
        except GroundTruthError as exc:
            raise BadSampleError(f"{where}: the TVR reward cannot score this sample: {exc.problem}") from None
        rows.append(make_rl_row(data_source=DATA_SOURCE, question=question, images=[initial, final], ground_truth=gt, extra_info=info))
    return rows


# ---------------------------------------------------------------------------------------------
# The conversion


def find_source(path: str | Path) -> tuple[Path, str]:
    """(path, kind): a folder with data.jsonl (preferred: full-size images) or data.h5, or a data.h5 file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{p}: does not exist (--trance takes the TRANCE folder with data.jsonl and image/, or its data.h5)")
    if p.is_file() and p.suffix == ".h5":
        return p, "h5"
    if (p / "data.jsonl").is_file():
        return p, "jsonl"
    if (p / "data.h5").is_file():
        return p / "data.h5", "h5"
    raise FileNotFoundError(f"{p}: no TRANCE data found (expected data.jsonl with image/, or data.h5)")


def output_paths(out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir).expanduser()
    return {**{s: out / f"{s}.parquet" for s in SPLITS}, "summary": out / SUMMARY_FILE}


def _split_of(position: int, sizes: Sequence[int]) -> str | None:
    end = 0
    for split, n in zip(SPLITS, sizes, strict=True):
        end += n
        if position < end:
            return split
    return None


def _raw_samples(path: Path, kind: str, config: TranceConvertConfig, report: ConversionReport) -> Iterator[RawSample]:
    """The samples to convert, with their split; lines past a full split or past the last split are
    counted and never parsed (so --limit on a 530k-line file stays fast)."""
    if kind == "h5":
        taken: Counter[str] = Counter()
        for raw in _h5_samples(path):
            if config.limit is not None and taken[raw.split] >= config.limit:
                report.over_limit += 1
                continue
            taken[raw.split] += 1
            yield raw
        return
    read = _image_reader(path / "image")
    taken = Counter()
    position = -1
    for position, (line_no, line) in enumerate(_jsonl_samples(path)):
        split = _split_of(position, config.split_sizes)
        if split is None:
            report.beyond_splits += 1
            continue
        if config.limit is not None and taken[split] >= config.limit:
            report.over_limit += 1
            continue
        taken[split] += 1
        where = f"{path / 'data.jsonl'}:{line_no}"
        try:
            record, problem = json.loads(line), None
        except json.JSONDecodeError as exc:
            record, problem = None, f"unreadable JSON line ({exc.msg} at char {exc.pos}; truncated file?)"
        yield RawSample(where, split, record, read, position, problem)
    report.short_of = max(0, sum(config.split_sizes) - (position + 1))


def convert_trance(source: str | Path, out_dir: str | Path, config: TranceConvertConfig = TranceConvertConfig()) -> ConversionReport:
    """Convert a TRANCE folder (or data.h5) to train/val/test parquet files in `out_dir`."""
    from tqdm import tqdm

    path, kind = find_source(source)
    root = path if kind == "jsonl" else path.parent
    origin = config.origin or ("synthetic" if (root / SYNTHETIC_MARKER).is_file() else "trance")
    outputs = output_paths(out_dir)
    existing = [str(p) for p in outputs.values() if p.exists()]
    if existing and not config.overwrite:
        raise FileExistsError(f"output exists: {', '.join(existing)}; pass --overwrite to replace it")
    report = ConversionReport(source=str(path), origin=origin, out_dir=str(Path(out_dir).expanduser()))
    # Write to temporary names and rename at the end: a failed run leaves the old outputs intact.
    tmp = {s: outputs[s].with_name(f".{outputs[s].name}.partial") for s in SPLITS}
    writers = {s: ParquetRowWriter(tmp[s], overwrite=True) for s in SPLITS}
    n_tr: dict[str, Counter[int]] = defaultdict(Counter)
    total = sum(config.split_sizes) if config.limit is None else config.limit * 3
    try:
        for raw in tqdm(_raw_samples(path, kind, config, report), total=total, desc="convert TRANCE", unit="sample", disable=not config.progress):
            split = raw.split
            try:
                if raw.record is None:
                    raise BadSampleError(f"{raw.where}: {raw.problem}")
                sample = parse_sample(raw.record, raw.where, fallback_idx=raw.position)
                outside = sorted(sample.attributes - set(config.attributes))
                if outside:
                    reason = f"transformation attribute(s) {', '.join(outside)} not selected (--attributes)"
                    report.skipped[reason] = report.skipped.get(reason, 0) + 1
                    continue
                if not sample.transformations:
                    reason = "no net transformation (changes undone within the sample)"
                    report.skipped[reason] = report.skipped.get(reason, 0) + 1
                    continue
                views = config.views_for(split)
                rows = sample_rows(sample, split, origin, views, raw.read_image, config, raw.where, sum(report.rows[split].values()))
            except BadSampleError as exc:
                if not config.skip_bad:
                    raise
                report.bad.append(str(exc))
                continue
            for row in rows:
                writers[split].write(row)
            for view in views:
                report.rows[split][view] = report.rows[split].get(view, 0) + 1
            report.samples[split] += 1
            report.merged += sample.merged
            n_tr[split][len(sample.transformations)] += 1
        for w in writers.values():
            w.close()
    except BaseException:
        for s in SPLITS:
            try:
                writers[s].close()
            finally:
                tmp[s].unlink(missing_ok=True)
        raise
    for s in SPLITS:
        os.replace(tmp[s], outputs[s])
    report.n_transformations = {s: dict(sorted(n_tr[s].items())) for s in SPLITS}
    outputs["summary"].write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report

"""The library of the multi-view converters (MindCube, SPAR-7M, SPAR-Bench, MMSI-Bench); the command
that drives them is `star_verl.prep.build_multiview`.

- `Sample`: a source-independent question (raw text with one `<image>` per image, image references,
  the ground truth of DESIGN.md) that `write_split` turns into veRL rows.
- `BadInputLog`: bad input is a clear error naming the file and line, or with `skip_bad` counted
  and listed.
- `allocate` / `draw_splits`: stratified sampling, uniform across categories (water-filling when a
  category has fewer samples than its share), the validation slice, the RL set and the SFT pool
  drawn in that order from one seeded permutation per category, so they never overlap.
- `ImageCache`: every unique image (file + markers drawn on it, or benchmark bytes) is decoded,
  marked, resized to the pixel budget and encoded once. Rows are written grouped by the images
  they share, so parquet's per-row-group dictionary stores a shared image once: output size and
  time follow the unique images, not the questions.
- `LeakIndex` / `check_leakage`: no benchmark image (content hash) or question (text + answer) may
  appear in a training output.
- `write_split`: samples to veRL rows in one parquet file, written whole or not at all.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from star_verl.pixels import resize_to_budget
from star_verl.prep.markers import Marker, draw_markers
from star_verl.prep.schema import IMAGE_PLACEHOLDER, ParquetRowWriter, image_entry, make_extra_info, make_rl_row
from star_verl.tasks.ground_truth import parse_ground_truth
from star_verl.tasks.multiview import MultiViewGroundTruth
from star_verl.tasks.references import reference_from_ground_truth

OBSERVER = "observer"  # the second element of an object-to-camera reference triplet
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 90000  # star_r1_mv's data.star.max_pixels (MindCube's budget): the loader then resizes nothing
ROW_GROUP_SIZE = 1024


# --------------------------------------------------------------------------------------------
# bad input


class BadInput(ValueError):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def parquet_samples(
    path: Path, columns: Sequence[str], what: str, origin: str, make_sample: Callable[..., Sample], bad: BadInputLog
) -> Iterator[Sample]:
    """Samples of a benchmark parquet file, streamed in small batches: `make_sample(row, where=...)`
    per row, a bad row reported to `bad` with its file and row number."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    check_columns(path, pf.schema_arrow.names, columns, what)
    row_no = 0
    for batch in pf.iter_batches(batch_size=64, columns=list(columns)):
        for row in batch.to_pylist():
            row_no += 1
            try:
                yield make_sample(row, where=f"{path}:row {row_no}")
            except BadInput as exc:
                bad.report(origin, exc)


def check_columns(path: Path, found: Sequence[str], needed: Sequence[str], what: str) -> None:
    """A file that lacks a needed column is not `what`: an error naming the file, the columns it has
    and the ones needed, before any row is read."""
    missing = [c for c in needed if c not in found]
    if missing:
        raise BadInput(str(path), f"not {what}: missing columns {missing}; columns found {list(found)}; columns needed {list(needed)}")


@dataclass
class BadInputLog:
    """Raise on bad input, or with `skip_bad` count it (per origin and problem kind) and list it."""

    skip_bad: bool = False
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (origin, where, problem)

    def report(self, origin: str, exc: BadInput) -> None:
        if not self.skip_bad:
            raise exc
        self.items.append((origin, exc.where, exc.problem))

    def counts(self) -> Counter:
        return Counter(origin for origin, _, _ in self.items)


# --------------------------------------------------------------------------------------------
# samples and their ground truth


@dataclass(frozen=True)
class ImageRef:
    """One image of a question: a file (training sources, MindCube-Tiny) or bytes (SPAR-Bench, MMSI),
    plus the markers to draw on it. `label` is the path stored in the row."""

    label: str
    path: Path | None = None
    data: bytes | None = None
    markers: tuple[Marker, ...] = ()

    @property
    def key(self) -> tuple:
        return (str(self.path) if self.path is not None else sha256(self.data or b""), self.markers)


@dataclass
class Sample:
    data_source: str  # mindcube | spar | mmsi
    origin: str  # mindcube | spar7m | mindcube_tiny | sparbench | mmsi
    task: str
    question_id: str
    question: str  # raw, with one <image> per image, never templated
    images: list[ImageRef]
    ground_truth: MultiViewGroundTruth
    group: str  # samples sharing images share a group (written next to each other)
    where: str  # file:line, for messages
    # why the sample has no references although its source states some (MindCube meta_info that fits
    # no layout, a SPAR marker whose object is not named): counted and listed, or with
    # --require-references an error
    reference_loss: str | None = None

    @property
    def question_key(self) -> str:
        return question_key(self.question, self.ground_truth.answer)

    @property
    def identity(self) -> str:
        """Text, answer and images: the same templated question on other images is another sample."""
        return sha256("\x00".join([self.question_key, *(repr(ref.key) for ref in self.images)]).encode())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_WS = re.compile(r"\s+")


def question_key(question: str, answer: Any) -> str:
    """A question's identity for the leakage check: its text (options included, placeholders and
    white space ignored, case folded) with its answer."""
    return sha256(f"{question_text_key(question)}\x00{answer}".encode())


def question_text_key(question: str) -> str:
    return sha256(_WS.sub(" ", question.replace(IMAGE_PLACEHOLDER, " ")).strip().casefold().encode())


def with_placeholders(question: str, n_images: int, where: str) -> str:
    """The question with one <image> per image: as given when it has placeholders (their number must
    match), else the images first, one per line (MindCube's and SPAR's own convention)."""
    n = question.count(IMAGE_PLACEHOLDER)
    if n == 0:
        return (IMAGE_PLACEHOLDER + "\n") * n_images + question
    if n != n_images:
        raise BadInput(where, f"question has {n} {IMAGE_PLACEHOLDER} placeholders but {n_images} images")
    return question


# What a converter passes as references: per view (image number -> triplets), or flat (image unknown).
References = Mapping[int, Iterable[Sequence[Any]]] | Iterable[Sequence[Any]]


def clean_references(refs: Iterable[Sequence[Any]]) -> tuple[tuple[Any, ...], ...]:
    """References the reward accepts, without repeats: each goes through the reward's own reference
    parser (`star_verl.tasks.references`), and one that repeats an earlier one after its
    normalization ("chairs" = "chair"; [a, b, left] = [b, a, right]) is dropped."""
    out, seen = [], set()
    for ref in refs:
        try:
            key = reference_from_ground_truth(list(ref)).key()
        except (TypeError, ValueError):
            continue  # a name with nothing nameable left (e.g. "(1)"): not a reference
        if key not in seen:
            seen.add(key)
            out.append(tuple(ref))
    return tuple(out)


def _reference_fields(references: References) -> dict[str, Any]:
    """The ground truth's reference fields: per view for a mapping (images without references left
    out), flat otherwise."""
    if isinstance(references, Mapping):
        views = ((int(k), clean_references(refs)) for k, refs in sorted(references.items()))
        return {"written_view_references": tuple((k, refs) for k, refs in views if refs)}
    return {"written_references": clean_references(references)}


def _ground_truth(where: str, **fields: Any) -> MultiViewGroundTruth:
    """The typed ground truth (checked as the reward checks it when it is made), so a converter never
    writes a row the reward cannot score; a value it refuses is bad input of this record."""
    try:
        return MultiViewGroundTruth(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(where, f"ground truth the reward cannot score: {exc}") from None


def choice_ground_truth(answer: str, options: Sequence[str], task: str, references: References, where: str) -> MultiViewGroundTruth:
    letter = str(answer).strip().upper()
    if letter not in options:
        raise BadInput(where, f"answer {answer!r} is not one of the listed options {list(options)}")
    return _ground_truth(where, type="choice", answer=letter, options=tuple(options), task=task, **_reference_fields(references))


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def numeric_ground_truth(answer: Any, task: str, references: References, where: str) -> MultiViewGroundTruth:
    numbers = _NUMBER.findall(str(answer))
    if len(numbers) != 1:
        raise BadInput(where, f"numeric answer {answer!r} must hold exactly one number")
    return _ground_truth(where, type="numeric", answer=float(numbers[0]), task=task, **_reference_fields(references))


def view_change_ground_truth(answer: Any, task: str, references: References, where: str) -> MultiViewGroundTruth:
    return _ground_truth(where, type="view_change", answer=str(answer).strip(), task=task, **_reference_fields(references))


# --------------------------------------------------------------------------------------------
# stratified sampling


def allocate(available: Mapping[str, int], n: int) -> dict[str, int]:
    """Quotas summing to min(n, total), as equal across categories as availability allows (a small
    category gives up what it lacks to the others). Deterministic."""
    quotas = {c: 0 for c in available}
    remaining = max(0, n)
    order = sorted(available, key=lambda c: (available[c], c))
    for i, cat in enumerate(order):
        quotas[cat] = min(available[cat], remaining // (len(order) - i)) if i < len(order) - 1 else min(available[cat], remaining)
        remaining -= quotas[cat]
    return quotas


class Catalog:
    """A training source: its categories, each a list of locations, and how to load one; what it
    does not use is counted in `excluded` (reason -> task -> questions)."""

    origin: str = ""

    def __init__(self) -> None:
        self.excluded: dict[str, Counter] = {}

    def exclude(self, reason: str, task: str, n: int = 1) -> None:
        self.excluded.setdefault(reason, Counter())[task] += n

    def categories(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def load(self, category: str, location: Any) -> Sample:
        raise NotImplementedError

    def prefetch(self, wanted: Mapping[str, np.ndarray]) -> None:
        """Told the locations `load` will be asked for next (category -> locations, in order), so a
        source without cheap random access can read them in one pass. Nothing to do by default."""


@dataclass
class SplitRequest:
    name: str  # extra_info.split: val | train | sft_pool
    n: int


def draw_splits(
    catalogs: Sequence[Catalog],
    requests: Sequence[SplitRequest],
    *,
    seed: int,
    bad: BadInputLog,
    accept: Callable[[Sample], str | None],
    progress: bool = True,
) -> tuple[dict[str, list[Sample]], dict[str, Any]]:
    """Draw the splits in order (validation first, so it does not move when the RL size changes),
    uniformly across the categories of all catalogs together. `accept(sample)` returns None or the
    reason to refuse it (a leak); refused and bad samples are replaced by the next candidates."""
    rng = np.random.default_rng(seed)
    streams: dict[tuple[int, str], list] = {}
    for ci, catalog in enumerate(catalogs):
        for cat, locations in sorted(catalog.categories().items()):
            streams[(ci, cat)] = [rng.permutation(len(locations)), 0, locations]
    names = {key: f"{catalogs[key[0]].origin}:{key[1]}" for key in streams}
    seen: set[str] = set()
    out: dict[str, list[Sample]] = {}
    stats: dict[str, Any] = {"shortfall": {}, "duplicates": 0, "refused": []}
    for req in requests:
        available = {key: len(s[0]) - s[1] for key, s in streams.items()}
        quotas = allocate({names[k]: v for k, v in available.items()}, req.n)
        taken: list[Sample] = []
        bar = tqdm(total=sum(quotas.values()), desc=f"sampling {req.name}", unit="q", disable=not progress, leave=False)
        for ci, catalog in enumerate(catalogs):
            # the candidates this request will look at, with a margin for the refused and the bad
            catalog.prefetch({
                key[1]: s[2][s[0][s[1] : s[1] + _with_margin(quotas[names[key]])]] for key, s in streams.items() if key[0] == ci
            })  # fmt: skip
        for key, stream in streams.items():
            want, got = quotas[names[key]], 0
            perm, _, locations = stream
            while got < want and stream[1] < len(perm):
                location = locations[perm[stream[1]]]
                stream[1] += 1
                try:
                    sample = catalogs[key[0]].load(key[1], location)
                    identity = sample.identity
                    if identity in seen:
                        stats["duplicates"] += 1
                        continue
                    reason = accept(sample)  # reads the images: a missing one is bad input
                except BadInput as exc:
                    bad.report(catalogs[key[0]].origin, exc)
                    continue
                if reason is not None:
                    stats["refused"].append((sample.origin, sample.question_id, reason))
                    continue
                seen.add(identity)
                taken.append(sample)
                got += 1
                bar.update(1)
            if got < want:
                stats["shortfall"][f"{req.name}:{names[key]}"] = want - got
        bar.close()
        out[req.name] = taken
    return out, stats


def _with_margin(n: int) -> int:
    return n + n // 4 + 8 if n else 0


# --------------------------------------------------------------------------------------------
# images


@dataclass(frozen=True)
class SourceInfo:
    sha: str  # sha256 of the source file / bytes, before markers and resizing
    width: int
    height: int


class ImageCache:
    """Each unique image (file or bytes, plus its markers) decoded, marked, resized to the pixel
    budget and encoded once; an LRU bound keeps memory flat on sources where images rarely repeat
    (rows are written grouped by shared images, so the LRU hits). Source hashes (for the leakage
    check) are kept for every image seen."""

    def __init__(
        self, *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = 1 << 30, jpeg_quality: int = 90
    ):
        self.min_pixels, self.max_pixels, self.jpeg_quality = min_pixels, max_pixels, jpeg_quality
        self.max_bytes = max_bytes
        self._encoded: OrderedDict[tuple, tuple[dict[str, Any], str]] = OrderedDict()
        self._bytes = 0
        self._sources: dict[str, SourceInfo] = {}
        self.encodes = 0
        self.hits = 0
        self.encoded_keys: set[tuple] = set()
        self.seconds = 0.0

    def source(self, ref: ImageRef, where: str) -> SourceInfo:
        """Hash and size of the source image; a missing or unreadable image is bad input."""
        name = str(ref.path) if ref.path is not None else None
        if name is not None and name in self._sources:
            return self._sources[name]
        data = self._read(ref, where)
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
        except Exception as exc:  # PIL raises many types for a broken file
            raise BadInput(where, f"image {ref.label!r} cannot be decoded: {exc}") from None
        info = SourceInfo(sha256(data), size[0], size[1])
        if name is not None:
            self._sources[name] = info
        return info

    def _read(self, ref: ImageRef, where: str) -> bytes:
        if ref.data is not None:
            if not ref.data:
                raise BadInput(where, f"image {ref.label!r} has no bytes")
            return ref.data
        assert ref.path is not None
        try:
            return ref.path.read_bytes()
        except FileNotFoundError:
            raise BadInput(where, f"missing image {ref.label!r} (looked for {ref.path})") from None
        except OSError as exc:
            raise BadInput(where, f"image {ref.label!r} cannot be read: {exc}") from None

    def entry(self, ref: ImageRef, where: str) -> tuple[dict[str, Any], str]:
        """The row's image entry ({bytes, path}) and the sha256 of its bytes."""
        key = ref.key
        hit = self._encoded.get(key)
        if hit is not None:
            self._encoded.move_to_end(key)
            self.hits += 1
            return hit
        start = time.perf_counter()
        data = self._read(ref, where)
        try:
            with Image.open(io.BytesIO(data)) as im:
                fmt = im.format
                im.load()
                marked = draw_markers(im, ref.markers) if ref.markers else im
                resized = resize_to_budget(marked, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        except BadInput:
            raise
        except Exception as exc:
            raise BadInput(where, f"image {ref.label!r} cannot be decoded: {exc}") from None
        if not ref.markers and resized.size == (im.width, im.height) and fmt in ("JPEG", "PNG") and im.mode == "RGB":
            out = data  # already at the budget: keep the original bytes (no second lossy encode)
        else:
            buf = io.BytesIO()
            resized.save(buf, format="JPEG", quality=self.jpeg_quality)
            out = buf.getvalue()
        value = (image_entry(out, ref.label), sha256(out))
        self._encoded[key] = value
        self._bytes += len(out)
        self.encodes += 1
        self.encoded_keys.add(key)
        while self._bytes > self.max_bytes and len(self._encoded) > 1:
            _, (old, _) = self._encoded.popitem(last=False)
            self._bytes -= len(old["bytes"])
        self.seconds += time.perf_counter() - start
        return value


# --------------------------------------------------------------------------------------------
# leakage


@dataclass
class LeakIndex:
    """What the benchmarks hold: image hashes (source and stored bytes) and questions.

    A training question leaks when it shares an image with a benchmark question, or its text and
    answer. A text that several benchmark questions share with different answers is a template
    (every SPAR view_change_infer question reads the same): for those only the images count."""

    images: dict[str, str] = field(default_factory=dict)  # sha -> "benchmark:question_id"
    questions: dict[str, str] = field(default_factory=dict)  # question key -> "benchmark:question_id"
    _answers_by_text: dict[str, set] = field(default_factory=dict)

    def add(self, sample: Sample, source_shas: Iterable[str], output_shas: Iterable[str] = ()) -> None:
        name = f"{sample.origin}:{sample.question_id}"
        for sha in (*source_shas, *output_shas):
            self.images.setdefault(sha, name)
        self.questions.setdefault(sample.question_key, name)
        self._answers_by_text.setdefault(question_text_key(sample.question), set()).add(repr(sample.ground_truth.answer))

    def is_template(self, question: str) -> bool:
        return len(self._answers_by_text.get(question_text_key(question), ())) > 1

    def match(self, sample: Sample, source_shas: Iterable[str]) -> str | None:
        if sample.question_key in self.questions and not self.is_template(sample.question):
            return f"question of {self.questions[sample.question_key]}"
        for sha in source_shas:
            if sha in self.images:
                return f"image {sha[:12]} of {self.images[sha]}"
        return None


def _parquet_samples(path: Path) -> Iterable[tuple[Sample, set[str]]]:
    """The rows of a written file as Samples (text, answer, ids) with the sha256 of their image bytes."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=256, columns=["data_source", "prompt", "images", "reward_model", "extra_info"]):
        for row in batch.to_pylist():
            info = row["extra_info"]
            sample = Sample(
                data_source=row["data_source"],
                origin=info["origin"],
                task=info["task"],
                question_id=info["question_id"],
                question=row["prompt"][0]["content"],
                images=[],
                ground_truth=parse_ground_truth(row["data_source"], row["reward_model"]["ground_truth"], info),
                group="",
                where=f"{path}:row {info['index']}",
            )
            yield sample, {sha256(im["bytes"]) for im in row["images"]}


def check_leakage(train_files: Sequence[Path], bench_files: Sequence[Path]) -> list[str]:
    """Overlaps between written training files and benchmark files: an image (sha256 of the stored
    bytes) or a question (text + answer) of a benchmark in a training row. Empty when clean."""
    index = LeakIndex()
    for path in bench_files:
        for sample, shas in _parquet_samples(path):
            index.add(sample, shas)
    overlaps = []
    for path in train_files:
        for sample, shas in _parquet_samples(path):
            reason = index.match(sample, sorted(shas))
            if reason is not None:
                overlaps.append(f"{path.name} {sample.origin}:{sample.question_id}: {reason}")
    return overlaps


# --------------------------------------------------------------------------------------------
# writing


def has_references(gt: MultiViewGroundTruth) -> tuple[bool, bool]:
    """(any references, any with a relation: what R_ref scores)."""
    return bool(gt.all_references), gt.has_relations


@dataclass
class SplitStats:
    rows: int = 0
    bytes: int = 0
    unique_images: int = 0
    image_refs: int = 0
    per_task: Counter = field(default_factory=Counter)
    with_refs: Counter = field(default_factory=Counter)
    with_relations: Counter = field(default_factory=Counter)
    refs_lost: Counter = field(default_factory=Counter)  # rows written without the references their source states
    refs_lost_rows: list[tuple[str, str, str]] = field(default_factory=list)  # (origin:task, where, problem)


def write_split(
    path: Path,
    samples: Iterable[Sample],
    *,
    split: str,
    cache: ImageCache,
    bad: BadInputLog,
    overwrite: bool,
    sort: bool = True,
    on_written: Callable[[Sample, list[str], list[str]], None] | None = None,
    total: int | None = None,
    progress: bool = True,
) -> SplitStats:
    """Write samples as RL rows. `sort`: group rows by the images they share (group, then id), so
    the dictionary of each row group stores a shared image once; veRL shuffles at load time
    (`data.shuffle`), so file order carries no meaning. Streams when `sort` is False."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if sort:
        samples = sorted(samples, key=lambda s: (s.group, s.question_id))
        total = len(samples)
    stats = SplitStats()
    shas_in_file: set[str] = set()

    def write_rows(target: Path) -> None:
        with ParquetRowWriter(target, row_group_size=ROW_GROUP_SIZE, overwrite=True) as writer:
            for sample in tqdm(samples, total=total, desc=f"writing {path.name}", unit="q", disable=not progress, leave=False):
                try:
                    entries, out_shas = [], []
                    for ref in sample.images:
                        entry, sha = cache.entry(ref, sample.where)
                        entries.append(entry)
                        out_shas.append(sha)
                    source_shas = [cache.source(ref, sample.where).sha for ref in sample.images]
                except BadInput as exc:
                    bad.report(sample.origin, exc)
                    continue
                extra = make_extra_info(
                    index=stats.rows, split=split, origin=sample.origin, task=sample.task, question_id=sample.question_id, n_images=len(entries)
                )
                writer.write(
                    make_rl_row(
                        data_source=sample.data_source, question=sample.question, images=entries, ground_truth=sample.ground_truth, extra_info=extra
                    )
                )
                stats.rows += 1
                stats.image_refs += len(entries)
                shas_in_file.update(out_shas)
                key = f"{sample.origin}:{sample.task}"
                stats.per_task[key] += 1
                refs, rels = has_references(sample.ground_truth)
                stats.with_refs[key] += refs
                stats.with_relations[key] += rels
                if sample.reference_loss is not None:
                    stats.refs_lost[key] += 1
                    stats.refs_lost_rows.append((key, sample.where, sample.reference_loss))
                if on_written is not None:
                    on_written(sample, source_shas, out_shas)

    # written under a temporary name and renamed at the end: a failed run leaves no partial file
    partial = path.with_name(path.name + ".partial")
    try:
        write_rows(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    stats.unique_images = len(shas_in_file)
    stats.bytes = path.stat().st_size
    return stats

"""Stage 1 data of STAR-R1: teacher chains of thought for the SFT cold start.

`python data_prep/generate_cot.py --in POOL.parquet --out DIR --base-url URL --model NAME ...`

1. Requests. Each pool question (an RL row: raw question with `<image>` placeholders, images, ground
   truth) is rendered with the `three_step` template (the same object the RL and SFT datasets use) and
   sent with its images (base64 data URLs, in placeholder order) to an OpenAI-compatible
   `POST {base_url}/chat/completions` (vLLM, SGLang, a hosted API), K samples per question. The client is
   `httpx` (async): bounded concurrency, a per-request timeout, retries with exponential backoff on
   429/5xx/timeouts/transport errors/unreadable bodies (a server's Retry-After wins), and an optional
   request-rate limit. 401/403/404 stop the run (a wrong key, URL or model would fail every request).
2. Cache. Every answer is appended to `DIR/responses.jsonl` (flushed and fsynced) as it arrives, keyed
   by (question_id, sample k, model, prompt hash). A rerun (after a crash, a kill, or to add samples)
   asks only for what the cache lacks. Failures are not cached: a rerun tries them again.
3. Filtering and outputs, computed from the cache alone, in pool order, so an interrupted and resumed
   run writes the same bytes as an uninterrupted one (`--offline` rebuilds them without any request).
   A chain is kept only if `star_verl.rewards.compute_score` gives `acc == 1.0` (result-oriented) and
   `star_verl.tasks.references.three_step_structure` finds the three steps (triplets for every view, a
   cross-view mapping, reasoning, an answer) and it was not truncated; identical chains of one question
   are kept once. Outputs: `DIR/train.parquet`, `DIR/val.parquet` (SFT rows: the raw question and the
   chain; a held-out slice of the kept questions), `DIR/rejected.jsonl` (every rejected chain with its
   reasons), `DIR/failed.jsonl` (samples with no answer), `DIR/report.json` and `DIR/report.md` (kept
   rate per category).

The API key is read from the environment variable named by `--api-key-env` and is never written to a
file or a log (error texts are redacted).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email.utils
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from star_verl.prep.schema import IMAGE_PLACEHOLDER, SFT_SCHEMA, ParquetRowWriter, image_entry, make_extra_info, make_sft_row
from star_verl.rewards import GroundTruthError, compute_score, validate_ground_truth
from star_verl.tasks.references import three_step_structure
from star_verl.tasks.registry import MULTIVIEW_SOURCES
from star_verl.tasks.tags import parse_tags
from star_verl.templates import get_template

TEMPLATE_NAME = "three_step"
CACHE_FILE = "responses.jsonl"
POOL_COLUMNS_NO_IMAGES = ["data_source", "prompt", "reward_model", "extra_info"]
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
FATAL_STATUS = frozenset({401, 403, 404})
MAX_RETRY_AFTER_S = 600.0
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}


class TeacherError(RuntimeError):
    """A problem that stops the run: bad input, bad settings, or a server that refuses every request."""


@dataclass(frozen=True)
class TeacherSettings:
    base_url: str
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key; None: no key
    concurrency: int = 8
    samples_per_question: int = 1
    max_questions: int | None = None  # a stable pseudo-random subset of N questions (see load_pool)
    timeout: float = 300.0  # seconds per request (the whole request, not per read)
    max_retries: int = 5
    requests_per_second: float | None = None  # None: no limit
    temperature: float = 0.7
    max_tokens: int = 4096
    seed: int | None = None  # sent as `seed + k` for sample k when set (reproducible sampling on vLLM/SGLang/OpenAI)
    val_fraction: float = 0.05  # share of the questions with a kept chain held out for validation
    backoff_base: float = 1.0  # seconds; attempt a waits backoff_base * 2**a (+ up to 25% jitter), at most backoff_max
    backoff_max: float = 60.0

    def check(self) -> None:
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"--base-url must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            problems.append("--model is empty")
        if self.concurrency < 1:
            problems.append(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.samples_per_question < 1:
            problems.append(f"--samples-per-question must be >= 1, got {self.samples_per_question}")
        if self.max_questions is not None and self.max_questions < 1:
            problems.append(f"--max-questions must be >= 1, got {self.max_questions}")
        if not self.timeout > 0:
            problems.append(f"--timeout must be > 0, got {self.timeout}")
        if self.max_retries < 0:
            problems.append(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.requests_per_second is not None and not self.requests_per_second > 0:
            problems.append(f"--requests-per-second must be > 0, got {self.requests_per_second}")
        if self.max_tokens < 1:
            problems.append(f"--max-tokens must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if problems:
            raise TeacherError("; ".join(problems))

    def api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise TeacherError(f"--api-key-env {self.api_key_env}: the environment variable is not set or empty")
        return key


# ---------------------------------------------------------------------------------------------
# the pool


@dataclass(frozen=True)
class PoolQuestion:
    row: int
    question_id: str
    data_source: str
    question: str
    ground_truth: dict[str, Any]
    extra_info: dict[str, Any]


def _where(path: Path, row: int, question_id: str | None = None) -> str:
    return f"{path} row {row}" + (f" (question_id {question_id!r})" if question_id else "")


def _question_of(path: Path, row: int, record: Mapping[str, Any]) -> PoolQuestion:
    info = dict(record.get("extra_info") or {})
    qid = str(info.get("question_id") or "")
    where = _where(path, row, qid)
    if not qid:
        raise TeacherError(f"{where}: extra_info.question_id is missing or empty")
    source = record.get("data_source")
    if source not in MULTIVIEW_SOURCES:
        raise TeacherError(f"{where}: data_source {source!r}: the three-step teacher pool holds multi-view questions only {MULTIVIEW_SOURCES}")
    prompt = list(record.get("prompt") or [])
    if len(prompt) != 1 or prompt[0].get("role") != "user" or not isinstance(prompt[0].get("content"), str):
        raise TeacherError(f"{where}: prompt must be one user message with the raw question, got roles {[m.get('role') for m in prompt]}")
    question = prompt[0]["content"]
    n_images = info.get("n_images")
    if question.count(IMAGE_PLACEHOLDER) != n_images:
        raise TeacherError(f"{where}: {question.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} placeholders but extra_info.n_images={n_images}")
    reward_model = record.get("reward_model") or {}
    try:
        gt = validate_ground_truth(source, reward_model.get("ground_truth"), info)
    except GroundTruthError as exc:
        raise TeacherError(f"{where}: {exc.problem}") from None
    return PoolQuestion(row=row, question_id=qid, data_source=source, question=question, ground_truth=gt, extra_info=info)


def _iter_records(path: Path, columns: Sequence[str], rows: Collection[int] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row, record) of the file's rows, or of `rows` only, one batch in memory at a time."""
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"{path}: not a readable parquet file ({exc})") from None
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise TeacherError(f"{path}: missing column(s) {missing}; a pool is an RL parquet (columns {list(columns)})")
    start = 0
    for batch in parquet.iter_batches(batch_size=64, columns=list(columns)):
        wanted = range(start, start + batch.num_rows) if rows is None else [r for r in range(start, start + batch.num_rows) if r in rows]
        if wanted:
            records = batch.take([r - start for r in wanted]).to_pylist() if rows is not None else batch.to_pylist()
            yield from zip(wanted, records)
        start += batch.num_rows


def load_pool(path: str | os.PathLike, max_questions: int | None = None) -> list[PoolQuestion]:
    """The pool's questions (without images), in pool order, all validated before any request:
    multi-view source, one raw user message, placeholders == n_images, a ground truth the scorer
    accepts, unique question ids. With `max_questions` N: the N questions with the smallest
    sha256(question_id), a pseudo-random subset that does not depend on the pool's row order (converters
    group rows by image) and that a larger N extends, so the cache of a small run is reused."""
    path = Path(path)
    questions = [_question_of(path, row, record) for row, record in _iter_records(path, POOL_COLUMNS_NO_IMAGES)]
    seen: dict[str, int] = {}
    for q in questions:
        if q.question_id in seen:
            raise TeacherError(f"{path}: question_id {q.question_id!r} appears in rows {seen[q.question_id]} and {q.row}; the cache is keyed by question_id")
        seen[q.question_id] = q.row
    if not questions:
        raise TeacherError(f"{path}: no rows")
    if max_questions is not None and max_questions < len(questions):
        chosen = {q.question_id for q in sorted(questions, key=lambda q: _digest(q.question_id))[:max_questions]}
        questions = [q for q in questions if q.question_id in chosen]
    return questions


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _image_bytes(path: Path, row: int, entry: Any) -> tuple[bytes, str | None]:
    """(bytes, original path) of a pool image entry: {"bytes", "path"} or {"image": path}."""
    if isinstance(entry, Mapping):
        data = entry.get("bytes")
        if data:
            return bytes(data), entry.get("path")
        ref = entry.get("path") or entry.get("image")
        if isinstance(ref, str) and ref:
            file = Path(ref) if Path(ref).is_absolute() or Path(ref).exists() else path.parent / ref
            try:
                return file.read_bytes(), ref
            except OSError as exc:
                raise TeacherError(f"{_where(path, row)}: image {ref!r} cannot be read ({exc})") from None
    raise TeacherError(f"{_where(path, row)}: an image entry must have bytes or a path, got {str(entry)[:120]!r}")


def iter_pool_images(path: str | os.PathLike, rows: Collection[int] | None = None) -> Iterator[tuple[int, list[tuple[bytes, str | None]]]]:
    """(row, [(image bytes, original path), ...]) for each row (or each of `rows`), a batch at a time."""
    path = Path(path)
    for row, record in _iter_records(path, ["images"], rows):
        yield row, [_image_bytes(path, row, entry) for entry in (record["images"] or [])]


# ---------------------------------------------------------------------------------------------
# requests


def _mime(data: bytes, where: str) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(data)) as image:
            fmt = image.format
    except (UnidentifiedImageError, OSError) as exc:
        raise TeacherError(f"{where}: an image is not a readable picture ({exc})") from None
    if fmt not in _MIME:
        raise TeacherError(f"{where}: image format {fmt} is not one chat APIs accept ({sorted(_MIME)})")
    return _MIME[fmt]


def request_messages(question: str, images: Sequence[bytes], where: str = "question") -> list[dict[str, Any]]:
    """The three-step template's [system, user] messages in OpenAI chat format: the user text split at
    each `<image>`, with the images as base64 data URLs in placeholder order."""
    messages = get_template(TEMPLATE_NAME).messages(question)
    user = messages[-1]["content"]
    pieces = user.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(images):
        raise TeacherError(f"{where}: {len(pieces) - 1} {IMAGE_PLACEHOLDER} placeholders but {len(images)} images")
    parts: list[dict[str, Any]] = []
    for k, text in enumerate(pieces):
        if text:
            parts.append({"type": "text", "text": text})
        if k < len(images):
            url = f"data:{_mime(images[k], where)};base64,{base64.b64encode(images[k]).decode('ascii')}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return [*messages[:-1], {"role": "user", "content": parts}]


def prompt_hash(question: str, images: Sequence[bytes]) -> str:
    """What identifies a prompt in the cache: the template's rendered text and the images' digests
    (a changed template or image asks again; a changed temperature or max_tokens does not)."""
    payload = {"template": TEMPLATE_NAME, "messages": get_template(TEMPLATE_NAME).messages(question), "images": [hashlib.sha256(b).hexdigest() for b in images]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class RateLimiter:
    """At most `rate` request starts per second over all workers (retries included)."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class _Fail(Exception):
    """A sample with no answer (after retries, or a non-retryable status)."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Answer:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    attempts: int


@dataclass
class Counts:
    cached: int = 0
    requested: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_reasons: Counter = field(default_factory=Counter)


class ChatClient:
    """One OpenAI-compatible chat-completions endpoint, with retries, a timeout and a rate limit."""

    def __init__(self, settings: TeacherSettings, counts: Counts, log=print):
        self.settings = settings
        self.counts = counts
        self.log = log
        self._key = settings.api_key()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        import httpx

        self._httpx = httpx
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        self.client = httpx.AsyncClient(base_url=settings.base_url.rstrip("/") + "/", headers=headers, timeout=httpx.Timeout(settings.timeout), limits=limits)
        self.limiter = RateLimiter(settings.requests_per_second)

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    async def aclose(self) -> None:
        await self.client.aclose()

    def _body(self, messages: list[dict[str, Any]], k: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.settings.model, "messages": messages, "temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}
        if self.settings.seed is not None:
            body["seed"] = self.settings.seed + k
        return body

    async def _attempt(self, body: dict[str, Any]) -> Answer:
        httpx = self._httpx
        try:
            response = await asyncio.wait_for(self.client.post("chat/completions", json=body), timeout=self.settings.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _Retryable(f"timeout after {self.settings.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"transport error: {type(exc).__name__}: {exc}") from None
        if response.status_code in FATAL_STATUS:
            raise TeacherError(f"{self.settings.base_url} answered HTTP {response.status_code} (check --base-url, --model and the key): {self.redact(response.text[:300])}")
        if response.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code != 200:
            raise _Fail(f"HTTP {response.status_code}: {self.redact(response.text[:300])}")
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"].get("content")
            usage = payload.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Retryable(f"unreadable chat-completions body: {self.redact(response.text[:120])!r}") from None
        return Answer(
            text=text if isinstance(text, str) else "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            attempts=0,
        )

    async def complete(self, messages: list[dict[str, Any]], k: int, where: str) -> Answer:
        """One sample; raises _Fail after the last retry (TeacherError for a fatal status)."""
        body = self._body(messages, k)
        for attempt in range(self.settings.max_retries + 1):
            await self.limiter.wait()
            try:
                answer = await self._attempt(body)
                answer.attempts = attempt + 1
                return answer
            except _Retryable as exc:
                self.counts.retry_reasons[str(exc).split(":")[0]] += 1
                if attempt == self.settings.max_retries:
                    raise _Fail(f"{exc} (gave up after {attempt + 1} attempts)") from None
                delay = exc.retry_after
                if delay is None:
                    delay = min(self.settings.backoff_max, self.settings.backoff_base * 2**attempt) * (1.0 + 0.25 * random.random())
                self.counts.retries += 1
                self.log(f"{where}: {exc}; retry {attempt + 1}/{self.settings.max_retries} in {delay:.1f} s")
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# the cache


def cache_key(question_id: str, sample: int, model: str, phash: str) -> tuple[str, int, str, str]:
    return (question_id, int(sample), model, phash)


class ResponseCache:
    """`responses.jsonl`: one JSON line per answer, appended, flushed and fsynced as it arrives.

    A process killed while writing leaves at most a partial last line: it is cut off on open (that
    answer is asked again). A broken line elsewhere is corruption and stops the run."""

    def __init__(self, path: Path, log=print):
        self.path = path
        self.entries: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        if path.exists():
            self._load(log)
        self._file = None

    def _load(self, log) -> None:
        data = self.path.read_bytes()
        pos, number = 0, 0
        while pos < len(data):
            newline = data.find(b"\n", pos)
            end = newline + 1 if newline >= 0 else len(data)
            line, number = data[pos:end], number + 1
            if line.strip():
                try:
                    record = json.loads(line)
                    key = cache_key(record["question_id"], record["sample"], record["model"], record["prompt_hash"])
                    if not isinstance(record.get("response"), str):
                        raise TypeError("'response' is not a string")
                except (ValueError, KeyError, TypeError) as exc:
                    if newline < 0:  # the last line, cut off by a kill: that answer is asked again
                        log(f"{self.path}: line {number} is a partial write from an interrupted run; dropped")
                        with open(self.path, "r+b") as f:
                            f.truncate(pos)
                        return
                    raise TeacherError(f"{self.path} line {number}: not a cache record ({type(exc).__name__}: {exc}); fix or remove the line") from None
                self.entries[key] = record
            pos = end
        if data and not data.endswith(b"\n"):  # a complete last record without its newline
            with open(self.path, "ab") as f:
                f.write(b"\n")

    def get(self, key: tuple[str, int, str, str]) -> dict[str, Any] | None:
        return self.entries.get(key)

    def append(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.entries[cache_key(record["question_id"], record["sample"], record["model"], record["prompt_hash"])] = record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@contextlib.contextmanager
def _exclusive(out_dir: Path):
    """One writer per output folder: a second concurrent run would interleave the cache."""
    import fcntl

    handle = open(out_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise TeacherError(f"{out_dir}: another generate_cot run is using this folder") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# ---------------------------------------------------------------------------------------------
# filtering


@dataclass(frozen=True)
class Decision:
    keep: bool
    reasons: tuple[str, ...]  # each "code: detail"; codes: empty, truncated, wrong_answer, structure, duplicate
    acc: float
    score: float


def reason_code(reason: str) -> str:
    return reason.split(":", 1)[0]


def judge(response: str, question: PoolQuestion, finish_reason: str | None = None) -> Decision:
    """Keep a chain only if its answer is right (`compute_score(...)['acc'] == 1.0`), it follows the
    three steps (`three_step_structure` with the question's image count) and it was not cut off."""
    reasons: list[str] = []
    if not response.strip():
        reasons.append("empty: the teacher returned no text")
    if finish_reason == "length":
        reasons.append("truncated: finish_reason=length (raise --max-tokens)")
    scores = compute_score(question.data_source, response, question.ground_truth, question.extra_info)
    if scores["acc"] != 1.0:
        answer = parse_tags(response).answer
        shown = "no <answer>" if answer is None else repr(answer.strip()[:80])
        reasons.append(f"wrong_answer: {shown}, expected {question.ground_truth.get('answer')!r} (acc={scores['acc']:g})")
    structure = three_step_structure(response, question.extra_info.get("n_images"))
    reasons.extend(f"structure: {r}" for r in structure.reasons)
    return Decision(keep=not reasons, reasons=tuple(reasons), acc=float(scores["acc"]), score=float(scores["score"]))


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class GenerationResult:
    out_dir: Path
    counts: Counts
    report: dict[str, Any]


def _record(question: PoolQuestion, k: int, phash: str, settings: TeacherSettings, answer: Answer) -> dict[str, Any]:
    return {
        "question_id": question.question_id,
        "sample": k,
        "model": settings.model,
        "prompt_hash": phash,
        "response": answer.text,
        "finish_reason": answer.finish_reason,
        "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens},
        "attempts": answer.attempts,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "seed": None if settings.seed is None else settings.seed + k,
    }


async def _request_all(settings: TeacherSettings, pool_path: Path, questions: list[PoolQuestion], cache: ResponseCache, counts: Counts, progress, log) -> dict[str, str]:
    """Ask for every (question, sample) the cache lacks; return each question's prompt hash."""
    hashes: dict[str, str] = {}
    by_row = {q.row: q for q in questions}
    client: ChatClient | None = None
    queue: asyncio.Queue = asyncio.Queue(maxsize=2 * settings.concurrency)
    fatal: list[BaseException] = []

    def advance() -> None:
        progress.set_postfix(kept=counts.kept, rejected=counts.rejected, failed=counts.failed, tokens=counts.prompt_tokens + counts.completion_tokens, refresh=False)
        progress.update(1)

    def tally(record: dict[str, Any], question: PoolQuestion) -> None:
        # the bar's running counts (duplicates are only found when the outputs are built)
        decision = judge(record["response"], question, record.get("finish_reason"))
        counts.kept += decision.keep
        counts.rejected += not decision.keep
        counts.prompt_tokens += record["usage"]["prompt_tokens"]
        counts.completion_tokens += record["usage"]["completion_tokens"]
        advance()

    async def worker() -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            question, k, phash, messages = job
            where = f"question {question.question_id!r} sample {k}"
            try:
                answer = await client.complete(messages, k, where)
            except _Fail as exc:
                counts.failed += 1
                log(f"{where}: failed: {client.redact(str(exc))}")
                advance()
                continue
            except TeacherError as exc:
                fatal.append(exc)
                return
            counts.requested += 1
            record = _record(question, k, phash, settings, answer)
            cache.append(record)
            tally(record, question)

    async def produce() -> None:
        for row, images in iter_pool_images(pool_path, by_row):
            question = by_row[row]
            where = _where(pool_path, row, question.question_id)
            if len(images) != question.extra_info["n_images"]:
                raise TeacherError(f"{where}: {len(images)} images but extra_info.n_images={question.extra_info['n_images']}")
            blobs = [b for b, _ in images]
            phash = hashes[question.question_id] = prompt_hash(question.question, blobs)
            messages = None
            for k in range(settings.samples_per_question):
                record = cache.get(cache_key(question.question_id, k, settings.model, phash))
                if record is not None:
                    counts.cached += 1
                    tally(record, question)
                    continue
                if messages is None:
                    messages = request_messages(question.question, blobs, where)
                while True:  # a fatal error stops the producer too
                    if fatal:
                        return
                    try:
                        await asyncio.wait_for(queue.put((question, k, phash, messages)), timeout=0.5)
                        break
                    except asyncio.TimeoutError:
                        continue

    client = ChatClient(settings, counts, log)
    workers = [asyncio.create_task(worker()) for _ in range(settings.concurrency)]
    try:
        await produce()
        for _ in workers:
            while not fatal:
                try:
                    await asyncio.wait_for(queue.put(None), timeout=0.5)
                    break
                except asyncio.TimeoutError:
                    continue
        if fatal:
            for task in workers:
                task.cancel()
        await asyncio.gather(*workers, return_exceptions=bool(fatal))
    finally:
        for task in workers:
            task.cancel()
        await client.aclose()
    if fatal:
        raise fatal[0]
    return hashes


def _hashes_offline(pool_path: Path, questions: list[PoolQuestion]) -> dict[str, str]:
    by_row = {q.row: q for q in questions}
    return {by_row[row].question_id: prompt_hash(by_row[row].question, [b for b, _ in images]) for row, images in iter_pool_images(pool_path, by_row)}


def _val_questions(kept_ids: Sequence[str], fraction: float) -> set[str]:
    """A deterministic held-out slice: the round(fraction * n) kept questions (at least one when
    fraction > 0 and at least two questions have kept chains) with the smallest sha256(question_id)."""
    if fraction <= 0 or len(kept_ids) < 2:
        return set()
    n = min(len(kept_ids) - 1, max(1, round(fraction * len(kept_ids))))
    return set(sorted(kept_ids, key=_digest)[:n])


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _category(question: PoolQuestion) -> str:
    return f"{question.data_source}/{question.extra_info.get('task') or '-'}"


def build_outputs(settings: TeacherSettings, pool_path: Path, out_dir: Path, questions: list[PoolQuestion], hashes: Mapping[str, str], cache: ResponseCache) -> dict[str, Any]:
    """Filter every cached sample of the pool and write train/val parquet, rejected/failed lists and
    the report. Pure function of (pool, cache, settings): same inputs, same bytes."""
    kept: dict[str, list[tuple[int, str]]] = {}  # question_id -> [(k, chain)]
    rejected: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    per_cat: dict[str, Counter] = {}
    reasons_cat: dict[str, Counter] = {}
    tokens = Counter()
    for q in questions:
        cat = per_cat.setdefault(_category(q), Counter())
        rc = reasons_cat.setdefault(_category(q), Counter())
        cat["questions"] += 1
        seen: dict[str, int] = {}
        for k in range(settings.samples_per_question):
            cat["samples"] += 1
            record = cache.get(cache_key(q.question_id, k, settings.model, hashes[q.question_id]))
            if record is None:
                cat["failed"] += 1
                failed.append({"question_id": q.question_id, "sample": k, "data_source": q.data_source, "task": q.extra_info.get("task")})
                continue
            cat["answered"] += 1
            tokens["prompt_tokens"] += record["usage"]["prompt_tokens"]
            tokens["completion_tokens"] += record["usage"]["completion_tokens"]
            text = record["response"].strip()
            decision = judge(record["response"], q, record.get("finish_reason"))
            reasons = list(decision.reasons)
            if decision.keep and text in seen:
                reasons.append(f"duplicate: the same chain as sample {seen[text]}")
            if reasons:
                cat["rejected"] += 1
                rc.update({reason_code(r) for r in reasons})
                rejected.append({"question_id": q.question_id, "sample": k, "data_source": q.data_source, "task": q.extra_info.get("task"), "acc": decision.acc, "reasons": reasons, "response": record["response"]})
                continue
            seen[text] = k
            cat["kept"] += 1
            kept.setdefault(q.question_id, []).append((k, text))
        cat["questions_kept"] += q.question_id in kept

    kept_ids = [q.question_id for q in questions if q.question_id in kept]
    val_ids = _val_questions(kept_ids, settings.val_fraction)
    by_row = {q.row: q for q in questions}
    index = {"sft_train": 0, "sft_val": 0}
    tmp = {name: out_dir / f"{name}.parquet.tmp" for name in ("train", "val")}
    writers = {name: ParquetRowWriter(path, SFT_SCHEMA, overwrite=True) for name, path in tmp.items()}
    try:
        for row, images in iter_pool_images(pool_path, by_row):
            q = by_row[row]
            if q.question_id not in kept:
                continue
            split = "sft_val" if q.question_id in val_ids else "sft_train"
            entries = [image_entry(data, path) for data, path in images]
            for _, chain in kept[q.question_id]:
                info = dict(q.extra_info)
                extra = make_extra_info(index=index[split], split=split, origin=info["origin"], task=info["task"], view=info.get("view", ""), question_id=q.question_id, n_images=info["n_images"])
                index[split] += 1
                writers["val" if split == "sft_val" else "train"].write(
                    make_sft_row(data_source=q.data_source, question=q.question, response=chain, images=entries, ground_truth=q.ground_truth, extra_info=extra)
                )
    finally:
        for writer in writers.values():
            writer.close()
    for name, path in tmp.items():
        os.replace(path, out_dir / f"{name}.parquet")
    _write_jsonl(out_dir / "rejected.jsonl", rejected)
    _write_jsonl(out_dir / "failed.jsonl", failed)

    def rates(c: Counter) -> dict[str, Any]:
        out = {key: int(c[key]) for key in ("questions", "samples", "answered", "kept", "rejected", "failed", "questions_kept")}
        out["kept_rate"] = round(c["kept"] / c["answered"], 4) if c["answered"] else None
        return out

    total = sum(per_cat.values(), Counter())
    report = {
        "pool": str(pool_path.name),
        "model": settings.model,
        "template": TEMPLATE_NAME,
        "samples_per_question": settings.samples_per_question,
        "val_fraction": settings.val_fraction,
        "total": rates(total),
        "rows": {"train": index["sft_train"], "val": index["sft_val"]},
        "tokens": {"prompt": int(tokens["prompt_tokens"]), "completion": int(tokens["completion_tokens"])},
        "categories": {name: {**rates(per_cat[name]), "rejected_by": dict(sorted(reasons_cat[name].items()))} for name in sorted(per_cat)},
        "rejected_by": dict(sorted(sum(reasons_cat.values(), Counter()).items())),
    }
    tmp_json = out_dir / "report.json.tmp"
    tmp_json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_json, out_dir / "report.json")
    (out_dir / "report.md").write_text(_report_markdown(report), encoding="utf-8")
    return report


def _report_markdown(report: Mapping[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [
        f"# Teacher chains of thought: {report['model']} on {report['pool']}",
        "",
        f"Template `{report['template']}`, {report['samples_per_question']} sample(s) per question. A chain is kept when "
        "`compute_score(...)['acc'] == 1.0` and it follows the three steps. "
        f"SFT rows: {report['rows']['train']} train, {report['rows']['val']} val. "
        f"Tokens: {report['tokens']['prompt']} prompt, {report['tokens']['completion']} completion.",
        "",
        "| category | questions | samples | answered | kept | kept rate | questions kept | failed | rejected by |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, c in [*report["categories"].items(), ("**total**", {**report["total"], "rejected_by": report["rejected_by"]})]:
        why = ", ".join(f"{code} {n}" for code, n in c["rejected_by"].items()) or "-"
        lines.append(f"| {name} | {c['questions']} | {c['samples']} | {c['answered']} | {c['kept']} | {pct(c['kept_rate'])} | {c['questions_kept']} | {c['failed']} | {why} |")
    return "\n".join(lines) + "\n"


def generate(settings: TeacherSettings, pool: str | os.PathLike, out_dir: str | os.PathLike, *, offline: bool = False, progress: bool = True, log=None) -> GenerationResult:
    """The whole stage: requests (unless `offline`), then filtering and outputs from the cache."""
    from tqdm import tqdm

    settings.check()
    pool_path, out = Path(pool), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    questions = load_pool(pool_path, settings.max_questions)
    counts = Counts()
    with _exclusive(out):
        bar = tqdm(total=len(questions) * settings.samples_per_question, desc="teacher", unit="sample", disable=not progress, dynamic_ncols=True)
        emit = log or (lambda message: bar.write(message, file=sys.stderr))
        cache = ResponseCache(out / CACHE_FILE, log=emit)
        try:
            if offline:
                hashes = _hashes_offline(pool_path, questions)
            else:
                hashes = asyncio.run(_request_all(settings, pool_path, questions, cache, counts, bar, emit))
        finally:
            cache.close()
            bar.close()
        report = build_outputs(settings, pool_path, out, questions, hashes, cache)
    return GenerationResult(out_dir=out, counts=counts, report=report)


# ---------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="generate_cot.py",
        description="Teacher chains of thought (three-step template) from an OpenAI-compatible endpoint, filtered by the project's scorer, as SFT parquet.",
    )
    p.add_argument("--in", dest="pool", required=True, help="pool parquet (RL rows: raw question with <image> placeholders, images, ground truth), e.g. sft_pool.parquet")
    p.add_argument("--out", required=True, help="output folder: responses.jsonl (cache), train/val.parquet, rejected.jsonl, failed.jsonl, report.json/.md")
    p.add_argument("--base-url", required=True, help="the API root, e.g. http://localhost:8000/v1 (requests go to BASE_URL/chat/completions)")
    p.add_argument("--model", required=True, help="model name sent to the endpoint (part of the cache key)")
    p.add_argument("--api-key-env", default=None, help="name of the environment variable holding the API key (default: no key, as for a local vLLM)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    p.add_argument("--samples-per-question", type=int, default=1, help="chains asked per question (default 1)")
    p.add_argument("--max-questions", type=int, default=None, help="only N questions: those with the smallest sha256(question_id), a stable pseudo-random subset that a larger N extends")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request before it is retried (default 300)")
    p.add_argument("--max-retries", type=int, default=5, help="retries per sample on 429/5xx/timeouts (default 5)")
    p.add_argument("--requests-per-second", type=float, default=None, help="rate limit over all workers, retries included (default none)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--seed", type=int, default=None, help="send seed+k for sample k (reproducible sampling where the server supports it)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of the questions with a kept chain held out as val.parquet (default 0.05; 0: no val file rows)")
    p.add_argument("--offline", action="store_true", help="no requests: rebuild the outputs from the cache (e.g. after changing --val-fraction)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    settings = TeacherSettings(
        base_url=ns.base_url, model=ns.model, api_key_env=ns.api_key_env, concurrency=ns.concurrency, samples_per_question=ns.samples_per_question,
        max_questions=ns.max_questions, timeout=ns.timeout, max_retries=ns.max_retries, requests_per_second=ns.requests_per_second,
        temperature=ns.temperature, max_tokens=ns.max_tokens, seed=ns.seed, val_fraction=ns.val_fraction,
    )  # fmt: skip
    started = time.monotonic()
    try:
        result = generate(settings, ns.pool, ns.out, offline=ns.offline, progress=not ns.no_progress)
    except TeacherError as exc:
        print(f"generate_cot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"generate_cot: interrupted; the answers so far are in {Path(ns.out) / CACHE_FILE}: rerun the same command to resume", file=sys.stderr)
        return 130
    c, total = result.counts, result.report["total"]
    print(
        f"{total['answered']}/{total['samples']} samples answered ({c.cached} from the cache, {c.requested} requested now, {c.retries} retries), "
        f"{total['kept']} kept ({total['questions_kept']} questions), {total['answered'] - total['kept']} rejected, {total['failed']} without an answer; "
        f"{result.report['rows']['train']} train / {result.report['rows']['val']} val rows in {result.out_dir} ({time.monotonic() - started:.1f} s)"
    )
    if total["failed"]:
        print(f"generate_cot: {total['failed']} sample(s) have no answer (failed.jsonl); rerun the same command to ask for them again", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "ChatClient", "Decision", "GenerationResult", "PoolQuestion", "RateLimiter", "ResponseCache", "TeacherError", "TeacherSettings",
    "build_outputs", "generate", "judge", "load_pool", "main", "prompt_hash", "request_messages", "retry_after_seconds",
]  # fmt: skip

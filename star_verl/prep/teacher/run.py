"""The teacher's run: requests for what the cache lacks (a producer and `concurrency` workers; the
first fatal error cancels the rest), then the outputs decided from the cache and written; and the
command line (`data_prep/generate_cot.py`, `star-verl generate-cot`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from star_verl.cli import HelpFormatter
from star_verl.prep.teacher.cache import CACHE_FILE, CacheKey, ResponseCache, cache_key, exclusive, prompt_hash
from star_verl.prep.teacher.client import Answer, ChatClient, Counts, SampleFailed, request_messages
from star_verl.prep.teacher.filter import ResponseLimit
from star_verl.prep.teacher.outputs import Verdicts, decide, write_outputs
from star_verl.prep.teacher.pool import PoolQuestion, iter_pool_images, load_pool, where
from star_verl.prep.teacher.settings import RL_RECIPE, TeacherError, TeacherSettings


@dataclass
class GenerationResult:
    out_dir: Path
    counts: Counts
    report: dict[str, Any]


@dataclass(frozen=True)
class _Job:
    question: PoolQuestion
    sample: int
    phash: str
    messages: list[dict[str, Any]]

    @property
    def where(self) -> str:
        return f"question {self.question.question_id!r} sample {self.sample}"


async def _run_cancelling_on_error(coroutines: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines as tasks until all finish; the first to raise cancels the others and its
    error is raised (what asyncio.TaskGroup does from Python 3.11)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Requests:
    """Ask for every (question, sample) the cache lacks. The producer reads the pool's images a batch
    at a time and queues the missing samples (a bounded queue: memory stays flat); each worker sends
    one at a time and appends the answer to the cache as it arrives."""

    def __init__(
        self,
        settings: TeacherSettings,
        pool_path: Path,
        questions: list[PoolQuestion],
        cache: ResponseCache,
        counts: Counts,
        verdicts: Verdicts,
        progress,
        log,
    ):
        self.settings, self.pool_path, self.questions = settings, pool_path, questions
        self.cache, self.counts, self.verdicts, self.progress, self.log = cache, counts, verdicts, progress, log
        self.hashes: dict[str, str] = {}

    async def run(self) -> dict[str, str]:
        """Each question's prompt hash, once every missing sample is answered or failed."""
        client = ChatClient(self.settings, self.counts, self.log)
        queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=2 * self.settings.concurrency)
        try:
            await _run_cancelling_on_error([self._produce(queue), *(self._work(queue, client) for _ in range(self.settings.concurrency))])
        finally:
            await client.aclose()
        return self.hashes

    async def _produce(self, queue: asyncio.Queue) -> None:
        by_row = {q.row: q for q in self.questions}
        for row, images in iter_pool_images(self.pool_path, by_row):
            question = by_row[row]
            if len(images) != question.extra_info["n_images"]:
                raise TeacherError(
                    f"{where(self.pool_path, row, question.question_id)}: {len(images)} images but extra_info.n_images={question.extra_info['n_images']}"
                )
            blobs = [b for b, _ in images]
            phash = self.hashes[question.question_id] = prompt_hash(question.question, blobs)
            messages = None
            for k in range(self.settings.samples_per_question):
                key = cache_key(question.question_id, k, self.settings.model, phash)
                record = self.cache.get(key)
                if record is not None:
                    self.counts.cached += 1
                    self._tally(key, record, question)
                    continue
                if messages is None:
                    messages = request_messages(question.question, blobs, where(self.pool_path, row, question.question_id))
                await queue.put(_Job(question, k, phash, messages))
        for _ in range(self.settings.concurrency):
            await queue.put(None)  # one stop per worker

    async def _work(self, queue: asyncio.Queue, client: ChatClient) -> None:
        while (job := await queue.get()) is not None:
            try:
                answer = await client.complete(job.messages, job.sample, job.where)
            except SampleFailed as exc:
                self.counts.failed += 1
                self.log(f"{job.where}: failed: {client.redact(str(exc))}")
                self._advance()
                continue
            self.counts.requested += 1
            record = _record(job, self.settings, answer)
            self.cache.append(record)
            self._tally(cache_key(job.question.question_id, job.sample, self.settings.model, job.phash), record, job.question)

    def _tally(self, key: CacheKey, record: dict[str, Any], question: PoolQuestion) -> None:
        # the bar's running counts (duplicates are only found when the outputs are decided)
        decision = self.verdicts.of(key, record, question)
        self.counts.kept += decision.keep
        self.counts.rejected += not decision.keep
        self.counts.prompt_tokens += record["usage"]["prompt_tokens"]
        self.counts.completion_tokens += record["usage"]["completion_tokens"]
        self._advance()

    def _advance(self) -> None:
        c = self.counts
        self.progress.set_postfix(kept=c.kept, rejected=c.rejected, failed=c.failed, tokens=c.prompt_tokens + c.completion_tokens, refresh=False)
        self.progress.update(1)


def _record(job: _Job, settings: TeacherSettings, answer: Answer) -> dict[str, Any]:
    return {
        "question_id": job.question.question_id,
        "sample": job.sample,
        "model": settings.model,
        "prompt_hash": job.phash,
        "response": answer.text,
        "finish_reason": answer.finish_reason,
        "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens},
        "attempts": answer.attempts,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "seed": None if settings.seed is None else settings.seed + job.sample,
    }


def _hashes_offline(pool_path: Path, questions: list[PoolQuestion]) -> dict[str, str]:
    by_row = {q.row: q for q in questions}
    return {by_row[row].question_id: prompt_hash(by_row[row].question, [b for b, _ in images]) for row, images in iter_pool_images(pool_path, by_row)}


def generate(
    settings: TeacherSettings, pool: str | Path, out_dir: str | Path, *, offline: bool = False, progress: bool = True, log=None
) -> GenerationResult:
    """The whole stage: requests (unless `offline`), then filtering and outputs from the cache."""
    from tqdm import tqdm

    settings.check()
    pool_path, out = Path(pool), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    questions = load_pool(pool_path, settings.max_questions)
    max_length = settings.response_length()
    limit = None
    if settings.tokenizer is not None:
        try:
            limit = ResponseLimit.from_tokenizer(settings.tokenizer, max_length)
        except (OSError, ValueError) as exc:
            raise TeacherError(f"--tokenizer {settings.tokenizer}: cannot load a tokenizer: {exc}") from None
    counts, verdicts = Counts(), Verdicts(limit)
    with exclusive(out):
        bar = tqdm(total=len(questions) * settings.samples_per_question, desc="teacher", unit="sample", disable=not progress, dynamic_ncols=True)
        emit = log or (lambda message: bar.write(message, file=sys.stderr))
        if limit is None:
            emit(
                f"no --tokenizer: kept chains are not checked against the RL response length ({max_length} student tokens, "
                f"{RL_RECIPE}'s data.max_response_length); a longer chain would be cut off in RL"
            )
        cache = ResponseCache(out / CACHE_FILE, log=emit)
        try:
            if offline:
                hashes = _hashes_offline(pool_path, questions)
            else:
                hashes = asyncio.run(_Requests(settings, pool_path, questions, cache, counts, verdicts, bar, emit).run())
        finally:
            cache.close()
            bar.close()
        outputs = decide(settings, pool_path.name, questions, hashes, cache, verdicts)
        write_outputs(outputs, pool_path, out, questions)
    return GenerationResult(out_dir=out, counts=counts, report=outputs.report)


# ---------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="star-verl generate-cot",
        formatter_class=HelpFormatter,
        description="Teacher chains of thought (three-step template) from an OpenAI-compatible endpoint, filtered by the project's scorer, as SFT parquet.",
    )
    p.add_argument(
        "--in",
        dest="pool",
        required=True,
        help="pool parquet (RL rows: raw question with <image> placeholders, images, ground truth), e.g. sft_pool.parquet",
    )
    p.add_argument(
        "--out", required=True, help="output folder: responses.jsonl (cache), train/val.parquet, rejected.jsonl, failed.jsonl, report.json/.md"
    )
    p.add_argument("--base-url", required=True, help="the API root, e.g. http://localhost:8000/v1 (requests go to BASE_URL/chat/completions)")
    p.add_argument("--model", required=True, help="model name sent to the endpoint (part of the cache key)")
    p.add_argument("--api-key-env", default=None, help="name of the environment variable holding the API key (default: no key, as for a local vLLM)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--samples-per-question", type=int, default=1, help="chains asked per question")
    p.add_argument(
        "--max-questions",
        type=int,
        default=None,
        help="only N questions: those with the smallest sha256(question_id), a stable pseudo-random subset that a larger N extends (default: all)",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request before it counts as a failed attempt and is retried")
    p.add_argument("--max-retries", type=int, default=5, help="retries per sample on 408/409/425/429/5xx, timeouts and connection errors")
    p.add_argument("--requests-per-second", type=float, default=None, help="rate limit over all workers, retries included (default none)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature sent to the endpoint")
    p.add_argument("--max-tokens", type=int, default=4096, help="max_tokens sent to the endpoint: the longest chain asked for")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="send seed+k for sample k, for reproducible sampling where the server supports it (default: no seed sent)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.05,
        help="share of the questions with a kept chain held out as val.parquet (default 0.05; 0: no val file rows)",
    )
    p.add_argument(
        "--tokenizer",
        metavar="DIR",
        default=None,
        help="the student model's tokenizer (e.g. the SFT base model's folder): reject chains longer than the RL response length in its tokens "
        "(default: not checked, and the report says so)",
    )
    p.add_argument(
        "--max-response-length",
        type=int,
        default=None,
        help=f"the length limit in student tokens (default: {RL_RECIPE}'s data.max_response_length)",
    )
    p.add_argument("--offline", action="store_true", help="no requests: rebuild the outputs from the cache (e.g. after changing --val-fraction)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    settings = TeacherSettings(
        base_url=ns.base_url, model=ns.model, api_key_env=ns.api_key_env, concurrency=ns.concurrency, samples_per_question=ns.samples_per_question,
        max_questions=ns.max_questions, timeout=ns.timeout, max_retries=ns.max_retries, requests_per_second=ns.requests_per_second,
        temperature=ns.temperature, max_tokens=ns.max_tokens, seed=ns.seed, val_fraction=ns.val_fraction,
        tokenizer=ns.tokenizer, max_response_length=ns.max_response_length,
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
        print(
            f"generate_cot: {total['failed']} sample(s) have no answer (failed.jsonl); rerun the same command to ask for them again", file=sys.stderr
        )
        return 1
    return 0

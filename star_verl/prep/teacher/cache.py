"""The answer cache: `responses.jsonl`, append-only, keyed by (question_id, sample, model, prompt
hash), and the lock that keeps one writer per output folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from star_verl.prep.teacher.settings import TEMPLATE_NAME, TeacherError
from star_verl.prompts import prompt_messages
from star_verl.templates import get_template

CACHE_FILE = "responses.jsonl"

CacheKey = tuple[str, int, str, str]


def cache_key(question_id: str, sample: int, model: str, phash: str) -> CacheKey:
    return (question_id, int(sample), model, phash)


def prompt_hash(question: str, images: Sequence[bytes]) -> str:
    """What identifies a prompt in the cache: the template's rendered text (the builder's text form)
    and the images' digests (a changed template or image asks again; a changed temperature or
    max_tokens does not)."""
    payload = {
        "template": TEMPLATE_NAME,
        "messages": prompt_messages(get_template(TEMPLATE_NAME), question),
        "images": [hashlib.sha256(b).hexdigest() for b in images],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class ResponseCache:
    """`responses.jsonl`: one JSON line per answer, appended, flushed and fsynced as it arrives.

    A process killed while writing leaves at most a partial last line: it is cut off on open (that
    answer is asked again). A broken line elsewhere is corruption and stops the run."""

    def __init__(self, path: Path, log=print):
        self.path = path
        self.entries: dict[CacheKey, dict[str, Any]] = {}
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
                    raise TeacherError(
                        f"{self.path} line {number}: not a cache record ({type(exc).__name__}: {exc}); fix or remove the line"
                    ) from None
                self.entries[key] = record
            pos = end
        if data and not data.endswith(b"\n"):  # a complete last record without its newline
            with open(self.path, "ab") as f:
                f.write(b"\n")

    def get(self, key: CacheKey) -> dict[str, Any] | None:
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
def exclusive(out_dir: Path):
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

"""The chat-completions client: the request's messages (the shared prompt builder, in OpenAI's
format), retries with backoff (a server's Retry-After wins), a timeout and a request-rate limit."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BytesIO
from typing import Any

from star_verl.prep.teacher.settings import TEMPLATE_NAME, TeacherError, TeacherSettings
from star_verl.prompts import PromptError, prompt_messages
from star_verl.templates import get_template

RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
FATAL_STATUS = frozenset({401, 403, 404})
MAX_RETRY_AFTER_S = 600.0
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}


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
    """The three-step template's [system, user] messages (`star_verl.prompts.prompt_messages`, as
    the datasets build them) in OpenAI chat format: each `<image>` an `image_url` part holding the
    image as a base64 data URL, in placeholder order; a text-only content (the system message) as a
    plain string, the form every chat API accepts."""
    parts = [
        {"type": "image_url", "image_url": {"url": f"data:{_mime(data, where)};base64,{base64.b64encode(data).decode('ascii')}"}} for data in images
    ]
    try:
        messages = prompt_messages(get_template(TEMPLATE_NAME), question, parts)
    except PromptError as exc:
        raise TeacherError(f"{where}: {exc}") from None
    return [{"role": m["role"], "content": _text_or_parts(m["content"])} for m in messages]


def _text_or_parts(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, list) and all(part["type"] == "text" for part in content):
        return "".join(part["text"] for part in content)
    return content


class RateLimiter:
    """At most `rate` request starts per second over all workers (retries included)."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> float | None:
        """Return at the start granted to this request (that time on the event loop's clock; None: no limit)."""
        if not self.interval:
            return None
        loop = asyncio.get_running_loop()
        async with self._lock:
            now = loop.time()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)
        return start


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


class SampleFailed(Exception):
    """A sample with no answer (after retries, or a non-retryable status): counted, not cached."""


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
        self.client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/", headers=headers, timeout=httpx.Timeout(settings.timeout), limits=limits
        )
        self.limiter = RateLimiter(settings.requests_per_second)

    def redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    async def aclose(self) -> None:
        await self.client.aclose()

    def _body(self, messages: list[dict[str, Any]], k: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
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
            raise TeacherError(
                f"{self.settings.base_url} answered HTTP {response.status_code} (check --base-url, --model and the key): {self.redact(response.text[:300])}"
            )
        if response.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("retry-after")))
        if response.status_code != 200:
            raise SampleFailed(f"HTTP {response.status_code}: {self.redact(response.text[:300])}")
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
        """One sample; raises SampleFailed after the last retry (TeacherError for a fatal status)."""
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
                    raise SampleFailed(f"{exc} (gave up after {attempt + 1} attempts)") from None
                delay = exc.retry_after
                if delay is None:
                    delay = min(self.settings.backoff_max, self.settings.backoff_base * 2**attempt) * (1.0 + 0.25 * random.random())
                self.counts.retries += 1
                self.log(f"{where}: {exc}; retry {attempt + 1}/{self.settings.max_retries} in {delay:.1f} s")
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

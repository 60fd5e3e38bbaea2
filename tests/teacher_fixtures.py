"""Fixtures of the teacher tests: a small multi-view pool parquet and a REAL chat-completions server
on loopback (http.server in a thread) whose answers are scripted per question and attempt."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from star_verl.prep.schema import RL_SCHEMA, ParquetRowWriter, image_entry, make_extra_info, make_rl_row
from tests.images import solid

OPTIONS = ["A", "B", "C", "D"]
_QID = re.compile(r"Question (\w+):")


def pool_question(qid: str) -> str:
    return f"Question {qid}: <image><image> Which object is behind the sofa in image 2? A. ball B. lamp C. chair D. table"


def answer_of(n: int) -> str:
    return OPTIONS[n % 4]


def write_pool(path: Path, n: int, *, tasks=("among", "around"), image_size: int = 32) -> dict[str, dict[str, Any]]:
    """n two-view multiple-choice rows (MindCube tasks alternating, every third row SPAR);
    returns question_id -> {answer, data_source, task, images}."""
    truth: dict[str, dict[str, Any]] = {}
    with ParquetRowWriter(path, RL_SCHEMA) as writer:
        for i in range(n):
            qid = f"q{i}"
            source = "spar" if i % 3 == 2 else "mindcube"
            task = "obj_spatial_relation_oo" if source == "spar" else tasks[i % len(tasks)]
            origin = "spar7m" if source == "spar" else "mindcube"
            images = [solid((20 * i % 256, 40, 90), (image_size, image_size)), solid((90, 20 * i % 256, 40), (image_size, image_size))]
            gt = {"type": "choice", "answer": answer_of(i), "options": OPTIONS, "task": task, "references": [["sofa", "ball", "behind"]]}
            writer.write(
                make_rl_row(
                    data_source=source, question=pool_question(qid), images=[image_entry(b, f"img/{qid}_{k}.png") for k, b in enumerate(images)],
                    ground_truth=gt, extra_info=make_extra_info(index=i, split="sft_pool", origin=origin, task=task, question_id=qid, n_images=2),
                )
            )  # fmt: skip
            truth[qid] = {"answer": answer_of(i), "data_source": source, "task": task, "images": images}
    return truth


def chain(letter: str, *, sample: int = 0) -> str:
    """A three-step chain of thought that the structure check accepts (triplets for images 1 and 2)."""
    return (
        "<think>Step 1 (per-view reference analysis):\n"
        f"Image 1: [sofa, ball, behind], [lamp, sofa, left]\nImage 2: [chair, sofa, right]\n"
        f"Step 2 (cross-view mapping): the sofa of image 1 is the sofa of image 2 (sample {sample}).\n"
        f"Step 3 (spatial reasoning): behind the sofa is option {letter}.</think>\n<answer>{letter}</answer>"
    )


def wrong_letter(letter: str) -> str:
    return OPTIONS[(OPTIONS.index(letter) + 1) % 4]


class ScriptedChatServer:
    """An OpenAI-compatible `POST /v1/chat/completions` on 127.0.0.1 (ephemeral port).

    `script[qid]` (or `script[f"{qid}#{seed}"]`) lists what the server does on the 1st, 2nd, ...
    request for that question (and seed); the last step repeats. Steps: "right", "wrong",
    "malformed" (no tags), "nosteps" (right answer, no three steps), "truncated" (right chain,
    finish_reason=length), "500", "429" (Retry-After: `retry_after`), "slow" (sleeps `slow_s` then
    answers right), "badjson" (HTTP 200, not JSON), "401". Unscripted questions get "right".
    Every request is logged (question, seed, step, key, model, images, messages)."""

    def __init__(
        self,
        truth: dict[str, dict[str, Any]],
        script: dict[str, list[str]] | None = None,
        *,
        delay_s: float = 0.0,
        retry_after: float = 1.0,
        slow_s: float = 3.0,
        expected_key: str | None = None,
    ):
        self.truth = truth
        self.script = dict(script or {})
        self.delay_s = delay_s
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.expected_key = expected_key
        self.log: list[dict[str, Any]] = []
        self._attempts: Counter = Counter()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.log.clear()
            self._attempts.clear()

    def requests_per_question(self) -> Counter:
        return Counter(entry["qid"] for entry in self.log)

    def _step(self, qid: str, seed: int) -> str:
        key = f"{qid}#{seed}"
        steps = self.script.get(key) or self.script.get(qid) or ["right"]
        with self._lock:
            n = self._attempts[key]
            self._attempts[key] += 1
        return steps[min(n, len(steps) - 1)]

    def _content(self, step: str, qid: str, seed: int) -> tuple[str, str]:
        letter = self.truth[qid]["answer"]
        if step in ("right", "slow"):
            return chain(letter, sample=seed), "stop"
        if step == "wrong":
            return chain(wrong_letter(letter), sample=seed), "stop"
        if step == "malformed":
            return f"I think the answer is {letter}.", "stop"
        if step == "nosteps":
            return f"<think>The ball is behind the sofa, so {letter}.</think><answer>{letter}</answer>", "stop"
        if step == "truncated":
            return chain(letter, sample=seed), "length"
        raise AssertionError(f"unknown step {step}")

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                user = body["messages"][-1]["content"]
                texts = " ".join(part["text"] for part in user if part["type"] == "text")
                images = [part["image_url"]["url"] for part in user if part["type"] == "image_url"]
                qid = _QID.search(texts).group(1)
                seed = int(body.get("seed") or 0)
                step = outer._step(qid, seed)
                auth = self.headers.get("Authorization")
                with outer._lock:
                    outer.log.append(
                        {
                            "qid": qid,
                            "seed": seed,
                            "step": step,
                            "auth": auth,
                            "model": body["model"],
                            "n_images": len(images),
                            "system": body["messages"][0]["content"],
                            "user": user,
                        }
                    )
                if outer.expected_key is not None and auth != f"Bearer {outer.expected_key}":
                    return self._send(401, json.dumps({"error": f"bad key {auth}"}).encode())
                if step == "401":
                    return self._send(401, json.dumps({"error": f"invalid key {auth}"}).encode())
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if step == "500":
                    return self._send(500, b'{"error": "internal"}')
                if step == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": f"{outer.retry_after:g}"})
                if step == "badjson":
                    return self._send(200, b"<html>gateway hiccup</html>")
                if step == "slow":
                    time.sleep(outer.slow_s)
                content, finish = outer._content(step, qid, seed)
                payload = {
                    "id": f"chatcmpl-{qid}-{seed}", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 100 + len(images), "completion_tokens": len(content.split()), "total_tokens": 100 + len(images) + len(content.split())},
                }  # fmt: skip
                self._send(200, json.dumps(payload).encode())

        return Handler

"""The teacher's settings (the command line's options) and its error."""

from __future__ import annotations

import os
from dataclasses import dataclass

TEMPLATE_NAME = "three_step"
RL_RECIPE = "star_r1_mv"  # the stage 2 recipe whose data.max_response_length a kept chain must fit


class TeacherError(RuntimeError):
    """A problem that stops the run: bad input, bad settings, or a server that refuses every request."""


@dataclass(frozen=True)
class TeacherSettings:
    base_url: str
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key; None: no key
    concurrency: int = 8
    samples_per_question: int = 1
    max_questions: int | None = None  # a stable pseudo-random subset of N questions (see pool.load_pool)
    timeout: float = 300.0  # seconds per request (the whole request, not per read)
    max_retries: int = 5
    requests_per_second: float | None = None  # None: no limit
    temperature: float = 0.7
    max_tokens: int = 4096
    seed: int | None = None  # sent as `seed + k` for sample k when set (reproducible sampling on vLLM/SGLang/OpenAI)
    val_fraction: float = 0.05  # share of the questions with a kept chain held out for validation
    tokenizer: str | None = None  # the student's tokenizer (a model folder): chains longer than RL's response length are rejected; None: not checked
    max_response_length: int | None = None  # in student tokens; None: the RL recipe's data.max_response_length (RL_RECIPE)
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
        if self.max_response_length is not None and self.max_response_length < 1:
            problems.append(f"--max-response-length must be >= 1, got {self.max_response_length}")
        if not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if problems:
            raise TeacherError("; ".join(problems))

    def response_length(self) -> int:
        """The chains' length limit: --max-response-length, else the RL recipe's data.max_response_length."""
        if self.max_response_length is not None:
            return self.max_response_length
        from star_verl.recipes import recipe_value

        return int(recipe_value(RL_RECIPE, "data.max_response_length"))

    def api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise TeacherError(f"--api-key-env {self.api_key_env}: the environment variable is not set or empty")
        return key

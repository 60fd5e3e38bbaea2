"""The `<think>...</think><answer>...</answer>` response format: one parser for every task.

Decisions (documented in the README):
- The format is well formed only for exactly one `<think>` block followed by exactly one `<answer>`
  block, with nothing but white space before, between and after them. Repeated, nested or stray
  tags (any second `<think>`, `</think>`, `<answer>` or `</answer>`) make it malformed, so they
  never earn the format reward.
- The answer scored is the content of the *last* complete `<answer>...</answer>` block, also in a
  malformed response (the format term alone pays for the format). No closed block: no answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
_WELL_FORMED = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)


@dataclass(frozen=True)
class TaggedResponse:
    think: str | None  # content of the think block when the response is well formed, else the text before the answer
    answer: str | None  # content of the last complete answer block, None when there is none
    well_formed: bool


def as_text(response: object) -> str:
    """Any model output as text: bytes are decoded leniently, None is empty.

    >>> as_text(b"<answer>4</answer>"), as_text(None), as_text(7)
    ('<answer>4</answer>', '', '7')
    """
    if response is None:
        return ""
    if isinstance(response, bytes):
        return response.decode("utf-8", errors="replace")
    return response if isinstance(response, str) else str(response)


def last_answer(text: str) -> str | None:
    """The content of the last complete `<answer>...</answer>` block, or None.

    >>> last_answer("<answer>3</answer> no, <answer>4</answer>")
    '4'
    """
    close = text.rfind(ANSWER_CLOSE)
    if close < 0:
        return None
    open_ = text.rfind(ANSWER_OPEN, 0, close)
    if open_ < 0:
        return None
    return text[open_ + len(ANSWER_OPEN) : close]


def parse_tags(response: object) -> TaggedResponse:
    """The think text, the last answer and whether the response is well formed (see the module's rules).

    >>> parse_tags("<think>2 + 2</think> <answer>4</answer>")
    TaggedResponse(think='2 + 2', answer='4', well_formed=True)
    >>> parse_tags("<answer>3</answer><answer>4</answer>").answer, parse_tags("<answer>4").answer
    ('4', None)
    """
    text = as_text(response)
    answer = last_answer(text)
    well_formed = all(text.count(tag) == 1 for tag in _TAGS) and _WELL_FORMED.fullmatch(text) is not None
    if well_formed:
        think = text[text.index(THINK_OPEN) + len(THINK_OPEN) : text.index(THINK_CLOSE)]
    else:
        cut = text.rfind(ANSWER_OPEN)
        think = text[:cut] if cut >= 0 else text
    return TaggedResponse(think=think, answer=answer, well_formed=well_formed)

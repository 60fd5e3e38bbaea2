"""Multiple-choice answers (MindCube, SPAR-Bench's choice tasks, MMSI-Bench): the option letter.

One strict extractor for reward and evaluation. It reads the text it is given (the reward passes the
content of the `<answer>` block) and never guesses:
1. a bare letter, possibly wrapped and after an "Answer:" / "The answer is" prefix: `C`, `c`, `C.`,
   `(C)`, `[C]`, `**C**`, `Answer: c`;
2. otherwise the explicit forms `C. text`, `(C) text`, `C) text`, `C: text` at the start, `Answer: C`,
   `the answer is C`, `option C`, and `(C)` anywhere: if they name exactly one letter, that letter;
   if they name several, the answer is ambiguous (absent);
3. otherwise a capital letter standing alone (`so the answer must be B.`) when exactly one option
   letter stands alone in the text; a text that mentions several ("A or C", "A chair ... so C") is absent.
A letter outside the sample's options is absent.

The official extractors differ (see the README): MindCube takes the last `X.` anywhere, MMSI-Bench the
first standalone A-D not followed by a word, and SPAR-Bench's exact match even counts an empty
prediction as right. Their reproductions live in `star_verl.eval.official`.
"""

from __future__ import annotations

import re
from collections.abc import Collection

_MARKDOWN = re.compile(r"[*`\"]")
_PREFIX = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*)?[:=]?\s*", re.IGNORECASE)
_BARE = re.compile(r"[(\[{]?\s*([A-Za-z])\s*[)\]}]?\s*[.:)]?")
_LEADING = re.compile(r"[(\[]?([A-Z])(?:[.:)\]]|\s*[)\]])\s*\S")
_MARKED = re.compile(r"(?i:\banswer|\boption|\bchoice)(?:\s+(?i:is|would\s+be|will\s+be))?\s*[:=]?\s*[(\[]?([A-Z])(?![A-Za-z0-9'’])")
_PARENTHESIZED = re.compile(r"\(([A-Z])\)")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'’_-])([A-Z])(?![A-Za-z0-9'’_-])")
_MAX_CHARS = 20000  # an answer block longer than this is not an option letter; bounds the work


def extract_option_letter(text: str | None, options: Collection[str]) -> str | None:
    """The option letter the text states, or None (absent, ambiguous, or not one of `options`).

    >>> extract_option_letter("(b)", "ABCD"), extract_option_letter("The answer is C.", "ABCD")
    ('B', 'C')
    >>> extract_option_letter("A or C", "ABCD") is None, extract_option_letter("E", "ABCD") is None
    (True, True)
    """
    if not text:
        return None
    clean = _MARKDOWN.sub("", text[:_MAX_CHARS]).strip()
    bare = _BARE.fullmatch(_PREFIX.sub("", clean, count=1) if _PREFIX.match(clean) else clean)
    if bare:
        letter = bare.group(1).upper()
        return letter if letter in options else None
    explicit = set(_MARKED.findall(clean)) | set(_PARENTHESIZED.findall(clean))
    leading = _LEADING.match(clean)
    if leading:
        explicit.add(leading.group(1))
    candidates = explicit or {letter for letter in _STANDALONE.findall(clean) if letter in options}
    if len(candidates) != 1:
        return None
    letter = candidates.pop()
    return letter if letter in options else None

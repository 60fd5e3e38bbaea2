"""SPAR's `view_change_infer` answers: `move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75`.

Like SPAR-Bench, the string is reduced to five signed components (move right-left, move up-down,
move forward-backward, rotate right-left, rotate up-down) and scored as the mean of the
per-component MRA (`star_verl.tasks.numeric`). Differences (our strict protocol, documented in the README):
- SPAR-Bench calls `mean_relative_accuracy(gt, pred)`: its arguments are swapped, so the error is
  relative to the *prediction* (and a predicted 0 switches to the absolute error). Here the error is
  relative to the ground truth, as for every other MRA;
- a component the prediction does not state earns 0 for that component (SPAR-Bench reads a missing
  key as 0, which is right whenever the ground truth's component is 0); a component stated twice
  with different values is ambiguous and earns 0;
- items are read anywhere in the answer text, with spaces allowed around ":" and ",", a trailing unit
  (m, meter(s), deg, degree(s), °), and `move_back` as `move_backward` (the question itself writes
  `move_<forward_or_back>`). SPAR-Bench scores 0 for the whole answer on any parse error.
"""

from __future__ import annotations

import math
import re

from star_verl.tasks.numeric import mean_relative_accuracy

# (component name, positive key, negative key), in SPAR-Bench's order.
COMPONENTS = (
    ("move_right_left", "move_right", "move_left"),
    ("move_up_down", "move_up", "move_down"),
    ("move_forward_backward", "move_forward", "move_backward"),
    ("rotate_right_left", "rotate_right", "rotate_left"),
    ("rotate_up_down", "rotate_up", "rotate_down"),
)
_KEY_COMPONENT = {key: (index, sign) for index, (_, pos, neg) in enumerate(COMPONENTS) for key, sign in ((pos, 1.0), (neg, -1.0))}
_ALIASES = {"move_back": "move_backward"}

_ITEM = re.compile(
    r"\b(move|rotate)_(right|left|up|down|forward|backward|back)\s*:\s*([-+]?(?:\d+(?:\.\d+)?|\.\d+))"
    r"(?:\s*(?:m|meters?|metres?|deg|degrees?|°))?(?![\w.])",
    re.IGNORECASE,
)
_MAX_ITEMS = 32

ViewChange = tuple[float | None, ...]  # the five components; None = not stated (or ambiguous)


def _components(items: list[tuple[str, float]]) -> ViewChange:
    by_key: dict[str, set[float]] = {}
    for key, value in items:
        by_key.setdefault(key, set()).add(value)
    out: list[float | None] = [None] * len(COMPONENTS)
    for index, (_, pos, neg) in enumerate(COMPONENTS):
        stated = [k for k in (pos, neg) if k in by_key]
        if not stated or any(len(by_key[k]) > 1 for k in stated):
            continue
        out[index] = sum(_KEY_COMPONENT[k][1] * next(iter(by_key[k])) for k in stated)
    return tuple(out)


def _key(match: re.Match) -> str:
    key = f"{match.group(1).lower()}_{match.group(2).lower()}"
    return _ALIASES.get(key, key)


def _items(text: str) -> list[tuple[str, float]]:
    items = []
    for count, match in enumerate(_ITEM.finditer(text)):
        if count >= _MAX_ITEMS:
            break
        value = float(match.group(3))
        if math.isfinite(value):
            items.append((_key(match), value))
    return items


def extract_view_change(text: str | None) -> ViewChange | None:
    """The five components a predicted answer states (None for each one it does not); None when it states none.

    >>> extract_view_change("I would move_right: 1.5 m, then rotate_left:30 degrees")
    (1.5, None, None, -30.0, None)
    >>> extract_view_change("turn a little") is None
    True
    """
    if not text:
        return None
    components = _components(_items(text))
    return None if all(c is None for c in components) else components


def parse_view_change(answer: str) -> tuple[float, ...]:
    """A ground-truth string: every item must be `key:number` with a known key, each key at most once,
    and all five components stated (SPAR's answers always list five items). Raises ValueError.

    >>> parse_view_change("move_right:1.5,move_up:0,move_forward:0,rotate_left:30,rotate_up:0")
    (1.5, 0.0, 0.0, -30.0, 0.0)
    """
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"view_change answer must be a non-empty string, got {answer!r}")
    parts = [p.strip() for p in answer.split(",")]
    seen: set[str] = set()
    items = []
    for part in parts:
        match = _ITEM.fullmatch(part)
        if match is None:
            raise ValueError(f"view_change answer {answer!r}: item {part!r} is not move_/rotate_<direction>:<number>")
        key = _key(match)
        if key in seen:
            raise ValueError(f"view_change answer {answer!r}: {key} appears twice")
        seen.add(key)
        items.append((key, float(match.group(3))))
    components = _components(items)
    missing = [COMPONENTS[i][0] for i, c in enumerate(components) if c is None]
    if missing:
        raise ValueError(f"view_change answer {answer!r}: no value for {missing}")
    return tuple(float(c) for c in components)  # type: ignore[arg-type]


def view_change_score(pred: ViewChange | None, gt: tuple[float, ...]) -> float:
    """Mean per-component MRA (relative to the ground truth); an unstated component scores 0.

    >>> gt = (1.5, 0.0, 0.0, -30.0, 0.0)
    >>> view_change_score(gt, gt), view_change_score((1.5, None, None, -30.0, None), gt), view_change_score(None, gt)
    (1.0, 0.4, 0.0)
    """
    if pred is None:
        return 0.0
    return sum(0.0 if p is None else mean_relative_accuracy(p, g) for p, g in zip(pred, gt, strict=True)) / len(gt)

"""Numeric answers (SPAR's depth and distance tasks) and SPAR-Bench's mean relative accuracy (MRA).

MRA is computed exactly as SPAR-Bench's `mean_relative_accuracy(pred, target, .5, .95, .05)`
(lmms-eval `tasks/sparbench/utils.py`): the thresholds are `np.linspace(.5, .95, int((.95 - .5) / .05 + 2))`,
which is 10 values (0.50, 0.55, ..., 0.95: the float division gives 10.999..., truncated), and the
score is the fraction of thresholds t with `|pred - gt| / |gt| <= 1 - t`; for gt == 0 the absolute
error replaces the relative one. The thresholds are rebuilt here without numpy, the way numpy's
linspace computes them (`start + i * step`, the last one set to `stop`), so the comparisons agree bit for bit.

Extraction is strict (our protocol; SPAR-Bench takes the first number of the raw output for
single-view tasks and the last one for multi-view tasks, and -1 when there is none):
- the answer text must hold exactly one value: "2.6", "2.6 meters", "about 3 m", "~2.6m" are 2.6 / 3;
  "between 2 and 3 meters" is ambiguous, hence absent (values that agree after unit conversion, as in
  "2.6 m (260 cm)", are one value);
- numbers written in words are not read;
- length units are converted to meters, the unit of SPAR's answers: cm, mm, km, ft/feet/foot;
  "m", "meter(s)", "metre(s)" and any other word are taken as they are.
"""

from __future__ import annotations

import math
import re

MRA_START, MRA_STOP, MRA_INTERVAL = 0.5, 0.95, 0.05


def _mra_thresholds() -> tuple[float, ...]:
    num = int((MRA_STOP - MRA_START) / MRA_INTERVAL + 2)  # 10, as SPAR-Bench computes it
    step = (MRA_STOP - MRA_START) / (num - 1)
    values = [MRA_START + i * step for i in range(num)]
    values[-1] = MRA_STOP
    return tuple(values)


MRA_THRESHOLDS = _mra_thresholds()

# Factor to meters per unit word (lower case); unit words not listed leave the number as it is.
_LENGTH_UNITS = {
    "cm": 0.01, "centimeter": 0.01, "centimeters": 0.01, "centimetre": 0.01, "centimetres": 0.01,
    "mm": 0.001, "millimeter": 0.001, "millimeters": 0.001, "millimetre": 0.001, "millimetres": 0.001,
    "km": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0, "kilometre": 1000.0, "kilometres": 1000.0,
    "ft": 0.3048, "foot": 0.3048, "feet": 0.3048,
}  # fmt: skip

# A number not glued to letters, digits or a caret (SPAR-Bench skips numbers after "^" too: exponents),
# with an optional sign and the unit word right after it.
_NUMBER = re.compile(r"(?<![\w.^])([-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?)(?![\d.]*\d)(?:\s*([a-zA-Z]+))?")
_MAX_NUMBERS = 16  # an answer with more numbers than this is not a single value anyway


def mean_relative_accuracy(pred: float, gt: float) -> float:
    """SPAR-Bench's MRA over the thresholds 0.50..0.95 (10 values); gt == 0 uses the absolute error.

    >>> mean_relative_accuracy(2.0, 2.0), mean_relative_accuracy(2.2, 2.0), mean_relative_accuracy(3.0, 2.0)
    (1.0, 0.9, 0.1)
    >>> mean_relative_accuracy(0.1, 0.0)
    0.9
    """
    if not (math.isfinite(pred) and math.isfinite(gt)):
        return 0.0
    error = abs(pred - gt) if gt == 0.0 else abs((pred - gt) / gt)
    return sum(error <= 1 - t for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def extract_number(text: str | None) -> float | None:
    """The single value the answer text states, in meters where a length unit is given; None when the
    text holds no number or several different ones.

    >>> extract_number("about 260 cm"), extract_number("2.6 m (260 cm)")
    (2.6, 2.6)
    >>> extract_number("between 2 and 3 meters") is None, extract_number("two meters") is None
    (True, True)
    """
    if not text:
        return None
    values: set[float] = set()
    for count, match in enumerate(_NUMBER.finditer(text)):
        if count >= _MAX_NUMBERS:
            return None
        value = float(match.group(1))
        unit = (match.group(2) or "").lower()
        value *= _LENGTH_UNITS.get(unit, 1.0)
        if not math.isfinite(value):
            return None
        values.add(round(value, 9))  # "2.6 m (260 cm)": 2.6 and 2.6000000000000001 are one value
    return values.pop() if len(values) == 1 else None

"""Multi-view ground truth (MindCube, SPAR, MMSI) and answer scoring: one scorer for reward and metrics.

Ground truth (DESIGN.md), checked strictly when it is made, because a bad one is always a data bug:
- `{"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], ...}`: the answer is one of the
  options, the options are distinct single capital letters;
- `{"type": "numeric", "answer": 2.6, ...}`: a finite number (not a numeric string);
- `{"type": "view_change", "answer": "move_right:1.6,move_down:0,...", ...}`: all five components;
- every type: `task` (a string) and optional `references` (`[[obj1, obj2|null, relation|null], ...]`,
  relations from `star_verl.tasks.references.RELATIONS` or a synonym); no other keys (a typo such as
  "refrences" must not silently drop the references).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from star_verl.tasks.choice import extract_option_letter
from star_verl.tasks.numeric import extract_number, mean_relative_accuracy
from star_verl.tasks.references import Reference, reference_from_ground_truth
from star_verl.tasks.view_change import extract_view_change, parse_view_change, view_change_score

ANSWER_TYPES = ("choice", "numeric", "view_change")
_KEYS = {"type", "answer", "options", "references", "task"}
WrittenReference = tuple[str, str | None, str | None]  # [object 1, object 2 or null, relation or null] as written


@dataclass(frozen=True)
class MultiViewGroundTruth:
    """A multi-view ground truth, checked when it is made (raises KeyError/TypeError/ValueError): the
    converters build it, `to_dict` is its JSON form and `parse_multiview_ground_truth` reads that back."""

    type: str  # one of ANSWER_TYPES
    answer: str | float  # the option letter, the number, or the view-change string as written
    task: str
    options: tuple[str, ...] | None = None  # choice only (None elsewhere); a tuple once made
    written_references: tuple[WrittenReference, ...] | None = ()  # as the converter wrote them; None = none
    references: tuple[Reference, ...] = field(init=False)  # normalized: what the reward matches
    components: tuple[float, ...] | None = field(init=False)  # view_change: the five signed components

    def __post_init__(self) -> None:
        kind, answer, task, options = self.type, self.answer, self.task, self.options
        if not isinstance(task, str):
            raise TypeError(f"task must be a string, got {task!r}")
        components = None
        if kind == "choice":
            if not isinstance(options, (list, tuple)) or len(options) < 2:
                raise ValueError(f"choice ground truth needs 'options' with at least two letters, got {options!r}")
            if any(not (isinstance(o, str) and len(o) == 1 and "A" <= o <= "Z") for o in options) or len(set(options)) != len(options):
                raise ValueError(f"options must be distinct single capital letters, got {options!r}")
            if answer not in options:
                raise ValueError(f"choice answer {answer!r} is not one of the options {list(options)}")
        elif kind == "numeric":
            if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
                raise TypeError(f"numeric answer must be a finite number, got {answer!r}")
            answer = float(answer)
        elif kind == "view_change":
            components = parse_view_change(answer)
        else:
            raise ValueError(f"answer type {kind!r} is not one of {ANSWER_TYPES}")
        if kind != "choice" and options is not None:
            raise KeyError(f"'options' belongs to choice ground truth only, not {kind!r}")
        raw_refs = self.written_references
        if raw_refs is None:
            raw_refs = ()
        if not isinstance(raw_refs, (list, tuple)):
            raise TypeError(f"references must be a list, got {type(raw_refs).__name__}")
        references = tuple(reference_from_ground_truth(item) for item in raw_refs)
        if len({r.key() for r in references}) != len(references):
            raise ValueError(f"references repeat a reference after normalization: {raw_refs!r}")
        object.__setattr__(self, "answer", answer)
        object.__setattr__(self, "options", tuple(options) if kind == "choice" else None)
        object.__setattr__(self, "written_references", tuple(tuple(item) for item in raw_refs))
        object.__setattr__(self, "references", references)
        object.__setattr__(self, "components", components)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN.md (`parse_multiview_ground_truth` reads it back to an equal object)."""
        out: dict[str, Any] = {"type": self.type, "answer": self.answer}
        if self.options is not None:
            out["options"] = list(self.options)
        out["references"] = [list(item) for item in self.written_references or ()]
        out["task"] = self.task
        return out


@dataclass(frozen=True)
class AnswerScore:
    value: float  # 1/0 for a choice, MRA for a number, mean component MRA for a view change; in [0, 1]
    correct: bool  # value == 1
    parsed: Any  # what was read from the answer (None when absent)


def parse_multiview_ground_truth(gt: Mapping[str, Any]) -> MultiViewGroundTruth:
    """A multi-view ground truth from its JSON form; raises KeyError/TypeError/ValueError.

    >>> gt = parse_multiview_ground_truth({"type": "choice", "answer": "B", "options": ["A", "B"], "task": "toy", "references": [["Couch", "ball", "behind"]]})
    >>> gt.options, gt.references
    (('A', 'B'), (Reference(obj1='sofa', obj2='ball', relation='behind'),))
    """
    if not isinstance(gt, Mapping):
        raise TypeError(f"ground truth must be an object, got {type(gt).__name__}")
    unknown = sorted(set(gt) - _KEYS)
    if unknown:
        raise KeyError(f"unknown ground-truth key(s) {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("type", "answer", "task"):
        if key not in gt:
            raise KeyError(f"ground truth has no {key!r}")
    return MultiViewGroundTruth(
        type=gt["type"], answer=gt["answer"], task=gt["task"], options=gt.get("options"), written_references=gt.get("references")
    )


def score_answer(gt: MultiViewGroundTruth, answer_text: str | None) -> AnswerScore:
    """Score the text of an answer (the `<answer>` block's content) against a parsed ground truth.

    >>> score_answer(MultiViewGroundTruth("numeric", 2.0, "toy"), "about 2.2 m")
    AnswerScore(value=0.9, correct=False, parsed=2.2)
    >>> score_answer(MultiViewGroundTruth("choice", "B", "toy", options=("A", "B")), "b").correct
    True
    """
    if gt.type == "choice":
        letter = extract_option_letter(answer_text, gt.options)
        right = letter is not None and letter == gt.answer
        return AnswerScore(1.0 if right else 0.0, right, letter)
    if gt.type == "numeric":
        number = extract_number(answer_text)
        value = 0.0 if number is None else mean_relative_accuracy(number, gt.answer)  # type: ignore[arg-type]
        return AnswerScore(value, value == 1.0, number)
    components = extract_view_change(answer_text)
    value = view_change_score(components, gt.components)  # type: ignore[arg-type]
    return AnswerScore(value, value == 1.0, components)

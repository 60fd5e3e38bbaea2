"""Multi-view ground truth (MindCube, SPAR, MMSI) and answer scoring: one scorer for reward and metrics.

Ground truth (DESIGN.md), checked strictly when it is made, because a bad one is always a data bug:
- `{"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], ...}`: the answer is one of the
  options, the options are distinct single capital letters;
- `{"type": "numeric", "answer": 2.6, ...}`: a finite number (not a numeric string);
- `{"type": "view_change", "answer": "move_right:1.6,move_down:0,...", ...}`: all five components;
- every type: `task` (a string) and optional `references`, key reference triplets
  `[obj1, obj2|null, relation|null]` (relations from `star_verl.tasks.references.RELATIONS` or a
  synonym) in one of two forms:
  - per view (what the converters write): an object mapping each image number ("1", "2", ..., as in
    the template's "Image k" headings) to the key references as they appear in that image's own frame,
    `{"1": [["sofa", "ball", "behind"]], "2": [["ball", "sofa", "left"]]}`; an image without key
    references has no entry;
  - flat (a list): references whose image is not known: SPAR-Bench's bare marked objects, and files
    written before the per-view form (then stated in image 1's frame).
  Only references with a relation are scored (`has_relations`); a bare `[name, null, null]` is data.
  No other keys (a typo such as "refrences" must not silently drop the references).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from star_verl.tasks.choice import extract_option_letter
from star_verl.tasks.numeric import extract_number, mean_relative_accuracy
from star_verl.tasks.references import Reference, reference_from_ground_truth
from star_verl.tasks.view_change import extract_view_change, parse_view_change, view_change_score

ANSWER_TYPES = ("choice", "numeric", "view_change")
_KEYS = {"type", "answer", "options", "references", "task"}
WrittenReference = tuple[str, str | None, str | None]  # [object 1, object 2 or null, relation or null] as written


ViewReferences = tuple[tuple[int, tuple[WrittenReference, ...]], ...]  # (image k, its references), by k


def _normalized(raw: object, where: str) -> tuple[tuple[WrittenReference, ...], tuple[Reference, ...]]:
    if not isinstance(raw, (list, tuple)):
        raise TypeError(f"{where} must be a list, got {type(raw).__name__}")
    references = tuple(reference_from_ground_truth(item) for item in raw)
    if len({r.key() for r in references}) != len(references):
        raise ValueError(f"{where} repeat a reference after normalization: {raw!r}")
    return tuple(tuple(item) for item in raw), references  # type: ignore[misc]


def _view_number(key: object) -> int:
    text = str(key)
    if isinstance(key, bool) or not text.isdigit() or int(text) < 1 or text != str(int(text)):
        raise ValueError(f"per-view references: {key!r} is not an image number (1, 2, ...)")
    return int(text)


@dataclass(frozen=True)
class MultiViewGroundTruth:
    """A multi-view ground truth, checked when it is made (raises KeyError/TypeError/ValueError): the
    converters build it, `to_dict` is its JSON form and `parse_multiview_ground_truth` reads that back.

    References come in one of the two forms of the module docstring: `written_view_references`
    (per view: a mapping or (image, references) pairs; None = the flat form) or `written_references`
    (flat); giving both is an error."""

    type: str  # one of ANSWER_TYPES
    answer: str | float  # the option letter, the number, or the view-change string as written
    task: str
    options: tuple[str, ...] | None = None  # choice only (None elsewhere); a tuple once made
    written_references: tuple[WrittenReference, ...] | None = ()  # the flat form, as written; None = none
    written_view_references: ViewReferences | Mapping[Any, Iterable[WrittenReference]] | None = None  # per view, as written
    references: tuple[Reference, ...] = field(init=False)  # the flat form, normalized
    view_references: tuple[tuple[int, tuple[Reference, ...]], ...] = field(init=False)  # per view, normalized, by image
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
        written, references = _normalized(self.written_references or (), "references")
        per_view = self.written_view_references
        written_views: ViewReferences | None = None
        views: list[tuple[int, tuple[Reference, ...]]] = []
        if per_view is not None:
            if written:
                raise ValueError("references are either per view or flat, not both")
            items = per_view.items() if isinstance(per_view, Mapping) else per_view
            if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
                raise TypeError(f"per-view references must map image numbers to lists, got {type(per_view).__name__}")
            by_view: dict[int, tuple[tuple[WrittenReference, ...], tuple[Reference, ...]]] = {}
            for item in items:
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise TypeError(f"per-view references must be (image number, references) pairs, got {item!r}")
                k = _view_number(item[0])
                if k in by_view:
                    raise ValueError(f"per-view references name image {k} twice")
                by_view[k] = _normalized(item[1], f"references of image {k}")
            written_views = tuple((k, by_view[k][0]) for k in sorted(by_view))
            views = [(k, by_view[k][1]) for k in sorted(by_view)]
        object.__setattr__(self, "answer", answer)
        object.__setattr__(self, "options", tuple(options) if kind == "choice" else None)
        object.__setattr__(self, "written_references", written)
        object.__setattr__(self, "written_view_references", written_views)
        object.__setattr__(self, "references", references)
        object.__setattr__(self, "view_references", tuple(views))
        object.__setattr__(self, "components", components)

    @property
    def per_view(self) -> bool:
        """The references are stated per image (the converters' form), not flat."""
        return self.written_view_references is not None

    @property
    def all_references(self) -> tuple[Reference, ...]:
        """Every key reference, flat and per view, in order."""
        return self.references + tuple(r for _, refs in self.view_references for r in refs)

    @property
    def has_relations(self) -> bool:
        """Some key reference has a relation: the row has something for R_ref to score (`has_ref`)."""
        return any(r.relational for r in self.all_references)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the module docstring (`parse_multiview_ground_truth` reads it back to an equal object)."""
        out: dict[str, Any] = {"type": self.type, "answer": self.answer}
        if self.options is not None:
            out["options"] = list(self.options)
        if self.written_view_references is not None:
            out["references"] = {str(k): [list(item) for item in refs] for k, refs in self.written_view_references}
        else:
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
    >>> gt = parse_multiview_ground_truth({"type": "numeric", "answer": 2.0, "task": "toy", "references": {"2": [["cup", "mug", "left"]]}})
    >>> gt.per_view, gt.view_references, gt.has_relations
    (True, ((2, (Reference(obj1='cup', obj2='mug', relation='left'),)),), True)
    """
    if not isinstance(gt, Mapping):
        raise TypeError(f"ground truth must be an object, got {type(gt).__name__}")
    unknown = sorted(set(gt) - _KEYS)
    if unknown:
        raise KeyError(f"unknown ground-truth key(s) {unknown}; allowed: {sorted(_KEYS)}")
    for key in ("type", "answer", "task"):
        if key not in gt:
            raise KeyError(f"ground truth has no {key!r}")
    references = gt.get("references")
    per_view = isinstance(references, Mapping)
    return MultiViewGroundTruth(
        type=gt["type"],
        answer=gt["answer"],
        task=gt["task"],
        options=gt.get("options"),
        written_references=None if per_view else references,
        written_view_references=references if per_view else None,
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

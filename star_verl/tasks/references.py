"""Step-1 reference triplets of the three-step template, their normalization and their matching.

A reference is `(object 1, object 2, relation)`, read "object 1 is <relation> object 2"
(`[sofa, ball, behind]`: the sofa is behind the ball). `object 2` and `relation` may be None in ground
truth (`["door", null, null]`: a bare key object; `["sofa", "ball", null]`: a pair whose relation is
unknown); only references with a relation are scored (`Reference.relational`).

Parsing (never guessing):
- only the `[a, b, relation]` and `[a, b]` bracket forms are read (quotes and markdown stripped); a
  bracket with one, four or more parts (`[Image 1]`, a bounding box) or with a part that is a number
  or a relation word in an object's place is not a reference;
- only step 1's part of the `<think>` text is read when a line starts with "Step 1" (up to the line
  that starts with "Step 2"); otherwise the whole `<think>` text;
- per view (`step1_triplets`): a triplet belongs to the image of the last heading before it. A heading
  is "Image k" or "View k" at the start of a line (after bullets or markdown, optionally "In"/"For"/
  "From"), or anywhere when a colon follows it ("Step 1: Image 2 (left view): ..."); a passing mention
  ("the sofa, also seen in image 1, ...") is not a heading. Triplets before the first heading belong
  to no image;
- at most `max_triplets` triplets are kept (the reward's bound on work and on credit).

Normalization: object names are lower-cased, parenthesized notes ("sink (red bbox)") and articles
dropped (a marker color alone, "books (red)", becomes a modifier: "red book"), each word singularized (simple English rules plus a few irregular plurals) and a few synonyms
mapped (`OBJECT_SYNONYMS`); two names match when equal or when one adds modifiers to the other with the
same head noun ("sofa" ~ "black sofa", not "chair" ~ "chair and white board"). Relations map onto
`RELATIONS` (`RELATION_SYNONYMS`, filler words such as "is", "to the", "of", "side" ignored); an
unknown relation word is None. `[a, b, left]` and `[b, a, right]` are the same reference (`INVERSE`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from star_verl.tasks.tags import as_text, parse_tags

RELATIONS = ("left", "right", "front", "behind", "above", "below", "near", "far")
INVERSE = {"left": "right", "right": "left", "front": "behind", "behind": "front", "above": "below", "below": "above", "near": "near", "far": "far"}

# Relation phrases after dropping filler words (see _RELATION_FILLER); keys are space-joined words.
RELATION_SYNONYMS = {
    **{r: r for r in RELATIONS},
    "left of": "left", "leftward": "left",
    "right of": "right", "rightward": "right",
    "before": "front", "ahead": "front", "in front": "front", "front of": "front",
    "back": "behind", "rear": "behind", "back of": "behind", "behind of": "behind",
    "over": "above", "top": "above", "atop": "above", "on top": "above", "on": "above", "higher": "above",
    "under": "below", "underneath": "below", "beneath": "below", "bottom": "below", "lower": "below",
    "next": "near", "beside": "near", "besides": "near", "by": "near", "close": "near", "adjacent": "near", "nearby": "near", "next by": "near",
    "away": "far", "far away": "far",
}  # fmt: skip
_RELATION_FILLER = {
    "is",
    "are",
    "located",
    "positioned",
    "placed",
    "situated",
    "sits",
    "stands",
    "lies",
    "the",
    "a",
    "an",
    "of",
    "to",
    "side",
    "directly",
    "slightly",
    "just",
    "at",
    "in",
    "hand",
    "from",
    "with",
}

OBJECT_SYNONYMS = {
    "couch": "sofa", "settee": "sofa", "television": "tv", "fridge": "refrigerator", "tap": "faucet",
    "bookcase": "bookshelf", "trashcan": "trash can", "garbage can": "trash can", "garbage bin": "trash can",
    "trash bin": "trash can", "waste bin": "trash can", "wastebasket": "trash can", "cellphone": "phone", "telephone": "phone",
    # the viewer: converters write object-to-camera relations as [object, "observer", relation]
    "camera": "observer", "viewer": "observer", "me": "observer", "myself": "observer", "i": "observer", "you": "observer",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_IRREGULAR_PLURALS = {
    "shelves": "shelf",
    "knives": "knife",
    "leaves": "leaf",
    "people": "person",
    "children": "child",
    "feet": "foot",
    "mice": "mouse",
}
_NO_SINGULAR = {
    "glass",
    "grass",
    "bus",
    "lens",
    "series",
    "species",
    "news",
    "pants",
    "scissors",
    "jeans",
    "stairs",
    "glasses",
    "dress",
    "chess",
    "tennis",
}

_BRACKET = re.compile(r"\[([^\[\]\n]{1,200})\]")
_STEP1 = re.compile(r"^[^\w\n]*step\s*1\b", re.IGNORECASE | re.MULTILINE)
_STEP = re.compile(r"^[^\w\n]*step\s*([123])\b", re.IGNORECASE | re.MULTILINE)
# "Image k"/"View k" opening a line (after bullets, markdown, "In"/"For"/"From"), or followed by a colon
_VIEW_HEADING = re.compile(
    r"^[^\w\n]*(?:(?:in|for|from)\s+)?(?:the\s+)?(?:image|view)\s*(\d+)\b"
    r"|\b(?:image|view)\s*(\d+)\b(?:\s*\([^()\n]*\))?[\s*_]*:",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING_LABEL = re.compile(r"^[\s*#:._-]*(?:\([^()\n]*\))?")  # what follows "Step k": " (cross-view mapping):**"
_PAREN = re.compile(r"\([^()]*\)")
_MARKER_COLOR = re.compile(r"\((red|blue|green|yellow)\)")  # a converter's "books (red)": which marked books
_NON_WORD = re.compile(r"[^a-z0-9 ]+")
_HAS_LETTER = re.compile(r"[a-z]")
_NUMBER_ONLY = re.compile(r"[-+\d.\s]+")
_STRIP_CHARS = " \t\"'`*_"

DEFAULT_MAX_TRIPLETS = 64


def _singular(word: str) -> str:
    for plural, singular in _IRREGULAR_PLURALS.items():
        if word.endswith(plural):  # also compounds: "bookshelves"
            return word[: len(word) - len(plural)] + singular
    if len(word) <= 3 or word in _NO_SINGULAR or not word.endswith("s"):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    return word[:-1]


def normalize_object(name: object) -> str:
    """The canonical form of an object name ("" when nothing nameable is left).

    >>> normalize_object("The Couches (red bbox)"), normalize_object("bookshelves"), normalize_object("a ( )")
    ('sofa', 'bookshelf', '')
    """
    return _normalize_object(str(name))


@lru_cache(maxsize=16384)  # names repeat across a batch's responses and ground truths
def _normalize_object(name: str) -> str:
    text = name.lower()
    text = _PAREN.sub(" ", " ".join(_MARKER_COLOR.findall(text) + [text])).replace("_", " ").replace("-", " ")
    words = [w for w in _NON_WORD.sub(" ", text).split() if w not in _ARTICLES]
    phrase = " ".join(_singular(w) for w in words)
    phrase = OBJECT_SYNONYMS.get(phrase, phrase)
    return " ".join(OBJECT_SYNONYMS.get(w, w) for w in phrase.split())


def normalize_relation(relation: object) -> str | None:
    """One of RELATIONS, or None when the phrase is not a known relation.

    >>> normalize_relation("is to the left of"), normalize_relation("on top of"), normalize_relation("diagonally")
    ('left', 'above', None)
    """
    return None if relation is None else _normalize_relation(str(relation))


@lru_cache(maxsize=4096)
def _normalize_relation(relation: str) -> str | None:
    words = _NON_WORD.sub(" ", relation.lower().replace("_", " ").replace("-", " ")).split()
    kept = [w for w in words if w not in _RELATION_FILLER]
    key = " ".join(kept)
    if key in RELATION_SYNONYMS:
        return RELATION_SYNONYMS[key]
    if kept and kept[0] == "on":  # "on the left of" -> "left"; "on top of" is a synonym above
        return RELATION_SYNONYMS.get(" ".join(kept[1:]))
    return None


@dataclass(frozen=True)
class Reference:
    """A normalized reference: obj2 None = a bare object; relation None = relation unknown."""

    obj1: str
    obj2: str | None = None
    relation: str | None = None

    @property
    def relational(self) -> bool:
        """Two objects and a relation: a reference the reward scores (bare names earn nothing)."""
        return self.obj2 is not None and self.relation is not None

    def key(self) -> tuple[str, str | None, str | None]:
        """Order-free identity: [a, b, left] and [b, a, right] have the same key."""
        if self.obj2 is not None and self.obj2 < self.obj1:
            return (self.obj2, self.obj1, INVERSE.get(self.relation) if self.relation else None)  # type: ignore[arg-type]
        return (self.obj1, self.obj2, self.relation)


def reference_from_ground_truth(item: object) -> Reference:
    """A ground-truth reference `[obj1, obj2|null, relation|null]`; raises ValueError/TypeError.

    >>> reference_from_ground_truth(["Couch", "ball", "in front of"]), reference_from_ground_truth(["door", None, None])
    (Reference(obj1='sofa', obj2='ball', relation='front'), Reference(obj1='door', obj2=None, relation=None))
    """
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise ValueError(f"reference {item!r} must be a list [object 1, object 2 or null, relation or null]")
    obj1, obj2, relation = item
    if not isinstance(obj1, str) or not normalize_object(obj1):
        raise ValueError(f"reference {item!r}: object 1 must be a non-empty name")
    if obj2 is not None and (not isinstance(obj2, str) or not normalize_object(obj2)):
        raise ValueError(f"reference {item!r}: object 2 must be a non-empty name or null")
    if relation is not None:
        if obj2 is None:
            raise ValueError(f"reference {item!r}: a relation needs object 2")
        if not isinstance(relation, str) or normalize_relation(relation) is None:
            raise ValueError(f"reference {item!r}: relation {relation!r} is not one of {RELATIONS} (or a synonym)")
    return Reference(normalize_object(obj1), None if obj2 is None else normalize_object(obj2), normalize_relation(relation))


def _reference_from_parts(parts: Sequence[str]) -> Reference | None:
    if len(parts) not in (2, 3):
        return None
    objects = []
    for raw in parts[:2]:
        text = raw.strip(_STRIP_CHARS)
        name = normalize_object(text)
        if not _HAS_LETTER.search(name) or _NUMBER_ONLY.fullmatch(text) or normalize_relation(text) is not None:
            return None
        objects.append(name)
    relation = normalize_relation(parts[2].strip(_STRIP_CHARS)) if len(parts) == 3 else None
    return Reference(objects[0], objects[1], relation)


def step1_text(think: str) -> str:
    """Step 1's part of a three-step `<think>` text, or the whole text when it has no "Step 1" line.

    >>> step1_text("Step 1: [cup, mug, left]\\nStep 2: the same cup\\nStep 3: so A")
    'Step 1: [cup, mug, left]\\n'
    """
    start = _STEP1.search(think)
    if start is None:
        return think
    for match in _STEP.finditer(think, start.end()):
        if match.group(1) != "1":
            return think[start.start() : match.start()]
    return think[start.start() :]


def parse_reference_triplets(think_text: object, max_triplets: int = DEFAULT_MAX_TRIPLETS) -> list[Reference]:
    """The distinct step-1 triplets of a `<think>` text, in order, at most `max_triplets`.

    >>> parse_reference_triplets("Step 1: [couch, ball, behind] [Image 2] [ball, sofa, front] [cup, mug]")
    [Reference(obj1='sofa', obj2='ball', relation='behind'), Reference(obj1='cup', obj2='mug', relation=None)]
    >>> parse_reference_triplets("Step 1: [cup, mug, left]\\nStep 2: [lamp, desk, left]")
    [Reference(obj1='cup', obj2='mug', relation='left')]
    """
    text = step1_text(as_text(think_text))
    seen: set[tuple] = set()
    out: list[Reference] = []
    for match in _BRACKET.finditer(text):
        if len(out) >= max_triplets:
            break
        ref = _reference_from_parts(match.group(1).split(","))
        if ref is not None and ref.key() not in seen:
            seen.add(ref.key())
            out.append(ref)
    return out


@dataclass(frozen=True)
class Step1Triplets:
    """Step 1's triplets by image: `views` maps image k (1-based, as in the "Image k" headings) to the
    distinct triplets under its headings, in order; `outside` holds those before the first heading."""

    views: tuple[tuple[int, tuple[Reference, ...]], ...]  # by image number
    outside: tuple[Reference, ...]

    def view(self, k: int) -> tuple[Reference, ...]:
        return dict(self.views).get(k, ())

    @property
    def count(self) -> int:
        """The triplets read (a triplet repeated under two headings counts in both)."""
        return len(self.outside) + sum(len(refs) for _, refs in self.views)


def _headings(step1: str) -> list[tuple[int, int]]:
    """(end position, image number) of each view heading, in order (number 0 is no image: skipped)."""
    out = []
    for m in _VIEW_HEADING.finditer(step1):
        k = int(m.group(1) or m.group(2))
        if 0 < k < 10_000:
            out.append((m.end(), k))
    return out


def step1_triplets(think_text: object, max_triplets: int = DEFAULT_MAX_TRIPLETS) -> Step1Triplets:
    """Step 1's triplets by the image heading they follow (see the module docstring); distinct per
    image, at most `max_triplets` in all, in text order.

    >>> t = step1_triplets("[cup, bowl, front]\\nImage 1: [cup, mug, left], as in image 2\\nView 2: [mug, cup, left] [mug, cup, left]")
    >>> t.view(1), t.view(2), t.outside
    ((Reference(obj1='cup', obj2='mug', relation='left'),), (Reference(obj1='mug', obj2='cup', relation='left'),), (Reference(obj1='cup', obj2='bowl', relation='front'),))
    """
    text = step1_text(as_text(think_text))
    headings = _headings(text)
    by_view: dict[int | None, list[Reference]] = {}
    seen: set[tuple] = set()
    h, current, n = 0, None, 0
    for match in _BRACKET.finditer(text):
        if n >= max_triplets:
            break
        while h < len(headings) and headings[h][0] <= match.start():
            current = headings[h][1]
            h += 1
        ref = _reference_from_parts(match.group(1).split(","))
        if ref is not None and (current, ref.key()) not in seen:
            seen.add((current, ref.key()))
            by_view.setdefault(current, []).append(ref)
            n += 1
    outside = tuple(by_view.pop(None, ()))
    return Step1Triplets(tuple(sorted((k, tuple(refs)) for k, refs in by_view.items())), outside)


def names_match(pred: str, gt: str) -> bool:
    """Equal, or the same head noun with one name's words a subset of the other's ("sofa" ~ "black sofa").

    >>> names_match("sofa", "black sofa"), names_match("white sofa", "black sofa"), names_match("chair", "chair and board")
    (True, False, False)
    """
    if pred == gt:
        return True
    p, g = pred.split(), gt.split()
    return bool(p) and bool(g) and p[-1] == g[-1] and (set(p) <= set(g) or set(g) <= set(p))


EXACT, PAIR = 2, 1  # match tiers: the right pair with the right relation / the right pair only


def match_tier(pred: Reference, gt: Reference) -> int:
    """EXACT, PAIR or 0 for a predicted triplet against a key reference with a relation (any other key
    reference matches nothing: bare names earn nothing).

    >>> key = Reference("sofa", "ball", "behind")
    >>> match_tier(Reference("ball", "sofa", "front"), key), match_tier(Reference("sofa", "ball", "left"), key)
    (2, 1)
    >>> match_tier(Reference("sofa", "ball", "behind"), Reference("sofa"))  # a bare key name
    0
    """
    if pred.obj2 is None or not gt.relational:
        return 0
    if names_match(pred.obj1, gt.obj1) and names_match(pred.obj2, gt.obj2):  # type: ignore[arg-type]
        relation = pred.relation
    elif names_match(pred.obj1, gt.obj2) and names_match(pred.obj2, gt.obj1):  # type: ignore[arg-type]
        relation = INVERSE.get(pred.relation) if pred.relation else None  # type: ignore[arg-type]
    else:
        return 0
    return EXACT if relation == gt.relation else PAIR


@dataclass(frozen=True)
class ReferenceMatch:
    n_exact: int  # key references stated with the right relation
    n_pair: int  # key references stated by the right pair with a wrong or missing relation (credited only with pair_credit > 0)
    pairs: tuple[tuple[int, int, int], ...] = field(default=())  # (pred index, key index, tier)

    def value(self, pair_credit: float) -> float:
        """The matched credit: 1 per exact match, `pair_credit` per pair match."""
        return self.n_exact + pair_credit * self.n_pair


def _assign(weights: list[list[float]]) -> list[tuple[int, int]]:
    """Maximum-weight one-to-one assignment (Hungarian algorithm, rows <= columns); O(rows^2 * columns)."""
    n, m = len(weights), len(weights[0]) if weights else 0
    inf = float("inf")
    u, v, p, way = [0.0] * (n + 1), [0.0] * (m + 1), [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = -weights[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]]


def _best(weights: list[list[float]]) -> list[tuple[int, int]]:
    """`_assign` for any shape: (row, column) pairs of a maximum-weight assignment with weight > 0."""
    if not weights or not weights[0]:
        return []
    if len(weights) <= len(weights[0]):
        pairs = _assign(weights)
    else:
        pairs = [(r, c) for c, r in _assign([list(col) for col in zip(*weights, strict=True)])]
    return [(r, c) for r, c in pairs if weights[r][c] > 0]


def match_references(predicted: Sequence[Reference], key: Sequence[Reference], *, pair_credit: float = 0.5) -> ReferenceMatch:
    """Match predicted triplets one-to-one with the key references that have a relation (Hungarian
    algorithm, the most favorable reading for the model): an exact match is worth 1, a pair match
    `pair_credit`. A second triplet about a matched pair (a hedged relation) matches nothing; key
    references without a relation (bare names) are never matched.

    >>> key = [Reference("sofa", "ball", "behind"), Reference("cup", "mug", "left"), Reference("lamp")]
    >>> m = match_references(parse_reference_triplets("[ball, sofa, front] [sofa, ball, left] [cup, mug, right] [lamp, desk, near]"), key)
    >>> m, m.value(0.5)
    (ReferenceMatch(n_exact=1, n_pair=1, pairs=((0, 0, 2), (2, 1, 1))), 1.5)
    """
    pairs: list[tuple[int, int, int]] = []
    scored = [g for g, ref in enumerate(key) if ref.relational]
    if scored and predicted:
        tiers = [[match_tier(p, key[g]) for p in predicted] for g in scored]
        # a tiny bonus prefers exact matches on ties (pair_credit close to 1)
        value = {EXACT: 1.0 + 1e-6, PAIR: pair_credit, 0: 0.0}
        for r, c in _best([[value[t] for t in row] for row in tiers]):
            pairs.append((c, scored[r], tiers[r][c]))
    pairs.sort()
    n_exact = sum(t == EXACT for *_, t in pairs)
    return ReferenceMatch(n_exact, len(pairs) - n_exact, tuple(pairs))


@dataclass(frozen=True)
class ThreeStepStructure:
    """Whether a response follows the three-step template; `reasons` says why not (empty when ok)."""

    ok: bool
    reasons: tuple[str, ...]
    n_triplets: int  # distinct step-1 triplets
    views_with_triplets: tuple[int, ...]  # image/view numbers whose step-1 part has a triplet


def three_step_structure(response: object, n_images: int | None = None) -> ThreeStepStructure:
    """Check a response against the three-step template: a well-formed `<think><answer>`, "Step 1"
    with triplets (for each image 1..n_images when given: a triplet under an "Image k"/"View k"
    heading, read by `step1_triplets` as the reward reads it), a non-empty "Step 2" (cross-view
    mapping) and "Step 3" (reasoning), in order, and a non-empty answer. The SFT filter keeps only
    responses with `ok`.

    >>> three_step_structure("<think>Step 1: Image 1: [cup, mug, left]\\nStep 2: one cup.\\nStep 3: so B.</think><answer>B</answer>", 1)
    ThreeStepStructure(ok=True, reasons=(), n_triplets=1, views_with_triplets=(1,))
    >>> three_step_structure("<think>Step 1: Image 1: [cup, mug, left]</think><answer>B</answer>", 2).reasons  # doctest: +NORMALIZE_WHITESPACE
    ("no line starting with 'Step 2' (cross-view mapping)", "no line starting with 'Step 3' (reasoning)",
     "'Step 1' has no triplet for image(s) [2]")
    """
    tagged = parse_tags(response)
    reasons: list[str] = []
    if not tagged.well_formed:
        reasons.append("not exactly one <think>...</think> followed by one <answer>...</answer>")
    if not (tagged.answer or "").strip():
        reasons.append("empty or missing <answer>")
    think = tagged.think or ""
    steps = [(int(m.group(1)), m.start(), m.end()) for m in _STEP.finditer(think)]
    firsts: dict[int, tuple[int, int]] = {}
    for number, start, end in steps:
        firsts.setdefault(number, (start, end))
    for number, label in ((1, "per-view reference analysis"), (2, "cross-view mapping"), (3, "reasoning")):
        if number not in firsts:
            reasons.append(f"no line starting with 'Step {number}' ({label})")
    order = [firsts[n][0] for n in (1, 2, 3) if n in firsts]
    if order != sorted(order):
        reasons.append("the steps are not in the order 1, 2, 3")
    for number in (2, 3):
        if number in firsts:
            start = firsts[number][1]
            later = [s for n, (s, _) in firsts.items() if s > start]
            body = _HEADING_LABEL.sub("", think[start : min(later) if later else len(think)], count=1)
            if not _HAS_LETTER.search(body.lower()):
                reasons.append(f"'Step {number}' is empty")
    step1 = step1_text(think) if 1 in firsts else ""
    triplets = parse_reference_triplets(step1) if step1 else []
    views = tuple(k for k, refs in step1_triplets(step1).views if refs) if step1 else ()
    if 1 in firsts and not triplets:
        reasons.append("'Step 1' has no [object 1, object 2, relation] triplet")
    if n_images is not None and triplets:
        missing = [k for k in range(1, n_images + 1) if k not in views]
        if missing:
            reasons.append(f"'Step 1' has no triplet for image(s) {missing}")
    return ThreeStepStructure(ok=not reasons, reasons=tuple(reasons), n_triplets=len(triplets), views_with_triplets=views)

"""Step-1 reference triplets of the three-step template, their normalization and their matching.

A reference is `(object 1, object 2, relation)`, read "object 1 is <relation> object 2"
(`[sofa, ball, behind]`: the sofa is behind the ball). `object 2` and `relation` may be None in ground
truth (`["door", null, null]`: a bare key object; `["sofa", "ball", null]`: a pair whose relation is unknown).

Parsing (never guessing):
- only the `[a, b, relation]` and `[a, b]` bracket forms are read (quotes and markdown stripped); a
  bracket with one, four or more parts (`[Image 1]`, a bounding box) or with a part that is a number
  or a relation word in an object's place is not a reference;
- only step 1's part of the `<think>` text is read when a line starts with "Step 1" (up to the line
  that starts with "Step 2"); otherwise the whole `<think>` text;
- at most `max_triplets` distinct triplets are kept (the reward's bound on work and on credit).

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
_VIEW_HEADING = re.compile(r"(?<![\w])(?:image|view)\s*(\d+)\b", re.IGNORECASE)
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


def names_match(pred: str, gt: str) -> bool:
    """Equal, or the same head noun with one name's words a subset of the other's ("sofa" ~ "black sofa").

    >>> names_match("sofa", "black sofa"), names_match("white sofa", "black sofa"), names_match("chair", "chair and board")
    (True, False, False)
    """
    if pred == gt:
        return True
    p, g = pred.split(), gt.split()
    return bool(p) and bool(g) and p[-1] == g[-1] and (set(p) <= set(g) or set(g) <= set(p))


EXACT, PAIR = 2, 1  # match tiers: anchored with the right relation (or nothing more to get right) / right pair only


def match_tier(pred: Reference, gt: Reference) -> int:
    """EXACT, PAIR or 0 for a key pair (gt.obj2 given); a key pair with unknown relation is EXACT for
    the right pair. (Bare key objects are matched by name in `match_references`.)

    >>> key = Reference("sofa", "ball", "behind")
    >>> match_tier(Reference("ball", "sofa", "front"), key), match_tier(Reference("sofa", "ball", "left"), key)
    (2, 1)
    """
    if pred.obj2 is None or gt.obj2 is None:
        return 0
    if names_match(pred.obj1, gt.obj1) and names_match(pred.obj2, gt.obj2):
        relation = pred.relation
    elif names_match(pred.obj1, gt.obj2) and names_match(pred.obj2, gt.obj1):
        relation = INVERSE.get(pred.relation) if pred.relation else None  # type: ignore[arg-type]
    else:
        return 0
    return EXACT if gt.relation is None or relation == gt.relation else PAIR


@dataclass(frozen=True)
class ReferenceMatch:
    n_exact: int  # key references anchored with the right relation (or with nothing more to get right)
    n_pair: int  # key references anchored by the right pair with a wrong or missing relation
    n_spurious: int  # predicted triplets that anchor no key reference (see match_references)
    pairs: tuple[tuple[int, int, int], ...] = field(default=())  # (pred index, gt index, tier)


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


def match_references(
    predicted: Sequence[Reference], key: Sequence[Reference], *, exact_value: float = 1.0, pair_value: float = 0.5
) -> ReferenceMatch:
    """Match predicted triplets with key references; the model gets the most favorable reading.

    - Key pairs (object 2 given) are matched one-to-one with triplets (Hungarian algorithm on
      `exact_value` / `pair_value`: what a match is worth to the caller, credit plus the spurious
      penalty it avoids), so a second triplet about the same pair (a hedged relation) anchors nothing.
    - Bare key objects are anchored by the objects the triplets name, one-to-one between key objects
      and (triplet, slot) places, so `[books, bookshelf, front]` anchors both bare key objects "books" and
      "bookshelf", and a generic "sofa" anchors only one of "black sofa" / "white sofa".
    - A triplet is spurious when it is matched to no key pair and names no bare key object. A triplet
      that only repeats an anchored key object is neither credited nor penalized.

    >>> key = [Reference("sofa", "ball", "behind"), Reference("lamp")]
    >>> match_references(parse_reference_triplets("[sofa, ball, behind] [sofa, ball, left] [lamp, desk, near] [cat, dog, far]"), key)
    ReferenceMatch(n_exact=2, n_pair=0, n_spurious=2, pairs=((0, 0, 2), (2, 1, 2)))
    """
    pairs: list[tuple[int, int, int]] = []
    used: set[int] = set()
    relational = [g for g, ref in enumerate(key) if ref.obj2 is not None]
    if relational and predicted:
        tiers = [[match_tier(p, key[g]) for p in predicted] for g in relational]
        # A tiny tier bonus keeps zero-valued matches (a setting of 0) and prefers exact ones on ties.
        value = {EXACT: exact_value + 2e-6, PAIR: pair_value + 1e-6, 0: 0.0}
        for r, c in _best([[value[t] for t in row] for row in tiers]):
            pairs.append((c, relational[r], tiers[r][c]))
            used.add(c)
    bare = [g for g, ref in enumerate(key) if ref.obj2 is None]
    if bare and predicted:
        places = [(i, name) for i, p in enumerate(predicted) for name in (p.obj1, p.obj2) if name is not None]
        names_bare = [[1.0 if names_match(name, key[g].obj1) else 0.0 for _, name in places] for g in bare]
        for r, c in _best(names_bare):
            pairs.append((places[c][0], bare[r], EXACT))
        used.update(i for (i, _), row in zip(places, zip(*names_bare, strict=True), strict=True) if any(row))
    pairs.sort()
    n_exact = sum(t == EXACT for *_, t in pairs)
    return ReferenceMatch(n_exact, len(pairs) - n_exact, len(predicted) - len(used), tuple(pairs))


@dataclass(frozen=True)
class ThreeStepStructure:
    """Whether a response follows the three-step template; `reasons` says why not (empty when ok)."""

    ok: bool
    reasons: tuple[str, ...]
    n_triplets: int  # distinct step-1 triplets
    views_with_triplets: tuple[int, ...]  # image/view numbers whose step-1 part has a triplet


def _views_with_triplets(step1: str) -> tuple[int, ...]:
    headings = list(_VIEW_HEADING.finditer(step1))
    views = set()
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(step1)
        if any(_reference_from_parts(m.group(1).split(",")) for m in _BRACKET.finditer(step1, heading.end(), end)):
            views.add(int(heading.group(1)))
    return tuple(sorted(views))


def three_step_structure(response: object, n_images: int | None = None) -> ThreeStepStructure:
    """Check a response against the three-step template: a well-formed `<think><answer>`, "Step 1"
    with triplets (for each image 1..n_images when given: a triplet after an "Image k"/"View k"
    mention), a non-empty "Step 2" (cross-view mapping) and "Step 3" (reasoning), in order, and a
    non-empty answer. The SFT filter keeps only responses with `ok`.

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
    views = _views_with_triplets(step1) if step1 else ()
    if 1 in firsts and not triplets:
        reasons.append("'Step 1' has no [object 1, object 2, relation] triplet")
    if n_images is not None and triplets:
        missing = [k for k in range(1, n_images + 1) if k not in views]
        if missing:
            reasons.append(f"'Step 1' has no triplet for image(s) {missing}")
    return ThreeStepStructure(ok=not reasons, reasons=tuple(reasons), n_triplets=len(triplets), views_with_triplets=views)

"""The one-to-one matchers against an exhaustive search: hypothesis draws small instances (few names,
few values, so that predictions compete for the same ground truth), every one-to-one assignment is
tried (itertools.permutations), and the matcher must reach the best one.

- TVR (`star_verl.tasks.tvr.match_triplets`): its documented objective is tiered, exact before
  index+attribute before index only: the most exact matches, then the most index+attribute ones,
  then the most index-only ones (a switched-off tier matches nothing; its pairs fall to the next).
- References (`star_verl.tasks.references.match_references`): its own objective (the largest total
  value of key-pair matches, the most bare key objects anchored) for any key; and the R_ref credit
  of the reward (`star_verl.rewards.multiview`) where no triplet names a bare key object.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from star_verl.rewards.multiview import MultiViewRewardSettings, multiview_reward
from star_verl.tasks.references import EXACT, PAIR, Reference, match_references, match_tier, names_match
from star_verl.tasks.tvr import Triplet, TVRTransformation, match_triplets

SEARCH = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def one_to_one(n_items: int, n_slots: int) -> set[tuple[int | None, ...]]:
    """Every one-to-one assignment of `n_items` items to `n_slots` slots: item k goes to slot a[k], None: to none."""
    return set(itertools.permutations([*range(n_slots), *[None] * n_items], n_items))


# ------------------------------------------------------------------------------------------------ TVR

VALUES = {"color": ("red", "blue"), "size": ("small", "large")}
# Transformations of objects 0-1 accepting their value, or (as TRANCE lists every "out" move) also the
# other one, so two transformations may accept the same prediction; predictions from the same values,
# plus an attribute and an object that no transformation has.
TRANSFORMATIONS = [
    TVRTransformation(o, a, v, opts) for o in (0, 1) for a, (x, y) in VALUES.items() for v, opts in ((x, (x,)), (y, (y,)), (x, (x, y)), (y, (y, x)))
]
PREDICTIONS = [Triplet(o, a, v) for o in (0, 1) for a, vals in VALUES.items() for v in vals] + [
    Triplet(0, "shape", "cube"),
    Triplet(2, "color", "red"),
]


def tvr_tier(p: Triplet, g: TVRTransformation, tiers: tuple[bool, bool]) -> int | None:
    """0 exact, 1 index+attribute, 2 index only (the highest tier switched on that the pair reaches), None: no match."""
    if g.accepts(p):
        return 0
    if tiers[0] and p.obj_idx == g.obj_idx and p.attr == g.attr:
        return 1
    if tiers[1] and p.obj_idx == g.obj_idx:
        return 2
    return None


def best_tvr_counts(pred: list[Triplet], gt: list[TVRTransformation], tiers: tuple[bool, bool]) -> tuple[int, int, int]:
    unique = list(dict.fromkeys(pred))
    best = (0, 0, 0)
    for assignment in one_to_one(len(unique), len(gt)):
        counts = [0, 0, 0]
        for p, g in zip(unique, assignment, strict=True):
            tier = None if g is None else tvr_tier(p, gt[g], tiers)
            if tier is not None:
                counts[tier] += 1
        best = max(best, tuple(counts))
    return best


@SEARCH
@given(
    st.lists(st.sampled_from(TRANSFORMATIONS), min_size=1, max_size=3),
    st.lists(st.sampled_from(PREDICTIONS), max_size=4),
    st.tuples(st.booleans(), st.booleans()),
)
# found by the search (rare among random instances, so kept): first come, first served gave 0.color.red to
# the first transformation, which also accepts blue, and left 0.color.blue without an exact match
@example(
    gt=[TVRTransformation(0, "color", "red", ("red", "blue")), TVRTransformation(0, "color", "red", ("red",))],
    pred=[Triplet(0, "color", "red"), Triplet(0, "color", "blue")],
    tiers=(True, True),
)
def test_triplet_matching_reaches_the_best_tiered_assignment(gt, pred, tiers):
    m = match_triplets(pred, gt, tiers)
    assert (m.n_exact, m.n_attr, m.n_index) == best_tvr_counts(pred, gt, tiers)
    assert m.n_unique == len(set(pred)) and len(m.exact_gt) == m.n_exact
    assert all(any(gt[g].accepts(p) for p in pred) for g in m.exact_gt)


# ------------------------------------------------------------------------------------------------ references

NAMES = ("sofa", "black sofa", "white sofa", "ball", "lamp")
RELATIONS = ("left", "right", "behind", None)
triplets = st.lists(st.builds(Reference, st.sampled_from(NAMES), st.sampled_from(NAMES), st.sampled_from(RELATIONS)), max_size=4)
key_references = st.lists(
    st.one_of(
        st.builds(Reference, st.sampled_from(NAMES), st.sampled_from(NAMES), st.sampled_from(RELATIONS)), st.builds(Reference, st.sampled_from(NAMES))
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r.key(),
)
grid = st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0))


def split_key(key: list[Reference]) -> tuple[list[int], list[int]]:
    """Positions of the key pairs (object 2 given) and of the bare key objects."""
    return [g for g, r in enumerate(key) if r.obj2 is not None], [g for g, r in enumerate(key) if r.obj2 is None]


def places(pred: list[Reference]) -> list[tuple[int, str]]:
    """(triplet, name) for each object a triplet names: a bare key object is anchored by one place."""
    return [(i, name) for i, p in enumerate(pred) for name in (p.obj1, p.obj2) if name is not None]


def most_bare_anchored(pred: list[Reference], key: list[Reference]) -> int:
    _, bare = split_key(key)
    named = places(pred)
    return max(
        sum(c is not None and names_match(named[c][1], key[b].obj1) for b, c in zip(bare, assignment, strict=True))
        for assignment in one_to_one(len(bare), len(named))
    )


def pair_assignments(pred: list[Reference], key: list[Reference]):
    """The tiers the predicted triplets reach under every one-to-one assignment of triplets to key pairs (0: none)."""
    pairs, _ = split_key(key)
    for assignment in one_to_one(len(pred), len(pairs)):
        yield [0 if j is None else match_tier(p, key[pairs[j]]) for p, j in zip(pred, assignment, strict=True)]


def r_ref_credit(n_exact: int, n_pair: int, n_spurious: int, k: int, s: MultiViewRewardSettings) -> float:
    """The reward's raw R_ref times K (star_verl.rewards.multiview): the quantity the best reading maximizes."""
    unnamed = max(0, k - n_exact - n_pair - n_spurious)
    return n_exact + s.ref_pair_credit * n_pair - s.ref_spurious_penalty * n_spurious - s.ref_under_penalty * unnamed


@SEARCH
@given(triplets, key_references, grid, grid)
def test_reference_matching_reaches_the_best_assignment_for_its_values(pred, key, exact_value, pair_value):
    m = match_references(pred, key, exact_value=exact_value, pair_value=pair_value)
    pairs, bare = split_key(key)
    relational = [(i, g, t) for i, g, t in m.pairs if g in pairs]
    # one-to-one, each at the tier the triplet reaches for that key pair
    assert len({i for i, _, _ in relational}) == len({g for _, g, _ in relational}) == len(relational)
    assert all(t == match_tier(pred[i], key[g]) > 0 for i, g, t in relational)
    value = {EXACT: exact_value, PAIR: pair_value, 0: 0.0}
    best = max(sum(value[t] for t in tiers) for tiers in pair_assignments(pred, key))
    assert sum(value[t] for _, _, t in relational) == pytest.approx(best, abs=1e-4)
    assert len(m.pairs) - len(relational) == most_bare_anchored(pred, key)
    naming_bare = {i for i, name in places(pred) if any(names_match(name, key[b].obj1) for b in bare)}
    assert m.n_spurious == len(set(range(len(pred))) - {i for i, _, _ in relational} - naming_bare)


@SEARCH
@given(triplets, key_references, grid, st.sampled_from((0.0, 0.25, 0.5, 1.0)), st.sampled_from((0.0, 0.25, 0.5, 1.0)))
def test_reference_matching_reaches_the_best_r_ref_credit(pred, key, pair_credit, spurious, under):
    _, bare = split_key(key)
    assume(not any(names_match(name, key[b].obj1) for _, name in places(pred) for b in bare))  # see the xfail below
    s = MultiViewRewardSettings(ref_pair_credit=pair_credit, ref_spurious_penalty=spurious, ref_under_penalty=under)
    m = match_references(pred, key, exact_value=1.0 + spurious, pair_value=pair_credit + spurious)
    best = max(r_ref_credit(tiers.count(EXACT), tiers.count(PAIR), sum(t == 0 for t in tiers), len(key), s) for tiers in pair_assignments(pred, key))
    assert r_ref_credit(m.n_exact, m.n_pair, m.n_spurious, len(key), s) == pytest.approx(best)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="found by the search: a triplet that names a bare key object is never spurious, yet the matcher values its "
    "key-pair match as if it avoided the spurious penalty, so a tie with a triplet that would be spurious is broken by order",
)
def test_r_ref_does_not_depend_on_the_order_of_the_triplets():
    gt = {
        "type": "choice",
        "answer": "B",
        "options": ["A", "B"],
        "task": "toy",
        "references": [["black sofa", None, None], ["sofa", "ball", "behind"]],
    }

    def r_ref(think: str) -> float:
        return multiview_reward(f"<think>Step 1: {think}</think><answer>B</answer>", gt)["r_ref"]

    # the best reading: [white sofa, ball] anchors the key pair, [black sofa, ...] the bare key object
    assert r_ref("[white sofa, ball, left] [black sofa, ball, left]") == 0.375
    assert r_ref("[black sofa, ball, left] [white sofa, ball, left]") == 0.375

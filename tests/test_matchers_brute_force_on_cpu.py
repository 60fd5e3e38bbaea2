"""The one-to-one matchers against an exhaustive search: hypothesis draws small instances (few names,
few values, so that predictions compete for the same ground truth), every one-to-one assignment is
tried (itertools.permutations), and the matcher must reach the best one.

- TVR (`star_verl.tasks.tvr.match_triplets`): its documented objective is tiered, exact before
  index+attribute before index only: the most exact matches, then the most index+attribute ones,
  then the most index-only ones (a switched-off tier matches nothing; its pairs fall to the next).
- References (`star_verl.tasks.references.match_references`): the largest total credit, 1 per exact
  match and `pair_credit` per pair match, over the key references that have a relation (bare names and
  pairs without a relation are never matched); R_ref's per-image F-score is built on that credit.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from star_verl.tasks.references import EXACT, PAIR, Reference, match_references, match_tier
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
# key references of every kind: with a relation (scored), a pair without one and a bare name (never matched)
key_references = st.lists(
    st.one_of(
        st.builds(Reference, st.sampled_from(NAMES), st.sampled_from(NAMES), st.sampled_from(RELATIONS)), st.builds(Reference, st.sampled_from(NAMES))
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda r: r.key(),
)


def pair_assignments(pred: list[Reference], key: list[Reference]):
    """The tiers the predicted triplets reach under every one-to-one assignment of triplets to the key
    references with a relation (0: none)."""
    scored = [g for g, r in enumerate(key) if r.relational]
    for assignment in one_to_one(len(pred), len(scored)):
        yield [0 if j is None else match_tier(p, key[scored[j]]) for p, j in zip(pred, assignment, strict=True)]


@SEARCH
@given(triplets, key_references, st.sampled_from((0.0, 0.25, 0.5, 0.75, 1.0)))
def test_reference_matching_reaches_the_best_credit(pred, key, pair_credit):
    m = match_references(pred, key, pair_credit=pair_credit)
    # one-to-one, only key references with a relation, each at the tier the triplet reaches for it
    assert len({i for i, _, _ in m.pairs}) == len({g for _, g, _ in m.pairs}) == len(m.pairs)
    assert all(key[g].relational and t == match_tier(pred[i], key[g]) > 0 for i, g, t in m.pairs)
    assert (m.n_exact, m.n_pair) == (sum(t == EXACT for *_, t in m.pairs), sum(t == PAIR for *_, t in m.pairs))
    credit = {EXACT: 1.0, PAIR: pair_credit, 0: 0.0}
    best = max(sum(credit[t] for t in tiers) for tiers in pair_assignments(pred, key))
    assert m.value(pair_credit) == pytest.approx(best, abs=1e-4)

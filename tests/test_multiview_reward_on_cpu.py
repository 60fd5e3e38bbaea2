"""The reference-aware multi-view reward: worked examples, settings, and properties proven with hypothesis
(a right answer beats perfect references, listing objects never pays, bounded, never raises)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from star_verl.rewards import REWARD_KEYS, GroundTruthError, compute_score
from star_verl.rewards.multiview import MultiViewRewardSettings, multiview_reward

DEFAULT = MultiViewRewardSettings()
OBJECTS = ("sofa", "ball", "door", "lamp", "table", "window", "chair", "plant", "tv", "bed", "shelf", "rug")
RELS = ("left", "right", "front", "behind", "above", "below", "near", "far")


def response(triplets=(), answer="C", well_formed=True):
    body = " ".join(f"[{a}, {b}, {r}]" for a, b, r in triplets)
    think = f"Step 1 (per-view reference analysis):\nImage 1: {body}\nStep 2: map.\nStep 3: reasoning."
    return f"<think>{think}</think><answer>{answer}</answer>" if well_formed else f"{think}<answer>{answer}</answer>"


def choice(references=None, answer="C"):
    gt = {"type": "choice", "answer": answer, "options": ["A", "B", "C", "D"], "task": "rotation"}
    if references is not None:
        gt["references"] = [list(r) for r in references]
    return gt


def score(resp, gt, s=DEFAULT):
    return multiview_reward(resp, gt, s)


KEY = (("sofa", "ball", "behind"), ("lamp", "table", "left"))


# ---------------------------------------------------------------- worked examples


def test_right_answer_with_the_key_references():
    out = compute_score("mindcube", response(KEY), json.dumps(choice(KEY)))
    assert list(out) == list(REWARD_KEYS)
    assert out["format"] == 1.0 and out["r_ans"] == 1.0 and out["acc"] == 1.0
    assert out["r_ref"] == 0.5 and out["has_ref"] == 1.0  # ref_weight * 1
    assert (out["n_pred"], out["n_gt"], out["n_exact"]) == (2.0, 2.0, 2.0)
    assert out["score"] == 2.5
    assert out["r_pos"] == out["r_incorrect"] == out["r_under"] == out["diff"] == 0.0


def test_dense_reference_credit_and_penalties():
    # one exact (1), one right pair with the wrong relation (0.5), one spurious (-0.5): (1 + 0.5 - 0.5) / 2 = 0.5
    resp = response([("ball", "sofa", "front"), ("lamp", "table", "right"), ("door", "window", "near")])
    out = score(resp, choice(KEY))
    assert out["r_ref"] == pytest.approx(0.5 * 0.5)
    assert (out["n_pred"], out["n_exact"]) == (3.0, 1.0)
    # one exact, nothing else: 1 - 0.5 (one key reference missing from the count) = 0.5 / 2
    assert score(response(KEY[:1]), choice(KEY))["r_ref"] == pytest.approx(0.5 * 0.25)
    # no triplets: -0.5 * 2 / 2 = -0.5, capped at -ref_penalty_cap = -0.5
    assert score(response(), choice(KEY))["r_ref"] == pytest.approx(-0.25)


def test_bare_key_objects():
    gt = {"type": "numeric", "answer": 2.6, "task": "depth_prediction_oc_mv", "references": [["books", None, None], ["bookshelf", None, None]]}
    # one triplet relating both key objects: both anchored, full credit
    out = compute_score("spar", response([("books", "bookshelf", "front")], "2.6"), gt)
    assert (out["r_ref"], out["n_pred"], out["n_exact"], out["n_gt"]) == (0.5, 1.0, 2.0, 2.0)
    # one key object named three times: anchored once, the repeats earn and cost nothing, one key object unnamed
    out = compute_score("spar", response([("books", "table", "left"), ("books", "wall", "near"), ("book", "lamp", "right")], "2.6"), gt)
    assert out["r_ref"] == pytest.approx(0.5 * (1 - 0.5) / 2) and out["n_exact"] == 1.0


def test_no_references_is_absent_not_a_failure():
    out = score(response(KEY), choice())
    assert out["r_ref"] == 0.0 and out["has_ref"] == 0.0 and out["n_gt"] == 0.0 and out["n_pred"] == 0.0
    assert out["score"] == 2.0


def test_ref_weight_zero_turns_the_term_off_but_still_logs_counts():
    off = dataclasses.replace(DEFAULT, ref_weight=0.0)
    out = score(response(KEY[:1]), choice(KEY), off)
    assert out["r_ref"] == 0.0 and out["score"] == 2.0
    assert (out["has_ref"], out["n_pred"], out["n_gt"], out["n_exact"]) == (1.0, 1.0, 2.0, 1.0)
    assert compute_score("mindcube", response(), choice(KEY), ref_weight=0.0)["score"] == 2.0


def test_format_and_answer_terms():
    malformed = score(response(KEY, well_formed=False), choice(KEY))
    assert malformed["format"] == 0.0 and malformed["r_ans"] == 1.0  # the answer is still read (tags.py)
    assert score(response(KEY, answer="A"), choice(KEY))["r_ans"] == 0.0
    numeric = {"type": "numeric", "answer": 2.6, "task": "depth_prediction_oc_mv"}
    out = compute_score("spar", response(answer="2.0 meters"), numeric)
    assert out["r_ans"] == pytest.approx(0.6) and out["acc"] == 0.0
    vc = {"type": "view_change", "answer": "move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75", "task": "view_change_infer"}
    out = compute_score("spar", response(answer="move_right:1.6,rotate_left:75"), vc)
    assert out["r_ans"] == pytest.approx(0.4) and out["acc"] == 0.0


def test_settings_reach_the_reward_through_compute_score():
    out = compute_score("mmsi", response(KEY), choice(KEY), mv_format_weight=0.5, mv_answer_weight=2.0, ref_weight=1.0)
    # `format` is logged 0/1 as in every family; its weight enters only `score` (0.5 x 1 + 2.0 + 1.0)
    assert (out["format"], out["r_ans"], out["r_ref"], out["score"]) == (1.0, 2.0, 1.0, 3.5)
    with pytest.raises(TypeError, match="unknown reward setting"):
        compute_score("mmsi", response(), choice(), ref_wieght=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ref_weight": 0.7}, "must stay below mv_answer_weight"),
        ({"ref_weight": -0.1}, ">= 0"),
        ({"ref_spurious_penalty": float("nan")}, "finite"),
        ({"ref_pair_credit": 1.5}, "<= 1"),
        ({"ref_max_triplets": 0}, "positive integer"),
        ({"mv_format_weight": True}, "finite number"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiViewRewardSettings(**kwargs)


def test_bad_ground_truth_is_a_data_error_naming_the_sample():
    with pytest.raises(GroundTruthError, match=r"index=7.*bad mindcube ground truth.*options"):
        compute_score("mindcube", response(), {"type": "choice", "answer": "E", "options": ["A", "B"], "task": "t"}, {"index": 7, "split": "train"})


# ---------------------------------------------------------------- properties

names = st.sampled_from(OBJECTS)
triplet = st.tuples(names, names, st.sampled_from(RELS)).filter(lambda t: t[0] != t[1])
bare = st.tuples(names, st.none(), st.none())
key_sets = st.lists(st.one_of(triplet, bare), min_size=1, max_size=6, unique_by=lambda t: frozenset(t[:2])).filter(
    lambda refs: len({n for r in refs for n in r[:2] if n}) == sum(1 for r in refs for n in r[:2] if n)
)  # each object in one key reference (as the converters write them)


def stated(key):
    """Triplets that state the key references: a key pair as it is, a bare key object related to a non-scene object."""
    return [(a, b, r) if b is not None else (a, "wall", "near") for a, b, r in key]


@st.composite
def valid_settings(draw, safe_listing=False):
    answer = draw(st.floats(0.1, 5.0))
    cap = draw(st.floats(0.0, 3.0))
    ref = draw(st.one_of(st.just(0.0), st.floats(0.01, 1.0).map(lambda f: f * answer / (1 + cap) * 0.999)))
    spurious = draw(st.floats(0.01 if safe_listing else 0.0, 2.0))
    under = draw(st.floats(0.0, spurious if safe_listing else 2.0))
    return MultiViewRewardSettings(
        mv_format_weight=draw(st.floats(0.0, 2.0)),
        mv_answer_weight=answer,
        ref_weight=ref,
        ref_pair_credit=draw(st.floats(0.0, 1.0)),
        ref_spurious_penalty=spurious,
        ref_under_penalty=under,
        ref_penalty_cap=cap,
        ref_max_triplets=draw(st.integers(1, 128)),
    )


@settings(max_examples=200, deadline=None)
@given(key_sets, valid_settings(), st.booleans())
def test_right_answer_without_references_beats_wrong_answer_with_perfect_ones(key, s, numeric):
    if numeric:
        gt = {"type": "numeric", "answer": 2.6, "task": "depth", "references": [list(r) for r in key]}
        right, wrong = response((), "2.6"), response(stated(key), "9.9")
    else:
        gt = choice(key)
        right, wrong = response((), "C"), response(stated(key), "A")
    assert score(right, gt, s)["score"] > score(wrong, gt, s)["score"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(key_sets, st.lists(triplet, min_size=1, max_size=40), valid_settings(safe_listing=True))
def test_naming_every_object_scores_below_naming_the_key_references(key, extra, s):
    """Every pair of the scene (the key references plus triplets over other objects) never beats the key references."""
    key_names = {n for a, b, _ in key for n in (a, b)}
    extra = [t for t in extra if not ({t[0], t[1]} & key_names)]  # triplets that anchor nothing
    assume(extra)
    assume(len(key) + len(extra) <= s.ref_max_triplets)
    gt = choice(key)
    exact = score(response(stated(key)), gt, s)
    everything = score(response(stated(key) + extra), gt, s)
    if s.ref_weight > 0:
        assert everything["score"] < exact["score"]
    else:
        assert everything["score"] == exact["score"]


@settings(max_examples=200, deadline=None)
@given(key_sets, st.lists(triplet, max_size=20), triplet, valid_settings(safe_listing=True))
def test_adding_a_triplet_that_anchors_nothing_never_pays(key, predicted, junk, s):
    assume(len(predicted) < s.ref_max_triplets)
    key_names = {n for a, b, _ in key for n in (a, b)}
    assume(not ({junk[0], junk[1]} & key_names))
    gt = choice(key)
    before = score(response(predicted), gt, s)
    after = score(response(list(predicted) + [junk]), gt, s)
    assert after["r_ref"] <= before["r_ref"] + 1e-12


responses = st.one_of(
    st.text(max_size=400),
    st.builds(
        response,
        st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12), st.text(max_size=12)), max_size=12),
        st.text(max_size=30),
        st.booleans(),
    ),
    st.builds(lambda t: f"<think>{t}</think><answer>{t}</answer>", st.text(max_size=200)),
    st.binary(max_size=200),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(responses, key_sets, valid_settings(), st.sampled_from(["choice", "numeric", "view_change"]))
def test_bounded_finite_and_never_raises(resp, key, s, kind):
    gt = {
        "choice": choice(key),
        "numeric": {"type": "numeric", "answer": 0.0, "task": "t", "references": [list(r) for r in key]},
        "view_change": {
            "type": "view_change",
            "answer": "move_left:0.4,move_up:0,move_forward:1,rotate_down:5,rotate_right:0",
            "task": "t",
            "references": [list(r) for r in key],
        },
    }[kind]
    out = score(resp, gt, s)
    assert set(out) <= set(REWARD_KEYS)
    assert all(math.isfinite(v) for v in out.values())
    assert 0.0 <= out["r_ans"] <= s.mv_answer_weight
    assert -s.ref_weight * s.ref_penalty_cap - 1e-12 <= out["r_ref"] <= s.ref_weight + 1e-12
    assert -s.ref_weight * s.ref_penalty_cap - 1e-12 <= out["score"] <= s.mv_format_weight + s.mv_answer_weight + s.ref_weight + 1e-12
    assert out["n_pred"] <= s.ref_max_triplets and out["n_exact"] <= min(out["n_pred"], out["n_gt"])


def test_huge_responses_are_fast():
    import time

    think = "Step 1: " + " ".join(f"[object {i}, thing {i}, left]" for i in range(1000)) + "x" * 200_000
    resp = f"<think>{think}</think><answer>{'A or B ' * 5000}</answer>"
    start = time.perf_counter()
    out = compute_score("mindcube", resp, choice(KEY))
    assert time.perf_counter() - start < 1.0
    assert out["n_pred"] == DEFAULT.ref_max_triplets and out["r_ans"] == 0.0
    assert out["r_ref"] == pytest.approx(-DEFAULT.ref_weight * DEFAULT.ref_penalty_cap)


def test_compute_score_reads_the_task_from_extra_info():
    """veRL passes each row's extra_info to compute_score: a ground truth without its task is scored
    with the row's; SPAR's numeric answers, read by task, need one somewhere."""
    numeric = {"type": "numeric", "answer": 2.6}
    response = "<think>x</think><answer>3.5, no: 2.6</answer>"
    with_task = compute_score("spar", response, {**numeric, "task": "depth_prediction_oc_mv"})
    assert compute_score("spar", response, numeric, {"task": "depth_prediction_oc_mv"}) == with_task
    assert with_task["official"] == 1.0  # SPAR-Bench reads the last number of an _mv answer
    assert compute_score("spar", response, numeric, {"task": "depth_prediction_oc"})["official"] < 1.0  # the first number: 3.5
    with pytest.raises(GroundTruthError, match="add 'task'"):
        compute_score("spar", response, numeric, {})

"""TVR's official metrics on text predictions, computed by hand on small scenes."""

from __future__ import annotations

import pytest

from star_verl.tasks.tvr import Triplet, aggregate_tvr_metrics, parse_tvr_ground_truth, tvr_sample_metrics
from tests.tvr_fixtures import WORKED_GT, scene, tagged, tvr_gt


def test_exact_prediction_is_perfect_on_every_metric():
    m = tvr_sample_metrics(tagged("4.color.brown, 2.color.cyan"), WORKED_GT)
    assert m == {"strict": 1.0, "loose": 1.0, "diff": 0.0, "ndiff": 0.0, "obj_acc": 1.0, "attr_acc": 1.0, "val_acc": 1.0,
                 "step_diff": 0.0, "err_overlap": 0.0, "err_invalid": 0.0}  # fmt: skip


def test_a_wrong_value_and_an_extra_item_count_in_diff_and_the_accuracies():
    m = tvr_sample_metrics(tagged("2.color.cyan, 4.color.red, 5.size.large"), WORKED_GT)
    # object 4 red (not brown), object 5 large (not small): 2 attributes differ, over 2 transformations
    assert (m["diff"], m["ndiff"], m["loose"], m["strict"]) == (2.0, 1.0, 0.0, 0.0)
    # matched: 2 exactly, 4 at attribute level; 3 predictions -> divide by max(2, 3)
    assert (m["obj_acc"], m["attr_acc"], m["val_acc"], m["step_diff"]) == (2 / 3, 2 / 3, 1 / 3, 1.0)


def test_no_answer_block_predicts_nothing_and_triplets_score_as_given():
    m = tvr_sample_metrics("I do not know", WORKED_GT)  # no <answer> block: nothing predicted
    assert (m["diff"], m["ndiff"], m["obj_acc"], m["step_diff"]) == (2.0, 1.0, 0.0, -2.0)
    assert tvr_sample_metrics([Triplet(2, "color", "cyan"), (4, "color", "brown")], WORKED_GT)["strict"] == 1.0


def test_diff_counts_each_attribute_once_and_a_changed_then_restored_value_not_at_all():
    gt = tvr_gt([(0, "shape", "sphere")])
    # object 1: color and material wrong (2), object 0 never changed (1)
    m = tvr_sample_metrics(tagged("1.color.red, 1.material.metal"), gt)
    assert m["diff"] == 3.0 and m["ndiff"] == 3.0
    # a detour that ends in the right state is a loose (and here strict) hit: Diff is about the final state
    m = tvr_sample_metrics(tagged("0.shape.cylinder, 0.shape.sphere"), gt)
    assert (m["diff"], m["loose"], m["strict"], m["step_diff"]) == (0.0, 1.0, 1.0, 1.0)


def _close_pair():
    # objects 0 and 1 are 10 grid units apart: large (6) + small (2) + gap (1) = 9 fits, large + large = 13 does not
    objs = scene(o0={"size": "large", "position": [0, 0]}, o1={"position": [10, 0]})
    objs[4]["position"] = [-30, -30]  # GRID's objects 4 (origin) and 7 (15, 0) would be in the way:
    objs[7]["position"] = [30, -30]  # move them out of sight
    return objs


def test_strict_accuracy_fails_on_an_intermediate_overlap():
    gt = tvr_gt([(0, "size", "small"), (1, "size", "large")], objects=_close_pair())
    ok = tvr_sample_metrics(tagged("0.size.small, 1.size.large"), gt)
    assert (ok["loose"], ok["strict"], ok["err_overlap"]) == (1.0, 1.0, 0.0)
    # other order: object 1 grows while object 0 is still large -> 10 < 13: overlap at step 1
    swapped = tvr_sample_metrics(tagged("1.size.large, 0.size.small"), gt)
    assert (swapped["diff"], swapped["loose"], swapped["strict"], swapped["err_overlap"]) == (0.0, 1.0, 0.0, 1.0)


def test_position_moves_visibility_rule_and_invalid_positions():
    # object 7 at (15, 0) moves behind by 2 steps (20 units) -> (35, 0): outside the visible area
    gt = tvr_gt([{"obj_idx": 7, "attr": "position", "val": ["behind", 2], "options": [["behind", 2], ["behind-right", 2]]}])
    for answer in ("7.position.behind.2", "7.position.behind-right.2", "7.position.behind.1"):
        # (35, 0), (35, 20), (25, 0): all invisible like the target, so the position counts as equal
        m = tvr_sample_metrics(tagged(answer), gt)
        assert (m["diff"], m["strict"]) == (0.0, 1.0), answer
    assert tvr_sample_metrics(tagged("7.position.behind.1"), gt)["val_acc"] == 0.0  # not one of the options
    # twice behind 2 -> (55, 0): outside the valid area [-40, 40]; an invalid position is not equal either
    m = tvr_sample_metrics(tagged("7.position.behind.2, 7.position.behind.2"), gt)
    assert (m["diff"], m["loose"], m["err_invalid"], m["strict"]) == (1.0, 0.0, 1.0, 0.0)
    # a visible target must match exactly: move 4 (0, 0) right 1 -> (0, 10); left 1 lands elsewhere
    gt = tvr_gt([(4, "position", ["right", 1])], objects=scene(o5={"position": [0, 30]}))
    assert tvr_sample_metrics(tagged("4.position.left.1"), gt)["diff"] == 1.0
    assert tvr_sample_metrics(tagged("4.position.right.1"), gt)["strict"] == 1.0


def test_unapplicable_items_make_strict_fail_but_not_loose():
    m = tvr_sample_metrics(tagged("2.color.cyan, 4.color.brown, 12.color.red, 3.color.teal"), WORKED_GT)
    assert (m["diff"], m["loose"], m["strict"], m["err_invalid"], m["step_diff"]) == (0.0, 1.0, 0.0, 1.0, 2.0)
    assert m["val_acc"] == 2 / 4


def test_final_state_is_the_ground_truth_applied_to_the_initial_objects():
    g = parse_tvr_ground_truth(tvr_gt([(2, "color", "cyan"), (2, "size", "large")]))
    assert [(t.obj_idx, t.attr, t.val) for t in g.transformations] == [(2, "color", "cyan"), (2, "size", "large")]
    # predicting only one of two changes of the same object leaves one attribute wrong
    assert tvr_sample_metrics(tagged("2.size.large"), g)["diff"] == 1.0


def test_aggregation_per_view_and_tacc():
    one = {"strict": 1.0, "loose": 1.0, "diff": 0.0, "ndiff": 0.0, "obj_acc": 1.0, "attr_acc": 1.0, "val_acc": 1.0,
           "step_diff": 0.0, "err_overlap": 0.0, "err_invalid": 0.0}  # fmt: skip
    zero = dict(one, strict=0.0, loose=0.0, diff=2.0, ndiff=1.0, obj_acc=0.5, attr_acc=0.5, val_acc=0.0, step_diff=-1.0)
    loose_only = dict(one, strict=0.0, err_overlap=1.0)
    rows = [("center", one), ("center", zero), ("left", one), ("right", zero), ("right", loose_only)]
    agg = aggregate_tvr_metrics(rows)
    assert (agg["center/strict"], agg["left/strict"], agg["right/strict"]) == (0.5, 1.0, 0.0)
    assert agg["tacc"] == pytest.approx(0.5)  # (0.5 + 1 + 0) / 3
    assert agg["acc"] == pytest.approx(2 / 5)  # per sample: differs from TAcc when views differ in size
    assert agg["lacc"] == pytest.approx(3 / 5)
    assert agg["diff"] == pytest.approx(4 / 5) and agg["right/ndiff"] == pytest.approx(0.5)
    assert agg["val_acc"] == pytest.approx(3 / 5) and agg["step_diff"] == pytest.approx(-2 / 5)
    assert (agg["n"], agg["center/n"], agg["right/n"]) == (5, 2, 2)


def test_tacc_reproduces_the_papers_arithmetic():
    # 1000 samples per view, accuracies 76.3 % (center), 53.9 % (left and right)
    hit = {"strict": 1.0, "loose": 1.0, "diff": 0.0, "ndiff": 0.0, "obj_acc": 1.0, "attr_acc": 1.0, "val_acc": 1.0,
           "step_diff": 0.0, "err_overlap": 0.0, "err_invalid": 0.0}  # fmt: skip
    miss = dict(hit, strict=0.0, loose=0.0)
    rows = [("center", hit)] * 763 + [("center", miss)] * 237
    rows += ([("left", hit)] * 539 + [("left", miss)] * 461) + ([("right", hit)] * 539 + [("right", miss)] * 461)
    assert round(100 * aggregate_tvr_metrics(rows)["tacc"], 1) == 61.4


def test_unknown_view_raises():
    with pytest.raises(ValueError, match="unknown TVR view 'top'"):
        aggregate_tvr_metrics([("top", {})])


def test_view_weights_make_a_plain_row_mean_the_papers_metrics_for_any_rows_per_view():
    """What veRL's validation logs for `tacc`, `acc_id`, `acc_ood` (star_verl.rewards.benchmark): the
    plain mean over the rows of weight x strict equals TAcc, ID and OOD of `aggregate_tvr_metrics`."""
    import random

    from star_verl.tasks.tvr import VIEWS, view_weights

    rng = random.Random(0)
    for _ in range(200):
        views = [v for v in VIEWS for _ in range(rng.randint(0, 7))] or ["left"]
        rows = [(v, float(rng.random() < 0.5)) for v in views]
        counts = {v: views.count(v) for v in VIEWS}
        agg = aggregate_tvr_metrics((v, {**dict.fromkeys(("loose", "diff", "ndiff", "obj_acc", "attr_acc", "val_acc", "step_diff",
                                                         "err_overlap", "err_invalid"), 0.0), "strict": s}) for v, s in rows)  # fmt: skip
        weighted = [tuple(w * s for w in view_weights(v, counts)) for v, s in rows]
        means = [sum(col) / len(rows) for col in zip(*weighted, strict=True)]
        assert means[0] == pytest.approx(agg["tacc"], abs=1e-12)
        if counts["center"]:
            assert means[1] == pytest.approx(agg["center/strict"], abs=1e-12)
        ood = [agg[f"{v}/strict"] for v in ("left", "right") if counts[v]]
        assert means[2] == pytest.approx(sum(ood) / len(ood) if ood else 0.0, abs=1e-12)
    with pytest.raises(ValueError, match="counts no 'right' row"):
        view_weights("right", {"center": 2, "left": 1})

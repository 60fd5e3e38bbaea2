"""The benchmarks' official scorers (star_verl.tasks.official; their aggregations in star_verl.eval.scoring), quirks included, against hand-computed
expectations; and where the strict protocol (the reward's parsers) disagrees with them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from star_verl.eval.scoring import PROTOCOLS, Sample, mindcube_aggregate, score_sample, spar_aggregate
from star_verl.tasks import official, registry
from star_verl.tasks.numeric import MRA_THRESHOLDS
from tests.tvr_fixtures import tvr_gt

VCI_GT = "move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75"


# ------------------------------------------------------------------------------------------ MindCube


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>Option A. is tempting</think><answer>B</answer>", "A"),  # rule 1: last "X." anywhere, reasoning included
        ("<think>x</think><answer>B. the sofa</answer>", "B"),
        ("I think D. No wait, it is C. Final.", "C"),  # last of rule 1
        ("The answer is C", "C"),  # no "X.": rule 3's "answer is X"
        ("<think>x</think><answer>A</answer>", "A"),  # reaches the last fallback: bare letter on the last line
        ("<Answer>my answer is E</Answer>", "E"),  # the <Answer> section (capital A)
        ("no letter here", None),
        ("", None),
        (None, None),
        ("F. is not an option letter", None),
    ],
)
def test_mindcube_extractor_takes_the_last_letter_and_dot_then_its_fallbacks(text, expected):
    assert official.mindcube_extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # rule 3, in its order: a letter starting a line (followed by a space, a period or the end)
        ("D or B", "D"),
        ("B is possible\nI think D or A", "B"),  # the line-start rule beats the last line
        ('I pick "C" over D', "C"),  # "X" / *X* before "Answer: X"
        ("Answer: D, not *B*", "B"),  # *X* comes before "Answer: X" in the rule order
        ("so my answer is E, not answer is D", "E"),  # "my answer is X" before "answer is X"
        # rule 4: the last line with a standalone letter, and on it the FIRST one
        ("I think D or B", "D"),
        ("<think>x</think><answer>D or B</answer>", "D"),
        ("(D) or (B)\nno letter on this line", "D"),
        ("A maybe\n(C) and (B)", "A"),  # "A " starts a line: rule 3 first
        ("first (A)\nthen (C) and (B)", "C"),
    ],
)
def test_mindcube_fallback_order(text, expected):
    """MindCube's extract_answer at HEAD 6d8fd9a: the initial commit's rule 3 pattern "X followed by white
    space" (which read "I think D or B" as B) is gone; the last rule takes the first letter of the last line."""
    assert official.mindcube_extract_answer(text) == expected


def test_mindcube_setting_and_overall_excludes_translation():
    assert [official.mindcube_setting(i) for i in ("among_group693_q1_5_2", "aroundnew_x", "rotation_group000_q1_1", "translation_1", "xyz")] == [
        "among", "around", "rotation", "translation", "other",
    ]  # fmt: skip
    rows = [("rotation", True), ("rotation", False), ("around", True), ("translation", False), ("translation", False), ("among", True)]
    result = mindcube_aggregate(rows)
    assert result["settings"]["rotation"] == {"n": 2, "correct": 1, "accuracy": 50.0}
    assert result["settings"]["translation"]["accuracy"] == 0.0
    assert result["n_overall"] == 4 and result["correct_overall"] == 3
    assert result["overall"] == 75.0  # 3 / 4, translation tracked but excluded (micro, not the mean of settings: 83.3)


def test_mindcube_correct_is_case_sensitive():
    assert official.mindcube_correct("<answer>B.</answer>", "B")
    assert not official.mindcube_correct("<answer>b.</answer>", "B")


# ----------------------------------------------------------------------------------------- SPAR-Bench


def test_spar_mra_thresholds_are_numpys_linspace():
    assert MRA_THRESHOLDS == tuple(np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2)))
    assert len(MRA_THRESHOLDS) == 10


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ("", "A", 1.0),  # "" in "a": an empty output counts as right
        ("A", "A", 1.0),
        ("a", "A", 1.0),
        ("b, because", "B", 1.0),  # pred[0] == gt
        ("c) the box", "C", 1.0),
        ("The answer is B", "B", 0.0),  # pred[0] is "t"
        ("B", "A", 0.0),
        ("<answer>A</answer>", "A", 0.0),  # raw tags are not stripped by the scorer itself
    ],
)
def test_spar_exact_match_compares_the_first_character_and_passes_an_empty_output(pred, gt, expected):
    assert official.spar_exact_match(pred, gt) == expected


def test_spar_na_first_number_single_view_last_number_multi_view():
    assert official.spar_na_prediction("2.0 or maybe 3.5", "depth_prediction_oc") == 2.0
    assert official.spar_na_prediction("3.5 m, no, 2.25", "depth_prediction_oc_mv") == 2.25
    assert official.spar_na_prediction("no number", "depth_prediction_oc_mv") == -1.0
    assert official.spar_na_prediction("no number", "depth_prediction_oc") is None
    assert official.spar_na_prediction("-2.5", "distance_prediction_oo") == 2.5  # the sign is not read
    assert official.spar_na_prediction("10^3", "distance_prediction_oo") == 10.0  # numbers after ^ are skipped
    # 2.25 vs 2.0: relative error 0.125 <= 1 - t for t in 0.50..0.85 (8 of 10)
    assert official.spar_score("depth_prediction_oc_mv", "3.5 m, no, 2.25", "2") == pytest.approx(0.8)
    assert official.spar_score("depth_prediction_oc", "nothing", "2") == 0.0
    assert official.spar_score("depth_prediction_oc_mv", "nothing", "2") == 0.0  # -1 vs 2: error 1.5
    assert official.spar_score("depth_prediction_oc", "0.05", "0") == pytest.approx(1.0)  # gt 0: absolute error 0.05
    assert official.spar_score("depth_prediction_oc", "0.3", "0") == pytest.approx(0.5)  # 0.3 <= 1 - t for t <= 0.7


def test_spar_view_change_swaps_the_mra_arguments():
    right = VCI_GT.replace("move_right:1.6", "move_right:2.5")
    # component right-left: gt 1.6, pred 2.5. Official: |1.6 - 2.5| / 2.5 = 0.36 -> t in .50, .55, .60 -> 0.3;
    # the four other components are equal -> 1 each: (0.3 + 4) / 5
    assert official.spar_vci(right, VCI_GT) == pytest.approx(0.86)
    assert official.spar_vci(VCI_GT, VCI_GT) == 1.0
    # a predicted 0 switches to the absolute error |gt| = 1.6 > 0.5: the component scores 0
    assert official.spar_vci(VCI_GT.replace("move_right:1.6", "move_right:0"), VCI_GT) == pytest.approx(0.8)
    assert official.spar_vci("move_right 1.6", VCI_GT) == 0.0  # parse error: 0 for everything
    # keys are not stripped: after ", " every key but the first is unknown and reads as 0: right for
    # move_down and move_backward (gt 0), wrong for rotate_up (15) and rotate_left (75): (1 + 1 + 1 + 0 + 0) / 5
    assert official.spar_vci(VCI_GT.replace(",", ", "), VCI_GT) == pytest.approx(0.6)
    assert official.spar_vci("", VCI_GT) == 0.0


def test_spar_levels_official_middle_drops_view_change():
    means = {
        "depth_prediction_oc": 1.0,
        "view_change_infer": 0.0,
        "position_matching": 1.0,
        "camera_motion_infer": 0.5,
        "obj_spatial_relation_oo": 0.25,
    }
    kinds = {t: official.spar_task_kind(t) for t in means}
    agg = spar_aggregate(means, kinds)
    assert agg["overall"] == pytest.approx(100 * 2.75 / 5)
    assert agg["levels"] == {"low": 100.0, "middle": 75.0, "high": 25.0}  # middle = mean(1.0, 0.5): view_change_infer lost
    fixed = spar_aggregate(means, kinds, official_levels=False)
    assert fixed["levels"]["middle"] == pytest.approx(50.0)  # mean(0, 1, 0.5)
    assert spar_aggregate({"depth_prediction_oc": 1.0}, {"depth_prediction_oc": "na"})["levels"]["high"] is None


def test_spar_tasks_are_the_20_of_the_benchmark():
    assert len(set(registry.SPARBENCH_TASKS)) == 20
    assert sorted(t for level in registry.SPARBENCH_LEVELS.values() for t in level) == sorted(registry.SPARBENCH_TASKS)
    assert official.spar_task_kind("obj_count", "numeric") == "na"  # a SPAR-7M task outside the 20: by ground-truth type


# ---------------------------------------------------------------------------------------- MMSI-Bench


@pytest.mark.parametrize(
    ("pred", "letter"),
    [
        ("`C`", "C"),
        ("``B``", "B"),
        ("{D}", "D"),
        ("A or B", "B"),  # "A" is followed by a space and a word: skipped
        ("A chair is left of B", "B"),
        ("I pick D", "D"),
        ("Answer: C. Because A is wrong", "C"),  # the FIRST standalone letter
        # the narrowing order: ``...`` first, then `...` inside it, then {...} inside that
        ("`C` or ``B``", "B"),
        ("{A} then `C`", "C"),
        ("`{D} or A`", "D"),
        ("none", None),
        ("", None),
    ],
)
def test_mmsi_extractor_takes_the_first_standalone_letter(pred, letter):
    assert official.mmsi_extract(pred) == letter


def test_mmsi_correct_needs_the_capital_letter_and_categories_use_the_en_dash():
    assert official.mmsi_correct("`c`", "C") is False  # the letter must be a capital A-D
    assert official.mmsi_correct("`C`", "C") is True
    assert official.mmsi_correct("nothing", "C") is False  # no LLM judge: a failed extraction is wrong
    assert registry.mmsi_category("Positional Relationship (Cam.-Obj.)") == "Positional Relationship (Cam.\u2013Obj.)"
    assert registry.mmsi_category("Motion (Cam.)") == "Motion (Cam.)"


def test_each_benchmark_scores_the_text_its_harness_passes():
    response = "<think>A chair</think><answer>`C`</answer>"
    assert official.harness_text("mindcube", response) == response
    assert official.harness_text("mmsi", response) == "`C`"
    assert official.harness_text("spar", "<think>reason</think> B") == "B"
    assert official.harness_text("spar", "<answer>\n c \n</answer>") == "c"
    assert official.harness_text("spar", "<answer></answer>") == ""


# ------------------------------------------------------------------------- official vs strict, per sample


def _mv(source: str, task: str, response: str, answer, kind: str = "choice") -> Sample:
    gt = {"type": kind, "answer": answer, "task": task}
    if kind == "choice":
        gt["options"] = ["A", "B", "C", "D"]
    return Sample(1, "x", source, source, response, gt, {})


@pytest.mark.parametrize(
    ("sample", "official_score", "strict_score"),
    [
        (_mv("mindcube", "rotation", "<think>Option A. is tempting</think><answer>B</answer>", "B"), 0.0, 1.0),
        (_mv("mindcube", "around", "The answer is C", "C"), 1.0, 0.0),  # no <answer> block: strict reads nothing
        (_mv("spar", "obj_spatial_relation_oc_mv", "<think>x</think><answer></answer>", "A"), 1.0, 0.0),
        (_mv("spar", "position_matching", "<answer>c) the box</answer>", "C"), 1.0, 0.0),
        (_mv("spar", "depth_prediction_oc", "<answer>2.0 or maybe 3.5</answer>", 2.0, "numeric"), 1.0, 0.0),
        (_mv("spar", "depth_prediction_oc_mv", "<answer>3.5 m, no, 2.25</answer>", 2.0, "numeric"), 0.8, 0.0),
        (_mv("spar", "view_change_infer", f"<answer>{VCI_GT.replace('1.6', '2.5')}</answer>", VCI_GT, "view_change"), 0.86, 0.8),
        (_mv("mmsi", "Motion (Cam.)", "<answer>A or B</answer>", "B"), 1.0, 0.0),
        (_mv("mmsi", "Motion (Cam.)", "I pick D", "D"), 1.0, 0.0),
        (_mv("mmsi", "Motion (Cam.)", "<think>Image A</think><answer>`C`</answer>", "C"), 1.0, 1.0),
    ],
)
def test_official_and_strict_protocols_score_a_sample_differently(sample, official_score, strict_score):
    # strict view change: |2.5 - 1.6| / 1.6 = 0.5625 > 0.5 -> 0 for that component, (0 + 4) / 5 = 0.8
    assert score_sample(sample, "official").score == pytest.approx(official_score)
    assert score_sample(sample, "strict").score == pytest.approx(strict_score)


_ODD = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            "<answer>",
            "</answer><answer>",
            "<think><answer>A</answer>",
            "move_right:",
            "{",
            "``",
            "\x00",
            "1e999",
            "<answer>99999999999.color.red, 0.position.left.3</answer>",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(text=_ODD, protocol=st.sampled_from(PROTOCOLS))
def test_scoring_never_raises_on_model_output(text, protocol):
    samples = [
        _mv("mindcube", "rotation", text, "B"),
        _mv("spar", "depth_prediction_oc_mv", text, 2.0, "numeric"),
        _mv("spar", "depth_prediction_oc", text, 0.0, "numeric"),
        _mv("spar", "view_change_infer", text, VCI_GT, "view_change"),
        _mv("spar", "obj_spatial_relation_oo", text, "A"),
        _mv("mmsi", "MSR", text, "D"),
        Sample(1, "t", "tvr", "tvr", text, tvr_gt([(0, "color", "cyan")], view="left"), {}),
    ]
    for sample in samples:
        result = score_sample(sample, protocol)
        assert 0.0 <= result.score <= 1.0
        assert result.correct == (result.score == 1.0)

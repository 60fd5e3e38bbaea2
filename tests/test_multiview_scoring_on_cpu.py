"""Multi-view answer scoring against worked examples from each benchmark's documented rules
(shared/reference/datasets.md sections 1-3), and the strict deviations from the official scorers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from star_verl.tasks.choice import extract_option_letter
from star_verl.tasks.multiview import parse_multiview_ground_truth, score_answer
from star_verl.tasks.numeric import MRA_THRESHOLDS, extract_number, mean_relative_accuracy
from star_verl.tasks.references import (
    EXACT,
    PAIR,
    Reference,
    match_references,
    match_tier,
    normalize_object,
    normalize_relation,
    parse_reference_triplets,
    step1_triplets,
    three_step_structure,
)
from star_verl.tasks.tags import parse_tags
from star_verl.tasks.view_change import extract_view_change, parse_view_change, view_change_score

ABCD = ("A", "B", "C", "D")
VC_GT = "move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75"  # SPAR-Bench's sample


def choice_gt(answer="C", options=ABCD, **extra):
    return parse_multiview_ground_truth({"type": "choice", "answer": answer, "options": list(options), "task": "t", **extra})


# ---------------------------------------------------------------- option letters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("C", "C"),
        ("c", "C"),
        (" C. ", "C"),
        ("(C)", "C"),
        ("[C]", "C"),
        ("**C**", "C"),
        ("`B`", "B"),  # MMSI-Bench asks for the letter inside backticks
        ("C. Diagonally forward and left", "C"),  # MindCube's target form '<answer>C. text</answer>'
        ("(C) Diagonally forward and left", "C"),
        ("C) right, , front", "C"),
        ("Answer: C", "C"),
        ("answer: c", "C"),
        ("Final answer: (B)", "B"),
        ("The answer is B, not A", "B"),  # an explicit statement is not ambiguous
        ("The answer is C.", "C"),
        ("The answer is (C).", "C"),
        ("I choose option D because the lamp is behind me.", "D"),
        ("so it must be B.", "B"),  # one option letter standing alone ("I" is not an option)
    ],
)
def test_option_letter_is_read_from_every_stated_form(text, expected):
    assert extract_option_letter(text, ABCD) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "A or C",  # several letters: ambiguous, never guessed
        "A chair is to my left, so the door must be C",  # the article "A" makes it ambiguous too
        "Option A is wrong. Answer: C",  # explicit forms disagree
        "(A) or (B)",
        "E",  # not an option
        "Answer: E",
        "the sofa",  # no letter at all
        "the answer is a chair",  # a lower-case article is not an option letter
        "Directly left",  # option text without its letter is not matched to the option
    ],
)
def test_option_letter_is_absent_when_missing_ambiguous_or_not_an_option(text):
    assert extract_option_letter(text, ABCD) is None


def test_option_letter_is_read_from_the_answer_block_only():
    response = "<think>A is wrong and B is unlikely.</think><answer>C</answer>"
    assert score_answer(choice_gt(), parse_tags(response).answer).correct
    # a response without an answer block has no answer, whatever its reasoning says
    assert score_answer(choice_gt(), parse_tags("<think>the answer is C</think>").answer).value == 0.0


def test_sparbench_empty_prediction_is_wrong_here():
    """SPAR-Bench's exact_match('', 'c') is 1 ('' in 'c'); our strict protocol counts it wrong."""
    official = lambda pred, target: float(pred.lower() == target.lower() or pred.lower() in target.lower())  # noqa: E731
    assert official("", "C") == 1.0
    assert score_answer(choice_gt(), "").value == 0.0
    assert score_answer(choice_gt(), None).value == 0.0


# ---------------------------------------------------------------- numbers and MRA


def sparbench_mra(pred: float, gt: float) -> float:
    """SPAR-Bench's formula as datasets.md section 2.3 documents it, with numpy as they compute it."""
    thresholds = np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2))
    error = abs(pred - gt) if gt == 0.0 else abs((pred - gt) / gt)
    return float((error <= 1 - thresholds).mean())


def test_mra_thresholds_are_sparbench_ten_values():
    assert len(MRA_THRESHOLDS) == 10
    assert MRA_THRESHOLDS == tuple(np.linspace(0.5, 0.95, int((0.95 - 0.5) / 0.05 + 2)).tolist())


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        (2.6, 2.6, 1.0),
        (2.5, 2.6, 1.0),  # relative error 0.038 <= 0.05: every threshold
        (2.0, 2.6, 0.6),  # 0.231: thresholds 0.50..0.75 pass (1 - t >= 0.231), 6 of 10
        (3.0, 2.0, 0.1),  # 0.5: only t = 0.50 (0.5 <= 0.5)
        (5.0, 2.0, 0.0),
        (0.03, 0.0, 1.0),  # gt == 0: absolute error 0.03 <= 0.05
        (0.3, 0.0, 0.5),  # absolute error 0.3: t <= 0.70, 5 of 10
        (-2.6, 2.6, 0.0),
    ],
)
def test_mra_of_hand_computed_cases_equals_sparbench(pred, gt, expected):
    assert mean_relative_accuracy(pred, gt) == pytest.approx(expected)
    assert mean_relative_accuracy(pred, gt) == sparbench_mra(pred, gt)


@settings(max_examples=300, deadline=None)
@given(st.floats(-50, 50, allow_nan=False), st.one_of(st.just(0.0), st.floats(-50, 50, allow_nan=False)))
def test_mra_agrees_with_sparbench_bit_for_bit(pred, gt):
    assert mean_relative_accuracy(pred, gt) == sparbench_mra(pred, gt)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.6", 2.6),
        ("2.6 meters", 2.6),
        ("about 3 m", 3.0),
        ("~2.6m", 2.6),
        ("The depth is 2.6 metres.", 2.6),
        ("260 cm", 2.6),
        ("2.6 m (260 cm)", 2.6),  # the same value twice
        ("-1.5", -1.5),
        (".5", 0.5),
        ("Depth: 2.6", 2.6),
        ("2.6e0 m", 2.6),
    ],
)
def test_the_single_value_stated_is_read_in_meters(text, expected):
    assert extract_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", None, "two meters", "between 2 and 3 meters", "2.6 or 2.7", "1,000", "x2 m", "1.2.3"])
def test_number_is_absent_when_missing_in_words_or_several(text):
    assert extract_number(text) is None


def test_numeric_answer_scores_its_mra():
    gt = parse_multiview_ground_truth({"type": "numeric", "answer": 2.6, "task": "depth_prediction_oc_mv"})
    assert score_answer(gt, "2.6 meters").correct
    assert score_answer(gt, "2.0").value == pytest.approx(0.6)
    assert score_answer(gt, "I cannot tell").value == 0.0  # SPAR-Bench's -1 for multi-view tasks also scores 0 here


# ---------------------------------------------------------------- view change


def test_view_change_ground_truth_is_five_signed_components():
    # right-left, up-down, forward-backward, rotate right-left, rotate up-down (SPAR-Bench's order)
    assert parse_view_change(VC_GT) == (1.6, 0.0, 0.0, -75.0, 15.0)


def test_view_change_perfect_and_tolerant_forms():
    gt = parse_view_change(VC_GT)
    assert view_change_score(extract_view_change(VC_GT), gt) == 1.0
    spaced = "move_right: 1.6 m, move_down: 0 m, move_back: 0, rotate_up: 15°, rotate_left: 75 degrees"
    assert view_change_score(extract_view_change(spaced), gt) == 1.0
    # the items may come in any order, also inside a sentence
    assert view_change_score(extract_view_change("I rotate_left:75 then rotate_up:15, move_right:1.6,move_down:0,move_backward:0"), gt) == 1.0


def test_view_change_missing_parts_earn_nothing_for_that_component():
    gt = parse_view_change(VC_GT)
    pred = extract_view_change("move_right:1.6,rotate_left:75")
    assert pred == (1.6, None, None, -75.0, None)
    assert view_change_score(pred, gt) == pytest.approx(2 / 5)
    # SPAR-Bench reads a missing key as 0, which would pay the two zero components (0.8 in total)


def test_view_change_error_is_relative_to_the_ground_truth():
    gt = parse_view_change(VC_GT)
    pred = extract_view_change("move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:50")
    # rotate right-left: |-50 - -75| / 75 = 0.333 -> t <= 0.65: 4 of 10 (SPAR-Bench's swapped call: 25/50 = 0.5 -> 1 of 10)
    assert view_change_score(pred, gt) == pytest.approx((4 + 0.4) / 5)


def test_view_change_conflicting_duplicates_are_absent():
    assert extract_view_change("move_right:1.6,move_right:2") is None
    assert extract_view_change("no camera motion given") is None
    assert extract_view_change("") is None


@pytest.mark.parametrize(
    "bad",
    [
        "move_right:1.6,move_down:0,move_backward:0,rotate_up:15",  # rotate right-left missing
        "move_right:1.6,move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75",
        "move_right:abc,move_down:0,move_backward:0,rotate_up:15,rotate_left:75",
        "turn_right:1,move_down:0,move_backward:0,rotate_up:15,rotate_left:75",
        "",
        3.0,
    ],
)
def test_view_change_ground_truth_errors(bad):
    with pytest.raises(ValueError, match="view_change answer"):
        parse_view_change(bad)


# ---------------------------------------------------------------- ground truth validation


def test_ground_truth_without_references_is_valid():
    gt = choice_gt()
    assert gt.references == () and gt.options == ABCD and gt.answer == "C"
    assert parse_multiview_ground_truth({"type": "numeric", "answer": 2, "task": "t", "references": None}).answer == 2.0


def test_ground_truth_references_are_normalized():
    gt = choice_gt(references=[["Sofa", "the Balls", "in front of"], ["door", None, None], ["lamp", "couch", None]])
    assert gt.references == (Reference("sofa", "ball", "front"), Reference("door"), Reference("lamp", "sofa"))


@pytest.mark.parametrize(
    ("gt", "error", "message"),
    [
        ({"type": "choice", "answer": "E", "options": ["A", "B"], "task": "t"}, ValueError, "not one of the options"),
        ({"type": "choice", "answer": "A", "task": "t"}, ValueError, "needs 'options'"),
        ({"type": "choice", "answer": "A", "options": ["A", "a"], "task": "t"}, ValueError, "capital letters"),
        ({"type": "numeric", "answer": "2.6", "task": "t"}, TypeError, "finite number"),
        ({"type": "numeric", "answer": float("nan"), "task": "t"}, TypeError, "finite number"),
        ({"type": "numeric", "answer": True, "task": "t"}, TypeError, "finite number"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "options": ["A", "B"]}, KeyError, "options"),
        ({"type": "numeric", "answer": 1.0}, KeyError, "task"),
        ({"type": "yesno", "answer": "yes", "task": "t"}, ValueError, "answer type"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "refrences": []}, KeyError, "refrences"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "references": [["sofa", "ball", "diagonal"]]}, ValueError, "relation"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "references": [["sofa", None, "left"]]}, ValueError, "needs object 2"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "references": [["sofa", "ball"]]}, ValueError, "must be a list"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "references": [["", "ball", "left"]]}, ValueError, "object 1"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "references": "sofa"}, TypeError, "must be a list"),
        ({"type": "numeric", "answer": 1.0, "task": "t", "references": [["lamp", "desk", "left"], ["desks", "lamp", "right"]]}, ValueError, "repeat"),
    ],
)
def test_bad_ground_truth_raises_naming_the_problem(gt, error, message):
    with pytest.raises(error, match=message):
        parse_multiview_ground_truth(gt)


# ---------------------------------------------------------------- reference triplets


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Black Sofas", "black sofa"),
        ("couch", "sofa"),
        ("sink (red bbox)", "sink"),
        ("bookshelves", "bookshelf"),
        ("boxes", "box"),
        ("glass", "glass"),
        ("an armchair", "armchair"),
        ("trash-bins", "trash can"),
        ("potted_plants", "potted plant"),
        ("the camera", "observer"),
        ("me", "observer"),
    ],
)
def test_object_names_are_normalized(raw, expected):
    assert normalize_object(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("behind", "behind"),
        ("in front of", "front"),
        ("to the left of", "left"),
        ("on the left side of", "left"),
        ("is on top of", "above"),
        ("on", "above"),
        ("under", "below"),
        ("next to", "near"),
        ("far from", "far"),
        ("Right", "right"),
        ("front-left", None),
        ("facing", None),
        (None, None),
    ],
)
def test_relation_phrases_map_onto_the_relations(raw, expected):
    assert normalize_relation(raw) == expected


def test_triplets_come_from_step_1_only():
    think = (
        "Step 1: Image 1: [sofa, ball, behind], ['lamp', \"table\", left]\nImage 2: [Sofa, Balls, behind] [ball, sofa, front]\n"
        "Step 2: merged: [door, sofa, right]\nStep 3: ..."
    )
    refs = parse_reference_triplets(think)
    # duplicates after normalization and the inverse [ball, sofa, front] are one reference; step 2's is not read
    assert [(r.obj1, r.obj2, r.relation) for r in refs] == [("sofa", "ball", "behind"), ("lamp", "table", "left")]
    # without step headings the whole text is read
    assert len(parse_reference_triplets("[door, sofa, right] and [sofa, ball, behind]")) == 2


@pytest.mark.parametrize(
    "text",
    ["[Image 1]", "[0, 0, 556, 720]", "[1.5, 2, left]", "[left, sofa, behind]", "[a, b, c, d]", "[sofa]", "[ , ball, left]", "[sofa,\nball, left]"],
)
def test_brackets_that_are_not_triplets_are_not_read(text):
    assert parse_reference_triplets(text) == []


def test_pair_and_unknown_relation_forms():
    refs = parse_reference_triplets("[sofa, ball] [lamp, desk, diagonally]")
    assert [(r.obj1, r.obj2, r.relation) for r in refs] == [("sofa", "ball", None), ("lamp", "desk", None)]


def test_triplet_count_is_bounded_to_the_first_ones():
    think = "Step 1: " + " ".join(f"[object {i}, thing {i}, left]" for i in range(1000))
    every = parse_reference_triplets(think, max_triplets=5000)
    assert len(every) == 1000
    assert parse_reference_triplets(think, max_triplets=64) == every[:64]


def test_match_tier_needs_the_pair_and_its_relation_for_exact():
    gt = Reference("sofa", "ball", "behind")
    assert match_tier(Reference("ball", "sofa", "front"), gt) == EXACT  # the inverse statement
    assert match_tier(Reference("black sofa", "ball", "behind"), gt) == EXACT  # modifiers on the same head noun
    assert match_tier(Reference("sofa", "ball", "left"), gt) == PAIR
    assert match_tier(Reference("sofa", "ball", None), gt) == PAIR
    assert match_tier(Reference("sofa", "lamp", "behind"), gt) == 0
    assert match_tier(Reference("chair", "ball", "behind"), Reference("chair and white board", "ball", "behind")) == 0
    # a key reference without a relation (a pair or a bare name) is never matched: naming earns nothing
    assert match_tier(Reference("sofa", "ball", "left"), Reference("sofa", "ball")) == 0
    assert match_tier(Reference("sofa", "ball", "left"), Reference("sofa")) == 0


def counts(match):
    return (match.n_exact, match.n_pair)


def test_matching_is_one_to_one_and_best():
    key = [Reference("black sofa", "ball", "behind"), Reference("white sofa", "ball", "behind")]
    # a generic name anchors only one of the two key references
    assert counts(match_references([Reference("sofa", "ball", "behind")], key)) == (1, 0)
    # greedy on the first prediction would take the wrong key reference; the best assignment uses both
    preds = [Reference("sofa", "ball", "behind"), Reference("black sofa", "ball", "behind")]
    assert counts(match_references(preds, key)) == (2, 0)


def test_hedged_relations_match_once():
    key = [Reference("sofa", "ball", "behind")]
    preds = [Reference("sofa", "ball", r) for r in ("left", "behind", "front")]
    match = match_references(preds, key)
    assert counts(match) == (1, 0) and match.pairs == ((1, 0, EXACT),)
    # a wrong relation alone is a pair match, worth pair_credit
    match = match_references([Reference("ball", "sofa", "behind")], key, pair_credit=0.25)
    assert counts(match) == (0, 1) and match.value(0.25) == 0.25


def test_bare_key_references_are_never_matched():
    key = [Reference("book"), Reference("bookshelf"), Reference("sink", "towel")]  # References hold normalized names
    assert counts(match_references([Reference("book", "bookshelf", "front"), Reference("sink", "towel", "left")], key)) == (0, 0)
    mixed = [Reference("sink", "observer", "left"), Reference("towel")]
    assert counts(match_references([Reference("sink", "observer", "left"), Reference("towel", "sink", "above")], mixed)) == (1, 0)


def test_step1_triplets_by_image_heading():
    think = (
        "Step 1 (per-view reference analysis): [lamp, desk, left]\n"
        "Image 1: [sofa, ball, behind], [ball, sofa, front]\n"  # the inverse is the same reference
        "**Image 2 (left view):** [sofa, ball, behind] [door, sofa, right]\n"  # the same triplet in another image counts there
        "- In view 3, the sofa (also seen in image 1) is [sofa, window, near]\n"  # a passing mention is no heading
        "Step 2: [tv, sofa, left]"
    )
    got = step1_triplets(think)
    as_tuples = {k: [(r.obj1, r.obj2, r.relation) for r in refs] for k, refs in got.views}
    assert as_tuples == {1: [("sofa", "ball", "behind")], 2: [("sofa", "ball", "behind"), ("door", "sofa", "right")], 3: [("sofa", "window", "near")]}
    assert [(r.obj1, r.obj2) for r in got.outside] == [("lamp", "desk")] and got.count == 5
    assert got.view(4) == ()
    # on one line after the step heading, and numbered headings with a colon
    inline = step1_triplets("Step 1: Image 1: [a1 box, b1 box, left] Image 2: [c1 box, d1 box, right]")
    assert [k for k, _ in inline.views] == [1, 2]
    assert step1_triplets(think, max_triplets=2).count == 2


# ---------------------------------------------------------------- three-step structure


GOOD = (
    "<think>**Step 1 (per-view reference analysis):**\nImage 1: [sofa, ball, behind]\nImage 2: [ball, door, left]\n"
    "**Step 2 (cross-view spatial mapping):** the ball appears in both views.\n**Step 3 (spatial reasoning):** so C.</think>"
    "<answer>C</answer>"
)


def test_a_three_step_response_passes_the_structure_check():
    result = three_step_structure(GOOD, n_images=2)
    assert result.ok and result.reasons == () and result.n_triplets == 2 and result.views_with_triplets == (1, 2)


@pytest.mark.parametrize(
    ("response", "n_images", "reason"),
    [
        (GOOD.replace("<answer>C</answer>", ""), None, "<answer>"),
        (GOOD.replace("<answer>C</answer>", "<answer> </answer>"), None, "empty or missing <answer>"),
        (GOOD.replace("**Step 2", "**Part 2"), None, "no line starting with 'Step 2'"),
        (GOOD.replace("[sofa, ball, behind]", "sofa behind ball").replace("[ball, door, left]", "door left"), None, "no [object 1"),
        (GOOD, 3, "no triplet for image(s) [3]"),
        (GOOD.replace(" the ball appears in both views.", ""), None, "'Step 2' is empty"),
    ],
)
def test_the_structure_check_names_what_is_missing(response, n_images, reason):
    result = three_step_structure(response, n_images=n_images)
    assert not result.ok
    assert any(reason in r for r in result.reasons), result.reasons


def test_steps_out_of_order_fail_the_structure_check():
    swapped = "<think>Step 2: map\nStep 1: Image 1: [a, b, left]\nStep 3: so C</think><answer>C</answer>"
    assert "the steps are not in the order 1, 2, 3" in three_step_structure(swapped).reasons


def test_mra_is_finite_for_extremes():
    assert mean_relative_accuracy(math.inf, 1.0) == 0.0
    assert extract_number("1e400") is None

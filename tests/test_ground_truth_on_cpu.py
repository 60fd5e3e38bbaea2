"""The one ground-truth schema (`star_verl.tasks.ground_truth`): what a converter builds is serialized
from the typed object and parses back to an equal object, for every family and every optional part;
`GroundTruthError` carries the problem and the sample as fields."""

from __future__ import annotations

import json
import pickle

import pytest

from star_verl import rewards
from star_verl.prep.multiview import BadInput, choice_ground_truth, numeric_ground_truth, view_change_ground_truth
from star_verl.prep.trance import Sample as TranceSample
from star_verl.prep.trance import ground_truth as trance_ground_truth
from star_verl.tasks.ground_truth import GroundTruthError, ground_truth_json, load_ground_truth, parse_ground_truth, validate_ground_truth
from star_verl.tasks.multiview import MultiViewGroundTruth
from star_verl.tasks.references import Reference
from star_verl.tasks.tvr import TVRGroundTruth
from tests.tvr_fixtures import scene, tvr_gt

VC = "move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75"


def round_trip(data_source: str, gt):
    text = ground_truth_json(gt)
    back = parse_ground_truth(data_source, text)
    assert back == gt and hash(back) == hash(gt)
    assert json.loads(text) == gt.to_dict() and ground_truth_json(back) == text  # the written JSON is the object's own form
    return back, json.loads(text)


def trance_sample(transformations) -> TranceSample:
    return TranceSample(idx=0, objects=scene(4), transformations=transformations, initial_image="a.png", final_images={}, attributes=set(), merged=0)


@pytest.mark.parametrize("view", ["center", "left", "right"])
def test_tvr_round_trip_from_the_converter(view):
    moves = [
        {"obj_idx": 1, "attr": "color", "val": "cyan", "options": ["cyan"]},
        {"obj_idx": 2, "attr": "position", "val": ["behind", 1], "options": [["behind", 1], ["behind-left", 2]]},  # TRANCE lists every "out" move
    ]
    gt = trance_ground_truth(trance_sample(moves), view)
    assert isinstance(gt, TVRGroundTruth) and gt.view == view and gt.task == "tvr"
    back, written = round_trip("tvr", gt)
    assert written["view"] == view and written["task"] == "tvr" and written["objects"] == scene(4)  # integer positions stay integers
    assert written["transformations"] == moves
    assert back.transformations[1].options == ("behind.1", "behind-left.2")


def test_tvr_round_trip_without_the_optional_parts():
    gt = parse_ground_truth("tvr", {k: v for k, v in tvr_gt([(2, "color", "cyan")]).items() if k != "task"})  # no task, no options
    assert gt.task == "tvr" and gt.transformations[0].options == ("cyan",)
    _, written = round_trip("tvr", gt)
    assert written["task"] == "tvr" and written["transformations"] == [{"obj_idx": 2, "attr": "color", "val": "cyan", "options": ["cyan"]}]


@pytest.mark.parametrize(
    ("data_source", "make", "expected"),
    [
        ("mindcube", lambda: choice_ground_truth(" c ", ["A", "B", "C"], "rotation", [["Sofa", "observer", "left"], ["sofas", "observer", "left"], ["door", None, None], ["(1)", None, None]], "f:1"),
         {"type": "choice", "answer": "C", "options": ["A", "B", "C"], "references": [["Sofa", "observer", "left"], ["door", None, None]], "task": "rotation"}),
        ("spar", lambda: numeric_ground_truth("about 2.6 meters", "depth_prediction_oc_mv", [["books", "lamp", None]], "f:2"),
         {"type": "numeric", "answer": 2.6, "references": [["books", "lamp", None]], "task": "depth_prediction_oc_mv"}),
        ("spar", lambda: view_change_ground_truth(f" {VC} ", "view_change_infer", [], "f:3"),
         {"type": "view_change", "answer": VC, "references": [], "task": "view_change_infer"}),
        ("mmsi", lambda: choice_ground_truth("B", ["A", "B", "C", "D"], "Positional Relationship (Cam.\u2013Obj.)", [], "f:4"),
         {"type": "choice", "answer": "B", "options": ["A", "B", "C", "D"], "references": [], "task": "Positional Relationship (Cam.\u2013Obj.)"}),
    ],
)  # fmt: skip
def test_multiview_round_trip_from_the_converters(data_source, make, expected):
    gt = make()
    assert isinstance(gt, MultiViewGroundTruth)
    back, written = round_trip(data_source, gt)
    assert written == expected
    assert rewards.parse_ground_truth(data_source, json.dumps(expected)) == gt  # the public name, the one home


def test_multiview_references_task_and_components():
    gt = choice_ground_truth("A", ["A", "B"], "among", [["the Chairs", "table", "in front of"]], "f:1")
    assert gt.references == (Reference("chair", "table", "front"),) and gt.written_references == (("the Chairs", "table", "in front of"),)
    vc = parse_ground_truth("spar", {"type": "view_change", "answer": VC, "task": "view_change_infer"})  # no references key
    assert vc.components == (1.6, 0.0, 0.0, -75.0, 15.0) and vc.answer == VC and vc.references == ()
    assert round_trip("spar", vc)[1]["references"] == []


def test_per_view_references_round_trip_from_the_converters():
    """The per-view form (image number -> that image's references) is what MindCube and SPAR-7M write;
    images without references get no entry; the flat form stays readable."""
    gt = choice_ground_truth(
        "B", ["A", "B"], "around", {2: [["plant", "lamp", "front"], ["plants", "lamp", "front"]], 1: [["plant", "lamp", "left"]], 3: []}, "f:1"
    )
    assert gt.per_view and gt.has_relations and gt.references == ()
    assert gt.view_references == ((1, (Reference("plant", "lamp", "left"),)), (2, (Reference("plant", "lamp", "front"),)))
    _, written = round_trip("mindcube", gt)
    assert written["references"] == {"1": [["plant", "lamp", "left"]], "2": [["plant", "lamp", "front"]]}
    bare = numeric_ground_truth("2.6", "depth_prediction_oc_mv", {1: [["books", None, None]]}, "f:2")
    assert bare.per_view and not bare.has_relations and bare.all_references == (Reference("book"),)  # normalized
    assert round_trip("spar", bare)[1]["references"] == {"1": [["books", None, None]]}
    empty = parse_ground_truth("spar", {"type": "numeric", "answer": 1.0, "task": "t", "references": {}})
    assert empty.per_view and round_trip("spar", empty)[1]["references"] == {}
    old = parse_ground_truth(
        "mindcube", {"type": "choice", "answer": "A", "options": ["A", "B"], "task": "among", "references": [["sofa", "ball", "behind"]]}
    )
    assert not old.per_view and old.has_relations and round_trip("mindcube", old)[1]["references"] == [["sofa", "ball", "behind"]]


@pytest.mark.parametrize(
    ("references", "message"),
    [
        ({"0": []}, "not an image number"),
        ({"image 1": []}, "not an image number"),
        ({"1": [["sofa", "ball", "behind"], ["ball", "sofa", "front"]]}, "references of image 1 repeat a reference"),
        ({"1": "sofa"}, "references of image 1 must be a list"),
        ({"1": [["sofa", "ball", "diagonal"]]}, "relation 'diagonal'"),
    ],
)
def test_bad_per_view_references_are_data_errors(references, message):
    with pytest.raises(GroundTruthError, match=message):
        parse_ground_truth("mindcube", {"type": "choice", "answer": "A", "options": ["A", "B"], "task": "among", "references": references})
    with pytest.raises(ValueError, match="either per view or flat"):
        MultiViewGroundTruth(type="numeric", answer=1.0, task="t", written_references=(("door", None, None),), written_view_references={1: []})


def test_a_converter_cannot_build_what_the_reward_refuses():
    with pytest.raises(BadInput, match=r"f:9: ground truth the reward cannot score: options must be distinct single capital letters"):
        choice_ground_truth("A", ["A", "A"], "among", [], "f:9")
    with pytest.raises(ValueError, match="relation 'diagonal' is not one of"):  # what the converters' reference cleaning drops
        MultiViewGroundTruth(type="choice", answer="A", options=("A", "B"), task="t", written_references=(("sofa", "ball", "diagonal"),))
    with pytest.raises(BadInput, match="f:9: .*not one of the listed options"):
        choice_ground_truth("E", ["A", "B"], "among", [], "f:9")


def test_a_typed_ground_truth_belongs_to_its_family():
    gt = choice_ground_truth("A", ["A", "B"], "among", [], "f:1")
    assert parse_ground_truth("mindcube", gt) is gt and validate_ground_truth("mindcube", gt) == gt.to_dict() == load_ground_truth(gt)
    with pytest.raises(GroundTruthError, match="MultiViewGroundTruth is not a tvr ground truth"):
        parse_ground_truth("tvr", gt)


def test_ground_truth_error_carries_problem_and_sample():
    info = {"origin": "mindcube", "split": "train", "index": 7, "question_id": "q7"}
    with pytest.raises(GroundTruthError) as caught:
        parse_ground_truth("mindcube", json.dumps({"type": "choice", "answer": "E", "options": ["A", "B"], "task": "t"}), info)
    err = caught.value
    assert err.problem == "bad mindcube ground truth: choice answer 'E' is not one of the options ['A', 'B']"
    assert err.sample == "sample(origin='mindcube', split='train', index=7, question_id='q7')"
    assert str(err) == f"{err.sample}: {err.problem}"
    again = pickle.loads(pickle.dumps(err))  # reward workers send it across processes
    assert (again.problem, again.sample, str(again)) == (err.problem, err.sample, str(err))
    assert str(GroundTruthError("no sample")) == "no sample"
    with pytest.raises(GroundTruthError) as caught:
        load_ground_truth("{not json")
    assert caught.value.sample == "sample(without extra_info)" and caught.value.problem.startswith("ground truth is not JSON")


def test_the_category_is_read_from_extra_info_where_the_ground_truth_lacks_it():
    """Rows written by other tools carry the task (TVR: the view) in extra_info only."""
    mv = {"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"]}
    gt = parse_ground_truth("mindcube", json.dumps(mv), {"task": "among", "origin": "mindcube_tiny"})
    assert gt.task == "among"
    assert parse_ground_truth("mindcube", {**mv, "task": "rotation"}, {"task": "among"}).task == "rotation"  # the ground truth wins
    assert parse_ground_truth("mmsi", mv).task == ""  # no task anywhere: scored all the same
    tvr = {k: v for k, v in tvr_gt([(2, "color", "cyan")], view="left").items() if k not in ("view", "task")}
    assert parse_ground_truth("tvr", tvr, {"view": "left", "task": "tvr"}).view == "left"
    with pytest.raises(GroundTruthError, match=r"no 'view'.*add 'view' \(center, left or right\) to the ground truth or to extra_info"):
        parse_ground_truth("tvr", tvr)
    # SPAR's numeric answers are read by task: without one there is no official score
    numeric = {"type": "numeric", "answer": 2.6}
    with pytest.raises(GroundTruthError, match=r"spar numeric ground truth without a task: add 'task'.*to the ground truth or to extra_info"):
        parse_ground_truth("spar", numeric, {"origin": "sparbench"})
    assert parse_ground_truth("spar", numeric, {"task": "depth_prediction_oc_mv"}).task == "depth_prediction_oc_mv"

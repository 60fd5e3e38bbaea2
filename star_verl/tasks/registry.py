"""The benchmarks' vocabulary, each fact once: data sources, origins, and the task names of MindCube,
SPAR and MMSI, with the few pure functions that read them.

The ground floor: pure data, standard library only, nothing imported from the package, so every
layer (tasks, rewards, data, prep, eval) takes its names from here. Spellings are the releases' own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# ------------------------------------------------------------------------------------------------
# Data sources: the scoring family of a row (`data_source`)

DATA_SOURCES = ("tvr", "mindcube", "spar", "mmsi")
MULTIVIEW_SOURCES = tuple(s for s in DATA_SOURCES if s != "tvr")


# ------------------------------------------------------------------------------------------------
# Origins: where a row comes from (`extra_info.origin`)


@dataclass(frozen=True)
class Origin:
    name: str
    data_source: str  # the scoring family of its rows
    benchmark: str | None = None  # the published benchmark its test rows are; None: a training source only
    eval_name: str | None = None  # its block in `eval score`'s metrics.json, where that is not `benchmark` or `name`

    @property
    def scored_as(self) -> str:
        """The name `eval score` reports its rows under (metrics.json, paper_numbers.json).

        >>> Origin("toy", "spar").scored_as, Origin("toy", "spar", eval_name="toy_eval").scored_as
        ('toy', 'toy_eval')
        """
        return self.eval_name or self.benchmark or self.name


ORIGINS: dict[str, Origin] = {
    origin.name: origin
    for origin in (
        Origin("trance", "tvr", benchmark="tvr"),
        Origin("synthetic", "tvr", eval_name="tvr_synthetic"),
        Origin("mindcube", "mindcube"),
        Origin("spar7m", "spar"),
        Origin("synthetic_mv", "mindcube"),
        Origin("mindcube_tiny", "mindcube", benchmark="mindcube_tiny"),
        Origin("sparbench", "spar", benchmark="sparbench"),
        Origin("mmsi", "mmsi", benchmark="mmsi"),
    )
}


def origins_of(data_source: str) -> tuple[str, ...]:
    """The origins whose rows belong to a data source, in registry order.

    >>> "sparbench" in origins_of("spar"), origins_of("toy")
    (True, ())
    """
    return tuple(name for name, origin in ORIGINS.items() if origin.data_source == data_source)


# ------------------------------------------------------------------------------------------------
# MindCube (MLL-Lab/MindCube): the setting is a substring of the question id

MINDCUBE_SETTINGS = ("around", "rotation", "translation", "among")  # in the order MindCube's get_setting_from_id tries them
MINDCUBE_TRAINING_SETTINGS = ("among", "around", "rotation")  # translation is not in MindCube-Tiny: counted, not trained on


def mindcube_setting(question_id: str) -> str | None:
    """The setting a MindCube id names (MindCube's own rule: the first setting that is a substring of
    the lower-cased id), or None.

    >>> mindcube_setting("Among_group12_q3"), mindcube_setting("q12")
    ('among', None)
    """
    lowered = (question_id or "").lower()
    for setting in MINDCUBE_SETTINGS:
        if setting in lowered:
            return setting
    return None


# ------------------------------------------------------------------------------------------------
# SPAR (fudan-zvg/spar): SPAR-Bench's 20 tasks by answer kind (lmms-eval `sparbench/utils.py`)

SPARBENCH_CHOICE_TASKS = (
    "obj_spatial_relation_oo", "obj_spatial_relation_oc_mv", "obj_spatial_relation_oo_mv",
    "spatial_imagination_oc", "spatial_imagination_oo", "spatial_imagination_oc_mv", "spatial_imagination_oo_mv",
    "position_matching", "camera_motion_infer", "distance_infer_center_oo", "distance_infer_center_oo_mv",
)  # fmt: skip
SPARBENCH_NUMERIC_TASKS = (
    "depth_prediction_oc", "depth_prediction_oo", "distance_prediction_oc", "distance_prediction_oo",
    "depth_prediction_oc_mv", "depth_prediction_oo_mv", "distance_prediction_oo_mv", "distance_prediction_oc_mv",
)  # fmt: skip
SPARBENCH_VIEW_CHANGE_TASKS = ("view_change_infer",)
SPARBENCH_TASKS = SPARBENCH_CHOICE_TASKS + SPARBENCH_NUMERIC_TASKS + SPARBENCH_VIEW_CHANGE_TASKS
# Numeric tasks whose prediction is the LAST number of the answer (lmms-eval `process_na`); the others read the first.
SPARBENCH_LAST_NUMBER_TASKS = tuple(t for t in SPARBENCH_NUMERIC_TASKS if t.endswith("_mv"))
SPARBENCH_LEVELS = {
    "low": SPARBENCH_NUMERIC_TASKS,
    "middle": ("view_change_infer", "position_matching", "camera_motion_infer"),
    "high": tuple(t for t in SPARBENCH_CHOICE_TASKS if t not in ("position_matching", "camera_motion_infer")),
}

# SPAR-7M's tasks (the release's index files and `datasets/draw_marker.py`), by input
SPAR7M_MULTIVIEW_TASKS = (
    "camera_motion_infer", "depth_prediction_oc_mv", "depth_prediction_oo_mv", "distance_infer_center_oc_mv",
    "distance_infer_center_oo_mv", "distance_prediction_oc_mv", "distance_prediction_oo_mv", "obj_spatial_relation_oc_mv",
    "obj_spatial_relation_oo_mv", "position_matching", "spatial_imagination_oc_mv", "spatial_imagination_oo_mv",
    "view_change_infer",
)  # fmt: skip
SPAR7M_MAP_TASKS = ("spatial_imagination_map_mv",)  # multi-view, but answered on a map: not used
SPAR7M_SINGLE_VIEW_TASKS = (
    "obj_spatial_relation_oc", "obj_spatial_relation_oo", "depth_prediction_oc", "depth_prediction_oo",
    "distance_prediction_oc", "distance_prediction_oo", "distance_infer_center_oc", "distance_infer_center_oo",
    "spatial_volume_infer", "spatial_imagination_oc", "spatial_imagination_oo",
)  # fmt: skip
SPAR7M_VIDEO_TASKS = (
    "distance_prediction_oo_video", "distance_infer_center_oo_video", "spatial_imagination_oo_video", "spatial_imagination_oc_video",
    "spatial_imagination_oc_video_hard", "spatial_imagination_oo_video_hard", "obj_frame_locate", "appearance_order", "room_size",
    "obj_count", "nav",
)  # fmt: skip
SPAR7M_TASKS = SPAR7M_SINGLE_VIEW_TASKS + SPAR7M_MULTIVIEW_TASKS + SPAR7M_MAP_TASKS + SPAR7M_VIDEO_TASKS  # SPAR-Bench's 20 among them
SPAR7M_ANSWER_FORMATS = ("select", "fill", "sentence", "judge")  # the answer-format folders of qa_jsonl/<split>/<task>/


def spar_answer_type(task: str) -> str | None:
    """The ground-truth type SPAR-Bench's scorer gives a task ("choice", "numeric", "view_change"), or
    None for a task outside SPAR-Bench.

    >>> spar_answer_type("depth_prediction_oc"), spar_answer_type("toy_task")
    ('numeric', None)
    """
    if task in SPARBENCH_CHOICE_TASKS:
        return "choice"
    if task in SPARBENCH_NUMERIC_TASKS:
        return "numeric"
    if task in SPARBENCH_VIEW_CHANGE_TASKS:
        return "view_change"
    return None


# ------------------------------------------------------------------------------------------------
# MMSI-Bench (RunsenXu/MMSI-Bench): categories as the current release writes them (en dash)

MMSI_CATEGORIES = (
    "MSR",
    "Positional Relationship (Obj.\u2013Obj.)",
    "Positional Relationship (Cam.\u2013Cam.)",
    "Positional Relationship (Cam.\u2013Obj.)",
    "Positional Relationship (Obj.\u2013Reg.)",
    "Positional Relationship (Cam.\u2013Reg.)",
    "Positional Relationship (Reg.\u2013Reg.)",
    "Motion (Obj.)",
    "Motion (Cam.)",
    "Attribute (Appr.)",
    "Attribute (Meas.)",
)
_DASH = re.compile(r"\s*[\u2010-\u2015\u2212-]\s*")
_SPACES = re.compile(r"\s+")


def mmsi_category(question_type: str) -> str:
    """A `question_type` in the release's spelling: any dash (older copies write a hyphen) becomes the
    en dash, white space is collapsed, so "(Cam.-Obj.)" and "(Cam.\u2013Obj.)" are one category.

    >>> mmsi_category(" Toy  (A.-B.)") == "Toy (A.\u2013B.)"
    True
    """
    return _SPACES.sub(" ", _DASH.sub("\u2013", str(question_type))).strip()


# ------------------------------------------------------------------------------------------------
# Which family a ground truth belongs to (veRL's dumps keep the ground truth, not the data source)


def ground_truth_family(ground_truth: Mapping[str, object]) -> str | None:
    """The data source of a decoded ground truth: TVR's has `transformations`; a multi-view one's
    `task` is a MindCube setting, a SPAR task or an MMSI category. None: a task no benchmark names.

    >>> ground_truth_family({"transformations": []}), ground_truth_family({"type": "choice", "task": "toy"})
    ('tvr', None)
    """
    if "transformations" in ground_truth:
        return "tvr"
    task = str(ground_truth.get("task", ""))
    if task in MINDCUBE_SETTINGS:
        return "mindcube"
    if task in SPAR7M_TASKS:
        return "spar"
    if mmsi_category(task) in MMSI_CATEGORIES:
        return "mmsi"
    return None

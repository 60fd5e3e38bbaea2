"""The multi-view converters (`data_prep/build_mindcube_spar.py`, `star_verl.prep.{build_multiview,mindcube,spar,mmsi,
markers,multiview}`) on fixtures written in each source's exact format (tests/multiview_fixtures.py)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from star_verl.prep import markers as mk
from star_verl.prep import mindcube, mmsi, spar
from star_verl.prep.build_multiview import BuildOptions, build, format_summary, main
from star_verl.prep.markers import marker_plan
from star_verl.prep.multiview import OBSERVER, BadInput, BadInputLog, ImageCache, allocate, check_leakage
from star_verl.prep.schema import EXTRA_INFO_KEYS, RL_SCHEMA
from star_verl.rewards import compute_score
from star_verl.tasks import registry
from star_verl.tasks.ground_truth import ground_truth_json, parse_ground_truth
from tests.images import decode, solid
from tests.multiview_fixtures import (
    SPAR_FIXTURE_TASKS,
    response_for,
    spar_record,
    write_mindcube_fixture,
    write_mmsi_fixture,
    write_spar_fixture,
    write_sparbench_fixture,
)

PIL_RGB = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 128, 0), "yellow": (255, 255, 0)}


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _gt(row: dict) -> dict:
    return json.loads(row["reward_model"]["ground_truth"])


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mv_sources")
    return {
        "mindcube": write_mindcube_fixture(root / "mc", 90, leak=2),
        "spar": write_spar_fixture(root / "sp", 4),
        "sparbench": write_sparbench_fixture(root / "sb", 8),
        "mmsi": write_mmsi_fixture(root / "mmsi" / "MMSI_Bench.parquet", 6),
    }


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mv_out")
    opts = BuildOptions(
        out=out,
        mindcube=sources["mindcube"],
        spar=sources["spar"],
        rl_samples=60,
        val_samples=12,
        sft_pool=24,
        seed=3,
        benchmarks=("mindcube_tiny", "sparbench", "mmsi"),
        sparbench=sources["sparbench"],
        mmsi=sources["mmsi"],
        progress=False,
    )
    return out, build(opts)


# ------------------------------------------------------------------------------------------------
# rows and schema


def test_every_output_has_the_shared_schema_and_valid_rows(built):
    out, summary = built
    files = [out / "val.parquet", out / "rl_train.parquet", out / "sft_pool.parquet", *sorted((out / "bench").glob("*.parquet"))]
    assert len(files) == 6
    for path in files:
        table = pq.read_table(path)
        assert table.schema.equals(RL_SCHEMA), path
        for row in table.to_pylist():
            info = row["extra_info"]
            assert tuple(info) == EXTRA_INFO_KEYS
            assert info["n_images"] == len(row["images"]) == row["prompt"][0]["content"].count("<image>") >= 1
            assert info["view"] == "" and row["ability"] == "spatial"
            gt = _gt(row)
            assert gt["task"] == info["task"]
            text = row["reward_model"]["ground_truth"]  # written from the typed object the reward parses back
            assert ground_truth_json(parse_ground_truth(row["data_source"], text)) == text
            assert (
                row["data_source"]
                == {"mindcube": "mindcube", "mindcube_tiny": "mindcube", "spar7m": "spar", "sparbench": "spar", "mmsi": "mmsi"}[info["origin"]]
            )
            assert all(im["bytes"] for im in row["images"])
    assert summary["leakage_overlaps"] == []


def test_splits_are_stratified_and_disjoint(built):
    out, summary = built
    ids = {
        split: [r["extra_info"]["question_id"] for r in _rows(out / f)]
        for split, f in (("val", "val.parquet"), ("train", "rl_train.parquet"), ("sft", "sft_pool.parquet"))
    }
    assert not set(ids["val"]) & set(ids["train"]) and not set(ids["val"]) & set(ids["sft"]) and not set(ids["train"]) & set(ids["sft"])
    tasks = Counter(r["extra_info"]["task"] for r in _rows(out / "val.parquet"))
    # 12 validation questions over 3 MindCube settings + 12 SPAR task types: one each, the rest nowhere
    assert len(tasks) == 12 and set(tasks.values()) == {1}
    train = Counter((r["extra_info"]["origin"], r["extra_info"]["task"]) for r in _rows(out / "rl_train.parquet"))
    assert len(train) == 15
    # SPAR's categories (3-4 candidates left each) give all they have; MindCube's share the rest equally
    mc = [n for (origin, _), n in train.items() if origin == "mindcube"]
    sp = [n for (origin, _), n in train.items() if origin == "spar7m"]
    assert max(mc) - min(mc) <= 1 and min(mc) > max(sp) and sum(train.values()) == 60


def test_allocate_is_uniform_with_water_filling():
    assert allocate({"a": 2, "b": 10, "c": 10}, 12) == {"a": 2, "b": 5, "c": 5}
    assert allocate({"a": 2, "b": 10, "c": 10}, 100) == {"a": 2, "b": 10, "c": 10}
    assert allocate({"a": 5, "b": 5, "c": 5}, 7) in ({"a": 2, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 2}, {"a": 2, "b": 3, "c": 2})
    assert sum(allocate({"a": 5, "b": 5, "c": 5}, 7).values()) == 7
    assert allocate({"a": 3}, 0) == {"a": 0}


def test_validation_slice_does_not_move_with_the_rl_size(sources, tmp_path):
    def val_ids(rl: int, out: Path) -> list[str]:
        build(BuildOptions(out=out, mindcube=sources["mindcube"], rl_samples=rl, val_samples=6, sft_pool=0, seed=5, progress=False))
        return sorted(r["extra_info"]["question_id"] for r in _rows(out / "val.parquet"))

    assert val_ids(10, tmp_path / "a") == val_ids(40, tmp_path / "b")


# ------------------------------------------------------------------------------------------------
# MindCube


def _record(data: Path, name: str, pick) -> dict:
    for line in (data / "raw" / name).read_text().splitlines():
        record = json.loads(line)
        if pick(record):
            return record
    raise AssertionError("no such record in the fixture")


def test_mindcube_rows_keep_the_question_options_and_image_order(built, sources):
    out, _ = built
    rows = {r["extra_info"]["question_id"]: r for r in _rows(out / "bench" / "mindcube_tiny.parquet")}
    assert len(rows) == 12
    record = _record(sources["mindcube"], mindcube.TINY_FILE, lambda r: r["id"] in rows and len(r["images"]) == 4)
    row = rows[record["id"]]
    assert row["prompt"][0]["content"] == "<image>\n" * 4 + record["question"]
    assert [im["path"] for im in row["images"]] == record["images"]
    gt = _gt(row)
    assert gt["type"] == "choice" and gt["answer"] == record["gt_answer"] and gt["options"] == ["A", "B", "C", "D"]
    src = decode((sources["mindcube"] / record["images"][0]).read_bytes())
    assert decode(row["images"][0]["bytes"]).size == src.size or decode(row["images"][0]["bytes"]).size[0] % 28 == 0


def test_mindcube_options_are_read_inline():
    assert mindcube.parse_options("What is left? A. TV B. Wooden dining table C. Light purple sofa D. Brown curtains") == ["A", "B", "C", "D"]
    assert mindcube.parse_options("Pick one. A. Directly left B. Diagonally forward and right") == ["A", "B"]
    assert mindcube.parse_options("Room A. has B. a sofa? A. yes B. no C. maybe") == ["A", "B", "C"]
    assert mindcube.parse_options("no options here") == []


def test_mindcube_references_are_each_images_own_relations():
    """Checked by hand on MindCube's layouts (x right, y down; an image sees what lies ahead of it within
    45 degrees; "behind" = farther from that image's viewer)."""
    names = ["bag", "toy", "sofa", "window", "shelf"]  # obj0 (center) [5,5], obj1 [5,8], obj2 [2,5], obj3 [5,2], obj4 [8,5]
    images = ["a/front_1.jpg", "a/left_2.jpg", "a/back_3.jpg", "a/right_4.jpg"]
    among = {"id": "among_group1_q0", "meta_info": [names, [None] * 5], "images": images}
    assert mindcube.references(among, "among") == {
        # front view at [5,6] facing up (-y): the bag 1 ahead, the window at [5,2] 4 ahead beyond it; the sofa
        # [2,5] and the shelf [8,5] lie 72 degrees to the sides, the toy [5,8] behind the camera: not in the image
        1: [["window", "bag", "behind"]],
        # left view at [4,5] facing right (+x): the bag, then the shelf at [8,5]
        2: [["shelf", "bag", "behind"]],
        # back view at [5,4] facing down (+y): the bag, then the toy at [5,8]
        3: [["toy", "bag", "behind"]],
        # right view at [6,5] facing left (-x): the bag, then the sofa at [2,5]
        4: [["sofa", "bag", "behind"]],
    }
    # the images' order is the question's: image 1 is now the left view
    assert mindcube.references({**among, "images": images[1::-1]}, "among") == {1: [["shelf", "bag", "behind"]], 2: [["window", "bag", "behind"]]}
    rotation = {"id": "rotation_group1_q1", "type": "three_view", "meta_info": ["board", "door", "chairs"], "images": ["1", "2", "3"]}
    # all views at the center [5,5]: view 1 faces left and sees the board at [3,5] ahead; view 2 faces up (the door
    # at [5,3]); view 3 faces right (the chairs at [7,5]); each other object is at 90 or 180 degrees: unseen
    assert mindcube.references(rotation, "rotation") == {
        1: [["board", OBSERVER, "front"]],
        2: [["door", OBSERVER, "front"]],
        3: [["chairs", OBSERVER, "front"]],
    }
    opposite = {"id": "rotation_g_q", "type": "two_view_opposite", "meta_info": ["bin", "sofa"], "images": ["1", "2"]}
    assert mindcube.references(opposite, "rotation") == {1: [["bin", OBSERVER, "front"]], 2: [["sofa", OBSERVER, "front"]]}  # up [5,3], down [5,7]
    around = {
        "id": "around_abc_q1_2",
        "meta_info": [[4, "None"], [2, ["plant", "lamp"], ["None", "None"], []]],  # a group of 4 views: front, left, right, back
        "images": ["x/1_frame_00088.png", "x/2_frame_1.png", "x/3_frame_1.png", "x/4_frame_1.png"],
    }
    # the plant at x=4, the lamp at x=5: the front view (facing up) has the plant on the left; the left view looks
    # along +x (the plant nearer: front); the right view along -x (the plant farther: behind); the back view faces
    # down, its right is -x (the plant on the right)
    assert mindcube.references(around, "around") == {
        1: [["plant", "lamp", "left"]],
        2: [["plant", "lamp", "front"]],
        3: [["plant", "lamp", "behind"]],
        4: [["plant", "lamp", "right"]],
    }
    assert mindcube.references({**around, "images": around["images"][:2][::-1]}, "around") == {
        1: [["plant", "lamp", "front"]],
        2: [["plant", "lamp", "left"]],
    }
    with pytest.raises(ValueError):
        mindcube.references({**among, "meta_info": [names[:4], [None] * 4]}, "among")
    with pytest.raises(ValueError, match="3 views"):
        mindcube.references({**rotation, "images": ["1", "2"]}, "rotation")


def test_mindcube_rows_carry_the_per_view_form(built):
    out, _ = built
    rows = [r for r in _rows(out / "rl_train.parquet") if r["extra_info"]["origin"] == "mindcube"]
    for row in rows:
        refs = _gt(row)["references"]
        assert isinstance(refs, dict) and refs, row["extra_info"]
        assert all(1 <= int(k) <= row["extra_info"]["n_images"] for k in refs)


def test_mindcube_references_are_counted_in_the_summary(built):
    out, summary = built
    st = summary["splits"]["train"]
    for task in ("among", "around", "rotation"):
        assert st.with_refs[f"mindcube:{task}"] == st.per_task[f"mindcube:{task}"] > 0
        assert st.with_relations[f"mindcube:{task}"] == st.per_task[f"mindcube:{task}"]
    assert "with refs" in format_summary(summary)


# ------------------------------------------------------------------------------------------------
# images


def test_shared_images_are_encoded_and_stored_once(tmp_path):
    data = write_mindcube_fixture(tmp_path / "mc", 400, n_groups=12, n_tiny=0, image_size=(448, 336))
    out = tmp_path / "out"
    summary = build(BuildOptions(out=out, mindcube=data, rl_samples=400, val_samples=0, sft_pool=0, progress=False))
    st = summary["splits"]["train"]
    rows = _rows(out / "rl_train.parquet")
    unique = {}
    for row in rows:
        for im in row["images"]:
            unique[im["path"]] = len(im["bytes"])
    assert st.rows == len(rows) > 300 and st.image_refs > 3 * len(unique)
    assert summary["images"]["encoded"] == len(unique)  # each unique image encoded once
    floor = sum(unique.values())
    per_reference = sum(len(im["bytes"]) for row in rows for im in row["images"])
    size = (out / "rl_train.parquet").stat().st_size
    # stored once (zstd may shave a little off the JPEGs), far below one copy per reference
    assert size < 1.25 * floor + 64 * 1024 and size < per_reference / 2.5, (size, floor, per_reference)


def test_images_are_resized_to_the_pixel_budget(tmp_path):
    data = write_mindcube_fixture(tmp_path / "mc", 12, n_tiny=0, image_size=(640, 480))
    out = tmp_path / "out"
    build(BuildOptions(out=out, mindcube=data, rl_samples=12, val_samples=0, sft_pool=0, max_pixels=100_000, progress=False))
    for row in _rows(out / "rl_train.parquet"):
        for im in row["images"]:
            w, h = decode(im["bytes"]).size
            assert w * h <= 100_000 and w % 28 == 0 and h % 28 == 0


# ------------------------------------------------------------------------------------------------
# SPAR markers


def test_marker_plan_puts_each_marker_on_its_image():
    box = lambda v: [[v, v, v + 100, v + 100]]  # noqa: E731
    rec = {"red_bbox": box(1), "green_bbox": box(2), "blue_bbox": box(3), "yellow_bbox": box(4), "bbox_img_idx": [[3, 1, 0, 2]]}
    plan = mk.marker_plan("spatial_imagination_oo_mv", rec, 4)
    colors = [[m[1] for m in image] for image in plan]
    # red -> idx[2] = 0, green -> idx[0] = 3, blue -> idx[1] = 1, yellow -> idx[3] = 2
    assert colors == [["red"], ["blue"], ["yellow"], ["green"]]
    plan = mk.marker_plan(
        "spatial_imagination_oc_mv", {k: rec[k] for k in ("red_bbox", "green_bbox", "blue_bbox")} | {"bbox_img_idx": [[2, 0, 1]]}, 3
    )
    assert [[m[1] for m in image] for image in plan] == [["blue"], ["red"], ["green"]]
    oo = mk.marker_plan("obj_spatial_relation_oo_mv", {"blue_bbox": box(1), "green_bbox": box(2), "bbox_img_idx": [[1, 0]]}, 2)
    assert [[m[1] for m in image] for image in oo] == [["green"], ["blue"]]  # no red: blue -> idx[0], green -> idx[1]
    oc = mk.marker_plan("obj_spatial_relation_oc_mv", {"red_bbox": box(1), "green_bbox": box(2), "bbox_img_idx": [[2]]}, 3)
    assert [[m[1] for m in image] for image in oc] == [[], [], ["red", "green"]]
    pts = mk.marker_plan(
        "distance_infer_center_oo_mv", {"red_point": [[1, 2]], "green_point": [[3, 4]], "blue_point": [[5, 6]], "point_img_idx": [[2, 0, 1]]}, 3
    )
    assert [[m[1] for m in image] for image in pts] == [["green"], ["blue"], ["red"]]
    assert mk.marker_plan("position_matching", {"red_bbox": box(5)}, 2)[0][0][:2] == ("bbox", "red")
    assert mk.marker_plan("view_change_infer", {}, 2) == ((), ())
    with pytest.raises(mk.MarkerError, match="exactly two"):
        mk.marker_plan("obj_spatial_relation_oo_mv", {"red_bbox": box(1), "bbox_img_idx": [[0, 1]]}, 2)
    with pytest.raises(mk.MarkerError, match="image 5"):
        mk.marker_plan("depth_prediction_oc_mv", {"red_point": [[1, 2]], "blue_point": [[3, 4]], "point_img_idx": [[0, 5]]}, 2)


def test_markers_are_drawn_with_spars_geometry():
    image = Image.new("RGB", (1000, 800), (255, 255, 255))
    drawn = np.asarray(mk.draw_markers(image, [("point", "red", (500.0, 250.0)), ("bbox", "green", (100.0, 500.0, 400.0, 900.0))]))
    assert drawn[200, 500].tolist() == [255, 0, 0]  # point (500, 250)/1000 of 1000x800 -> pixel (500, 200)
    assert drawn[200, 519].tolist() == [255, 0, 0] and drawn[200, 522].tolist() == [255, 255, 255]  # radius 20
    # box (100, 400)-(400, 720) grown by 17.5 -> outer left edge x = 82; a stroke of 20 runs inwards to x = 101
    assert drawn[560, 82].tolist() == list(PIL_RGB["green"]) and drawn[560, 101].tolist() == list(PIL_RGB["green"])
    assert drawn[560, 81].tolist() == [255, 255, 255] and drawn[560, 103].tolist() == [255, 255, 255]
    assert drawn[382, 250].tolist() == list(PIL_RGB["green"])  # top edge: 400 - 17.5 -> 382
    assert np.asarray(image)[200, 500].tolist() == [255, 255, 255]  # the source image is left untouched


def test_converted_spar_images_carry_the_markers(built, sources):
    out, _ = built
    rows = [r for f in ("val.parquet", "rl_train.parquet", "sft_pool.parquet") for r in _rows(out / f) if r["extra_info"]["origin"] == "spar7m"]
    records = {}
    for path in (sources["spar"] / "scannet" / "qa_jsonl" / "train").rglob("*.jsonl"):
        task, fmt = path.parent.parent.name, path.parent.name
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            records[f"scannet/{task}/{fmt}/{rec['id']}"] = rec
    checked = Counter()
    for row in rows:
        rec = records[row["extra_info"]["question_id"]]
        plan = mk.marker_plan(rec["type"], rec, len(rec["image"]))
        for entry, image_markers in zip(row["images"], plan, strict=True):
            image = decode(entry["bytes"])
            src = decode((sources["spar"] / "scannet" / "images" / entry["path"]).read_bytes())
            sx, sy = image.width / src.width, image.height / src.height
            for kind, color, coords in image_markers:
                if kind == "point":
                    x0, y0, x1, y1 = mk.point_box(coords, src.width, src.height)
                    px, py = (x0 + x1) / 2, (y0 + y1) / 2
                else:
                    x0, y0, x1, y1 = mk.bbox_outline(coords, src.width, src.height)
                    px, py = x0 + 10, (max(y0, 0) + min(y1, src.height - 1)) / 2  # middle of the left stroke
                    if px < 0:
                        continue  # this edge falls outside the image
                value = np.asarray(image)[int(py * sy), int(px * sx)].astype(int)
                assert np.abs(value - PIL_RGB[color]).max() < 60, (row["extra_info"]["question_id"], color, value)
                checked[kind] += 1
    assert checked["point"] > 5 and checked["bbox"] > 5


# ------------------------------------------------------------------------------------------------
# SPAR answers and references


def _spar7m_refs(task: str, question: str, n_images: int, **markers):
    return spar.spar7m_references(task, question, marker_plan(task, markers, n_images))


def test_spar7m_references_come_from_each_images_markers():
    """Checked by hand: 0-1000 coordinates, the image center at x=500, left/right need 50 of room."""
    q = "How is object sink (red bbox) situated with respect to the observer's main viewpoint?\nA. left, above, front\nB. right, below, behind"
    # the box spans x 100..300 on image 2: it ends 200 left of the center: the sink is on image 2's left
    assert _spar7m_refs("obj_spatial_relation_oc_mv", q, 3, red_bbox=[[100, 200, 300, 400]], bbox_img_idx=[[1]]) == {2: [["sink", OBSERVER, "left"]]}
    # on image 1 (the primary view) that relation IS the answer's left/right slot: left out, the sink stays bare
    assert _spar7m_refs("obj_spatial_relation_oc_mv", q, 3, red_bbox=[[100, 200, 300, 400]], bbox_img_idx=[[0]]) == {1: [["sink", None, None]]}
    # SPAR's single box named without its color is the one color drawn
    assert _spar7m_refs("obj_spatial_relation_oc_mv", q.replace("(red bbox)", "(bbox)"), 3, red_bbox=[[600, 0, 900, 90]], bbox_img_idx=[[2]]) == {
        3: [["sink", OBSERVER, "right"]]
    }
    q = "What is the spatial position of the recycling bin (red bbox) relative to the compost bin (blue bbox) in the two images?"
    # red x 600..900 on image 1 (starts 100 right of the center), blue x 400..600 on image 2 (straddles the center: bare)
    assert _spar7m_refs("obj_spatial_relation_oo_mv", q, 2, red_bbox=[[600, 0, 900, 100]], blue_bbox=[[400, 0, 600, 100]], bbox_img_idx=[[0, 1]]) == {
        1: [["recycling bin", OBSERVER, "right"]],
        2: [["compost bin", None, None]],
    }
    # both boxes on image 2: red 100..300 ends 300 before blue starts at 600: red is left of blue; each versus the center too
    assert _spar7m_refs("obj_spatial_relation_oo_mv", q, 2, red_bbox=[[100, 0, 300, 100]], blue_bbox=[[600, 0, 900, 100]], bbox_img_idx=[[1, 1]]) == {
        2: [["recycling bin", "compost bin", "left"], ["recycling bin", OBSERVER, "left"], ["compost bin", OBSERVER, "right"]]
    }
    # ... but on image 1 the pair's left/right is the answer's first slot: only the observer relations stay
    assert _spar7m_refs("obj_spatial_relation_oo_mv", q, 2, red_bbox=[[100, 0, 300, 100]], blue_bbox=[[600, 0, 900, 100]], bbox_img_idx=[[0, 0]]) == {
        1: [["recycling bin", OBSERVER, "left"], ["compost bin", OBSERVER, "right"]]
    }
    # boxes closer than 50 apart say nothing about left/right
    assert _spar7m_refs("obj_spatial_relation_oo_mv", q, 2, red_bbox=[[560, 0, 700, 100]], blue_bbox=[[730, 0, 900, 100]], bbox_img_idx=[[1, 1]]) == {
        2: [["recycling bin", OBSERVER, "right"], ["compost bin", OBSERVER, "right"]]
    }
    q = (
        "How does the relative positioning of chair (red bbox) and whiteboard (yellow bbox) evolve after observer moving to table "
        "(green bbox) and facing whiteboard (blue bbox)?"
    )  # SPAR's project page, spatial_imagination_oo_mv
    # two markers (yellow and blue) share the name "whiteboard": two marked objects, each keeps its color. Image 1 has
    # the chair (red, 100..200) and both whiteboards (blue 700..800, yellow 700..900: overlapping, no relation between
    # them); image 2 the table (green, 450..550: straddles the center, bare)
    boxes = {
        "red_bbox": [[100, 0, 200, 100]],
        "green_bbox": [[450, 0, 550, 100]],
        "blue_bbox": [[700, 0, 800, 100]],
        "yellow_bbox": [[700, 0, 900, 100]],
    }
    assert _spar7m_refs("spatial_imagination_oo_mv", q, 2, **boxes, bbox_img_idx=[[1, 0, 0, 0]]) == {  # green, blue, red, yellow
        1: [
            ["chair", "whiteboard (blue)", "left"],
            ["chair", "whiteboard (yellow)", "left"],
            ["chair", OBSERVER, "left"],
            ["whiteboard (blue)", OBSERVER, "right"],
            ["whiteboard (yellow)", OBSERVER, "right"],
        ],
        2: [["table", None, None]],
    }
    q = "If the books (red point) is 2.5 meters deep, how deep is the bookshelf (blue point)?"
    # a point is one x: 200 is left of 450; 480 is within 50 of the center
    assert _spar7m_refs("depth_prediction_oc_mv", q, 2, red_point=[[200, 500]], blue_point=[[480, 300]], point_img_idx=[[0, 1]]) == {
        1: [["books", OBSERVER, "left"]],
        2: [["bookshelf", None, None]],
    }
    assert _spar7m_refs("view_change_infer", "Describe the changes in orientation.", 2) == {}


def test_spar_references_never_come_from_the_answer(sources, tmp_path):
    """The same SPAR-7M record with every option as its answer has the same references; SPAR-Bench's are bare."""
    rng = random.Random(3)
    for task, fmt, n_images in SPAR_FIXTURE_TASKS:
        record = spar_record(task, fmt, "r", [f"s/image_color/{k}.jpg" for k in range(n_images)], rng)
        answers = ["A", "B", "C", "D"] if fmt == "select" else [record["conversations"][1]["value"]]
        refs = set()
        for answer in answers:
            if task == "distance_infer_center_oo_mv" and answer in "CD":
                continue
            record["conversations"][1]["value"] = answer
            sample = spar.spar7m_sample(record, task=task, fmt=fmt, dataset="scannet", images_root=tmp_path, where="f:1")
            refs.add(json.dumps(sample.ground_truth.to_dict()["references"]))
        assert len(refs) == 1, task
    q = "How is object sink (bbox) situated with respect to the observer's main viewpoint?\nA. left, above, front\nB. right, below, behind"
    assert spar.sparbench_references(q) == [["sink", None, None]]
    assert spar.sparbench_references("Based on the red bbox of mat in the first image, locate it.") == [["mat", None, None]]
    assert spar.sparbench_references("Describe the changes in orientation.") == []


def test_sparbench_rows_have_only_bare_references_and_none_repeats_the_answer(built):
    out, _ = built
    rows = _rows(out / "bench" / "sparbench.parquet")
    assert rows
    for row in rows:
        gt = _gt(row)
        assert isinstance(gt["references"], list) and all(r[1] is None and r[2] is None for r in gt["references"])
        option = gt.get("answer")
        assert all(option not in r for r in gt["references"])
        assert compute_score("spar", response_for(gt, right=True), row["reward_model"]["ground_truth"])["has_ref"] == 0.0


def test_spar_choice_answers_are_read_as_letters():
    opts = spar.parse_line_options("Q?\nA. left, above\nB. right, below\nC. , below\nAnswer with one.")
    assert opts == {"A": "left, above", "B": "right, below", "C": ", below"}
    assert [spar.parse_choice_answer(a, opts) for a in ("C", "C.", "(B)", "B. right, below", "right, below")] == ["C", "C", "B", "B", "B"]


def test_spar_rows_have_the_right_answer_kinds(built):
    out, summary = built
    kinds = {
        (r["extra_info"]["origin"], r["extra_info"]["task"]): _gt(r)["type"]
        for f in ("rl_train.parquet", "bench/sparbench.parquet")
        for r in _rows(out / f)
        if r["data_source"] == "spar"
    }
    assert kinds[("spar7m", "view_change_infer")] == "view_change" and kinds[("sparbench", "view_change_infer")] == "view_change"
    assert kinds[("spar7m", "depth_prediction_oo_mv")] == "numeric" and kinds[("sparbench", "depth_prediction_oc_mv")] == "numeric"
    assert kinds[("spar7m", "obj_spatial_relation_oo_mv")] == "choice" and kinds[("sparbench", "position_matching")] == "choice"
    # not used, in questions per task (the fixture's sentence answer and video task)
    assert summary["excluded"]["spar7m"] == {"sentence answers (no rule scores them)": {"view_change_infer": 1}, "video task": {"obj_count": 1}}


# ------------------------------------------------------------------------------------------------
# MMSI


def test_mmsi_categories_options_and_raw_bytes(built, sources):
    out, _ = built
    rows = _rows(out / "bench" / "mmsi.parquet")
    raw = pq.read_table(sources["mmsi"]).to_pylist()
    assert len(rows) == len(raw) == 6
    by_id = {r["extra_info"]["question_id"]: r for r in rows}
    for src in raw:
        row = by_id[str(src["id"])]
        assert row["extra_info"]["task"] == _gt(row)["task"] == registry.mmsi_category(src["question_type"])
        assert row["extra_info"]["task"] in registry.MMSI_CATEGORIES and "-" not in row["extra_info"]["task"]  # the release's en dash
        assert _gt(row)["options"] == ["A", "B", "C", "D"] and _gt(row)["answer"] == src["answer"]
        assert len(row["images"]) == len(src["images"])
    assert (
        registry.mmsi_category("Positional Relationship (Cam.\u2013Obj.)")
        == registry.mmsi_category("Positional Relationship (Cam.-Obj.)")
        == "Positional Relationship (Cam.\u2013Obj.)"
    )
    assert mmsi.parse_options("Which?\nOptions: A: left, of it, B: right, C: front") == ["A", "B", "C"]


# ------------------------------------------------------------------------------------------------
# leakage


def test_leaked_training_questions_are_refused_and_the_outputs_are_clean(built):
    out, summary = built
    refused = [(o, q) for o, q, _ in summary["leaks_refused"]]
    assert len([q for o, q in refused if o == "mindcube"]) >= 2  # the fixture copied 2 tinybench questions into training
    tiny_ids = {r["extra_info"]["question_id"] for r in _rows(out / "bench" / "mindcube_tiny.parquet")}
    for f in ("val.parquet", "rl_train.parquet", "sft_pool.parquet"):
        assert not tiny_ids & {r["extra_info"]["question_id"] for r in _rows(out / f)}
    assert summary["leakage_overlaps"] == []
    assert "leakage check of the written files: 0 overlaps" in format_summary(summary)


def test_check_leakage_reports_images_and_questions(built, tmp_path):
    out, _ = built
    bench = out / "bench" / "mindcube_tiny.parquet"
    overlaps = check_leakage([bench], [bench])
    assert len(overlaps) == len(_rows(bench)) and all("question of mindcube_tiny:" in o for o in overlaps)
    # a training row that only shares an image with a benchmark question
    row = _rows(bench)[0]
    row["prompt"] = [{"role": "user", "content": "<image>\n" * len(row["images"]) + "A different question? A. x B. y"}]
    row["reward_model"]["ground_truth"] = json.dumps({**_gt(row), "answer": "A", "options": ["A", "B"]})
    pq.write_table(pq.read_table(bench).from_pylist([row], schema=RL_SCHEMA), tmp_path / "train.parquet")
    overlaps = check_leakage([tmp_path / "train.parquet"], [bench])
    assert overlaps and all(" image " in o for o in overlaps)


# ------------------------------------------------------------------------------------------------
# bad input


def _mutated_mindcube(tmp_path: Path, mutate) -> Path:
    data = write_mindcube_fixture(tmp_path / "mc", 9, n_tiny=0)
    path = data / "raw" / mindcube.TRAIN_FILE
    lines = path.read_text().splitlines()
    lines[4] = json.dumps(mutate(json.loads(lines[4])))
    path.write_text("\n".join(lines) + "\n")
    return data


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: {**r, "images": [*r["images"][:-1], "other_all_image/among/nowhere/front_1.jpg"]}, "missing image"),
        (lambda r: {**r, "gt_answer": "E"}, "not one of the listed options"),
        (lambda r: {**r, "question": "<image>\n" + r["question"]}, "placeholders"),
        (lambda r: {**r, "id": "sideways_group9_q1"}, "unknown task type"),
    ],
    ids=["missing-image", "letter-outside-options", "placeholder-count", "unknown-setting"],
)
def test_bad_mindcube_input_names_file_and_line_or_is_counted(tmp_path, mutate, message):
    data = _mutated_mindcube(tmp_path, mutate)
    opts = BuildOptions(out=tmp_path / "out", mindcube=data, rl_samples=9, val_samples=0, sft_pool=0, progress=False)
    with pytest.raises(BadInput, match=message) as err:
        build(opts)
    assert f"{mindcube.TRAIN_FILE}:5" in str(err.value)
    assert not list((tmp_path / "out").glob("*.parquet*"))  # no partial output left behind
    opts.skip_bad = True
    summary = build(opts)
    assert len(summary["bad_input"]) == 1 and message in summary["bad_input"][0][2] and f"{mindcube.TRAIN_FILE}:5" in summary["bad_input"][0][1]
    assert summary["splits"]["train"].rows == 8
    assert "bad input skipped: 1" in format_summary(summary)


def test_bad_spar_input_stops_naming_it_or_is_counted(tmp_path):
    root = write_spar_fixture(tmp_path / "sp", 2, tasks=(("obj_spatial_relation_oc_mv", "select", 3),))
    (root / "scannet" / "qa_jsonl" / "train" / "teleport_mv" / "select").mkdir(parents=True)
    with pytest.raises(BadInput, match="unknown task type 'teleport_mv'"):
        spar.spar7m_catalog(root, BadInputLog())
    log = BadInputLog(skip_bad=True)
    catalog = spar.spar7m_catalog(root, log)
    assert isinstance(catalog, spar.Spar7MJsonlCatalog)
    assert len(log.items) == 1 and set(catalog.categories()) == {"obj_spatial_relation_oc_mv"}
    rec = json.loads((root / "scannet/qa_jsonl/train/obj_spatial_relation_oc_mv/select/select_2.jsonl").read_text().splitlines()[0])
    kw = {
        "task": "obj_spatial_relation_oc_mv",
        "fmt": "select",
        "dataset": "scannet",
        "images_root": root / "scannet" / "images",
        "where": "f.jsonl:line 1",
    }
    for bad, message in (
        ({**rec, "conversations": [rec["conversations"][0], {"from": "gpt", "value": "F"}]}, "not one of the listed options"),
        ({**rec, "type": "obj_spatial_relation_oo_mv"}, "in the folder of task"),
        ({**rec, "bbox_img_idx": [[7]]}, "goes on image 7"),
        ({**rec, "conversations": [{"from": "human"}]}, "conversations must be"),
        (
            {**rec, "conversations": [{"from": "human", "value": "<image>\n" + rec["conversations"][0]["value"]}, rec["conversations"][1]]},
            "placeholders",
        ),
    ):
        with pytest.raises(BadInput, match=message) as err:
            spar.spar7m_sample(bad, **kw)
        assert str(err.value).startswith("f.jsonl:line 1")
    with pytest.raises(BadInput, match="unknown task type"):
        spar.sparbench_sample({"id": 1, "image": [], "question": "q", "answer": "A", "task": "teleport"}, where="shard:row 1")
    with pytest.raises(BadInput, match="unknown task type"):
        mmsi.mmsi_sample({"id": 1, "images": [], "question_type": "Teleport", "question": "q", "answer": "A"}, where="mmsi:row 1")


def test_bad_benchmark_rows_are_counted_with_skip_bad(tmp_path):
    folder = write_sparbench_fixture(tmp_path / "sb", 8)
    shard = folder / "test-00001-of-00004.parquet"
    rows = pq.read_table(shard).to_pylist()
    rows[1]["task"] = "teleport"
    pq.write_table(pq.read_table(shard).from_pylist(rows, schema=pq.read_schema(shard)), shard)
    opts = BuildOptions(out=tmp_path / "out", benchmarks=("sparbench",), sparbench=folder, progress=False)
    with pytest.raises(BadInput, match="test-00001-of-00004.parquet:row 2: unknown task type 'teleport'"):
        build(opts)
    opts.skip_bad = True
    summary = build(opts)
    assert summary["splits"]["bench/sparbench"].rows == 7
    assert [(o, w.endswith("test-00001-of-00004.parquet:row 2")) for o, w, _ in summary["bad_input"]] == [("sparbench", True)]
    assert "leakage check of the written files: not run" in format_summary(summary)


def test_spar_bad_record_names_its_real_line_number(tmp_path):
    root = write_spar_fixture(tmp_path / "sp", 1, n_scenes=1, tasks=(("view_change_infer", "fill", 2),))
    jsonl = root / "scannet/qa_jsonl/train/view_change_infer/fill/fill_1.jsonl"
    record = json.loads(jsonl.read_text())
    record["conversations"][0]["value"] = "<image>\n" + record["conversations"][0]["value"]  # one placeholder, two images
    jsonl.write_text("\n" + json.dumps(record) + "\n")  # a blank first line: the record is on line 2
    opts = BuildOptions(out=tmp_path / "out", spar=root, rl_samples=1, val_samples=0, sft_pool=0, progress=False)
    with pytest.raises(BadInput, match="fill_1.jsonl:2: question has 1 <image> placeholders but 2 images"):
        build(opts)


# ------------------------------------------------------------------------------------------------
# round trips: converter -> parquet -> compute_score


@pytest.mark.parametrize("path, origin", [
    ("rl_train.parquet", "mindcube"), ("rl_train.parquet", "spar7m"), ("bench/mindcube_tiny.parquet", "mindcube_tiny"),
    ("bench/sparbench.parquet", "sparbench"), ("bench/mmsi.parquet", "mmsi"),
])  # fmt: skip
def test_round_trip_right_answer_scores_highest(built, path, origin):
    out, _ = built
    rows = [r for r in _rows(out / path) if r["extra_info"]["origin"] == origin]
    assert rows
    for row in rows:
        gt = _gt(row)
        args = (row["data_source"], row["reward_model"]["ground_truth"])
        right = compute_score(args[0], response_for(gt, right=True), args[1], extra_info=row["extra_info"])
        wrong = compute_score(args[0], response_for(gt, right=False), args[1], extra_info=row["extra_info"])
        assert right["acc"] == 1.0 and wrong["acc"] < 1.0 and right["score"] > wrong["score"], (row["extra_info"], right, wrong)
        refs = gt["references"]
        if any(r[2] is not None for r in (sum(refs.values(), []) if isinstance(refs, dict) else refs)):
            assert right["has_ref"] == 1.0 and right["r_ref"] == pytest.approx(0.3), (row["extra_info"], right)  # ref_weight: F = 1 in every image


# ------------------------------------------------------------------------------------------------
# the command


def test_command_prints_the_summary_and_refuses_to_overwrite(sources, tmp_path, capsys):
    args = [
        "--mindcube",
        str(sources["mindcube"]),
        "--out",
        str(tmp_path / "out"),
        "--rl-samples",
        "9",
        "--val-samples",
        "3",
        "--sft-pool",
        "3",
        "--benchmarks",
        "mindcube_tiny,mmsi",
        "--mmsi",
        str(sources["mmsi"]),
        "--no-progress",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    for expected in (
        "MMSI-Bench (RunsenXu/MMSI-Bench): CC BY-NC 4.0",
        "MindCube (MLL-Lab/MindCube): code MIT",
        "bench/mmsi: 6 rows",
        "train: 9 rows,",
        "mindcube:rotation",
        "sft_pool: 3 rows,",
    ):
        assert expected in text
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["splits"]["train"]["rows"] == 9
    assert main(args) == 1 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_image_cache_encodes_once_per_image_and_marker_set(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(solid((10, 20, 30), (200, 100), "JPEG"))
    from star_verl.prep.multiview import ImageRef

    cache = ImageCache(max_pixels=200 * 100)
    plain = ImageRef("a.jpg", path=path)
    marked = ImageRef("a.jpg", path=path, markers=(("point", "red", (500.0, 500.0)),))
    e1, s1 = cache.entry(plain, "w")
    e2, s2 = cache.entry(plain, "w")
    e3, s3 = cache.entry(marked, "w")
    assert cache.encodes == 2 and cache.hits == 1 and s1 == s2 != s3 and e1 is e2
    assert cache.source(plain, "w").sha == cache.source(marked, "w").sha
    with pytest.raises(BadInput, match="missing image"):
        cache.entry(ImageRef("b.jpg", path=tmp_path / "b.jpg"), "file.jsonl:3")


def test_round_trip_through_the_rl_dataset(built, tiny_qwen25vl):
    """Converter -> StarRLDataset (veRL's create_rl_dataset with the star_r1_mv recipe) -> compute_score
    with the recipe's reward settings: every row's right answer scores highest, a wrong one less."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils import hf_processor, hf_tokenizer

    from star_verl.recipes import compose_recipe

    out, _ = built
    cfg = compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={tiny_qwen25vl}", "data.max_prompt_length=8192"])
    kwargs = OmegaConf.to_container(cfg.reward.custom_reward_function.reward_kwargs)
    files = [out / "rl_train.parquet", out / "val.parquet", *sorted((out / "bench").glob("*.parquet"))]
    ds = create_rl_dataset([str(f) for f in files], cfg.data, hf_tokenizer(tiny_qwen25vl), hf_processor(tiny_qwen25vl))
    assert len(ds) == sum(pq.read_metadata(f).num_rows for f in files)
    origins = Counter()
    for i in range(len(ds)):
        item = ds[i]
        gt = json.loads(item["reward_model"]["ground_truth"])
        right = compute_score(item["data_source"], response_for(gt, right=True), item["reward_model"]["ground_truth"], item["extra_info"], **kwargs)
        wrong = compute_score(item["data_source"], response_for(gt, right=False), item["reward_model"]["ground_truth"], item["extra_info"], **kwargs)
        assert right["acc"] == 1.0 and right["score"] > wrong["score"], (item["extra_info"], right, wrong)
        origins[item["extra_info"]["origin"]] += 1
    assert set(origins) == {"mindcube", "spar7m", "mindcube_tiny", "sparbench", "mmsi"}

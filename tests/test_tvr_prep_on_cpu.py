"""TVR data: the TRANCE converter on fixture folders written here, the synthetic generator and its
renderer, and the round trip generator -> converter -> reward."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from star_verl.prep import synthetic_tvr as syn
from star_verl.prep.build_tvr import main as build_main
from star_verl.prep.build_tvr import synthetic_split_sizes
from star_verl.prep.schema import EXTRA_INFO_KEYS, RL_SCHEMA
from star_verl.prep.trance import BadSampleError, TranceConvertConfig, build_question, convert_trance
from star_verl.prep.trance_format import COLOR_RGB, COLORS, OCCLUSION_PIXELS, SIZE_SCALE, is_visible, overlaps
from star_verl.rewards import compute_score
from star_verl.tasks.ground_truth import ground_truth_json, parse_ground_truth
from tests.images import decode, solid
from tests.tvr_prep_fixtures import OBJECTS, VISIBLE, color_change, image_names, record, synthetic_tvr_set, write_trance


def rows(path):
    return pq.read_table(path).to_pylist()


def config(**kw) -> TranceConvertConfig:
    kw.setdefault("split_sizes", (3, 2, 2))
    return TranceConvertConfig(progress=False, **kw)


@pytest.fixture
def trance7(tmp_path):
    """7 valid samples: 3 train, 2 val, 2 test by file order."""
    return write_trance(tmp_path / "trance", [color_change(i) for i in range(7)])


# ------------------------------------------------------------------ converter: rows, splits, views


def test_splits_follow_file_order_and_eval_rows_have_every_view(trance7, tmp_path):
    out = tmp_path / "out"
    report = convert_trance(trance7, out, config())
    train, val, test = rows(out / "train.parquet"), rows(out / "val.parquet"), rows(out / "test.parquet")
    assert pq.read_schema(out / "train.parquet").equals(RL_SCHEMA)
    # splits by file order; train = center only, eval = one row per (sample, view) in view order
    assert [r["extra_info"]["question_id"] for r in train] == [f"trance-{i:06d}-center" for i in range(3)]
    assert [r["extra_info"]["question_id"] for r in val] == [f"trance-{i:06d}-{v}" for i in (3, 4) for v in ("center", "left", "right")]
    assert [r["extra_info"]["question_id"] for r in test] == [f"trance-{i:06d}-{v}" for i in (5, 6) for v in ("center", "left", "right")]
    assert report.samples == {"train": 3, "val": 2, "test": 2}
    assert report.rows["val"] == {"center": 2, "left": 2, "right": 2}
    for split, rs in (("train", train), ("val", val), ("test", test)):
        for k, r in enumerate(rs):
            info = r["extra_info"]
            assert tuple(info) == EXTRA_INFO_KEYS
            assert (info["index"], info["split"], info["origin"], info["task"], info["n_images"]) == (k, split, "trance", "tvr", 2)
            assert r["data_source"] == "tvr" and r["ability"] == "spatial"
            assert r["prompt"][0]["role"] == "user" and r["prompt"][0]["content"].count("<image>") == 2


def test_images_are_the_files_bytes_initial_always_center(trance7, tmp_path):
    out = tmp_path / "out"
    convert_trance(trance7, out, config())
    for r in rows(out / "val.parquet"):
        idx, view = int(r["extra_info"]["question_id"].split("-")[1]), r["extra_info"]["view"]
        initial, finals = image_names(idx)
        cam = {"center": "Camera_Center", "left": "Camera_Left", "right": "Camera_Right"}[view]
        assert [im["path"] for im in r["images"]] == [initial, finals[cam]]
        assert r["images"][0]["bytes"] == (trance7 / "image" / initial).read_bytes()
        assert r["images"][1]["bytes"] == (trance7 / "image" / finals[cam]).read_bytes()


def test_ground_truth_is_the_designed_json_of_the_typed_object(trance7, tmp_path):
    out = tmp_path / "out"
    convert_trance(trance7, out, config())
    r = rows(out / "test.parquet")[4]  # sample 6, left view
    gt = json.loads(r["reward_model"]["ground_truth"])
    src = color_change(6)
    assert gt["view"] == "left" and gt["task"] == "tvr"
    assert gt["objects"] == OBJECTS  # states[0].objects, the five keys
    assert gt["transformations"] == [{k: t[k] for k in ("obj_idx", "attr", "val", "options")} for t in src["transformations"]]
    for split in ("train", "val", "test"):  # every row's JSON is the typed ground truth's own, as the reward parses it back
        for row in rows(out / f"{split}.parquet"):
            text = row["reward_model"]["ground_truth"]
            assert ground_truth_json(parse_ground_truth("tvr", text)) == text


def test_train_views_and_views_options(trance7, tmp_path):
    out = tmp_path / "out"
    convert_trance(trance7, out, config(train_views=("center", "right"), views=("left",)))
    assert [r["extra_info"]["view"] for r in rows(out / "train.parquet")] == ["center", "right"] * 3
    assert [r["extra_info"]["view"] for r in rows(out / "val.parquet")] == ["left", "left"]


def test_lines_after_the_splits_or_the_limit_are_counted_not_converted(trance7, tmp_path):
    report = convert_trance(trance7, tmp_path / "a", config(split_sizes=(2, 1, 1)))
    assert report.samples == {"train": 2, "val": 1, "test": 1} and report.beyond_splits == 3
    report = convert_trance(trance7, tmp_path / "b", config(limit=1))
    assert report.samples == {"train": 1, "val": 1, "test": 1} and report.over_limit == 4
    ids = [r["extra_info"]["question_id"] for r in rows(tmp_path / "b" / "val.parquet")]
    assert ids[0] == "trance-000003-center"  # the val split still starts at line 4
    report = convert_trance(trance7, tmp_path / "c", config(split_sizes=(5, 5, 5)))
    assert report.samples == {"train": 5, "val": 2, "test": 0} and report.short_of == 8
    assert "ended 8 sample(s) before the end of the splits" in report.format()


def test_question_lists_visible_objects_with_their_indices():
    q = build_question(OBJECTS, with_positions_outside=False)
    assert q.startswith("<image>\n<image>\n")
    listed = [int(line.split(":")[0]) for line in q.splitlines() if line[:1].isdigit()]
    assert listed == VISIBLE
    assert "9: medium yellow rubber cube at (-15, -1)" in q.splitlines()
    q_all = build_question(OBJECTS, with_positions_outside=True)
    assert "3: large blue rubber sphere at (-19, 37) (outside the visible area)" in q_all.splitlines()


def test_object_coordinates_are_a_converter_option(trance7, tmp_path):
    q = build_question(OBJECTS, with_positions_outside=False, object_positions=False)
    assert "9: medium yellow rubber cube" in q.splitlines() and " at (" not in q and "as index: size color material shape:" in q
    listed = [int(line.split(":")[0]) for line in q.splitlines() if line[:1].isdigit()]
    assert listed == VISIBLE  # the same objects, the same indices
    q_all = build_question(OBJECTS, with_positions_outside=True, object_positions=False)
    assert "3: large blue rubber sphere (outside the visible area)" in q_all.splitlines()
    # the default (coordinates on) and the command-line switch reach the rows
    assert TranceConvertConfig().object_positions is True
    assert (
        build_main(["--trance", str(trance7), "--out", str(tmp_path / "plain"), "--split-sizes", "3,2,2", "--no-object-positions", "--no-progress"])
        == 0
    )
    assert build_main(["--trance", str(trance7), "--out", str(tmp_path / "xy"), "--split-sizes", "3,2,2", "--no-progress"]) == 0
    plain, xy = (rows(tmp_path / d / "train.parquet")[0]["prompt"][0]["content"] for d in ("plain", "xy"))
    assert " at (" not in plain and " at (" in xy and plain.count("\n") == xy.count("\n")


def test_position_moves_are_skipped_by_default_and_counted(tmp_path):
    move = {"obj_idx": 2, "attr": "position", "val": ["behind", 1], "type": "inner"}
    recs = [color_change(0), record(1, [{"obj_idx": 2, "attr": "color", "val": "cyan"}, move]), color_change(2)]
    src = write_trance(tmp_path / "t", recs)
    report = convert_trance(src, tmp_path / "out", config(split_sizes=(3, 0, 0)))
    assert report.samples["train"] == 2
    assert report.skipped == {"transformation attribute(s) position not selected (--attributes)": 1}
    report = convert_trance(src, tmp_path / "out2", config(split_sizes=(3, 0, 0), attributes=("color", "shape", "size", "material", "position")))
    assert report.samples["train"] == 3
    gt = json.loads(rows(tmp_path / "out2" / "train.parquet")[1]["reward_model"]["ground_truth"])
    assert gt["transformations"][1] == {"obj_idx": 2, "attr": "position", "val": ["behind", 1], "options": [["behind", 1]]}


def test_repeated_changes_merge_and_undone_changes_are_skipped(tmp_path):
    twice = record(
        0,
        [
            {"obj_idx": 2, "attr": "color", "val": "red"},
            {"obj_idx": 1, "attr": "size", "val": "small"},
            {"obj_idx": 2, "attr": "color", "val": "cyan"},
        ],
    )
    undone = record(1, [{"obj_idx": 2, "attr": "color", "val": "red"}, {"obj_idx": 2, "attr": "color", "val": "yellow"}])
    src = write_trance(tmp_path / "t", [twice, undone])
    report = convert_trance(src, tmp_path / "out", config(split_sizes=(2, 0, 0)))
    gt = json.loads(rows(tmp_path / "out" / "train.parquet")[0]["reward_model"]["ground_truth"])
    assert [(t["obj_idx"], t["attr"], t["val"]) for t in gt["transformations"]] == [(1, "size", "small"), (2, "color", "cyan")]
    assert report.merged == 1  # counted over the kept samples
    assert report.skipped == {"no net transformation (changes undone within the sample)": 1}


def test_synthetic_marker_sets_origin_and_overrides(trance7, tmp_path):
    (trance7 / "synthetic.json").write_text("{}")
    convert_trance(trance7, tmp_path / "a", config())
    assert {r["extra_info"]["origin"] for r in rows(tmp_path / "a" / "train.parquet")} == {"synthetic"}
    convert_trance(trance7, tmp_path / "b", config(origin="trance"))
    assert {r["extra_info"]["origin"] for r in rows(tmp_path / "b" / "train.parquet")} == {"trance"}


def test_max_pixels_resizes_images(tmp_path):
    big = record(0, [{"obj_idx": 2, "attr": "color", "val": "cyan"}])
    src = write_trance(tmp_path / "t", [big])
    for name in (src / "image").iterdir():
        name.write_bytes(solid((10, 20, 30), (320, 240)))
    convert_trance(src, tmp_path / "out", config(split_sizes=(1, 0, 0), max_pixels=160 * 120))
    for im in rows(tmp_path / "out" / "train.parquet")[0]["images"]:
        w, h = decode(im["bytes"]).size
        # smart_resize: 320x240 is over budget; beta = sqrt(76800 / 19200) = 2; floor(160 / 28) * 28 = 140, floor(120 / 28) * 28 = 112
        assert (w, h) == (140, 112)


# ------------------------------------------------------------------ converter: bad input


def _bad_cases():
    def unknown_value(r):
        r["transformations"][0]["val"] = "magenta"

    def unknown_object_value(r):
        r["states"][0]["objects"][5]["material"] = "wood"

    def bad_index(r):
        r["transformations"][0]["obj_idx"] = 10

    def unknown_attr(r):
        r["transformations"][0]["attr"] = "texture"

    def disagreeing_final(r):
        r["states"][-1]["objects"][2]["color"] = "red"

    def unlisted_change(r):
        r["states"][-1]["objects"][8]["shape"] = "cube"

    def invisible_target(r):
        r["transformations"][0]["obj_idx"] = 3
        r["states"][-1]["objects"][3]["color"] = "cyan"

    return {
        "unknown value": (unknown_value, "unknown color value 'magenta'"),
        "unknown object value": (unknown_object_value, "states[0].objects[5]: unknown material value 'wood'"),
        "index pointing at no object": (bad_index, "obj_idx 10 points at no object"),
        "unknown attribute": (unknown_attr, "unknown attribute 'texture'"),
        "final state disagrees": (disagreeing_final, "but the final state has 'red'"),
        "change outside the visible area": (invisible_target, "outside the visible area"),
        "change without a transformation": (unlisted_change, "object 8's shape changes from 'sphere' to 'cube' but no transformation says so"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_record_names_file_and_line_or_is_skipped(case, tmp_path):
    mutate, message = _bad_cases()[case]
    recs = [color_change(i) for i in range(4)]
    mutate(recs[2])
    src = write_trance(tmp_path / "t", recs)
    with pytest.raises(BadSampleError) as err:
        convert_trance(src, tmp_path / "out", config(split_sizes=(4, 0, 0)))
    assert f"{src / 'data.jsonl'}:3" in str(err.value) and message in str(err.value)
    assert not (tmp_path / "out" / "train.parquet").exists()  # nothing half-written
    report = convert_trance(src, tmp_path / "out", config(split_sizes=(4, 0, 0), skip_bad=True))
    assert report.samples["train"] == 3 and len(report.bad) == 1 and "data.jsonl:3" in report.bad[0]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["bad"] == report.bad


def test_truncated_line_and_missing_image(tmp_path):
    recs = [color_change(0), json.dumps(color_change(1))[:150], color_change(2), color_change(3)]
    missing = image_names(3)[1]["Camera_Left"]
    src = write_trance(tmp_path / "t", recs, skip_images=(missing,))
    with pytest.raises(BadSampleError, match=r"data\.jsonl:2: unreadable JSON line"):
        convert_trance(src, tmp_path / "out", config(split_sizes=(4, 0, 0)))
    only_missing = write_trance(tmp_path / "t2", [color_change(i) for i in range(4)], skip_images=(missing,))
    with pytest.raises(BadSampleError, match=rf"data\.jsonl:4: missing image file .*{missing}"):
        convert_trance(only_missing, tmp_path / "out", config(split_sizes=(2, 0, 2)))
    report = convert_trance(src, tmp_path / "out", config(split_sizes=(2, 0, 2), skip_bad=True))
    assert report.samples == {"train": 1, "val": 0, "test": 1}
    assert [b.split(": ")[0].rsplit(":", 1)[1] for b in report.bad] == ["2", "4"]
    assert "skipped 2 bad sample(s)" in report.format()


def test_never_overwrites_without_overwrite(trance7, tmp_path):
    out = tmp_path / "out"
    convert_trance(trance7, out, config())
    before = (out / "train.parquet").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_trance(trance7, out, config())
    assert (out / "train.parquet").read_bytes() == before
    convert_trance(trance7, out, config(overwrite=True, split_sizes=(1, 1, 1)))
    assert len(rows(out / "train.parquet")) == 1


def test_missing_source_and_bad_options_raise(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no TRANCE data"):
        convert_trance(tmp_path, tmp_path / "out", config())
    from star_verl.prep import build_tvr

    assert build_tvr.main(["--trance", str(tmp_path / "no_such_folder"), "--out", str(tmp_path / "out")]) == 2
    assert f"error: {tmp_path / 'no_such_folder'}: does not exist (--trance takes the TRANCE folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="views"):
        TranceConvertConfig(views=("top",))
    with pytest.raises(ValueError, match="attributes"):
        TranceConvertConfig(attributes=("weight",))


def test_h5_release_converts_like_the_jsonl_one(tmp_path):
    h5py = pytest.importorskip("h5py")
    recs = [color_change(i) for i in range(3)]
    with h5py.File(tmp_path / "data.h5", "w") as f:
        for split, part in (("train", recs[:2]), ("test", recs[2:])):
            g = f.create_group(split)
            for r in part:
                g.create_dataset(f"data/{r['idx']}", data=json.dumps(r))
                for name in [r["states"][0]["images"]["Camera_Center"], *r["states"][-1]["images"].values()]:
                    g.create_dataset(f"image/{name}", data=np.full((120, 160, 3), 7, np.uint8))
            g.create_dataset("keys", data=str([str(r["idx"]) for r in part]))
    report = convert_trance(tmp_path / "data.h5", tmp_path / "out", config())
    assert report.samples == {"train": 2, "val": 0, "test": 1}
    im = rows(tmp_path / "out" / "test.parquet")[0]["images"][0]
    assert decode(im["bytes"]).size == (160, 120)


def test_command_prints_the_report_refuses_to_overwrite_and_rejects_bad_options(trance7, tmp_path, capsys):
    out = tmp_path / "out"
    assert build_main(["--trance", str(trance7), "--out", str(out), "--split-sizes", "3,2,2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "train         3        3        3        0        0   1: 1, 2: 1, 3: 1" in printed
    assert build_main(["--trance", str(trance7), "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_main(["--trance", str(trance7), "--views", "center,top"])
    assert synthetic_split_sizes(10000) == (8800, 200, 1000)
    assert build_main(["--synthetic", "3", "--attributes", "position", "--out", str(tmp_path / "syn"), "--no-progress"]) == 2
    assert "no position moves" in capsys.readouterr().err


def test_synthetic_attributes_option_limits_the_changed_attributes(tmp_path):
    rec, _ = syn.generate_sample(0, seed=5, config=syn.SyntheticConfig(attributes=("size",), min_transformations=2))
    assert {t["attr"] for t in rec["transformations"]} == {"size"} and len(rec["transformations"]) >= 2


# ------------------------------------------------------------------ renderer


def _classify(pixel) -> str:
    """The TRANCE color whose chromaticity is closest to a pixel's (gray: no chroma)."""
    v = np.asarray(pixel, float)
    chroma = v - v.mean()
    if np.linalg.norm(chroma) < 12:
        return "gray"
    ref = np.array([COLOR_RGB[c] for c in COLORS], float)
    ref -= ref.mean(axis=1, keepdims=True)
    sims = ref @ chroma / (np.linalg.norm(ref, axis=1) * np.linalg.norm(chroma) + 1e-9)
    sims[COLORS.index("gray")] = -2
    return COLORS[int(np.argmax(sims))]


def test_each_color_reads_back_from_every_camera():
    """Every color (each with a material and a shape, all three of each covered) is recognizable
    from every camera, and the object is where the camera projects it."""
    cams = syn.scene_cameras()
    for i, color in enumerate(COLORS):
        material, shape = ("rubber", "metal", "glass")[i % 3], ("cube", "sphere", "cylinder")[(i // 3) % 3]
        obj = [{"color": color, "material": material, "shape": shape, "size": "medium", "position": [3, -4], "rotation": 0.3}]
        half = SIZE_SCALE["medium"] / (math.sqrt(2) if shape == "cube" else 1)
        x, y = syn.grid_to_world([3, -4])
        for name, cam in cams.items():
            img, ids = syn.render(obj, cam)
            assert img.shape == (240, 320, 3) and img.dtype == np.uint8
            px, py = cam.project(np.array([[x, y, half]]))[0]
            assert ids[int(py), int(px)] == 0, (color, name)
            assert _classify(np.median(img[ids == 0], axis=0)) == color, (material, shape, color, name)


def test_materials_look_different():
    cam = syn.scene_cameras()["Camera_Center"]
    imgs = {
        m: syn.render([{"color": "red", "material": m, "shape": "sphere", "size": "large", "position": [0, 0]}], cam)
        for m in ("rubber", "metal", "glass")
    }
    mask = imgs["rubber"][1] == 0
    for a, b in (("rubber", "metal"), ("rubber", "glass"), ("metal", "glass")):
        diff = np.abs(imgs[a][0][mask].astype(int) - imgs[b][0][mask].astype(int)).mean()
        assert diff > 15, (a, b, diff)


def test_occlusion_and_camera_geometry():
    cams = syn.scene_cameras()
    near = {"color": "red", "material": "rubber", "shape": "cube", "size": "large", "position": [-15, 0]}
    far = {"color": "blue", "material": "rubber", "shape": "sphere", "size": "small", "position": [-2, 0]}  # right behind it
    ids = syn.object_ids([near, far], cams["Camera_Center"])
    assert syn.pixel_counts(ids).get(1, 0) < OCCLUSION_PIXELS <= syn.pixel_counts(ids)[0]
    alone = syn.pixel_counts(syn.object_ids([dict(near, position=[-15, -30]), far], cams["Camera_Center"]))
    assert alone[1] >= OCCLUSION_PIXELS  # visible when the cube is out of the way (outside the visible area: not drawn)
    # grid y grows to the right of the center camera, x away from it (smaller in the image)
    right = syn.object_ids([dict(far, position=[0, 15])], cams["Camera_Center"])
    assert np.nonzero(right == 0)[1].mean() > 160
    back = syn.pixel_counts(syn.object_ids([dict(far, position=[15, 0])], cams["Camera_Center"]))[0]
    front = syn.pixel_counts(syn.object_ids([dict(far, position=[-15, 0])], cams["Camera_Center"]))[0]
    assert back < front
    # the left camera sees a left-front object closer to the bottom of the image than the right camera does
    obj = [dict(far, position=[-15, -15])]
    rows_left = np.nonzero(syn.object_ids(obj, cams["Camera_Left"]) == 0)[0].mean()
    rows_right = np.nonzero(syn.object_ids(obj, cams["Camera_Right"]) == 0)[0].mean()
    assert rows_left > rows_right


# ------------------------------------------------------------------ generator


@pytest.fixture(scope="module")
def samples():
    return [syn.generate_sample(i, seed=3) for i in range(3)]


def test_generator_is_deterministic(samples):
    rec, images = syn.generate_sample(1, seed=3)
    assert rec == samples[1][0] and images == samples[1][1]
    other, _ = syn.generate_sample(1, seed=4)
    assert other["states"][0]["objects"] != rec["states"][0]["objects"]


def test_written_set_is_the_same_whatever_the_workers(tmp_path):
    a = syn.write_synthetic_trance(tmp_path / "a", 2, seed=9, workers=1, progress=False)
    b = syn.write_synthetic_trance(tmp_path / "b", 2, seed=9, workers=2, progress=False)
    assert (a / "data.jsonl").read_bytes() == (b / "data.jsonl").read_bytes()
    names = sorted(p.name for p in (a / "image").iterdir())
    assert len(names) == 2 * 4 and names == sorted(p.name for p in (b / "image").iterdir())
    assert all((a / "image" / n).read_bytes() == (b / "image" / n).read_bytes() for n in names)
    with pytest.raises(FileExistsError, match="--overwrite"):
        syn.write_synthetic_trance(a, 2, seed=9, workers=1, progress=False)
    (a / "synthetic.json").unlink()  # a TRANCE folder we did not write is never deleted
    with pytest.raises(FileExistsError, match="did not write"):
        syn.write_synthetic_trance(a, 2, seed=9, workers=1, overwrite=True, progress=False)


def test_generated_samples_follow_trance_rules(samples):
    for rec, images in samples:
        initial, final = rec["states"][0]["objects"], rec["states"][-1]["objects"]
        assert len(initial) == 10 and 1 <= sum(is_visible(o["position"]) for o in initial) <= 10
        for objs in (initial, final):
            for i in range(10):
                for j in range(i):
                    assert not overlaps(objs[i]["position"], objs[i]["size"], objs[j]["position"], objs[j]["size"])
        trans = rec["transformations"]
        assert 1 <= len(trans) <= 4
        assert len({(t["obj_idx"], t["attr"]) for t in trans}) == len(trans)
        expected = [dict(o) for o in initial]
        for t in trans:
            assert t["attr"] in ("color", "shape", "size", "material") and t["val"] != expected[t["obj_idx"]][t["attr"]]
            expected[t["obj_idx"]][t["attr"]] = t["val"]
        assert expected == final
        # rule 1: transformed objects are not occluded initially; rule 3: nor in any final view
        changed = {t["obj_idx"] for t in trans}
        counts = syn.pixel_counts(syn.render_state(rec, 0, "Camera_Center")[1])
        assert all(counts.get(i, 0) >= OCCLUSION_PIXELS for i in changed)
        for cam in ("Camera_Center", "Camera_Left", "Camera_Right"):
            img, ids = syn.render_state(rec, 1, cam)
            assert all(syn.pixel_counts(ids).get(i, 0) >= OCCLUSION_PIXELS for i in changed)
            stored = np.asarray(decode(images[rec["states"][1]["images"][cam]]))
            assert np.array_equal(stored, img)  # the stored image is the record's state


# ------------------------------------------------------------------ round trip


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    return synthetic_tvr_set(tmp_path_factory.mktemp("tvr_synthetic"), n=4, seed=0)


def test_round_trip_ground_truth_answer_gets_the_maximum_score(synthetic_set):
    n_rows = 0
    for split in ("train", "val", "test"):
        for r in rows(synthetic_set / f"{split}.parquet"):
            gt = json.loads(r["reward_model"]["ground_truth"])
            answer = ", ".join(f"{t['obj_idx']}.{t['attr']}.{t['val']}" for t in gt["transformations"])
            response = f"<think>compare the objects</think><answer>{answer}</answer>"
            score = compute_score("tvr", response, r["reward_model"]["ground_truth"], r["extra_info"])
            assert score["score"] == 1 + 5 * len(gt["transformations"]) and score["acc"] == 1.0 and score["diff"] == 0.0
            listed = {int(line.split(":")[0]) for line in r["prompt"][0]["content"].splitlines() if line[:1].isdigit()}
            assert {t["obj_idx"] for t in gt["transformations"]} <= listed
            n_rows += 1
    assert n_rows == 2 + 3 * 1 + 3 * 1  # synthetic split of 4 samples: 2 / 1 / 1
    assert synthetic_split_sizes(4) == (2, 1, 1)

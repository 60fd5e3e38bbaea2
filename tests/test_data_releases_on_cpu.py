"""The data as it is published today (issue 17): SPAR-7M's current release (`spar-dataset-train.parquet`
with images laid out by the release's prepare scripts) beside the jsonl layout, nothing lost without a
count (SPAR-7M exclusions, missing images, references that cannot be read, `--require-references`),
object names read from SPAR-Bench's question texts, and the benchmark rows' release ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from star_verl.prep import mindcube, spar
from star_verl.prep.build_multiview import BuildOptions, build, format_summary, main
from star_verl.prep.multiview import BadInput, BadInputLog
from star_verl.tasks.references import names_match, normalize_object
from tests.images import gradient
from tests.multiview_fixtures import (
    write_mindcube_fixture,
    write_mmsi_fixture,
    write_spar_fixture,
    write_spar_release,
    write_sparbench_fixture,
)

SPLITS = ("val.parquet", "rl_train.parquet", "sft_pool.parquet")


def _rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def _names(references: Any) -> set[str]:
    """The object names of a ground truth's references (`[object 1, object 2, relation]`), whatever
    their nesting (flat, or grouped per view)."""
    if isinstance(references, dict):
        references = list(references.values())
    if isinstance(references, list) and len(references) == 3 and not any(isinstance(r, (list, dict)) for r in references):
        return {n for n in references[:2] if n is not None}
    return set().union(*(_names(r) for r in references)) if isinstance(references, list) else set()


def _spar_opts(out: Path, source: Path, **kw) -> BuildOptions:
    return BuildOptions(out=out, spar=source, **{"rl_samples": 30, "val_samples": 6, "sft_pool": 6, "seed": 1, "progress": False, **kw})


# ------------------------------------------------------------------------------------------------
# SPAR-7M's current release


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("spar_layouts")
    jsonl = write_spar_fixture(root / "jsonl", 4)
    release = write_spar_fixture(root / "release", 4, layout="release", row_group_size=7)  # rows spread over row groups
    return {
        "jsonl": jsonl,
        "release": release,
        "summary_jsonl": build(_spar_opts(root / "out_jsonl", jsonl)),
        "summary_release": build(_spar_opts(root / "out_release", release)),
        "out_jsonl": root / "out_jsonl",
        "out_release": root / "out_release",
    }


def test_fixture_is_in_the_releases_layout(both_layouts):
    release = both_layouts["release"]
    table = pq.read_table(release / spar.RELEASE_PARQUET)
    assert set(spar.RELEASE_COLUMNS) <= set(table.column_names) and pq.ParquetFile(release / spar.RELEASE_PARQUET).metadata.num_row_groups > 5
    rows = table.to_pylist()
    assert all(r["question"].count("<image>") == len(r["image"]) for r in rows if r["qa_type"] != "obj_count")
    assert all(p.startswith("spar/scannet/images/scene") for r in rows for p in r["image"])
    assert any(r["red_bbox"] for r in rows) and any(r["point_img_idx"] for r in rows)  # multi-view records with markers
    scene = release / "spar" / "scannet" / "images" / "scene0000_00"
    assert (scene / "image_color").is_symlink() and (scene / "video_color").is_dir() and (scene / "video_idx.txt").exists()


def test_release_parquet_gives_the_same_rows_as_the_jsonl_layout(both_layouts):
    for name in SPLITS:
        from_jsonl, from_release = _rows(both_layouts["out_jsonl"] / name), _rows(both_layouts["out_release"] / name)
        assert from_jsonl and from_release == from_jsonl, name
    jsonl, release = both_layouts["summary_jsonl"], both_layouts["summary_release"]
    assert (
        release["excluded"]
        == jsonl["excluded"]
        == {"spar7m": {"sentence answers (no rule scores them)": {"view_change_infer": 1}, "video task": {"obj_count": 1}}}
    )
    assert release["spar7m_read_from"].startswith("parquet release") and jsonl["spar7m_read_from"].startswith("jsonl layout")
    assert release["missing_images"] == jsonl["missing_images"] == {"spar7m": {}}
    # every row's images carry the markers drawn from the release's marker columns (same bytes as from the jsonl geometry)
    tasks = {r["extra_info"]["task"] for name in SPLITS for r in _rows(both_layouts["out_release"] / name)}
    assert {"spatial_imagination_oo_mv", "depth_prediction_oo_mv", "obj_spatial_relation_oo_mv"} <= tasks


def test_spar_argument_selects_the_layout(both_layouts, tmp_path):
    release, jsonl = both_layouts["release"], both_layouts["jsonl"]
    assert isinstance(spar.spar7m_catalog(release, BadInputLog()), spar.Spar7MParquetCatalog)
    assert isinstance(spar.spar7m_catalog(release / spar.RELEASE_PARQUET, BadInputLog()), spar.Spar7MParquetCatalog)
    assert isinstance(spar.spar7m_catalog(jsonl, BadInputLog()), spar.Spar7MJsonlCatalog)
    assert isinstance(spar.spar7m_catalog(jsonl / "scannet", BadInputLog()), spar.Spar7MJsonlCatalog)
    with pytest.raises(FileNotFoundError, match="neither SPAR-7M's spar-dataset-train.parquet"):
        spar.spar7m_catalog(tmp_path, BadInputLog())


def test_release_file_with_other_columns_fails_at_once(both_layouts, tmp_path, capsys):
    table = pq.read_table(both_layouts["release"] / spar.RELEASE_PARQUET)
    wrong = tmp_path / "spar-dataset-train.parquet"
    pq.write_table(table.drop(["qa_format"]).rename_columns(["type" if c == "qa_type" else c for c in table.drop(["qa_format"]).column_names]), wrong)
    with pytest.raises(BadInput) as err:
        build(_spar_opts(tmp_path / "out", tmp_path))
    message = str(err.value)
    assert message.startswith(str(wrong)) and "missing columns ['qa_type', 'qa_format']" in message
    assert (
        "columns found ['id', 'type', 'split'" in message
        and "columns needed ['id', 'qa_type', 'qa_format', 'image', 'question', 'answer']" in message
    )
    assert not list((tmp_path / "out").glob("*.parquet"))
    assert main(["--spar", str(tmp_path), "--out", str(tmp_path / "out2"), "--no-progress"]) == 1
    assert "missing columns ['qa_type', 'qa_format']" in capsys.readouterr().err


def test_images_missing_from_the_layout_are_counted_per_source(tmp_path):
    root = write_spar_fixture(tmp_path / "release", 2, layout="release")
    # ScanNet++ questions whose images the user has not laid out, and one ScanNet frame gone from the source
    other = write_spar_fixture(tmp_path / "pp", 2, layout="release", dataset="scannetpp", lay_out_images=False, seed=5)
    rows = _rows(root / spar.RELEASE_PARQUET) + _rows(other / spar.RELEASE_PARQUET)
    write_spar_release(root / spar.RELEASE_PARQUET, rows)
    gone = root / "spar" / "scannet" / "images" / "scene0001_00" / "image_color" / "243.jpg"
    gone.resolve().unlink()
    uses_gone = [r for r in rows if "spar/scannet/images/scene0001_00/image_color/243.jpg" in r["image"] and r["qa_type"] != "obj_count"]
    usable_pp = [r for r in rows if r["base_dataset"] == "scannetpp" and spar.excluded_because(r["qa_type"], r["qa_format"]) is None]
    assert uses_gone and usable_pp
    summary = build(_spar_opts(tmp_path / "out", root, rl_samples=100, val_samples=0, sft_pool=0))
    missing = summary["missing_images"]["spar7m"]
    pp = missing["scannetpp"]
    assert pp["questions"] == len(usable_pp) and pp["image_refs"] == sum(len(r["image"]) for r in usable_pp)
    assert len(pp["first"]) == 5 and all(str(root / "spar" / "scannetpp" / "images") in p for p in pp["first"])
    assert (
        pp["lay_out_with"].startswith("python prepare_scannetpp_layout.py --scannetpp-root")
        and str(root / "spar" / "scannetpp" / "images") in pp["lay_out_with"]
    )
    assert missing["scannet"] == {
        "questions": len(uses_gone),
        "image_refs": len(uses_gone),
        "first": [str(gone)],
        "lay_out_with": f"python prepare_scannet_layout.py --scannet-root <ScanNet> --out-root {root / 'spar' / 'scannet' / 'images'}",
    }
    written = [r for r in _rows(tmp_path / "out" / "rl_train.parquet")]
    assert len(written) == 2 * 12 - len(uses_gone) and all(r["extra_info"]["question_id"].startswith("scannet/") for r in written)
    text = format_summary(summary)
    assert f"images missing from the scannetpp layout: {len(usable_pp)} questions" in text and "prepare_scannetpp_layout.py" in text
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["missing_images"] == summary["missing_images"]


def test_no_question_with_its_images_is_an_error_naming_the_script(tmp_path):
    root = write_spar_fixture(tmp_path / "release", 1, layout="release", lay_out_images=False)
    with pytest.raises(
        FileNotFoundError, match=r"no SPAR-7M question has all its images in the layout: scannet: 12 questions miss .*prepare_scannet_layout\.py"
    ):
        build(_spar_opts(tmp_path / "out", root))


def test_bad_release_rows_name_the_file_and_row(both_layouts, tmp_path):
    rows = _rows(both_layouts["release"] / spar.RELEASE_PARQUET)
    rows[2] = {**rows[2], "qa_type": "teleport_mv"}
    rows[3] = {**rows[3], "image": ["scene0000_00/image_color/43.jpg"], "base_dataset": None}
    path = write_spar_release(tmp_path / spar.RELEASE_PARQUET, rows)
    (tmp_path / "spar").symlink_to(both_layouts["release"] / "spar", target_is_directory=True)  # the same images
    with pytest.raises(BadInput, match=r"spar-dataset-train.parquet:row 3: unknown task type \(qa_type\) 'teleport_mv'"):
        spar.spar7m_catalog(tmp_path, BadInputLog())
    log = BadInputLog(skip_bad=True)
    spar.spar7m_catalog(path, log)
    assert [(w.rsplit(":", 1)[1], p.split(" ")[0]) for _, w, p in log.items] == [("row 3", "unknown"), ("row 4", "image")]
    assert "names no source" in log.items[1][2]


# ------------------------------------------------------------------------------------------------
# object names read from SPAR-Bench's question texts

_OPTIONS_OO = (
    "\nA. left, , closer, front, front\nB. right, above, farther, behind, \nC. , below, closer, front, behind\nD. left, below, farther, , front"
    "\nYour answer can only include one of options A, B, C or D."
)
# as SPAR-Bench writes them (the three cases seen on the real rows, in their tasks' full wording)
USING_BUCKET = (
    "Using bucket (red point) as the reference, which object is closer to it: the towel (green point) or the sink (blue point)? "
    "Calculate or judge based on the 3D center points of these objects.\nA. towel\nB. sink\nYour answer can only include one of options A or B."
)
TOILET_PAPER = (
    "Given that the red point marking the center of toilet paper is 1.2 meters deep, how deep is the blue point marking the center of towel? "
    " Calculate or judge based on the 3D center points of these objects. Answer using a single number and nothing else."
)
TWO_BOOKS = (
    "What is the spatial position of the books (red bbox) relative to the books (blue bbox) in the two images, from the observer\u2019s "
    "perspective? Calculate or judge based on the 3D center points of these objects.\nThe options describe the spatial relationship between "
    "two objects in terms of left-right (object 1 is to the left or right of object 2), above-below (object 1 is above or below object 2), "
    "closer-farther (object 1 is closer to or farther from the observer than object 2), the first object is in front of or behind the observer "
    "(front or behind), the second object is in front of or behind the observer (front or behind)." + _OPTIONS_OO
)


@pytest.mark.parametrize(
    "question, expected",
    [
        (USING_BUCKET, [("red", "bucket"), ("green", "towel"), ("blue", "sink")]),
        (TOILET_PAPER, [("red", "toilet paper"), ("blue", "towel")]),
        (TWO_BOOKS, [("red", "books (red)"), ("blue", "books (blue)")]),
        ("Based on the red bbox of mat in the first image, locate its bounding box in the second image.", [("red", "mat")]),
        ("If the books (red point) is 2.5 meters deep, how deep is the bookshelf (blue point)?", [("red", "books"), ("blue", "bookshelf")]),
        ("How is object sink (bbox) situated with respect to the observer\u2019s main viewpoint?", [(None, "sink")]),
        (
            "The chair (red bbox) is left of the table (blue bbox); where is the chair (red bbox) in image 2?",
            [("red", "chair"), ("blue", "table"), ("red", "chair")],
        ),
    ],
    ids=["using-bucket", "marking-the-center-of", "same-name-two-markers", "bbox-of", "point", "colorless-bbox", "same-marker-twice"],
)
def test_names_of_marked_objects(question, expected):
    assert spar.marked_objects(question) == expected
    assert spar.reference_loss(question) is None


def _sparbench_row(i: int, task: str, question: str, answer: str, n_images: int = 2) -> dict[str, Any]:
    return {
        "id": 6400 + i, "task": task, "question": question, "answer": answer,
        "image": [{"bytes": gradient(f"names/{i}/{k}"), "path": f"{6400 + i}_scene0001_00_{k}.jpg"} for k in range(n_images)],
    }  # fmt: skip


@pytest.mark.parametrize(
    "task, question, answer, names",
    [
        ("distance_infer_center_oo_mv", USING_BUCKET, "A", {"bucket", "towel", "sink"}),
        ("depth_prediction_oc_mv", TOILET_PAPER, "1.3", {"toilet paper", "towel"}),
        ("obj_spatial_relation_oo_mv", TWO_BOOKS, "B", {"books (red)", "books (blue)"}),
    ],
    ids=["using-bucket", "marking-the-center-of", "same-name-two-markers"],
)
def test_sparbench_rows_get_the_marked_objects_as_references(task, question, answer, names):
    sample = spar.sparbench_sample(_sparbench_row(0, task, question, answer), where="shard:row 1")
    written = _names(sample.ground_truth.to_dict()["references"]) - {"observer"}
    assert written == names and sample.reference_loss is None
    # the reward tells the two marked books apart (one reference each), and "books" still matches both
    assert len({normalize_object(n) for n in written}) == len(names)


def test_the_reward_reads_a_marker_color_as_part_of_the_name():
    assert normalize_object("books (red)") == "red book" and normalize_object("Books (Blue)") == "blue book"
    assert normalize_object("books (red bbox)") == "book"  # a model's note is still dropped
    assert names_match("book", "red book") and not names_match("blue book", "red book")


def test_a_marker_without_a_readable_name_is_a_reference_loss():
    question = "How far is it (red point) from the observer of the first image? Answer using a single number and nothing else."
    assert spar.marked_objects(question) == []
    assert spar.reference_loss(question) == "no object name read for the marker(s) red point"
    sample = spar.sparbench_sample(_sparbench_row(1, "distance_prediction_oc_mv", question, "2.1"), where="shard:row 2")
    assert sample.reference_loss == "no object name read for the marker(s) red point"


# ------------------------------------------------------------------------------------------------
# references that cannot be read: counted, or with --require-references errors


def _misfit_mindcube(tmp_path: Path) -> tuple[Path, int]:
    """A MindCube fixture whose first among record has 4 objects in meta_info (the layout needs 5)."""
    data = write_mindcube_fixture(tmp_path / "mc", 30, n_tiny=0)
    path = data / "raw" / mindcube.TRAIN_FILE
    lines = path.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if json.loads(line)["id"].startswith("among"))
    record = json.loads(lines[k])
    record["meta_info"] = [record["meta_info"][0][:4], record["meta_info"][1][:4]]
    lines[k] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    return data, k + 1


def test_mindcube_rows_without_their_references_are_counted_and_listed(tmp_path):
    data, line = _misfit_mindcube(tmp_path)
    out = tmp_path / "out"
    summary = build(BuildOptions(out=out, mindcube=data, rl_samples=30, val_samples=0, sft_pool=0, progress=False))
    st = summary["splits"]["train"]
    assert st.rows == 30 and dict(st.refs_lost) == {"mindcube:among": 1}
    ((task, where, problem),) = st.refs_lost_rows
    assert task == "mindcube:among" and where.endswith(f"{mindcube.TRAIN_FILE}:{line}") and "fits no among layout" in problem
    assert st.with_refs["mindcube:among"] == st.per_task["mindcube:among"] - 1
    text = format_summary(summary)
    assert "refs lost" in text and "references lost: 1 rows written without the references their source states" in text and where in text
    saved = json.loads((out / "summary.json").read_text())["splits"]["train"]
    assert saved["refs_lost"] == {"mindcube:among": 1} and saved["refs_lost_rows"] == [[task, where, problem]]


def test_require_references_turns_the_loss_into_bad_input(tmp_path):
    data, line = _misfit_mindcube(tmp_path)
    opts = BuildOptions(out=tmp_path / "out", mindcube=data, rl_samples=30, val_samples=0, sft_pool=0, progress=False, require_references=True)
    with pytest.raises(BadInput, match=rf"{mindcube.TRAIN_FILE}:{line}: no references \(meta_info .* fits no among layout"):
        build(opts)
    opts.skip_bad = True
    summary = build(opts)
    assert summary["splits"]["train"].rows == 29 and not summary["splits"]["train"].refs_lost
    assert [(o, w.endswith(f":{line}")) for o, w, _ in summary["bad_input"]] == [("mindcube", True)]


def test_require_references_covers_the_benchmarks(tmp_path):
    folder = tmp_path / "sb"
    folder.mkdir()
    question = "How far is it (red point) from the observer of the first image? Answer using a single number and nothing else."
    rows = [_sparbench_row(0, "depth_prediction_oc_mv", TOILET_PAPER, "1.3"), _sparbench_row(1, "distance_prediction_oc_mv", question, "2.1")]
    pq.write_table(pa.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
    opts = BuildOptions(out=tmp_path / "out", benchmarks=("sparbench",), sparbench=folder, progress=False)
    st = build(opts)["splits"]["bench/sparbench"]
    assert st.rows == 2 and dict(st.refs_lost) == {"sparbench:distance_prediction_oc_mv": 1}
    opts.require_references, opts.overwrite = True, True
    with pytest.raises(BadInput, match=r"test-00000-of-00001.parquet:row 2: no references \(no object name read for the marker\(s\) red point\)"):
        build(opts)
    assert (
        main(["--benchmarks", "sparbench", "--sparbench", str(folder), "--out", str(tmp_path / "o2"), "--require-references", "--no-progress"]) == 1
    )


# ------------------------------------------------------------------------------------------------
# benchmark rows keep the release's own id


def test_benchmark_rows_keep_the_releases_id_as_a_string(tmp_path):
    data = write_mindcube_fixture(tmp_path / "mc", 9, n_tiny=6)
    sparbench = write_sparbench_fixture(tmp_path / "sb", 8)
    mmsi = write_mmsi_fixture(tmp_path / "mmsi" / "MMSI_Bench.parquet", 4)
    out = tmp_path / "out"
    build(BuildOptions(out=out, mindcube=data, rl_samples=0, val_samples=0, sft_pool=0, benchmarks=("mindcube_tiny", "sparbench", "mmsi"),
                       sparbench=sparbench, mmsi=mmsi, progress=False))  # fmt: skip
    released = {
        "mindcube_tiny": [json.loads(line)["id"] for line in (data / "raw" / mindcube.TINY_FILE).read_text().splitlines()],
        "sparbench": [r["id"] for shard in sorted(sparbench.glob("*.parquet")) for r in _rows(shard)],
        "mmsi": [r["id"] for r in _rows(mmsi)],
    }
    for name, ids in released.items():
        written = [r["extra_info"]["question_id"] for r in _rows(out / "bench" / f"{name}.parquet")]
        assert sorted(written) == sorted(str(i) for i in ids) and all(isinstance(q, str) for q in written), name

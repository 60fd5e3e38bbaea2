"""`star-verl eval score` and `eval report` end to end, on generations written here, with every metric
computed by hand: TVR per view and in total, MindCube-Tiny per setting, SPAR-Bench per task and
level, MMSI-Bench per category; both protocols; veRL dumps; bad input; the table and figure files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from star_verl.eval import cli
from star_verl.eval.plots import benchmark_figures
from star_verl.eval.report import paper_values, report
from star_verl.eval.scoring import InputError, score_file
from tests.tvr_fixtures import tagged, tvr_gt

VCI_GT = "move_right:1.6,move_down:0,move_backward:0,rotate_up:15,rotate_left:75"
TVR_T = [(0, "color", "cyan"), (1, "shape", "sphere")]


def _tvr(i: int, view: str, answer: str | None) -> dict:
    response = tagged(answer) if answer is not None else "I give up"
    return {"id": f"tvr{i}", "data_source": "tvr", "response": response, "ground_truth": tvr_gt(TVR_T, view=view, as_json=True),
            "extra_info": {"origin": "trance", "view": view, "split": "test", "index": i}}  # fmt: skip


def _mv(i: int, source: str, origin: str, task: str, response: str, answer, kind: str = "choice") -> dict:
    gt = {"type": kind, "answer": answer, "task": task}
    if kind == "choice":
        gt["options"] = ["A", "B", "C", "D"]
    return {"id": f"{origin}{i}", "data_source": source, "response": response, "ground_truth": gt, "extra_info": {"origin": origin, "task": task}}


def generations() -> list[dict]:
    lines = [
        # TVR: center 2 of 3 exact, left 1 of 1, right 0 of 1
        _tvr(0, "center", "0.color.cyan, 1.shape.sphere"),  # diff 0
        _tvr(1, "center", "1.shape.sphere\n0.color.cyan"),  # diff 0 (order does not matter)
        _tvr(2, "center", "0.color.cyan"),  # diff 1, ndiff 0.5; obj/attr/val 1/2; step diff -1
        _tvr(3, "left", "0.color.cyan, 1.shape.sphere"),  # diff 0
        _tvr(4, "right", "0.color.red, 1.shape.sphere"),  # diff 1 (color), ndiff 0.5; obj 2/2, attr 2/2, val 1/2
    ]
    mc = lambda i, task, response, answer: _mv(i, "mindcube", "mindcube_tiny", task, response, answer)  # noqa: E731
    lines += [
        mc(0, "rotation", "<think>Option A. is tempting</think><answer>B</answer>", "B"),  # official A (wrong), strict B
        mc(1, "rotation", "<think>x</think><answer>B. the sofa</answer>", "B"),  # both right
        mc(2, "around", "The answer is C", "C"),  # official right, strict wrong (no answer block)
        mc(3, "among", "<think>x</think><answer>A</answer>", "A"),  # both right
        mc(4, "translation", "<answer>A</answer>", "A"),  # right, excluded from overall
    ]
    sp = lambda i, task, response, answer, kind="choice": _mv(i, "spar", "sparbench", task, response, answer, kind)  # noqa: E731
    lines += [
        sp(0, "obj_spatial_relation_oc_mv", "<think>x</think><answer></answer>", "A"),  # official 1 (empty), strict 0
        sp(1, "obj_spatial_relation_oc_mv", "<answer>B</answer>", "A"),  # 0 / 0
        sp(2, "position_matching", "<answer>c) the box</answer>", "C"),  # official 1 (pred[0]), strict 0
        sp(3, "depth_prediction_oc", "<answer>2.0 or maybe 3.5</answer>", 2.0, "numeric"),  # official 1 (first number), strict 0
        sp(4, "depth_prediction_oc_mv", "<answer>3.5 m, no, 2.25</answer>", 2.0, "numeric"),  # official 0.8 (last), strict 0
        sp(5, "view_change_infer", f"<answer>{VCI_GT.replace('1.6', '2.5')}</answer>", VCI_GT, "view_change"),  # 0.86 / 0.8
        sp(6, "camera_motion_infer", "<answer>A</answer>", "A"),  # 1 / 1
        sp(7, "distance_infer_center_oo", "<answer>B</answer>", "B"),  # 1 / 1
    ]
    mm = lambda i, task, response, answer: _mv(i, "mmsi", "mmsi", task, response, answer)  # noqa: E731
    lines += [
        mm(0, "Motion (Cam.)", "<think>Image A shows</think><answer>`C`</answer>", "C"),  # 1 / 1
        mm(1, "Motion (Cam.)", "<answer>A or B</answer>", "B"),  # official 1, strict 0 (ambiguous)
        mm(2, "Positional Relationship (Cam.-Obj.)", "I pick D", "D"),  # official 1, strict 0; legacy hyphen
        mm(3, "Positional Relationship (Cam.\u2013Obj.)", "<answer>{B}</answer>", "A"),  # 0 / 0
    ]
    return lines


def _write(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    gen = _write(root / "gen.jsonl", generations())
    return {p: (score_file(gen, root / p, protocol=p), root / p) for p in ("official", "strict")}


def test_tvr_accuracy_per_view_and_tacc_the_mean_of_the_views(scored):
    for protocol in ("official", "strict"):  # TVR has one protocol
        m = scored[protocol][0]["benchmarks"]["tvr"]
        views, total, head = m["views"], m["total"], m["headline"]
        assert [views[v]["n"] for v in ("center", "left", "right")] == [3, 1, 1]
        assert views["center"]["Acc"] == pytest.approx(200 / 3)
        assert views["left"]["Acc"] == 100.0 and views["right"]["Acc"] == 0.0
        assert views["center"]["Diff"] == pytest.approx(1 / 3) and views["center"]["NDiff"] == pytest.approx(1 / 6)
        assert views["right"]["Diff"] == 1.0 and views["right"]["NDiff"] == 0.5 and views["right"]["ValAcc"] == 50.0
        assert views["right"]["AttrAcc"] == 100.0 and views["center"]["AttrAcc"] == pytest.approx(100 * 2.5 / 3)
        assert total["n"] == 5
        assert total["Acc"] == pytest.approx(60.0)  # 3 of 5, micro
        assert total["TAcc"] == pytest.approx((200 / 3 + 100 + 0) / 3)  # mean of the view accuracies: 55.6
        assert total["LAcc"] == pytest.approx(60.0)
        assert total["Diff"] == pytest.approx(0.4) and total["NDiff"] == pytest.approx(0.2)
        assert total["ValAcc"] == pytest.approx(80.0) and total["ObjAcc"] == pytest.approx(90.0) and total["AttrAcc"] == pytest.approx(90.0)
        assert total["StepDiff"] == pytest.approx(-0.2)
        assert head["ID"] == pytest.approx(200 / 3) and head["OOD"] == pytest.approx(50.0) and head["TAcc"] == pytest.approx(500 / 9)


def test_mindcube_tiny_per_setting_and_overall_without_translation(scored):
    off = scored["official"][0]["benchmarks"]["mindcube_tiny"]
    assert {s: v["accuracy"] for s, v in off["settings"].items()} == {"rotation": 50.0, "around": 100.0, "among": 100.0, "translation": 100.0}
    assert off["overall"] == 75.0 and off["n_overall"] == 4  # translation excluded
    strict = scored["strict"][0]["benchmarks"]["mindcube_tiny"]
    assert {s: v["accuracy"] for s, v in strict["settings"].items()} == {"rotation": 100.0, "around": 0.0, "among": 100.0, "translation": 100.0}
    assert strict["overall"] == 75.0


def test_sparbench_per_task_overall_and_levels_per_protocol(scored):
    off = scored["official"][0]["benchmarks"]["sparbench"]
    values = {t: v["value"] for t, v in off["tasks"].items()}
    assert values == pytest.approx({"obj_spatial_relation_oc_mv": 50.0, "position_matching": 100.0, "depth_prediction_oc": 100.0,
                                    "depth_prediction_oc_mv": 80.0, "view_change_infer": 86.0, "camera_motion_infer": 100.0,
                                    "distance_infer_center_oo": 100.0})  # fmt: skip
    assert off["tasks"]["depth_prediction_oc_mv"]["metric"] == "MRA:.5:.95:.05" and off["tasks"]["view_change_infer"]["metric"] == "vci_metric"
    assert off["overall"] == pytest.approx(100 * 6.16 / 7)  # 88.0
    assert off["levels"] == pytest.approx({"low": 90.0, "middle": 100.0, "high": 75.0})  # middle without view_change_infer (lmms-eval)
    assert off["headline"]["ObjRel-OC-MV"] == 50.0
    strict = scored["strict"][0]["benchmarks"]["sparbench"]
    assert strict["overall"] == pytest.approx(40.0)  # (0 + 0 + 0 + 0 + 0.8 + 1 + 1) / 7
    assert strict["levels"] == pytest.approx({"low": 0.0, "middle": 60.0, "high": 50.0})  # middle with view_change_infer


def test_mmsi_per_category_and_overall_per_protocol(scored):
    off = scored["official"][0]["benchmarks"]["mmsi"]
    pos = "Positional Relationship (Cam.\u2013Obj.)"
    assert {c: v["accuracy"] for c, v in off["categories"].items()} == {"Motion (Cam.)": 100.0, pos: 50.0}
    assert off["overall"] == 75.0
    strict = scored["strict"][0]["benchmarks"]["mmsi"]
    assert {c: v["accuracy"] for c, v in strict["categories"].items()} == {"Motion (Cam.)": 50.0, pos: 0.0}
    assert strict["overall"] == 25.0


def test_per_sample_file_has_one_record_per_scored_line(scored):
    metrics, out = scored["official"]
    assert metrics["protocol"] == "official" and json.loads((out / "metrics.json").read_text())["protocol"] == "official"
    records = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert len(records) == len(generations()) == metrics["n_scored"]
    by_id = {r["id"]: r for r in records}
    assert set(records[0]) == {"id", "data_source", "correct", "score", "diff"}
    assert by_id["tvr2"] == {"id": "tvr2", "data_source": "tvr", "correct": False, "score": 0.0, "diff": 1}
    assert by_id["tvr0"]["diff"] == 0 and by_id["tvr0"]["correct"] is True
    assert by_id["sparbench5"] == {"id": "sparbench5", "data_source": "spar", "correct": False, "score": pytest.approx(0.86), "diff": None}
    assert by_id["sparbench0"]["correct"] is True  # the empty answer


def test_markdown_tables_have_one_row_per_category(scored):
    metrics, out = scored["official"]
    text = (out / "metrics.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}

    def rows(section: str) -> int:  # table body rows: "| " lines but the header (the separator starts "|-")
        return sum(1 for line in sections[section].splitlines() if line.startswith("| ")) - 1

    assert rows("tvr") == 3 + 1  # three views + total
    assert rows("mindcube_tiny") == 4 + 1  # four settings + overall
    assert rows("sparbench") == 7 + 3 + 1  # seven tasks + three levels + overall
    assert rows("mmsi") == 2 + 1
    assert "protocol `official`" in text


def test_figures_have_the_right_bars(scored, tmp_path):
    metrics, out = scored["official"]
    for name in ("tvr", "mindcube_tiny", "sparbench", "mmsi"):
        assert (out / f"{name}.png").stat().st_size > 5000
    figures = {}
    import star_verl.eval.plots as plots

    for name, block in metrics["benchmarks"].items():
        figures[name] = plots.FIGURES[block["family"]](name, block, tmp_path / f"{name}.png")
    tvr_acc, tvr_ndiff = figures["tvr"].axes[:2]
    assert len(tvr_acc.patches) == 4 * 2  # (center, left, right, total) x (Acc, LAcc)
    assert [round(p.get_height(), 3) for p in tvr_acc.patches[:4]] == [66.667, 100.0, 0.0, 60.0]
    assert [t.get_text().split("\n")[0] for t in tvr_acc.get_xticklabels()] == ["center", "left", "right", "total"]
    assert len(tvr_ndiff.patches) == 4
    assert len(figures["mindcube_tiny"].axes[0].patches) == 4 + 1
    assert len(figures["sparbench"].axes[0].patches) == 7 + 1
    assert len(figures["mmsi"].axes[0].patches) == 2 + 1
    assert set(benchmark_figures(metrics["benchmarks"], tmp_path)) == set(metrics["benchmarks"])


def test_report_puts_the_runs_beside_every_paper_number(scored, tmp_path, capsys):
    off_dir, strict_dir = scored["official"][1], scored["strict"][1]
    assert cli.main(["report", str(off_dir), str(strict_dir), "--out", str(tmp_path / "rep"), "--names", "sft", "rl"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    body = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")]
    result = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(body) == len(result["rows"])
    # every paper number appears, next to the runs' values
    paper = paper_values()
    assert {(r["benchmark"], r["metric"]) for r in result["rows"]} >= set(paper)
    tacc = next(r for r in result["rows"] if r["benchmark"] == "tvr" and r["metric"] == "TAcc")
    assert tacc["paper"] == 61.4 and tacc["values"]["sft"] == pytest.approx(500 / 9)
    rot = next(r for r in result["rows"] if r["metric"] == "rotation")
    assert rot["values"] == {"sft": 50.0, "rl": 100.0} and rot["paper"] == 98.5
    assert "different protocols" in md
    assert (tmp_path / "rep" / "report.png").stat().st_size > 10000
    with pytest.raises(ValueError, match="distinct"):
        report([off_dir, off_dir], tmp_path / "rep2")


def test_paper_numbers_are_the_papers_and_tacc_follows_from_the_views():
    paper = paper_values()
    assert paper[("tvr", "TAcc")] == 61.4 and paper[("tvr", "ID")] == 76.3 and paper[("tvr", "OOD")] == 53.9 and paper[("tvr", "NDiff")] == 0.31
    assert paper[("mindcube_tiny", "rotation")] == 98.5 and paper[("mindcube_tiny", "around")] == 82.8
    assert paper[("sparbench", "ObjRel-OC-MV")] == 86.0 and paper[("sparbench", "ObjRel-OO-MV")] == 76.7
    assert paper[("mmsi", "overall")] == 31.4
    # the TAcc arithmetic of the reference notes: equal view splits, TAcc = (ID + 2 x OOD) / 3
    assert (paper[("tvr", "ID")] + 2 * paper[("tvr", "OOD")]) / 3 == pytest.approx(paper[("tvr", "TAcc")], abs=0.05)


# ------------------------------------------------------------------------------------- veRL dumps


def test_verls_validation_dump_is_scored_per_view(tmp_path):
    """A dump written by veRL's own writer (`RayPPOTrainer._write_generations`, which `_validate` calls for
    `trainer.validation_data_dir`): input, output, gts (the ground-truth JSON string), score, step, extras."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    cases = [("center", "0.color.cyan, 1.shape.sphere"), ("left", "0.color.cyan"), ("right", "1.shape.sphere, 0.color.cyan")]
    RayPPOTrainer._write_generations(
        inputs=["system ..."] * 3, outputs=[tagged(a) for _, a in cases], gts=[tvr_gt(TVR_T, view=v, as_json=True) for v, _ in cases],
        scores=[11.0, 0.0, 11.0], reward_extra_infos_dict={"acc": [1.0, 0.0, 1.0], "uid": ["u0", "u1", "u2"]}, dump_path=str(tmp_path / "val"), global_steps=7,
    )  # fmt: skip
    dump = tmp_path / "val" / "7.jsonl"
    metrics = score_file(dump, tmp_path / "out")
    assert metrics["input_formats"] == ["verl_dump"]
    tvr = metrics["benchmarks"]["tvr"]
    assert {v: b["Acc"] for v, b in tvr["views"].items()} == {"center": 100.0, "left": 0.0, "right": 100.0}
    ids = [json.loads(x)["id"] for x in (tmp_path / "out" / "per_sample.jsonl").read_text().splitlines()]
    assert ids == ["u0", "u1", "u2"]
    gts = [json.dumps({"type": "choice", "answer": "B", "options": ["A", "B"], "task": "rotation"})]
    RayPPOTrainer._write_generations(["q"], ["<answer>B</answer>"], gts, [2.0], {}, str(tmp_path / "val2"), 3)
    metrics = score_file(tmp_path / "val2" / "3.jsonl", tmp_path / "out2", origin="mindcube_tiny")
    assert list(metrics["benchmarks"]) == ["mindcube_tiny"] and metrics["benchmarks"]["mindcube_tiny"]["overall"] == 100.0
    assert json.loads((tmp_path / "out2" / "per_sample.jsonl").read_text())["id"] == "step3/line1"


# -------------------------------------------------------------------------------------- bad input


def test_a_directory_or_a_parquet_given_as_generations_is_named(tmp_path, capsys):
    (tmp_path / "dump").mkdir()
    (tmp_path / "rows.parquet").write_bytes(b"PAR1")
    assert cli.main(["score", str(tmp_path / "dump"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"star-verl eval score: error: {tmp_path / 'dump'}: is a directory, not a generations file")
    assert cli.main(["score", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'rows.parquet'}: a parquet data file, not a generations file" in capsys.readouterr().err


def test_bad_lines_stop_with_line_number_or_are_listed(tmp_path, capsys):
    good = _mv(0, "mmsi", "mmsi", "MSR", "<answer>A</answer>", "A")
    missing = {k: v for k, v in good.items() if k != "response"}
    lines = [good, "{not json", {**good, "data_source": "geometry"}, missing, {**good, "ground_truth": '{"type": "choice"}'}, good]
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not JSON"):
        score_file(path, tmp_path / "out")
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert cli.main(["score", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    metrics = score_file(path, tmp_path / "out", skip_bad=True)
    assert metrics["n_scored"] == 2 and metrics["n_bad"] == 4
    problems = metrics["bad_lines"]
    assert [p.split(":")[1] for p in problems] == ["2", "3", "4", "5"]
    assert "unknown data_source 'geometry'" in problems[1]
    assert "missing field(s) ['response']" in problems[2]
    assert "bad mmsi ground truth" in problems[3]
    # a line whose origin belongs to another family
    path2 = _write(tmp_path / "mixed.jsonl", [{**good, "extra_info": {"origin": "trance"}}])
    with pytest.raises(InputError, match=r"mixed\.jsonl:1: origin 'trance' belongs to data_source 'tvr'"):
        score_file(path2, tmp_path / "out3")
    # a dump line whose task tells no family
    dump = _write(
        tmp_path / "dump.jsonl",
        [
            {
                "input": "",
                "output": "A",
                "gts": json.dumps({"type": "choice", "answer": "A", "options": ["A", "B"], "task": "riddles"}),
                "score": 0,
                "step": 1,
            }
        ],
    )
    with pytest.raises(InputError, match="dump.jsonl:1: cannot tell the data source of ground truth task 'riddles'; pass --data-source"):
        score_file(dump, tmp_path / "out4")
    assert (
        score_file(dump, tmp_path / "out4", data_source="mmsi")["benchmarks"]["mmsi"]["overall"] == 100.0
    )  # told the family, it scores ("A" is right)


def test_cli_score_prints_headline(tmp_path, capsys):
    path = _write(tmp_path / "g.jsonl", generations())
    assert cli.main(["score", str(path), "--out", str(tmp_path / "o"), "--protocol", "strict"]) == 0
    out = capsys.readouterr().out
    assert "tvr [strict] n=5: TAcc 55.56" in out and "mmsi [strict] n=4: overall 25.00" in out
    from star_verl.cli import main as star_verl_main  # `star-verl eval ...` reaches the same main

    assert star_verl_main(["eval", "score", str(path), "--out", str(tmp_path / "o2"), "--no-plots"]) == 0
    assert "mmsi [official] n=4: overall 75.00" in capsys.readouterr().out
    assert not list((tmp_path / "o2").glob("*.png"))


def test_headlines_are_reported_per_split(tmp_path):
    lines = generations()[:5]  # the TVR lines: split "test"
    lines[3] = {**lines[3], "extra_info": {**lines[3]["extra_info"], "split": "val"}}  # the left-view sample (right)
    lines[2] = {**lines[2], "extra_info": {**lines[2]["extra_info"], "split": "val"}}  # a center sample (wrong)
    metrics = score_file(_write(tmp_path / "g.jsonl", lines), tmp_path / "o")
    splits = metrics["benchmarks"]["tvr"]["splits"]
    assert {k: v["n"] for k, v in splits.items()} == {"test": 3, "val": 2}
    assert splits["test"]["headline"]["TAcc"] == pytest.approx((100.0 + 0.0) / 2)  # center 2/2, right 0/1; no left view
    assert splits["val"]["headline"]["TAcc"] == pytest.approx((0.0 + 100.0) / 2)  # center 0/1, left 1/1
    assert "Per split:" in (tmp_path / "o" / "metrics.md").read_text()


# ------------------------------------------------------------------------- inputs from other tools


def test_ground_truths_without_task_are_read_with_the_task_of_extra_info(tmp_path, capsys):
    """Rows written by other tools keep the category in extra_info only: every line scores, exactly as
    with the task inside the ground truth; MindCube's setting then comes from the id (MindCube's rule)."""
    lines = generations()
    stripped = []
    for line in lines:
        gt = line["ground_truth"] if isinstance(line["ground_truth"], dict) else json.loads(line["ground_truth"])
        drop = ("view", "task") if line["data_source"] == "tvr" else ("task",)
        stripped.append({**line, "ground_truth": {k: v for k, v in gt.items() if k not in drop}})
    full = score_file(_write(tmp_path / "full.jsonl", lines), tmp_path / "full", plots=False)
    bare = score_file(_write(tmp_path / "bare.jsonl", stripped), tmp_path / "bare", plots=False)
    assert bare["n_scored"] == len(lines) and bare["n_bad"] == 0
    assert bare["benchmarks"] == full["benchmarks"]
    # MindCube without any task: the setting the id names
    mc = {"id": "rotation_group3_q1", "data_source": "mindcube", "response": "<answer>B.</answer>",
          "ground_truth": {"type": "choice", "answer": "B", "options": ["A", "B"]}, "extra_info": {"origin": "mindcube_tiny"}}  # fmt: skip
    settings = score_file(_write(tmp_path / "mc.jsonl", [mc]), tmp_path / "mc", plots=False)["benchmarks"]["mindcube_tiny"]["settings"]
    assert settings == {"rotation": {"n": 1, "correct": 1, "accuracy": 100.0}}
    # only where scoring depends on the task does a missing one fail: SPAR's numeric answers
    sp = {"id": "s", "data_source": "spar", "response": "<answer>2</answer>", "ground_truth": {"type": "numeric", "answer": 2.0},
          "extra_info": {"origin": "sparbench"}}  # fmt: skip
    path = _write(tmp_path / "sp.jsonl", [sp, sp])
    with pytest.raises(InputError, match=r"sp\.jsonl:1: spar numeric ground truth without a task: add 'task'"):
        score_file(path, tmp_path / "sp")
    assert cli.main(["score", str(path), "--out", str(tmp_path / "sp")]) == 2
    assert "add 'task'" in capsys.readouterr().err


# ------------------------------------------------------------------------------- report guards


def test_report_puts_no_paper_number_beside_unlike_data(scored, tmp_path, capsys):
    """A TVR run without the left and right views gets no TAcc (nor OOD, Diff, NDiff) beside the
    paper's, its per-view accuracies instead; a dump scored without --origin gets no paper column."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    center = [line for line in generations() if line["data_source"] == "tvr" and line["extra_info"]["view"] == "center"]
    center_only = score_file(_write(tmp_path / "center.jsonl", center), tmp_path / "center", plots=False)
    assert center_only["benchmarks"]["tvr"]["headline"]["TAcc"] == pytest.approx(200 / 3)  # metrics.json: the views present
    assert "No left, right view" in (tmp_path / "center" / "metrics.md").read_text()
    gts = [line["ground_truth"] for line in center]
    RayPPOTrainer._write_generations(["q"] * 3, [line["response"] for line in center], gts, [0.0] * 3, {}, str(tmp_path / "val"), 9)
    dump = score_file(tmp_path / "val" / "9.jsonl", tmp_path / "dump", plots=False)
    assert dump["benchmarks"]["tvr"]["origin"] is None and "--origin" in dump["warnings"][0]

    assert cli.main(["report", str(scored["official"][1]), str(tmp_path / "center"), str(tmp_path / "dump"),
                     "--out", str(tmp_path / "rep"), "--names", "full", "center", "dump"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    result = json.loads((tmp_path / "rep" / "report.json").read_text())
    rows = {(r["benchmark"], r["metric"]): r for r in result["rows"]}
    assert rows[("tvr", "TAcc")]["paper"] == 61.4 and rows[("tvr", "TAcc")]["values"]["full"] == pytest.approx(500 / 9)
    for metric in ("TAcc", "OOD", "NDiff", "Diff"):  # averages over other views than the paper's: not shown for the center-only run
        assert rows[("tvr", metric)]["values"]["center"] is None, metric
    assert rows[("tvr", "ID")]["values"]["center"] == pytest.approx(200 / 3) and rows[("tvr", "ID")]["paper"] == 76.3
    assert rows[("tvr", "Acc (center)")]["values"]["center"] == pytest.approx(200 / 3) and rows[("tvr", "Acc (center)")]["paper"] is None
    unknown = [r for key, r in rows.items() if key[0] == "tvr (origin unknown)"]
    assert unknown and all(r["paper"] is None and r["values"]["dump"] is not None for r in unknown)
    assert all(r["values"]["dump"] is None for key, r in rows.items() if key[0] == "tvr")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "`center`: `tvr` has only the center view(s): TAcc, Diff, NDiff would average other views" in md
    assert "`dump`: `tvr` has lines of unknown origin" in md and "--origin ORIGIN" in md
    assert len(result["warnings"]) == 2 and all(w in err for w in result["warnings"])

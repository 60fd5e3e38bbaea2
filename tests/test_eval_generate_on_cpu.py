"""`star-verl eval generate` on CPU with the tiny Qwen2.5-VL (transformers backend) on a few multi-view
rows written here with the row schema, then `eval score` on its output."""

from __future__ import annotations

import json
import re

import pytest

from star_verl.eval import cli
from star_verl.eval.generate import GenerationSettings, prepare_row, recipe_defaults
from star_verl.prep.schema import ParquetRowWriter, image_entry, make_extra_info, make_rl_row
from star_verl.templates import get_template
from tests.dataset_fixtures import BAD_FILE_CASES, bad_data_file, without_column, write_rows
from tests.images import solid


def _rows() -> list[dict]:
    imgs = [image_entry(solid((40 * i, 90, 200 - 40 * i), (120, 90)), f"view{i}.png") for i in range(4)]
    mc = make_rl_row(
        data_source="mindcube",
        question="<image><image>From view 2, what is right of the chair? A. sofa B. lamp C. door",
        images=imgs[:2],
        ground_truth={"type": "choice", "answer": "B", "options": ["A", "B", "C"], "task": "rotation"},
        extra_info=make_extra_info(index=0, split="test", origin="mindcube_tiny", task="rotation", question_id="rotation_group000_q1_1", n_images=2),
    )
    sp = make_rl_row(
        data_source="spar",
        question="<image>\n<image>\n<image>\nHow deep is the bookshelf (blue point)? Answer with one number.",
        images=imgs[1:4],
        ground_truth={"type": "numeric", "answer": 2.6, "task": "depth_prediction_oc_mv"},
        extra_info=make_extra_info(index=1, split="test", origin="sparbench", task="depth_prediction_oc_mv", question_id="sp1", n_images=3),
    )
    mm = make_rl_row(
        data_source="mmsi",
        question="<image><image>Where did the camera move?\nOptions: A: left, B: right, C: up, D: down",
        images=imgs[2:4],
        ground_truth={"type": "choice", "answer": "D", "options": ["A", "B", "C", "D"], "task": "Motion (Cam.)"},
        extra_info=make_extra_info(index=2, split="test", origin="mmsi", task="Motion (Cam.)", question_id="7", n_images=2),
    )
    return [mc, sp, mm]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "bench.parquet"
    with ParquetRowWriter(path) as writer:
        writer.write_all(_rows())
    return path


def test_prompt_uses_the_training_template_and_pixel_budget():
    row = _rows()[1]
    settings = GenerationSettings(
        model="m", backend="transformers", template="three_step", min_pixels=3136, max_pixels=90000, total_max_pixels=3 * 5000
    )
    messages, images = prepare_row(row, "row 1", get_template("three_step"), settings)
    template = get_template("three_step")
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": template.system}]}
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["image", "text", "image", "text", "image", "text"]  # placeholders in order
    assert "".join(p.get("text", "") for p in parts) == template.user_text(row["prompt"][0]["content"]).replace("<image>", "")
    # per-image cap 15000 // 3 = 5000 px; smart_resize of 120x90: 112x84 = 9408 > 5000, so
    # beta = sqrt(120 * 90 / 5000) = 1.47 and each side is floor(side / beta / 28) * 28: 56 x 56
    assert [im.size for im in images] == [(56, 56)] * 3
    assert sum(w * h for w, h in (im.size for im in images)) <= 15000


def test_recipe_defaults_are_the_composed_recipe():
    mv = recipe_defaults("star_r1_mv")
    assert mv["template"] == "three_step" and mv["max_pixels"] == 90000 and mv["total_max_pixels"] == 360000
    assert mv["min_pixels"] == 3136  # inherited from star_r1_tvr
    assert mv["temperature"] == 0.0 and mv["n"] == 1  # veRL's val_kwargs: greedy, one sample


def test_generate_writes_lines_eval_score_reads_and_refuses_to_overwrite(tiny_qwen25vl, parquet, tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    argv = ["generate", "--model", tiny_qwen25vl, "--data", str(parquet), "--out", str(out), "--max-new-tokens", "6", "--backend", "transformers"]
    assert cli.main(argv) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["mindcube_tiny/test/rotation_group000_q1_1", "sparbench/test/sp1", "mmsi/test/7"]
    for line, row in zip(lines, _rows(), strict=True):
        assert line["data_source"] == row["data_source"] and line["ground_truth"] == row["reward_model"]["ground_truth"]
        assert isinstance(line["response"], str)
        gen = line["generation"]
        assert gen["template"] == "three_step" and gen["backend"] == "transformers" and gen["max_new_tokens"] == 6
        assert gen["temperature"] == 0.0 and gen["n"] == 1 and gen["max_pixels"] == 90000 and gen["recipe"] == "star_r1_mv"
    assert cli.main(argv) == 2  # refuses to overwrite
    assert "exists" in capsys.readouterr().err
    # sampling, two per prompt, first two rows
    out2 = tmp_path / "gen2.jsonl"
    assert cli.main(["generate", "--model", tiny_qwen25vl, "--data", str(parquet), "--out", str(out2), "--max-new-tokens", "4",
                     "--n", "2", "--temperature", "1.0", "--limit", "2", "--backend", "transformers"]) == 0  # fmt: skip
    ids = [json.loads(x)["id"] for x in out2.read_text().splitlines()]
    assert ids == [
        "mindcube_tiny/test/rotation_group000_q1_1#0",
        "mindcube_tiny/test/rotation_group000_q1_1#1",
        "sparbench/test/sp1#0",
        "sparbench/test/sp1#1",
    ]

    assert cli.main(["score", str(out), "--out", str(tmp_path / "scored")]) == 0
    metrics = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert list(metrics["benchmarks"]) == ["mindcube_tiny", "sparbench", "mmsi"]
    assert metrics["n_scored"] == 3 and metrics["generation"][0]["model"] == tiny_qwen25vl
    assert len((tmp_path / "scored" / "per_sample.jsonl").read_text().splitlines()) == 3
    for name in ("mindcube_tiny", "sparbench", "mmsi"):
        assert (tmp_path / "scored" / f"{name}.png").is_file()


# -------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("case", "cause"), [*BAD_FILE_CASES, ("no_rows", "no rows")])
def test_a_data_file_bad_as_a_whole_is_one_line_naming_it(case, cause, tiny_qwen25vl, tmp_path, capsys):
    path = write_rows(tmp_path / "no_rows.parquet", []) if case == "no_rows" else bad_data_file(tmp_path, case)
    assert cli.main(["generate", "--model", tiny_qwen25vl, "--data", str(path), "--out", str(tmp_path / "g.jsonl")]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"star-verl eval generate: error: {path}: {cause}", err) and len(err.splitlines()) == 1, err


def test_a_missing_column_is_one_line_naming_the_file(tiny_qwen25vl, tmp_path, capsys):
    path = without_column(write_rows(tmp_path / "rows.parquet", _rows()), "prompt")
    assert cli.main(["generate", "--model", tiny_qwen25vl, "--data", str(path), "--out", str(tmp_path / "g.jsonl")]) == 2
    assert capsys.readouterr().err.startswith(f"star-verl eval generate: error: {path}: missing column(s) ['prompt']; columns are")


def test_a_model_folder_that_does_not_exist_is_named(tmp_path, capsys):
    data = write_rows(tmp_path / "rows.parquet", _rows())
    assert cli.main(["generate", "--model", str(tmp_path / "no_model"), "--data", str(data), "--out", str(tmp_path / "g.jsonl")]) == 2
    assert capsys.readouterr().err == f"star-verl eval generate: error: --model {tmp_path / 'no_model'} does not exist (not a local folder)\n"

"""`star-verl curves`: reward components per step from veRL's own rollout dumps (v1 and v0 writers)."""

from __future__ import annotations

import csv
import json
import re

import pytest

from star_verl.eval.curves import EXIT_BAD_INPUT, EXIT_MISMATCH, main
from star_verl.rewards import REWARD_KEYS, compute_score
from tests.tvr_fixtures import WORKED_GT, tagged

GT = json.dumps(WORKED_GT)
MV_GT = json.dumps({"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], "task": "rotation"})
# per step: (response, ground truth); the model improves from step 1 to step 3
STEPS = {
    1: [(tagged("2.color.red, 5.size.large, 7.shape.cube"), GT), ("", GT), (tagged("B"), MV_GT)],
    2: [(tagged("2.color.cyan, 4.color.red, 5.size.large"), GT), (tagged("2.color.cyan"), GT), (tagged("C"), MV_GT)],
    3: [(tagged("2.color.cyan, 4.color.brown"), GT), (tagged("4.color.brown, 2.color.cyan"), GT), (tagged("C"), MV_GT)],
}


@pytest.fixture(scope="module")
def writers():
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # legacy v0 trainer: dumps reward_extra_info
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer  # default v1 trainer: dumps no components

    return PPOTrainer._write_generations, RayPPOTrainer._write_generations


def dump_v1(write, path, **settings):
    for step, rows in STEPS.items():
        scores = [compute_score("mindcube" if gt == MV_GT else "tvr", r, gt, **settings)["score"] for r, gt in rows]
        uids = [f"s{step}_{i}_0" for i in range(len(rows))]
        write(["prompt"] * len(rows), [r for r, _ in rows], [gt for _, gt in rows], scores, {"uid": uids}, str(path), step)


def read_csv(path):
    with open(path) as f:
        return [{k: (v if k == "family" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def test_v1_dumps_are_rescored_per_step_and_family(writers, tmp_path):
    dump_v1(writers[0], tmp_path / "rollouts")
    assert main([str(tmp_path / "rollouts"), "--out", str(tmp_path / "out")]) == 0
    rows = {(int(r["step"]), r["family"]): r for r in read_csv(tmp_path / "out" / "curves.csv")}
    assert sorted({f for _, f in rows}) == ["all", "multiview", "tvr"]
    # step 1, TVR: 1 + (1.5 + 0 + 0) - 3 = -0.5 and 0 - 2 = -2 (no format, both missing)
    assert rows[(1, "tvr")]["score"] == pytest.approx((-0.5 - 2.0) / 2)
    assert rows[(1, "tvr")]["r_incorrect"] == pytest.approx(-1.5) and rows[(1, "tvr")]["r_under"] == pytest.approx(-1.0)
    # step 2, TVR: the worked example 5.5 and 1 + 5 - 1 = 5
    assert rows[(2, "tvr")]["score"] == pytest.approx(5.25) and rows[(2, "tvr")]["r_pos"] == pytest.approx(5.75)
    assert rows[(3, "tvr")]["acc"] == 1.0 and rows[(3, "tvr")]["diff"] == 0.0
    assert rows[(1, "multiview")]["acc"] == 0.0 and rows[(3, "multiview")]["acc"] == 1.0
    assert rows[(3, "all")]["n"] == 3 and rows[(3, "all")]["mismatch"] == 0.0
    assert (tmp_path / "out" / "curves.png").stat().st_size > 10_000
    md = (tmp_path / "out" / "curves.md").read_text()
    assert md.startswith("| step | family | n | " + " | ".join(REWARD_KEYS)) and md.count("\n") == 2 + 9


def test_settings_of_the_run_are_needed_and_mismatches_are_reported(writers, tmp_path, capsys):
    dump_v1(writers[0], tmp_path / "rollouts", tvr_incorrect_penalty=0.0)  # as a no_incorrect run would
    assert main([str(tmp_path / "rollouts"), "--out", str(tmp_path / "a")]) == EXIT_MISMATCH == 3  # its own code: the curves are written
    assert "differ from the trainer's score" in capsys.readouterr().out
    rows = {(int(r["step"]), r["family"]): r for r in read_csv(tmp_path / "a" / "curves.csv")}
    assert rows[(1, "tvr")]["mismatch"] == 0.5  # the response with wrong predictions; the empty one agrees
    assert main([str(tmp_path / "rollouts"), "--out", str(tmp_path / "b"), "--setting", "tvr_incorrect_penalty=0"]) == 0
    config = tmp_path / "config.yaml"  # the run's .hydra/config.yaml
    config.write_text("reward:\n  custom_reward_function:\n    reward_kwargs:\n      tvr_incorrect_penalty: 0.0\n")
    assert main([str(tmp_path / "rollouts"), "--out", str(tmp_path / "c"), "--config", str(config)]) == 0
    assert read_csv(tmp_path / "c" / "curves.csv")[0]["r_incorrect"] == 0.0


def test_v0_dumps_with_components_are_read_as_they_are(writers, tmp_path):
    rows = STEPS[2][:2]
    # components chosen by hand and unlike any rescoring, to show they are not recomputed
    info = {key: [float(i + 1), float(i + 3)] for i, key in enumerate(REWARD_KEYS)}
    writers[1](["p", "p"], [r for r, _ in rows], [gt for _, gt in rows], [0.0, 0.0], info, str(tmp_path / "rollouts"), 7)
    assert main([str(tmp_path / "rollouts"), "--out", str(tmp_path / "out")]) == 0
    (row,) = read_csv(tmp_path / "out" / "curves.csv")
    assert row["step"] == 7 and row["family"] == "all"
    assert [row[key] for key in REWARD_KEYS] == [i + 2.0 for i in range(len(REWARD_KEYS))]


def test_bad_input_is_one_line_naming_the_file_with_exit_code_2(tmp_path, capsys):
    def error(*extra) -> str:
        assert main([str(tmp_path / "rollouts"), "--out", str(tmp_path / "out"), *extra]) == EXIT_BAD_INPUT == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("star-verl curves: error: ") and "Traceback" not in err, err
        return err.removeprefix("star-verl curves: error: ").strip()

    rollouts = tmp_path / "rollouts"
    assert error() == f"{rollouts}: not a directory (expected trainer.rollout_data_dir with <step>.jsonl files)"
    rollouts.mkdir()
    assert error().startswith(f"{rollouts}: no <step>.jsonl rollout dumps")
    (rollouts / "3.jsonl").write_text("\n")
    assert error() == f"{rollouts}: the <step>.jsonl files hold no rollout line"
    (rollouts / "3.jsonl").write_text(json.dumps({"output": "", "gts": GT, "score": -2.0}) + "\n{oops\n")
    assert error().startswith(f"{rollouts / '3.jsonl'}:2: not a JSON line")
    (rollouts / "3.jsonl").write_text(json.dumps({"output": "", "gts": json.dumps({"transformations": []}), "score": 0}) + "\n")
    assert re.match(rf"{rollouts / '3.jsonl'}:1: .*bad tvr ground truth", error())
    assert "'tvr_attr_wieght' (did you mean tvr_attr_weight?)" in error("--setting", "tvr_attr_wieght=1")
    assert error("--setting", "tvr_attr_weight") == "--setting expects key=value, got 'tvr_attr_weight'"
    assert error("--config", str(tmp_path / "nope.yaml")).startswith(f"{tmp_path / 'nope.yaml'}: no such file")
    (tmp_path / "bad.yaml").write_text("reward: [\n")
    assert error("--config", str(tmp_path / "bad.yaml")).startswith(f"{tmp_path / 'bad.yaml'}: not YAML")
    assert not (tmp_path / "out").exists()  # nothing written on bad input

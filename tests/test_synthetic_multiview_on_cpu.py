"""The built-in synthetic multi-view set (`star-verl build-multiview --synthetic N [--with-chains]`,
`star_verl.prep.synthetic_mv`): every answer re-derived here from the stored scene with this file's
own geometry (not the generator's solver), balanced letters, per-view references that agree with the
camera poses and with a pinhole projection, byte-identical output for any number of workers, rows
that veRL's `create_rl_dataset` accepts, oracle chains that earn the reward's maximum and pass the
SFT filter, and the command line with its default output folders."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from star_verl.prep.build_multiview import SCENES_FILE, BuildOptions, build, parse_args
from star_verl.prep.teacher.filter import judge_chain
from star_verl.rewards import compute_score
from star_verl.rewards.multiview import MultiViewRewardSettings

N = 24
SPLIT_FILES = ("val.parquet", "rl_train.parquet", "sft_pool.parquet")


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory) -> Path:
    """$STAR_VERL_DATA-like root: multiview/ (the splits, bench/synthetic_mv.parquet, the scenes) and sft/ (the oracle chains)."""
    root = tmp_path_factory.mktemp("synthetic_mv")
    summary = build(BuildOptions(out=root / "multiview", synthetic=N, with_chains=True, progress=False))
    assert summary["leakage_overlaps"] == []
    return root


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def scenes(root: Path) -> dict[str, dict]:
    lines = (root / "multiview" / SCENES_FILE).read_text().splitlines()
    return {r["question_id"]: r for r in map(json.loads, lines)}


# --------------------------------------------------------------------------------------------
# this file's own geometry: bearings in degrees, clockwise from the camera's facing, seen from above


def bearing(cam: dict, x: float, y: float) -> float:
    """Angle of the ground point (x, y) from the camera, clockwise from its facing (yaw 0 faces +y, 90 faces +x)."""
    return (math.degrees(math.atan2(x - cam["x"], y - cam["y"])) - cam["yaw_degrees"]) % 360


def sector(angle: float, width: float = 45.0) -> str | None:
    """front / right / behind / left when the angle is within `width` of that direction."""
    for name, center in (("front", 0), ("right", 90), ("behind", 180), ("left", 270)):
        if abs((angle - center + 180) % 360 - 180) < width:
            return name
    return None


def in_camera(cam: dict, x: float, y: float) -> tuple[float, float]:
    """(lateral, depth) of a ground point in the camera's frame, by a rotation matrix."""
    t = math.radians(cam["yaw_degrees"])
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])  # world -> camera: right, forward
    lateral, depth = rot @ np.array([x - cam["x"], y - cam["y"]])
    return float(lateral), float(depth)


def pixel_x(cam: dict, x: float, y: float, z: float = 0.15) -> float:
    """Horizontal image coordinate of a point under a pinhole camera at the stored pose (level: only the order matters)."""
    lateral, depth = in_camera(cam, x, y)
    return lateral / depth


def expected_answer(record: dict) -> str:
    """The right option's text, derived from the question text and the stored scene."""
    scene, q = record["scene"], record["question"]
    cams, objs = scene["cameras"], {o["name"]: o for o in scene["objects"]}
    if m := re.search(r"where image (\d) was taken, facing the way image \1 looks\. Which object is (to your left|to your right|behind you)\?", q):
        cam = cams[int(m.group(1)) - 1]
        want = {"to your left": "left", "to your right": "right", "behind you": "behind"}[m.group(2)]
        hits = [name for name, o in objs.items() if sector(bearing(cam, o["x"], o["y"]), 35) == want]
        assert len(hits) == 1, (record["question_id"], hits)
        return hits[0]
    if m := re.search(r"From image (\d) to image (\d), how did the camera (turn|move)\?", q):
        a, b = cams[int(m.group(1)) - 1], cams[int(m.group(2)) - 1]
        turn = round((b["yaw_degrees"] - a["yaw_degrees"]) % 360) % 360
        if m.group(3) == "turn":
            assert (a["x"], a["y"]) == (b["x"], b["y"])
            return {0: "did not turn", 90: "turned right by 90 degrees", 180: "turned around by 180 degrees", 270: "turned left by 90 degrees"}[turn]
        lateral, depth = in_camera(a, b["x"], b["y"])  # where the second camera stands, seen from the first
        if abs(lateral) < 1e-6 and abs(depth) < 1e-6:
            return "did not move"
        if depth > 2 * abs(lateral):
            return "moved to the opposite side"
        return "moved to its right around the objects" if lateral > 0 else "moved to its left around the objects"
    m = re.search(r"From the viewpoint of image (\d), where is the (.+) relative to the (.+)\?", q)
    assert m, q
    cam, a, b = cams[int(m.group(1)) - 1], objs[m.group(2)], objs[m.group(3)]
    (la, da), (lb, db) = in_camera(cam, a["x"], a["y"]), in_camera(cam, b["x"], b["y"])
    lateral, depth = la - lb, da - db
    assert max(abs(lateral), abs(depth)) > 1.2 * min(abs(lateral), abs(depth)), record["question_id"]
    if abs(lateral) > abs(depth):
        return "right of" if lateral > 0 else "left of"
    return "behind" if depth > 0 else "in front of"


def test_every_answer_is_rederived_from_the_scene(synthetic_set):
    records = scenes(synthetic_set)
    assert len(records) == N
    kinds = Counter()
    for name in SPLIT_FILES:
        for row in rows(synthetic_set / "multiview" / name):
            record = records[row["extra_info"]["question_id"]]
            gt = json.loads(row["reward_model"]["ground_truth"])
            assert gt["answer"] == record["answer"] and gt["options"] == ["A", "B", "C", "D"]
            assert record["options"][gt["answer"]] == expected_answer(record), record
            # the row's text carries the options in letter order
            question = row["prompt"][0]["content"]
            assert question.endswith(" ".join(f"{k}. {v}" for k, v in record["options"].items()))
            assert question.count("<image>") == len(row["images"]) == len(record["scene"]["cameras"])
            assert row["data_source"] == "mindcube" and row["extra_info"]["origin"] == "synthetic_mv"
            assert row["extra_info"]["task"] == record["scene"]["setting"]
            kinds[(record["scene"]["setting"], record["kind"])] += 1
    assert {s for s, _ in kinds} == {"rotation", "around", "among"}
    assert all(2 <= len(r["scene"]["cameras"]) <= 4 for r in records.values())


def test_answer_letters_are_balanced(synthetic_set):
    letters = Counter(json.loads(r["reward_model"]["ground_truth"])["answer"] for f in SPLIT_FILES for r in rows(synthetic_set / "multiview" / f))
    assert sorted(letters) == ["A", "B", "C", "D"] and max(letters.values()) - min(letters.values()) <= 1, letters


def test_per_view_references_agree_with_the_camera_poses(synthetic_set):
    """Every reference of view k holds in view k's own frame (and in its pinhole image: "left" is
    further left on screen), names objects the view shows, and is the row's ground truth."""
    n_checked = 0
    for record in scenes(synthetic_set).values():
        cams, objs = record["scene"]["cameras"], {o["name"]: o for o in record["scene"]["objects"]}
        assert sorted(record["references"], key=int) == [str(k) for k in range(1, len(cams) + 1)]  # a reference in every view
        for k, refs in record["references"].items():
            cam, shown = cams[int(k) - 1], record["seen"][int(k) - 1]
            for a, b, rel in refs:
                assert a in shown and (b == "observer" or b in shown), (record["question_id"], k, a, b)
                la, da = in_camera(cam, objs[a]["x"], objs[a]["y"])
                if b == "observer":
                    assert rel == sector(bearing(cam, objs[a]["x"], objs[a]["y"])) == "front"
                    assert da > 0
                    continue
                lb, db = in_camera(cam, objs[b]["x"], objs[b]["y"])
                if rel in ("left", "right"):
                    assert abs(la - lb) > abs(da - db)
                    left_on_screen = pixel_x(cam, objs[a]["x"], objs[a]["y"]) < pixel_x(cam, objs[b]["x"], objs[b]["y"])
                    assert left_on_screen == (rel == "left") == (la < lb), (record["question_id"], k, a, b, rel)
                else:
                    assert abs(da - db) > abs(la - lb) and (da > db) == (rel == "behind"), (record["question_id"], k, a, b, rel)
                n_checked += 1
    assert n_checked >= N
    for f in SPLIT_FILES:
        for row in rows(synthetic_set / "multiview" / f):
            gt = json.loads(row["reward_model"]["ground_truth"])
            record = scenes(synthetic_set)[row["extra_info"]["question_id"]]
            assert gt["references"] == record["references"]


def test_splits_fractions_and_the_benchmark_file(synthetic_set):
    mv = synthetic_set / "multiview"
    sizes = {f: len(rows(mv / f)) for f in SPLIT_FILES}
    assert sizes == {"val.parquet": 4, "rl_train.parquet": 12, "sft_pool.parquet": 8}
    ids = [r["extra_info"]["question_id"] for f in SPLIT_FILES for r in rows(mv / f)]
    assert len(set(ids)) == N  # disjoint splits, every question used once
    bench = rows(mv / "bench" / "synthetic_mv.parquet")
    val = rows(mv / "val.parquet")
    assert [r["extra_info"]["question_id"] for r in bench] == [r["extra_info"]["question_id"] for r in val]
    assert {r["extra_info"]["split"] for r in bench} == {"test"} and {r["extra_info"]["split"] for r in val} == {"val"}


def test_same_seed_gives_the_same_bytes_for_any_number_of_workers(tmp_path):
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}" / "multiview"
        build(BuildOptions(out=out, synthetic=6, seed=3, with_chains=True, workers=workers, progress=False))
        outs.append(out.parent)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file() and p.name != "summary.json")
    assert len(files) >= 10
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file() and p.name != "summary.json")
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    other = tmp_path / "seed4" / "multiview"
    build(BuildOptions(out=other, synthetic=6, seed=4, progress=False))
    assert (other / "rl_train.parquet").read_bytes() != (outs[0] / "multiview" / "rl_train.parquet").read_bytes()


def test_rows_pass_verls_create_rl_dataset(synthetic_set, tiny_qwen25vl, tok_proc):
    from verl.trainer.ppo.utils import create_rl_dataset

    from star_verl.recipes import compose_recipe

    cfg = compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={tiny_qwen25vl}", "data.max_prompt_length=1024"])
    tok, proc = tok_proc
    files = [str(synthetic_set / "multiview" / f) for f in (*SPLIT_FILES, "bench/synthetic_mv.parquet")]
    ds = create_rl_dataset(files, cfg.data, tok, proc)
    assert len(ds) == N + 4
    items = [ds[i] for i in range(len(ds))]
    assert {it["data_source"] for it in items} == {"mindcube"}
    for it in items:  # the three-step template, one image part per view
        system, user = it["raw_prompt"]
        assert "Step 1 (per-view reference analysis)" in system["content"][0]["text"]
        assert [c["type"] for c in user["content"]].count("image") == it["extra_info"]["n_images"]
    assert len(ds.prompt_lengths) == len(ds) and max(ds.prompt_lengths) <= 1024


def test_the_oracle_answer_with_its_oracle_step1_earns_the_rewards_maximum(synthetic_set):
    s = MultiViewRewardSettings()
    maximum = s.mv_format_weight + s.mv_answer_weight + s.ref_weight
    records = scenes(synthetic_set)
    for f in SPLIT_FILES:
        for row in rows(synthetic_set / "multiview" / f):
            chain = records[row["extra_info"]["question_id"]]["chain"]
            scores = compute_score(row["data_source"], chain, row["reward_model"]["ground_truth"], row["extra_info"])
            assert scores["score"] == pytest.approx(maximum) and scores["r_ref"] == pytest.approx(s.ref_weight), (row["extra_info"], scores)


def test_oracle_chains_pass_the_sft_filter_and_are_labeled(synthetic_set):
    sft = synthetic_set / "sft"
    train, val = rows(sft / "train.parquet"), rows(sft / "val.parquet")
    assert (len(train), len(val)) == (6, 2)  # the 8 SFT-pool questions, 20% held out
    pool = {r["extra_info"]["question_id"] for r in rows(synthetic_set / "multiview" / "sft_pool.parquet")}
    assert {r["extra_info"]["question_id"] for r in train + val} == pool
    for row in train + val:
        assert row["extra_info"]["origin"] == "synthetic_mv"
        response = row["messages"][-1]["content"]
        decision = judge_chain(
            response, data_source=row["data_source"], ground_truth=row["reward_model"]["ground_truth"], extra_info=row["extra_info"]
        )
        assert decision.keep, decision.reasons
    report = json.loads((sft / "report.json").read_text())
    assert report["chains"] == "synthetic_oracle" and "oracle" in report["model"]
    assert (sft / "rejected.jsonl").read_text() == ""


def test_the_command_writes_where_the_recipes_read_by_default(tmp_path):
    """The docs' command (docs/synthetic_multiview.md): `star-verl build-multiview --synthetic 24 --with-chains`
    with $STAR_VERL_DATA set: the rows where star_r1_mv reads, the chains where star_r1_sft reads."""
    data = tmp_path / "star_verl_data"
    env = {**os.environ, "STAR_VERL_DATA": str(data)}
    cmd = [sys.executable, "-m", "star_verl.cli", *BUILD_COMMAND.split()[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for f in ("multiview/rl_train.parquet", "multiview/val.parquet", "multiview/bench/synthetic_mv.parquet", "sft/train.parquet", "sft/val.parquet"):
        assert (data / f).is_file(), f
    assert f"6 train, 2 val rows in {data / 'sft'}" in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)  # teacher or oracle chains are never replaced silently
    assert again.returncode == 1 and "--overwrite" in again.stderr and "sft/train.parquet" in again.stderr


def test_help_names_the_command_and_every_default(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: star-verl build-multiview")
    options = re.findall(r"^  (-[-\w]+)", text, re.MULTILINE)
    blocks = re.split(r"^  (?=-)", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == len(options) >= 20
    assert all("default" in " ".join(b.split()) for b in blocks if not b.startswith("-h")), [b for b in blocks if "default" not in b]


def test_synthetic_with_real_sources_or_chains_without_synthetic_is_refused(capsys):
    for argv in (["--synthetic", "6", "--mindcube", "x"], ["--with-chains", "--mindcube", "x"], ["--synthetic", "2"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    err = capsys.readouterr().err
    assert "--synthetic replaces --mindcube and --spar" in err and "--with-chains needs --synthetic N" in err and "at least 3 questions" in err


# --------------------------------------------------------------------------------------------
# docs/synthetic_multiview.md: every command it shows is checked here

DOCS = Path(__file__).resolve().parents[1] / "docs" / "synthetic_multiview.md"
BUILD_COMMAND = "star-verl build-multiview --synthetic 24 --with-chains"  # run by test_the_command_writes_where_the_recipes_read_by_default


def docs_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL):
        commands += [line.strip() for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip() and not line.strip().startswith("#")]
    return commands


def test_every_command_of_the_docs_page_is_checked(monkeypatch, tmp_path):
    """The build command runs for real above; smoke's commands pass smoke's parser and compose with
    the synthetic set smoke builds (test_smoke_on_cpu builds it); the GPU commands compose and pass
    veRL's validation. A new command in the page fails here until it gets a check."""
    from star_verl import smoke
    from star_verl.recipes import compose_recipe, recipe_config_name, validate_recipe_config

    commands = docs_commands()
    assert commands[0] == BUILD_COMMAND
    monkeypatch.setenv("STAR_VERL_DATA", str(tmp_path))
    for command in commands[1:]:
        words = command.split()
        env = [w for w in words if re.fullmatch(r"[A-Z_]+=\S+", w)]
        for assignment in env:
            monkeypatch.setenv(*assignment.split("=", 1))
        words = words[len(env) :]
        (recipe,) = [w.split("=", 1)[1] for w in words if w.startswith("+recipe=")]
        if words[:2] == ["star-verl", "smoke"]:
            args = smoke.parse_args(words[2:])
            assert args.overrides == [f"+recipe={recipe}"] and args.steps == smoke.DEFAULT_STEPS
            if args.model is not None:  # the checkpoint the SFT smoke run writes (smoke's own outputs listing)
                assert str(args.model) == f"star_verl_smoke/star_r1_sft/checkpoints/global_step_{smoke.DEFAULT_STEPS}/huggingface"
            smoke.compose(recipe, smoke.run_overrides(recipe, tmp_path / "out", tmp_path / "model", args.steps, smoke.BATCH))
        elif "verl.trainer.main_ppo" in words or "verl.trainer.sft_trainer" in words:
            validate_recipe_config(compose_recipe(recipe, []), recipe_config_name(recipe))
        else:
            pytest.fail(f"no check for this command of {DOCS.name}: {command}")
    assert len(commands) == 5

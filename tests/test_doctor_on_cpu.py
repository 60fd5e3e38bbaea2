"""`star-verl doctor` on CPU: a healthy tiny set-up passes (GPU checks SKIP with --cpu-ok), each broken
case fails with its own message and fix; the 8-GPU launch scripts compose and validate the overrides
they pass (their commands are read from the scripts' dry run, i.e. bash expands them)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from star_verl import doctor
from star_verl.doctor import environment
from star_verl.doctor.context import FAIL, NO_GPU, PASS, SKIP, Check, Options
from star_verl.doctor.table import format_table
from star_verl.recipes import compose_recipe, recipe_config_name, recipe_dir, validate_recipe_config
from tests.dataset_fixtures import BAD_FILE_CASES, bad_data_file, without_column
from tests.tvr_prep_fixtures import synthetic_tvr_set

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"run_star_r1_sft_8gpu.sh": "star_r1_sft", "run_star_r1_tvr_8gpu.sh": "star_r1_tvr", "run_star_r1_mv_8gpu.sh": "star_r1_mv"}


@pytest.fixture(scope="module")
def tvr_dir(tmp_path_factory) -> Path:
    """Synthetic TVR parquet files, built by the project's own generator and converter (8 train rows)."""
    return synthetic_tvr_set(tmp_path_factory.mktemp("doctor_tvr"), n=10)


@pytest.fixture
def healthy(tiny_qwen25vl, tvr_dir) -> list[str]:
    return [
        "+recipe=star_r1_tvr",
        f"actor_rollout_ref.model.path={tiny_qwen25vl}",
        f"data.train_files={tvr_dir / 'train.parquet'}",
        f"data.val_files={tvr_dir / 'val.parquet'}",
        "data.train_batch_size=8",  # one step per epoch on the 8 rows (the recipe's 512 would train nothing)
        "actor_rollout_ref.actor.ppo_mini_batch_size=8",
    ]


@pytest.fixture(autouse=True)
def no_gpu(monkeypatch):
    """The same answers on any machine: doctor sees no GPU unless a test says otherwise."""
    monkeypatch.setattr(environment, "gpu_count", lambda: 0)


def run(argv: list[str]) -> dict[str, Check]:
    recipe = next((a.split("=", 1)[1] for a in argv if a.startswith("+recipe=")), None)
    flags = [a for a in argv if a.startswith("--")]
    overrides = [a for a in argv if not a.startswith(("+recipe=", "--"))]
    checks = doctor.run_checks(Options(recipe, tuple(overrides), cpu_ok="--cpu-ok" in flags))
    by_name = {}
    for c in checks:
        by_name[c.name.split(":")[0] if c.name.startswith("data ") else c.name] = c
        by_name[c.name] = c
    return by_name


def failures(checks: dict[str, Check]) -> set[str]:
    return {c.name for c in checks.values() if c.status == FAIL}


def test_healthy_tiny_setup_passes_and_skips_gpu_checks(healthy, capsys):
    assert doctor.main(["--cpu-ok", *healthy]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    for line in ("GPUs", "rollout engine (vllm)", "flash-attn"):
        row = next(r for r in out.splitlines() if r.startswith(line))
        assert "SKIP" in row and NO_GPU in row, row
    checks = run(["--cpu-ok", *healthy])
    for name in (
        "verl",
        "torchvision",
        "recipe composes",
        "veRL validate_config",
        "pkg:// imports",
        "reward settings",
        "model processor",
        "data train",
        "data val",
        "training steps",
        "chat template",
        "rollout.limit_images",
    ):
        assert checks[name].status == PASS, checks[name]
    assert "2 >= 2" in checks["rollout.limit_images"].detail  # TVR: initial + final image


def test_no_gpu_without_cpu_ok_fails_with_a_fix(healthy):
    checks = run(healthy)
    assert failures(checks) >= {"GPUs"}
    assert "no GPU visible" in checks["GPUs"].detail and "--cpu-ok" in checks["GPUs"].fix


def test_environment_only_without_a_recipe(capsys):
    assert doctor.main(["--cpu-ok"]) == 0
    assert "no +recipe=NAME given" in capsys.readouterr().out


def test_recipe_without_plus_is_a_usage_error(capsys):
    assert doctor.main(["recipe=star_r1_tvr"]) == 2
    assert "+recipe=NAME" in capsys.readouterr().err


def test_wrong_verl_version_fails(healthy, monkeypatch):
    real = environment.installed_version
    monkeypatch.setattr(environment, "installed_version", lambda d: "0.8.5" if d == "verl" else real(d))
    checks = run(["--cpu-ok", *healthy])
    assert failures(checks) == {"verl"}
    assert "0.8.5 is outside the supported range >=0.9.1,<0.10" in checks["verl"].detail
    assert checks["verl"].fix == environment.VERL_INSTALL


def test_missing_torchvision_fails_torchvision_and_the_processor(healthy):
    # A real environment without torchvision (as a CPU torch without a matching wheel): the module
    # cannot be imported, so transformers refuses the Qwen2.5-VL processor.
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "from star_verl import doctor\n"
        "from star_verl.doctor import environment\n"
        "environment.gpu_count = lambda: 0\n"
        f"sys.exit(doctor.main({['--json', '--cpu-ok', *healthy]!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert {n for n, c in checks.items() if c["status"] == FAIL} == {"torchvision", "model processor"}
    assert "does not import" in checks["torchvision"]["detail"]
    assert "torchvision" in checks["model processor"]["detail"].lower() and checks["model processor"]["fix"].startswith("install torchvision")
    # nothing downstream pretends to have checked what needs the processor
    assert checks["chat template"]["status"] == SKIP and checks["data train: train.parquet"]["status"] == SKIP


def test_bad_pkg_paths_fail_naming_each(healthy):
    checks = run(["--cpu-ok", *healthy, "data.custom_cls.path=pkg://star_verl.data.no_such_module", "reward.reward_manager.name=NoSuchManager"])
    assert "pkg:// imports" in failures(checks)
    detail = checks["pkg:// imports"].detail
    assert "data.custom_cls.path=pkg://star_verl.data.no_such_module" in detail
    assert "reward.reward_manager.module.path=pkg://star_verl.rewards.managers (NoSuchManager)" in detail
    assert "every node" in checks["pkg:// imports"].fix


def test_placeholder_mismatch_in_data_fails_naming_file_and_row(healthy, tvr_dir, tmp_path):
    table = pq.read_table(tvr_dir / "train.parquet")
    rows = table.to_pylist()
    rows[1]["prompt"][0]["content"] = "<image>" + rows[1]["prompt"][0]["content"]  # 3 placeholders, 2 images
    bad = tmp_path / "bad_train.parquet"
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), bad)
    checks = run(["--cpu-ok", *healthy, f"data.train_files={bad}"])
    # (limit_images counts placeholders, the images of a valid row: it flags the 3 as well)
    assert failures(checks) - {"rollout.limit_images"} == {"data train: bad_train.parquet"}
    detail = checks["data train: bad_train.parquet"].detail
    assert f"{bad} row 1" in detail and "3 <image> placeholder(s) but 2 image(s)" in detail
    assert checks["data val: val.parquet"].status == PASS


def test_missing_data_file_fails_with_the_build_command(healthy, tmp_path):
    checks = run(["--cpu-ok", *healthy, f"data.val_files={tmp_path / 'nope.parquet'}"])
    assert failures(checks) == {"data val: nope.parquet"}
    assert "does not exist" in checks["data val: nope.parquet"].detail and "star-verl build-tvr --synthetic" in checks["data val: nope.parquet"].fix


@pytest.mark.parametrize(("case", "cause"), [c for c in BAD_FILE_CASES if c[0] != "missing"])
def test_a_data_file_bad_as_a_whole_names_the_file_and_the_cause(case, cause, healthy, tmp_path):
    path = bad_data_file(tmp_path, case)
    checks = run(["--cpu-ok", *healthy, f"data.train_files={path}"])
    assert failures(checks) == {f"data train: {path.name}"}
    assert re.match(rf"^{path}: {cause}", checks[f"data train: {path.name}"].detail), checks[f"data train: {path.name}"].detail


@pytest.mark.parametrize("column", ["prompt", "reward_model"])
def test_a_missing_column_is_one_line_naming_the_file(column, healthy, tvr_dir):
    path = without_column(tvr_dir / "train.parquet", column)
    check = run(["--cpu-ok", *healthy, f"data.train_files={path}"])[f"data train: {path.name}"]
    assert check.status == FAIL and check.detail.startswith(f"{path}: missing column(s) ['{column}']") and "row" not in check.detail


def test_a_bad_files_rows_are_one_per_line_in_the_table(healthy, tvr_dir, tmp_path, capsys):
    table = pq.read_table(tvr_dir / "train.parquet")
    rows = table.to_pylist()
    for i in (2, 5):
        rows[i]["prompt"][0]["content"] = "<image>" + rows[i]["prompt"][0]["content"]
    bad = tmp_path / "two_bad.parquet"
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), bad)
    assert doctor.main(["--cpu-ok", *healthy, f"data.train_files={bad}"]) == 1
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("data train: two_bad.parquet"))
    assert f"FAIL {bad}: 2 bad row(s):" in " ".join(" ".join(lines[head : head + 2]).split()), lines[head : head + 2]
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(str(bad))]  # one line per bad row (wrapped below it)
    rows_named = [re.search(r"row (\d+) ", lines[i] + " " + lines[i + 1].strip()).group(1) for i in starts]
    assert rows_named == ["2", "5"], lines


def test_rows_all_checks_every_row_and_a_sample_says_it_is_one(healthy, capsys):
    def train_detail(argv):
        doctor.main(["--json", "--cpu-ok", *argv, *healthy])
        return next(c["detail"] for c in json.loads(capsys.readouterr().out) if c["name"].startswith("data train"))

    assert "a sample: the first 3 of 8 rows (--rows all checks every row)" in train_detail(["--rows", "3"])
    assert train_detail(["--rows", "all"]).startswith("valid: all 8 rows")
    with pytest.raises(SystemExit) as exit_:
        doctor.main(["--rows", "none", *healthy])
    assert exit_.value.code == 2 and "expected a positive number of rows or all, got 'none'" in capsys.readouterr().err


def test_missing_sft_data_points_at_generate_cot(tiny_qwen25vl, tmp_path):
    checks = run(["--cpu-ok", "+recipe=star_r1_sft", f"model.path={tiny_qwen25vl}", f"data.train_files={tmp_path / 'sft' / 'train.parquet'}"])
    fix = checks["data train: train.parquet"].fix
    assert "star-verl generate-cot --in $STAR_VERL_DATA/multiview/sft_pool.parquet --out $STAR_VERL_DATA/sft" in fix


# --------------------------------------------------------------------------------------------
# the model check: a local folder, the hub cache, or one attempt at the hub


def test_a_model_path_that_is_not_a_local_folder_fails_at_once(healthy, tmp_path):
    checks = run(["--cpu-ok", *healthy, f"actor_rollout_ref.model.path={tmp_path / 'no_model'}"])
    assert checks["model processor"].detail == f"{tmp_path / 'no_model'} does not exist (not a local folder)"
    (tmp_path / "weights.bin").write_bytes(b"x")
    checks = run(["--cpu-ok", *healthy, f"actor_rollout_ref.model.path={tmp_path / 'weights.bin'}"])
    assert checks["model processor"].detail.startswith(f"{tmp_path / 'weights.bin'} is a file, not a model folder")
    assert "star-verl tiny-model DIR" in checks["model processor"].fix


def test_an_unreachable_hub_fails_the_model_check_after_one_attempt(healthy, monkeypatch, capsys, caplog):
    from huggingface_hub import constants

    repo = "nobody-star-verl/no-such-model"
    checks = run(["--cpu-ok", *healthy, f"actor_rollout_ref.model.path={repo}"])  # the tests run with HF_HUB_OFFLINE=1
    assert checks["model processor"].detail.startswith(f"{repo} is not a local folder and not in HF_HOME's cache")
    assert "HF_HUB_OFFLINE is set, so nothing is downloaded" in checks["model processor"].detail
    # online, with a hub that refuses connections (port 9 of this machine): one attempt, no retries
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    checks = run(["--cpu-ok", *healthy, f"actor_rollout_ref.model.path={repo}"])
    detail = checks["model processor"].detail
    assert "http://127.0.0.1:9 is unreachable (ConnectionRefusedError" in detail, detail
    assert checks["chat template"].status == SKIP
    assert "Retrying" not in capsys.readouterr().err + caplog.text


# --------------------------------------------------------------------------------------------
# the quickstart's CPU command


def test_the_quickstart_cpu_command_passes_with_no_network_following_the_printed_hint(tiny_qwen25vl, tmp_path, monkeypatch, capsys):
    """star-verl tiny-model DIR (the session's tiny model is that builder's), star-verl build-tvr --synthetic 24,
    then doctor --cpu-ok with the model path: the training-steps row names the batch sizes, and with them it passes."""
    from star_verl.prep import build_tvr

    assert build_tvr.main(["--synthetic", "24", "--seed", "0", "--out", str(tmp_path / "tvr"), "--workers", "1", "--no-progress"]) in (0, None)
    monkeypatch.setenv("STAR_VERL_DATA", str(tmp_path))
    command = ["--cpu-ok", "+recipe=star_r1_tvr", f"actor_rollout_ref.model.path={tiny_qwen25vl}"]
    checks = run(command)
    assert failures(checks) == {"training steps"}
    hint = re.match(r"set ((?:\S+=\d+ )+)\(", checks["training steps"].fix)
    assert hint, checks["training steps"].fix
    overrides = hint.group(1).split()
    assert overrides == ["data.train_batch_size=16", "actor_rollout_ref.actor.ppo_mini_batch_size=16"]
    capsys.readouterr()
    assert doctor.main([*command, *overrides]) == 0, capsys.readouterr().out


def test_a_validation_file_not_built_is_left_out_with_the_switch(healthy, tvr_dir, tmp_path):
    """data.star.skip_missing_val_files: doctor says what StarRLDataset will do (left out; none left: a failure)."""
    val = [str(tvr_dir / "val.parquet"), str(tmp_path / "mmsi.parquet")]
    checks = run(["--cpu-ok", *healthy, f"data.val_files={val}", "data.star.skip_missing_val_files=true"])
    assert not failures(checks), {n: c.detail for n, c in checks.items() if c.status == FAIL}
    assert "left out of validation" in checks["data val: mmsi.parquet"].detail
    checks = run(["--cpu-ok", *healthy, f"data.val_files={[str(tmp_path / 'mmsi.parquet')]}", "data.star.skip_missing_val_files=true"])
    assert failures(checks) == {"data val: mmsi.parquet"}


def test_too_few_gpus_fails_and_a_node_share_passes(healthy, monkeypatch):
    monkeypatch.setattr(environment, "gpu_count", lambda: 2)
    checks = run([*healthy, "actor_rollout_ref.rollout.name=sglang"])
    assert "GPUs" in failures(checks)
    assert "2 visible on this node, the recipe needs 8 per node x 1 node(s) = 8" in checks["GPUs"].detail
    assert "trainer.n_gpus_per_node=2" in checks["GPUs"].fix
    # two nodes of two GPUs: this node holds its share
    checks = run([*healthy, "trainer.n_gpus_per_node=2", "trainer.nnodes=2"])
    assert checks["GPUs"].status == PASS and "each of the 2 nodes" in checks["GPUs"].detail


def test_gpu_node_without_the_rollout_engine_fails(healthy, monkeypatch):
    monkeypatch.setattr(environment, "gpu_count", lambda: 8)
    real = environment.installed_version
    monkeypatch.setattr(environment, "installed_version", lambda d: None if d in ("vllm", "flash-attn") else real(d))
    checks = run(healthy)
    assert {"rollout engine (vllm)", "flash-attn"} <= failures(checks)
    assert checks["rollout engine (vllm)"].fix == 'pip install "verl[vllm]==0.9.1"'
    assert "attn_implementation=sdpa" in checks["flash-attn"].fix


def test_limit_images_below_the_data_fails(healthy):
    checks = run(["--cpu-ok", *healthy, "actor_rollout_ref.rollout.limit_images=1"])
    assert failures(checks) == {"rollout.limit_images"}
    assert checks["rollout.limit_images"].fix == "set actor_rollout_ref.rollout.limit_images=2"


def test_config_validation_failure_is_reported(healthy):
    checks = run(["--cpu-ok", *healthy, "data.train_batch_size=3", "actor_rollout_ref.actor.ppo_mini_batch_size=2"])
    assert "veRL validate_config" in failures(checks)


def test_unknown_reward_setting_fails(healthy):
    checks = run(["--cpu-ok", *healthy, "+reward.custom_reward_function.reward_kwargs.tvr_typo=1"])
    assert failures(checks) == {"reward settings"} and "tvr_typo" in checks["reward settings"].detail


def test_checks_run_from_one_ordered_list_on_the_context_the_stages_build():
    import ast
    import dataclasses

    from star_verl.doctor.context import Context

    fields = [f.name for f in dataclasses.fields(Context)]
    stages = [step.provides for step in doctor.CHECKS if step.provides]
    assert len(stages) == len(set(stages)) and set(stages) <= set(fields) and "options" not in stages
    # only doctor/data.py uses the datasets and the prompt assembly (one place to follow them)
    for module in (REPO / "star_verl" / "doctor").glob("*.py"):
        imported = {node.module for node in ast.walk(ast.parse(module.read_text())) if isinstance(node, ast.ImportFrom) and node.module}
        uses_data = any(m.startswith(("star_verl.data", "star_verl.templates")) for m in imported)
        assert uses_data == (module.name == "data.py"), module.name


def test_table_lists_fix_under_each_failure():
    table = format_table([Check("a", PASS, "fine"), Check("bb", FAIL, "broken", "do this")])
    lines = table.splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert lines[3].split()[:2] == ["bb", "FAIL"] and lines[4].strip() == "fix: do this"
    assert lines[-1] == "1 passed, 1 failed, 0 skipped"


# --------------------------------------------------------------------------------------------
# launch scripts


def script_commands(script: Path, env: dict[str, str]) -> list[list[str]]:
    """The commands a launch script would run, as bash expands them (STAR_VERL_DRY_RUN=1)."""
    proc = subprocess.run(
        ["bash", str(script), "trainer.total_epochs=1"],
        env={**os.environ, **env, "STAR_VERL_DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [shlex.split(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_launch_script_overrides_compose_and_validate(script, tmp_path, monkeypatch):
    path = REPO / "recipes" / script
    assert path.exists() and (recipe_dir() / script).exists()  # shipped inside the package (wheel: recipe/*.sh)
    env = {"STAR_VERL_DATA": str(tmp_path), "SFT_CKPT": str(tmp_path / "sft_ckpt")}
    commands = script_commands(path, env)
    assert len(commands) == 2
    doctor_cmd, train_cmd = commands
    assert doctor_cmd[:2] == ["star-verl", "doctor"] and "--cpu-ok" not in doctor_cmd
    name = SCRIPTS[script]
    i = train_cmd.index(f"+recipe={name}")
    assert doctor_cmd[2:] == train_cmd[i:]  # doctor checks exactly what the trainer gets
    if name == "star_r1_sft":
        assert train_cmd[:i] == ["torchrun", "--standalone", "--nnodes=1", "--nproc-per-node=8", "-m", "verl.trainer.sft_trainer"]
    else:
        assert train_cmd[:i] == ["python3", "-m", "verl.trainer.main_ppo"]
    overrides = train_cmd[i + 1 :]
    assert overrides[-1] == "trainer.total_epochs=1"  # the user's extra overrides come last (they win)
    for key, value in env.items():  # the trainer inherits the script's environment, which the recipe reads
        monkeypatch.setenv(key, value)
    cfg = compose_recipe(name, overrides)
    validate_recipe_config(cfg, recipe_config_name(name))
    assert str(cfg.data.train_files).startswith(f"{tmp_path}/")
    assert int(cfg.trainer.n_gpus_per_node) == 8 and int(cfg.trainer.nnodes) == 1
    if name != "star_r1_sft":
        assert cfg.actor_rollout_ref.actor.use_dynamic_bsz is True
        assert cfg.actor_rollout_ref.ref.log_prob_use_dynamic_bsz is True and cfg.actor_rollout_ref.rollout.log_prob_use_dynamic_bsz is True
        assert cfg.actor_rollout_ref.actor.ppo_max_token_len_per_gpu >= cfg.data.max_prompt_length + cfg.data.max_response_length
        assert cfg.actor_rollout_ref.rollout.limit_images == {"star_r1_tvr": 2, "star_r1_mv": 5}[name]
    if name == "star_r1_mv":
        assert cfg.actor_rollout_ref.model.path == str(tmp_path / "sft_ckpt")


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_launch_script_repeats_no_recipe_value(script, tmp_path, monkeypatch):
    """A script adds paths and hardware settings; a value the recipe already has is not written again
    (torchrun's process count aside: the script ties the recipe's GPU count to it)."""
    env = {"STAR_VERL_DATA": str(tmp_path), "SFT_CKPT": str(tmp_path / "sft_ckpt"), "MODEL": "/models/start"}
    _, train_cmd = script_commands(REPO / "recipes" / script, env)
    name = SCRIPTS[script]
    overrides = train_cmd[train_cmd.index(f"+recipe={name}") + 1 : -1]  # without the test's trainer.total_epochs=1
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    recipe = compose_recipe(name)
    for override in overrides:
        key, value = override.split("=", 1)
        if key == "trainer.n_gpus_per_node":
            assert f"--nproc-per-node={value}" in train_cmd, override
            continue
        assert str(OmegaConf.select(recipe, key)).lower() != value.lower(), f"{script} repeats the recipe's {override}"


def test_mv_script_refuses_to_start_without_the_sft_checkpoint():
    env = {k: v for k, v in os.environ.items() if k != "SFT_CKPT"}
    proc = subprocess.run(
        ["bash", str(REPO / "recipes" / "run_star_r1_mv_8gpu.sh")], env={**env, "STAR_VERL_DRY_RUN": "1"}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "set SFT_CKPT" in proc.stderr and proc.stdout == ""


def test_sft_recipe_checks_its_conversations(tiny_qwen25vl, tmp_path):
    from tests.dataset_fixtures import mv_sft_row, write_rows

    good = write_rows(tmp_path / "sft.parquet", [mv_sft_row(i, [(112, 112), (56, 84)]) for i in range(8)], sft=True)
    base = [
        "--cpu-ok",
        "+recipe=star_r1_sft",
        f"model.path={tiny_qwen25vl}",
        f"data.train_files={good}",
        f"data.val_files={good}",
        "data.train_batch_size=8",
    ]
    checks = run(base)
    assert not failures(checks), [checks[n] for n in failures(checks)]
    assert checks["data train"].status == PASS and "data.max_length" in checks["data train"].detail
    assert checks["rollout engine"].status == SKIP and checks["rollout.limit_images"].status == SKIP
    checks = run([*base, "data.max_length=64"])
    assert failures(checks) == {"data train: sft.parquet"} and "exceed data.max_length=64" in checks["data train: sft.parquet"].detail


def test_data_settings_the_dataset_refuses_fail_before_any_file_is_read(healthy):
    checks = run(["--cpu-ok", *healthy, "data.filter_overlong_prompts=true"])
    assert failures(checks) == {"data settings"} and "data.filter_overlong_prompts=true" in checks["data settings"].detail
    assert checks["data train"].status == SKIP and checks["chat template"].status == SKIP
    checks = run(["--cpu-ok", *healthy, "data.star.template=no_such_template"])
    assert failures(checks) == {"data settings"} and "no_such_template" in checks["data settings"].detail


def test_legacy_reward_keys_that_main_ppo_ignores_fail(healthy):
    checks = run(["--cpu-ok", *healthy, "reward_model.reward_manager=dapo", "custom_reward_function.path=/x.py"])
    assert failures(checks) == {"ignored legacy keys"}
    assert "ignores custom_reward_function.path, reward_model.reward_manager" in checks["ignored legacy keys"].detail
    assert checks["ignored legacy keys"].fix.startswith("move them under reward.")


def test_override_typo_fails_composition_naming_the_key(healthy):
    checks = run(["--cpu-ok", *healthy, "data.star.max_pixel=1000"])
    assert failures(checks) == {"recipe composes"} and "max_pixel" in checks["recipe composes"].detail
    assert "the key may be misspelt" in checks["recipe composes"].fix


@pytest.mark.parametrize("doctor_rc", [0, 1])
def test_launch_script_starts_the_trainer_only_when_doctor_passes(doctor_rc, tmp_path):
    # Stand-ins for the two commands on PATH: `star-verl` exits with doctor_rc; the trainer records its call.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "star-verl").write_text(f"#!/bin/sh\nexit {doctor_rc}\n")
    (bin_dir / "python3").write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "trainer_called"}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STAR_VERL_DATA": str(tmp_path)}
    env.pop("STAR_VERL_DRY_RUN", None)
    proc = subprocess.run(["bash", str(REPO / "recipes" / "run_star_r1_tvr_8gpu.sh")], env=env, capture_output=True, text=True, timeout=60)
    called = tmp_path / "trainer_called"
    if doctor_rc:
        assert proc.returncode == doctor_rc and not called.exists()
    else:
        assert proc.returncode == 0 and called.read_text().startswith("-m verl.trainer.main_ppo +recipe=star_r1_tvr ")


def test_train_set_smaller_than_one_batch_fails_and_following_the_fix_passes(healthy):
    checks = run(["--cpu-ok", *healthy, "data.train_batch_size=16", "actor_rollout_ref.actor.ppo_mini_batch_size=16"])
    assert failures(checks) == {"training steps"}
    assert checks["training steps"].detail == "8 train rows // data.train_batch_size=16 = 0 step(s) per epoch x 15 epoch(s): nothing would be trained"
    assert checks["training steps"].fix == (
        "set data.train_batch_size=8 actor_rollout_ref.actor.ppo_mini_batch_size=8 (data.train_batch_size and "
        "actor_rollout_ref.actor.ppo_mini_batch_size (which divides it) times actor_rollout_ref.rollout.n=5 must be divisible "
        "by the 8 GPU(s) of trainer.n_gpus_per_node x trainer.nnodes), or add data"
    )
    checks = run(
        [
            "--cpu-ok",
            *healthy,
            "data.train_batch_size=16",
            "actor_rollout_ref.actor.ppo_mini_batch_size=16",
            *checks["training steps"].fix.split()[1:3],
        ]
    )
    assert not failures(checks), {n: c.detail for n, c in checks.items() if c.status == FAIL}


def test_batch_sizes_keep_rollout_n_divisible_by_the_gpus():
    from star_verl.doctor.data import batch_sizes_for

    assert batch_sizes_for(rows=21, batch=512, mini_batch=128, group=5, gpus=8) == (16, 16)  # 16 x 5 = 80 = 10 per GPU
    assert batch_sizes_for(rows=100, batch=512, mini_batch=32, group=5, gpus=8) == (96, 32)
    assert batch_sizes_for(rows=21, batch=512, mini_batch=128, group=8, gpus=8) == (21, 21)
    assert batch_sizes_for(rows=1, batch=512, mini_batch=128, group=5, gpus=8) is None


def test_rollout_engine_built_for_another_torch_fails(healthy, monkeypatch):
    # a vLLM of veRL's tested series whose wheel was built for another torch than the installed one
    real_version, real_requirements = environment.installed_version, environment.requirements
    monkeypatch.setattr(environment, "installed_version", lambda d: "0.24.0" if d == "vllm" else real_version(d))
    monkeypatch.setattr(environment, "requirements", lambda d: ["torch==2.10.0", "numpy"] if d == "vllm" else real_requirements(d))
    checks = run(["--cpu-ok", *healthy])
    assert failures(checks) == {"rollout engine (vllm)"}
    assert checks["rollout engine (vllm)"].detail == f"vllm 0.24.0 requires torch==2.10.0; torch {real_version('torch')} is installed"

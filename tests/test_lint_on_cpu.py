"""The tree is linted and formatted by the ruff version pinned in the `test` extras, with the
configuration in pyproject.toml ([tool.ruff]): a change that breaks either fails the suite, so `.ci/run`
stays the README's two commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes_on_the_tree(command):
    proc = subprocess.run([sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ruff {' '.join(command)} failed (fix with `ruff check --fix .` / `ruff format .`):\n{proc.stdout}{proc.stderr}"


def test_the_pinned_ruff_is_the_one_running():
    """The version in pyproject's test extras is the one installed: a silently newer ruff could
    disagree with the committed formatting."""
    pins = re.findall(r'"ruff([^"]*)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    version = subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert pins == [f"=={version}"]

"""The shipped recipes: where they are and what each is for (`star-verl recipes`)."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

RECIPE_GROUP = "recipe"
PACKAGE_HEADER = "# @package _global_"


def recipe_dir() -> Path:
    """The folder Hydra reads `+recipe=NAME` from (inside the package, wheel or editable)."""
    return Path(str(resources.files("star_verl.config").joinpath(RECIPE_GROUP)))


def recipe_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(recipe_dir().glob("*.yaml"))}


def recipe_summary(path: Path) -> str:
    """The recipe's one-line description: its first comment line after the package header."""
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="star-verl recipes", description="List the recipes star-verl ships.")
    parser.parse_args(argv)
    files = recipe_files()
    width = max(len(name) for name in files)
    for name, path in files.items():
        print(f"{name:<{width}}  {recipe_summary(path)}")
    return 0

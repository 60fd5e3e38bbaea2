"""The `star-verl` command. Each subcommand lives in its own module and is imported only when used,
so `star-verl --version` and `star-verl recipes` never import torch or veRL."""

from __future__ import annotations

import argparse
import importlib
import sys

from star_verl import __version__

# name -> (module with `main(argv) -> int`, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "recipes": ("star_verl.recipes", "list the shipped recipes"),
    # the same programs as data_prep/*.py, for users who installed the wheel and have no checkout
    "build-tvr": ("star_verl.prep.build_tvr", "build the TVR parquet files (TRANCE or synthetic)"),
    "build-multiview": ("star_verl.prep.build_multiview", "build MindCube/SPAR-7M training data and the benchmarks"),
    "generate-cot": ("star_verl.prep.teacher.run", "teacher chains of thought for the SFT cold start"),
    "eval": ("star_verl.eval.cli", "score generations, generate with a model, compare runs"),
    "curves": ("star_verl.eval.curves", "plot reward components per step from trainer.rollout_data_dir"),
    "doctor": ("star_verl.doctor", "preflight check of the environment, a recipe and its data"),
    "tiny-model": ("star_verl.tiny_model", "write a tiny random Qwen2.5-VL (model, tokenizer, processor) for trials on CPU"),
    "smoke": ("star_verl.smoke", "run a recipe's real trainer for a few steps on CPU with a tiny model (needs vLLM's CPU build)"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="star-verl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"star-verl {__version__}")
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in SUBCOMMANDS.items()))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the command (see `star-verl COMMAND --help`)")
    ns = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[ns.command][0])
    return int(module.main(ns.args) or 0)


if __name__ == "__main__":
    sys.exit(main())

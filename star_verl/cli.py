"""The `star-verl` command. Each subcommand lives in its own module and is imported only when used,
so `star-verl --version` and `star-verl recipes` never import torch or veRL."""

from __future__ import annotations

import argparse
import importlib
import sys

from star_verl import __version__

# name -> (module with `main(argv) -> int`, one sentence for `star-verl --help`)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "recipes": ("star_verl.recipes", "List the shipped recipes with their veRL entry point and purpose."),
    # the same programs as data_prep/*.py, for users who installed the wheel and have no checkout
    "build-tvr": ("star_verl.prep.build_tvr", "Build the TVR parquet files from TRANCE or from the built-in synthetic generator."),
    "build-multiview": (
        "star_verl.prep.build_multiview",
        "Build the multi-view training data and benchmarks from MindCube, SPAR-7M and MMSI, or a synthetic set (--synthetic N).",
    ),
    "generate-cot": ("star_verl.prep.teacher.run", "Ask a teacher model for three-step chains of thought and write the SFT cold-start data."),
    "eval": ("star_verl.eval.cli", "Generate with a model, score generations under a benchmark protocol, and compare runs."),
    "curves": ("star_verl.eval.curves", "Plot the reward components per step from a run's trainer.rollout_data_dir."),
    "doctor": ("star_verl.doctor", "Check the environment, a recipe and its data before a run."),
    "tiny-model": ("star_verl.tiny_model", "Write a tiny random Qwen2.5-VL (model, tokenizer, processor) for checks on CPU."),
    "smoke": ("star_verl.smoke", "Run a recipe's real veRL trainer for a few steps on CPU with a tiny model."),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The formatter of every star-verl parser: descriptions and epilogs as written, and each option's
    default appended to its help, unless the help states it already, the option is a flag (off unless
    given) or required, or it has no value by default (its help then says what that means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.nargs == 0 or action.required or action.default in (None, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def commands_listing() -> str:
    width = max(map(len, SUBCOMMANDS))
    return "commands:\n" + "\n".join(f"  {name:<{width}}  {sentence}" for name, (_, sentence) in SUBCOMMANDS.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="star-verl",
        description="STAR-R1 as a plugin for veRL: data converters, recipes, a preflight check, a CPU smoke run and evaluation.",
        epilog=commands_listing() + "\n\n`star-verl COMMAND --help` shows a command's options.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"star-verl {__version__}")
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), metavar="COMMAND", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the command (see `star-verl COMMAND --help`)")
    ns = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[ns.command][0])
    return int(module.main(ns.args) or 0)


if __name__ == "__main__":
    sys.exit(main())

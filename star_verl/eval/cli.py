"""`star-verl eval score | generate | report` (see `star-verl eval COMMAND --help`)."""

from __future__ import annotations

import argparse
import sys

from star_verl.cli import HelpFormatter
from star_verl.eval.scoring import PROTOCOLS
from star_verl.tasks.registry import DATA_SOURCES, ORIGINS


def _score(ns: argparse.Namespace) -> int:
    from star_verl.eval.scoring import score_file

    metrics = score_file(
        ns.generations, ns.out, protocol=ns.protocol, skip_bad=ns.skip_bad, origin=ns.origin, data_source=ns.data_source, plots=not ns.no_plots
    )
    for problem in metrics["bad_lines"]:
        print(f"skipped: {problem}", file=sys.stderr)
    for warning in metrics["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    for name, block in metrics["benchmarks"].items():
        head = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} -" for k, v in block["headline"].items())
        print(f"{name} [{ns.protocol}] n={block['format']['n']}: {head}")
    print(f"wrote {ns.out}/metrics.json, per_sample.jsonl, metrics.md and plots")
    return 0


def _generate(ns: argparse.Namespace) -> int:
    from star_verl.eval.generate import generate

    n = generate(ns.model, ns.data, ns.out, template=ns.template, recipe=ns.recipe, n=ns.n, temperature=ns.temperature, top_p=ns.top_p,
                 max_new_tokens=ns.max_new_tokens, min_pixels=ns.min_pixels, max_pixels=ns.max_pixels, total_max_pixels=ns.total_max_pixels,
                 limit=ns.limit, batch_size=ns.batch_size, backend=ns.backend, seed=ns.seed, overwrite=ns.overwrite)  # fmt: skip
    print(f"wrote {n} generation(s) to {ns.out}")
    return 0


def _report(ns: argparse.Namespace) -> int:
    from star_verl.eval.report import report

    result = report(ns.runs, ns.out, names=ns.names)
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {ns.out}/report.md, report.json and report.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="star-verl eval",
        description="Score generations with the benchmarks' protocols, generate with a model, compare runs.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "score",
        description="Score a generations file (star-verl lines or veRL validation dumps) under a benchmark protocol.",
        help="score a generations file (star-verl lines or veRL validation dumps)",
        formatter_class=HelpFormatter,
    )
    s.add_argument("generations", help="JSON lines: {id, data_source, response, ground_truth, extra_info} or veRL's validation_data_dir/<step>.jsonl")
    s.add_argument("--out", required=True, help="output folder: metrics.json, per_sample.jsonl, metrics.md, <benchmark>.png")
    s.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="official",
        help="official: each benchmark's own scorer, quirks included; strict: the reward's parsers",
    )
    s.add_argument("--skip-bad", action="store_true", help="list bad lines in metrics.json and go on, instead of stopping at the first")
    s.add_argument(
        "--origin",
        choices=sorted(ORIGINS),
        help="benchmark of lines without extra_info.origin (veRL dumps), e.g. mindcube_tiny (default: the data source)",
    )
    s.add_argument("--data-source", choices=DATA_SOURCES, help="data source of veRL dump lines (default: read from the ground truth)")
    s.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    s.set_defaults(func=_score)

    g = sub.add_parser(
        "generate",
        description="Run a model on a star-verl parquet with the training template and pixel budget (vLLM if installed, else transformers).",
        help="run a model on a star-verl parquet (vLLM if installed, else transformers)",
        formatter_class=HelpFormatter,
    )
    g.add_argument("--model", required=True, help="model folder or hub id (nothing is downloaded in tests)")
    g.add_argument("--data", required=True, help="star-verl RL parquet")
    g.add_argument("--out", required=True, help="generations file to write (JSON lines)")
    g.add_argument("--template", default="auto", help="template name or auto (the data source's default; as data.star.template)")
    g.add_argument(
        "--recipe",
        help="take template, pixel budget and max_response_length from this recipe (default: star_r1_tvr for TVR rows, star_r1_mv otherwise)",
    )
    g.add_argument("--n", type=int, help="samples per prompt (default: the recipe's validation n, 1)")
    g.add_argument("--temperature", type=float, help="0 = greedy (default: the recipe's validation temperature, 0 as in veRL's val_kwargs)")
    g.add_argument("--top-p", type=float, help="nucleus sampling with temperature > 0 (default: the recipe's validation top_p, else 1.0)")
    g.add_argument("--max-new-tokens", type=int, help="default: the recipe's data.max_response_length, else 2048")
    g.add_argument("--min-pixels", type=int, help="per-image floor in pixels (default: the recipe's data.star.min_pixels)")
    g.add_argument("--max-pixels", type=int, help="per-image cap in pixels (default: the recipe's data.star.max_pixels)")
    g.add_argument("--total-max-pixels", type=int, help="per-sample cap over all images (default: the recipe's data.star.total_max_pixels)")
    g.add_argument("--limit", type=int, help="only the first N rows (default: every row)")
    g.add_argument("--batch-size", type=int, default=64, help="rows per vLLM call")
    g.add_argument("--backend", choices=("auto", "vllm", "transformers"), default="auto", help="auto: vLLM when it is installed, else transformers")
    g.add_argument("--seed", type=int, default=0, help="sampling seed")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    g.set_defaults(func=_generate)

    r = sub.add_parser(
        "report",
        description="Compare scored runs beside the paper's numbers in one table and one figure.",
        help="compare scored runs beside the paper's numbers (one table, one figure)",
        formatter_class=HelpFormatter,
    )
    r.add_argument("runs", nargs="+", help="folders written by `eval score`")
    r.add_argument("--out", required=True, help="output folder: report.md, report.json, report.png")
    r.add_argument("--names", nargs="+", help="run names (default: the folder names)")
    r.set_defaults(func=_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from star_verl.eval.scoring import InputError

    ns = build_parser().parse_args(argv)
    try:
        return ns.func(ns)
    except (InputError, FileNotFoundError, FileExistsError, KeyError, ValueError) as exc:
        print(f"star-verl eval {ns.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

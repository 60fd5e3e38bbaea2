"""Build the TVR parquet files (train / val / test) from TRANCE or from the synthetic generator.

    python data_prep/build_tvr.py --synthetic 10000 --seed 0          # the built-in default data
    python data_prep/build_tvr.py --trance ~/datasets/trance          # the real TRANCE release

The output goes to --out, by default `$STAR_VERL_DATA/tvr` (`~/data/star_verl/tvr` when
STAR_VERL_DATA is unset): the recipes' default `data.train_files` / `data.val_files` read there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from star_verl.cli import HelpFormatter
from star_verl.prep.trance import SPLITS, TRANCE_SPLIT_SIZES, TranceConvertConfig, convert_trance, output_paths
from star_verl.prep.trance_format import ALL_ATTRIBUTES, ATTRIBUTES, VIEWS

DATA_ENV = "STAR_VERL_DATA"
SYNTHETIC_SUBDIR = "trance_synthetic"


def default_data_root() -> Path:
    """Where star-verl's data lives: $STAR_VERL_DATA, else ~/data/star_verl (the recipes' default)."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / "data" / "star_verl").expanduser()


def default_tvr_dir() -> Path:
    return default_data_root() / "tvr"


def synthetic_split_sizes(n: int) -> tuple[int, int, int]:
    """Train / val / test sample counts of an n-sample synthetic set: 2% val (a quick validation
    during training, x3 rows with the three views), 10% test, the rest train; one each at least."""
    if n < 3:
        raise ValueError(f"a synthetic set needs at least 3 samples (one per split), got {n}")
    val, test = max(1, round(0.02 * n)), max(1, round(0.10 * n))
    return n - val - test, val, test


def _names(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in names if v not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{option}: {text!r} is not a comma-separated list of {', '.join(allowed)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="star-verl build-tvr",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trance", metavar="DIR", help="TRANCE folder (data.jsonl + image/, or data.h5)")
    src.add_argument(
        "--synthetic", metavar="N", type=int, help=f"render N synthetic samples into OUT/{SYNTHETIC_SUBDIR} (TRANCE format), then convert them"
    )
    p.add_argument("--out", metavar="DIR", help=f"output folder (default: ${DATA_ENV}/tvr, else ~/data/star_verl/tvr)")
    p.add_argument("--seed", type=int, default=0, help="synthetic: random seed (same seed and N, same data, whatever --workers)")
    p.add_argument("--workers", type=int, default=None, help="synthetic: rendering processes (default: all CPUs)")
    p.add_argument("--views", default=",".join(VIEWS), help="final views of the val/test rows, one row per sample and view (default: %(default)s)")
    p.add_argument(
        "--train-views", default="center", help="final views of the train rows (default: %(default)s; left/right are then the cross-view test)"
    )
    p.add_argument(
        "--attributes",
        default=",".join(ATTRIBUTES),
        help="keep samples whose transformations all use these attributes (default: %(default)s; also: position)",
    )
    p.add_argument(
        "--split-sizes",
        metavar="TRAIN,VAL,TEST",
        help=f"samples per split, in file order (TRANCE default: {','.join(map(str, TRANCE_SPLIT_SIZES))}; synthetic: 88%%/2%%/10%%)",
    )
    p.add_argument("--limit", type=int, help="at most N samples per split, for a quick subset (default: every sample)")
    p.add_argument(
        "--max-pixels", type=int, help="resize every image to at most this many pixels (Qwen2.5-VL rounding); default: keep the bytes as read"
    )
    p.add_argument(
        "--no-object-positions",
        action="store_true",
        help="list the initial objects without their 'at (x, y)' grid coordinates (default: with them; the paper's prompt is not published)",
    )
    p.add_argument("--skip-bad", action="store_true", help="skip bad samples (counted and listed) instead of stopping at the first")
    p.add_argument("--overwrite", action="store_true", help="replace existing output")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        views = _names(args.views, VIEWS, "--views")
        train_views = _names(args.train_views, VIEWS, "--train-views")
        attributes = _names(args.attributes, ALL_ATTRIBUTES, "--attributes")
        if args.split_sizes:
            try:
                sizes = tuple(int(v) for v in args.split_sizes.split(","))
            except ValueError:
                raise argparse.ArgumentTypeError(f"--split-sizes: {args.split_sizes!r} is not three integers") from None
            if len(sizes) != 3:
                raise argparse.ArgumentTypeError(f"--split-sizes: {args.split_sizes!r} is not three integers")
        elif args.synthetic is not None:
            sizes = synthetic_split_sizes(args.synthetic)
        else:
            sizes = TRANCE_SPLIT_SIZES
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
    out = Path(args.out).expanduser() if args.out else default_tvr_dir()
    config = TranceConvertConfig(
        views=views, train_views=train_views, attributes=attributes, split_sizes=sizes, limit=args.limit,
        skip_bad=args.skip_bad, overwrite=args.overwrite, max_pixels=args.max_pixels, progress=not args.no_progress,
        object_positions=not args.no_object_positions,
    )  # fmt: skip
    start = time.time()
    try:
        # Refuse before rendering for minutes if the conversion would refuse at the end.
        existing = [str(p) for p in output_paths(out).values() if p.exists()]
        if existing and not args.overwrite:
            raise FileExistsError(f"output exists: {', '.join(existing)}; pass --overwrite to replace it")
        if args.synthetic is not None:
            from star_verl.prep.synthetic_tvr import SYNTHETIC_ATTRIBUTES, SyntheticConfig, write_synthetic_trance

            # the generator draws only the selected attributes it knows (it makes no position moves)
            drawn = tuple(a for a in attributes if a in SYNTHETIC_ATTRIBUTES)
            if not drawn:
                raise ValueError(f"the synthetic generator makes no position moves: --attributes needs one of {', '.join(SYNTHETIC_ATTRIBUTES)}")
            synthetic = SyntheticConfig(attributes=drawn)
            source = write_synthetic_trance(
                out / SYNTHETIC_SUBDIR,
                args.synthetic,
                args.seed,
                config=synthetic,
                workers=args.workers,
                overwrite=args.overwrite,
                progress=not args.no_progress,
            )
        else:
            source = Path(args.trance)
        report = convert_trance(source, out, config)
    except (FileExistsError, FileNotFoundError, ImportError, ValueError) as exc:
        print(f"build_tvr: error: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    print(f"wrote {', '.join(str(output_paths(out)[s]) for s in SPLITS)} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-up and __getitem__ speed of StarRLDataset against veRL's RLHFDataset on the same parquet.

    python bench/bench_dataset.py [--rows 20000] [--views 4] [--size 112x84] [--items 2000] [--model PATH]

Writes a `--rows`-row parquet of `--views`-image multi-view rows (star-verl's row schema; distinct
noisy PNGs, reused across rows so the file stays small), then in one run:
  - veRL:  RLHFDataset with data.filter_overlong_prompts=True (its processor on every row, every start);
  - star:  StarRLDataset cold (prompt-length cache removed: validates and measures every row, writes
           the cache) and warm (cache hit: the start of every later run);
and `--items` calls of `__getitem__` on each. Both load the file through `datasets`, whose Arrow
cache is warmed first, so neither start pays the one-off parquet -> Arrow conversion (the cold star
start reads the rows it measures with pyarrow, `star_verl.data.files.iter_rows`).
The model is a tiny Qwen2.5-VL built locally (star_verl.tiny_model, as `star-verl tiny-model`) unless `--model` names one; the
image processor and tokenizer are the real Qwen2.5-VL classes either way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_parquet(path: Path, rows: int, views: int, size: tuple[int, int]) -> None:
    sys.path.insert(0, str(ROOT))
    from star_verl.prep.schema import image_entry
    from tests.dataset_fixtures import mv_rl_row, write_rows
    from tests.images import noise

    pool = [image_entry(noise(size, seed=k)) for k in range(64)]
    write_rows(path, [mv_rl_row(i, [size] * views, images=[pool[(i * views + v) % len(pool)] for v in range(views)]) for i in range(rows)])


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def getitem_rate(ds, items: int) -> float:
    n = min(items, len(ds))
    _, seconds = timed(lambda: [ds[i] for i in range(n)])
    return n / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", default="112x84", help="image WxH")
    parser.add_argument("--items", type=int, default=2000, help="__getitem__ calls timed per class")
    parser.add_argument("--model", default=None, help="a Qwen2.5-VL checkpoint (default: a tiny one built here)")
    parser.add_argument("--workdir", default=None, help="where the parquet and model go (default: a temporary folder)")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))

    work = Path(args.workdir or tempfile.mkdtemp(prefix="star_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import datasets
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils import hf_processor, hf_tokenizer

    from star_verl.data.lengths import CACHE_SUBDIR
    from star_verl.recipes import compose_recipe

    model = args.model
    if model is None:
        from star_verl.tiny_model import build_tiny_qwen25vl

        model = str(build_tiny_qwen25vl(work / "tiny_qwen25vl"))
    tok, proc = hf_tokenizer(model), hf_processor(model)

    parquet = work / f"mv_{args.rows}x{args.views}_{args.size}.parquet"
    if not parquet.exists():
        _, seconds = timed(lambda: write_parquet(parquet, args.rows, args.views, size))
        print(f"wrote {parquet} ({parquet.stat().st_size / 1e6:.1f} MB) in {seconds:.1f}s")
    datasets.load_dataset("parquet", data_files=str(parquet))  # warm the Arrow cache for both classes

    cfg = compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={model}", "data.max_prompt_length=4096"])
    star_data = cfg.data
    verl_data = OmegaConf.merge(cfg.data, {"filter_overlong_prompts": True, "custom_cls": {"path": None, "name": None}})

    print(f"veRL RLHFDataset, filter_overlong_prompts=True, {verl_data.filter_overlong_prompts_workers} worker(s) ...", flush=True)
    verl_ds, verl_start = timed(lambda: create_rl_dataset([str(parquet)], verl_data, tok, proc))
    shutil.rmtree(parquet.parent / CACHE_SUBDIR, ignore_errors=True)
    print("StarRLDataset, cold (no prompt-length cache) ...", flush=True)
    _, star_cold = timed(lambda: create_rl_dataset([str(parquet)], star_data, tok, proc))
    print("StarRLDataset, warm ...", flush=True)
    star_ds, star_warm = timed(lambda: create_rl_dataset([str(parquet)], star_data, tok, proc))
    assert len(star_ds) == len(verl_ds) == args.rows, (len(star_ds), len(verl_ds))

    verl_rate = getitem_rate(verl_ds, args.items)
    star_rate = getitem_rate(star_ds, args.items)

    print()
    print(f"{args.rows} rows x {args.views} images of {size[0]}x{size[1]}, model {model}")
    print(f"{'':32}{'start-up s':>12}{'__getitem__ /s':>16}")
    print(f"{'veRL RLHFDataset (filter on)':32}{verl_start:>12.2f}{verl_rate:>16.0f}")
    print(f"{'StarRLDataset cold (measure)':32}{star_cold:>12.2f}{'':>16}")
    print(f"{'StarRLDataset warm (cache hit)':32}{star_warm:>12.2f}{star_rate:>16.0f}")
    print(f"start-up ratio veRL / star warm: {verl_start / star_warm:.1f}x (cold: {verl_start / star_cold:.1f}x)")
    print(f"__getitem__ ratio star / veRL:   {star_rate / verl_rate:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

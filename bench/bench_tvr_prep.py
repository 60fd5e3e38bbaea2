#!/usr/bin/env python
"""TVR conversion throughput and peak memory, against the floor of decoding and re-encoding every
image once.

    python bench/bench_tvr_prep.py                      # renders 10k synthetic samples first (cached in --work)
    python bench/bench_tvr_prep.py --trance DIR         # an existing TRANCE-format folder
    python bench/bench_tvr_prep.py --n 1000 --workers 2

Each measurement runs in a fresh process (its own peak RSS, read from /proc/self/status VmHWM):
- convert: `convert_trance` with the defaults (images' bytes as read; train center, val/test x3 views);
- convert --max-pixels: the same, decoding, resizing (Qwen rounding) and re-encoding every image;
- floor: PIL decode + PNG re-encode of every distinct image the conversion reads, once, nothing else;
- convert on a tenth of the samples, to show that peak memory does not grow with the input.
Rendering the synthetic set is not timed here (see `star_verl.prep.synthetic_tvr`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(kind: str, src: str, out: str, n: int, max_pixels: int | None) -> dict:
    """One measurement, run inside a fresh interpreter (imports are not timed)."""
    import io

    from PIL import Image

    from star_verl.prep.build_tvr import synthetic_split_sizes
    from star_verl.prep.trance import TranceConvertConfig, convert_trance
    from star_verl.rewards import compute_score  # noqa: F401  (the converter validates every ground truth with it)

    if kind != "floor":
        import pandas  # noqa: F401  (pyarrow's Table.from_pylist imports it on first use: 1-2 s, once)

    start = time.perf_counter()
    if kind == "floor":
        names = _used_images(Path(src), synthetic_split_sizes(n))
        start = time.perf_counter()
        for name in names:
            image = Image.open(Path(src, "image", name))
            image.load()
            image.save(io.BytesIO(), format="PNG")
        n_images = len(names)
        seconds = time.perf_counter() - start
        return {"kind": kind, "seconds": seconds, "images": n_images, "peak_rss_mb": _peak_rss_mb()}
    config = TranceConvertConfig(split_sizes=synthetic_split_sizes(n), overwrite=True, progress=False, max_pixels=max_pixels)
    report = convert_trance(src, out, config)
    seconds = time.perf_counter() - start
    rows = sum(sum(r.values()) for r in report.rows.values())
    size = sum(p.stat().st_size for p in Path(out).glob("*.parquet"))
    return {
        "kind": kind,
        "seconds": seconds,
        "rows": rows,
        "samples": sum(report.samples.values()),
        "parquet_mb": size / 2**20,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _used_images(src: Path, split_sizes: tuple[int, int, int]) -> list[str]:
    """The distinct image files the default conversion reads: the initial image and the center
    final image of train samples, the initial and the three final images of val/test samples."""
    names: dict[str, None] = {}
    with open(src / "data.jsonl") as f:
        for i, line in enumerate(f):
            if i >= sum(split_sizes):
                break
            rec = json.loads(line)
            finals = rec["states"][-1]["images"]
            names.update(
                dict.fromkeys(
                    [rec["states"][0]["images"]["Camera_Center"]] + ([finals["Camera_Center"]] if i < split_sizes[0] else list(finals.values()))
                )
            )
    return list(names)


def _run(kind: str, src: Path, out: Path, n: int, max_pixels: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--trance", str(src), "--out", str(out), "--n", str(n)]
    if max_pixels:
        cmd += ["--max-pixels", str(max_pixels)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _subset(src: Path, dst: Path, n: int) -> Path:
    """The first n samples of a TRANCE folder (images linked, not copied)."""
    (dst / "image").mkdir(parents=True, exist_ok=True)
    with open(src / "data.jsonl") as f, open(dst / "data.jsonl", "w") as g:
        for _, line in zip(range(n), f, strict=False):
            g.write(line)
            rec = json.loads(line)
            for name in [*rec["states"][0]["images"].values(), *rec["states"][-1]["images"].values()]:
                link = dst / "image" / name
                if not link.exists():
                    link.symlink_to(src / "image" / name)
    return dst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="synthetic samples (default: %(default)s)")
    p.add_argument("--trance", help="an existing TRANCE-format folder (default: render --n synthetic samples into --work)")
    p.add_argument(
        "--work", default=str(Path(tempfile.gettempdir()) / "star_verl_bench_tvr"), help="cache of the rendered set (default: %(default)s)"
    )
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: all CPUs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-pixels", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.trance, args.out, args.n, args.max_pixels)))
        return 0

    work = Path(args.work)
    if args.trance:
        src = Path(args.trance)
        n = sum(1 for line in open(src / "data.jsonl") if line.strip())
    else:
        from star_verl.prep.synthetic_tvr import write_synthetic_trance

        src, n = work / f"synthetic_{args.n}_seed{args.seed}", args.n
        if not (src / "data.jsonl").exists():
            t = time.perf_counter()
            write_synthetic_trance(src, n, args.seed, workers=args.workers, overwrite=True)
            print(f"rendered {n} samples in {time.perf_counter() - t:.0f} s (not part of the benchmark)")
    out = work / "out"
    small_n = max(3, n // 10)
    small = _subset(src, work / f"subset_{small_n}", small_n)
    results = {
        "convert": _run("convert", src, out / "default", n),
        "convert_resize": _run("convert", src, out / "resize", n, max_pixels=320 * 240 // 2),
        "floor": _run("floor", src, out, n),
        "convert_tenth": _run("convert", small, out / "tenth", small_n),
    }
    conv, resize, floor, tenth = (results[k] for k in ("convert", "convert_resize", "floor", "convert_tenth"))
    print(f"TVR conversion benchmark: {n} samples from {src} (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'':34} {'seconds':>8} {'rows/s':>8} {'images/s':>9} {'peak RSS MB':>12}")
    for name, r in (("convert (bytes as read)", conv), ("convert --max-pixels 38400", resize)):
        print(f"{name:34} {r['seconds']:8.1f} {r['rows'] / r['seconds']:8.0f} {'':>9} {r['peak_rss_mb']:12.0f}")
    print(
        f"{'floor: decode + re-encode once':34} {floor['seconds']:8.1f} {'':>8} {floor['images'] / floor['seconds']:9.0f} {floor['peak_rss_mb']:12.0f}"
    )
    print(f"{f'convert, {small_n} samples':34} {tenth['seconds']:8.1f} {tenth['rows'] / tenth['seconds']:8.0f} {'':>9} {tenth['peak_rss_mb']:12.0f}")
    print(f"rows: {conv['rows']} ({conv['samples']} samples), parquet {conv['parquet_mb']:.0f} MB")
    print(
        f"ratio convert / floor: {conv['seconds'] / floor['seconds']:.2f} (bytes as read), {resize['seconds'] / floor['seconds']:.2f} (--max-pixels)"
    )
    print(f"peak memory, {n} vs {small_n} samples: {conv['peak_rss_mb']:.0f} vs {tenth['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

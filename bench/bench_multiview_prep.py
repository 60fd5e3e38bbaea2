#!/usr/bin/env python
"""Conversion time and output size of the multi-view converter on a MindCube-shaped fixture
(default: 20k questions over about 3k images, ~22 questions per image group, as in MindCube),
against the floor: decoding, resizing and encoding each unique image once, and storing its bytes once.

    python bench/bench_multiview_prep.py [--questions 20000] [--images 3000] [--size 640x480]

Prints both ratios (time / floor time, size / floor size); near 1 means the work follows the unique
images, not the questions.

    python bench/bench_multiview_prep.py --spar-release 24000,240000 [--rl-samples 2000]

SPAR-7M's current release instead: for each size, a `spar-dataset-train.parquet` of about that many
rows (multi-view records with markers, images laid out as the release's prepare scripts do), converted
by the command's `main` in a child process drawing the same number of questions; prints the child's
peak memory (VmHWM, Linux) and time. Flat memory means the peak does not follow the number of rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.multiview_fixtures

from star_verl.prep.build_multiview import BuildOptions, build  # noqa: E402
from star_verl.prep.multiview import DEFAULT_MAX_PIXELS, ImageCache, ImageRef  # noqa: E402
from tests.multiview_fixtures import SPAR_FIXTURE_TASKS, write_mindcube_fixture, write_spar_fixture  # noqa: E402

IMAGES_PER_GROUP = 3.3  # images a group's questions use: among 4, around 3, rotation 2-4 (fixture's round robin)
RELEASE_ROW_GROUP = 100_000  # rows per row group of the benchmark's parquet (HF writes groups of this order)


# the conversion in a child process, reporting the peak memory of its own address space (Linux's VmHWM;
# getrusage's ru_maxrss would include the parent's memory at fork)
CHILD = """import sys
from star_verl.prep.build_multiview import main
code = main(sys.argv[1:])
print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")))
sys.exit(code)"""


def spar_release(sizes: list[int], rl_samples: int, size: tuple[int, int], work: Path) -> None:
    """Peak memory and time of converting SPAR-7M release files of the given sizes (rows)."""
    print(f"{'rows':>9} {'usable':>9} {'drawn':>7} {'peak RSS':>10} {'wall':>8}   (child process: the command's main with --spar)")
    for n_rows in sizes:
        root = work / f"release_{n_rows}"
        per_task = max(1, n_rows // len(SPAR_FIXTURE_TASKS))
        write_spar_fixture(root, per_task, n_scenes=40, image_size=size, layout="release", row_group_size=RELEASE_ROW_GROUP)
        rows = per_task * len(SPAR_FIXTURE_TASKS) + 2
        args = ["--spar", str(root), "--out", str(root / "out"), "--rl-samples", str(rl_samples), "--val-samples", "0", "--sft-pool", "0"]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, *args, "--no-progress", "--overwrite"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        peak_kib = int(done.stdout.strip().splitlines()[-1].split()[1])
        summary = json.loads((root / "out" / "summary.json").read_text())
        usable = rows - sum(n for tasks in summary["excluded"]["spar7m"].values() for n in tasks.values())
        print(f"{rows:>9} {usable:>9} {summary['splits']['train']['rows']:>7} {peak_kib / 1024:>7.0f} MiB {wall:>6.1f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=20000)
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--size", default="640x480", help="WxH of the generated images")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--spar-release", help="comma-separated row counts: measure SPAR-7M's parquet release at each size instead")
    p.add_argument("--rl-samples", type=int, default=2000, help="questions drawn from each release file (--spar-release)")
    p.add_argument("--workdir", type=Path, help="where to write the fixture and the output (default: a temporary folder)")
    ns = p.parse_args(argv)
    size = tuple(int(v) for v in ns.size.lower().split("x"))
    if ns.spar_release:
        with tempfile.TemporaryDirectory() as tmp:
            spar_release([int(v) for v in ns.spar_release.split(",")], ns.rl_samples, size, ns.workdir or Path(tmp))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = ns.workdir or Path(tmp)
        t0 = time.perf_counter()
        data = write_mindcube_fixture(work / "mc", ns.questions, n_groups=max(3, round(ns.images / IMAGES_PER_GROUP)), n_tiny=0, image_size=size)
        train = data / "raw" / "MindCube_train.jsonl"
        n_questions = sum(1 for _ in train.open())
        print(f"fixture: {n_questions} questions in {time.perf_counter() - t0:.1f} s")

        # the floor: every unique image decoded, resized and encoded once; its bytes stored once
        paths = sorted({p for line in train.open() for p in json.loads(line)["images"]})
        cache = ImageCache(max_pixels=ns.max_pixels)
        t0, c0 = time.perf_counter(), time.process_time()
        encoded = [cache.entry(ImageRef(p, path=data / p), p)[0]["bytes"] for p in paths]
        floor_s, floor_cpu = time.perf_counter() - t0, time.process_time() - c0
        # stored once: one parquet row per unique image, with the converter's compression
        floor_file = work / "floor.parquet"
        pq.write_table(pa.table({"bytes": pa.array(encoded, pa.binary())}), floor_file, compression="zstd")
        floor_bytes = floor_file.stat().st_size

        out = work / "out"
        t0, c0 = time.perf_counter(), time.process_time()
        summary = build(
            BuildOptions(
                out=out, mindcube=data, rl_samples=n_questions, val_samples=0, sft_pool=0, max_pixels=ns.max_pixels, overwrite=True, progress=False
            )
        )
        convert_s, convert_cpu = time.perf_counter() - t0, time.process_time() - c0
        st = summary["splits"]["train"]
        print(f"unique images: {len(paths)}; image references: {st.image_refs}; rows: {st.rows}")
        raw = sum(map(len, encoded))
        print(
            f"floor:      {floor_s:7.2f} s  {floor_bytes / 2**20:8.1f} MiB  (each unique image encoded once; stored once: {raw / 2**20:.1f} MiB of JPEG, zstd in parquet)"
        )
        print(
            f"conversion: {convert_s:7.2f} s  {st.bytes / 2**20:8.1f} MiB  (one copy per reference would be {st.image_refs / len(paths) * raw / 2**20:.1f} MiB of JPEG)"
        )
        print(f"cpu time:   floor {floor_cpu:.2f} s, conversion {convert_cpu:.2f} s (wall time varies with the machine's load)")
        print(f"time ratio: {convert_s / floor_s:.2f} (wall), {convert_cpu / floor_cpu:.2f} (cpu)   size ratio: {st.bytes / floor_bytes:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the teacher client's throughput against a loopback chat-completions server with a
fixed latency, compared with the ideal `questions * latency / concurrency`; then the cost of a rerun
with everything cached (resume) and of rebuilding the outputs offline.

Run by hand from the repository root (not in CI):
    python bench/bench_teacher.py [--questions 400] [--latency 0.2] [--concurrency 1,8,32] [--image-size 448]

The client CPU column (process time of this process; the server runs in another one) is the
client's own cost per request, which a loaded machine inflates less than the wall time.
Images are random noise PNGs (incompressible, so the base64 payload is realistic: ~600 kB per
448x448 view), two per question.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.*` helpers of this checkout


def _serve(truth, latency, conn) -> None:
    """The loopback server in its own process (in-process, it would share the client's GIL)."""
    from tests.teacher_fixtures import ScriptedChatServer

    with ScriptedChatServer(truth, delay_s=latency) as server:
        conn.send(server.base_url)
        conn.recv()  # "count?"
        conn.send(len(server.log))
        conn.recv()  # "stop"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.2, help="server seconds per answer")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--image-size", type=int, default=448)
    args = ap.parse_args()

    import multiprocessing

    from star_verl.prep.teacher.run import generate
    from star_verl.prep.teacher.settings import TeacherSettings
    from tests import teacher_fixtures
    from tests.images import noise
    from tests.teacher_fixtures import write_pool

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images = [noise((args.image_size, args.image_size), seed=k) for k in range(8)]
        teacher_fixtures.solid = lambda color, size: images[(color[0] + color[1]) % len(images)]  # noise instead of flat colors
        truth = write_pool(root / "pool.parquet", args.questions)
        size_mb = (root / "pool.parquet").stat().st_size / 1e6
        print(
            f"pool: {args.questions} questions x 2 views of {args.image_size}px noise ({len(images[0]) / 1e3:.0f} kB each), {size_mb:.1f} MB parquet"
        )
        print(f"{'concurrency':>11} {'wall s':>8} {'ideal s':>8} {'req/s':>8} {'efficiency':>10} {'client CPU ms/request':>22}")
        for c in [int(x) for x in args.concurrency.split(",")]:
            if args.questions * args.latency / c > 120:
                print(f"{c:>11} skipped (ideal time over 120 s)")
                continue
            out = root / f"out_c{c}"
            ours, theirs = multiprocessing.Pipe()
            server = multiprocessing.get_context("fork").Process(target=_serve, args=(truth, args.latency, theirs), daemon=True)
            server.start()
            try:
                settings = TeacherSettings(base_url=ours.recv(), model="bench", concurrency=c, seed=0)
                start, cpu = time.perf_counter(), time.process_time()
                generate(settings, root / "pool.parquet", out, progress=False)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                ideal = args.questions * args.latency / c
                print(f"{c:>11} {wall:>8.2f} {ideal:>8.2f} {args.questions / wall:>8.1f} {ideal / wall:>10.0%} {1e3 * cpu / args.questions:>22.1f}")
                start = time.perf_counter()
                result = generate(settings, root / "pool.parquet", out, progress=False)
                resume = time.perf_counter() - start
                ours.send("count?")
                assert result.counts.requested == 0 and ours.recv() == args.questions
            finally:
                ours.send("stop")
                server.join(timeout=10)
            start = time.perf_counter()
            generate(settings, root / "pool.parquet", out, offline=True, progress=False)
            offline = time.perf_counter() - start
        print(f"rerun with all {args.questions} answers cached (no request): {resume:.2f} s; offline rebuild of the outputs: {offline:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

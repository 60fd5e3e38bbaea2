"""Benchmark: TVR rewards per second, and StarRewardManager's overhead against veRL's naive manager.

Run by hand from the repository root (not in CI):
    python bench/bench_reward.py [--n 512] [--repeat 5] [--tokenizer PATH]

1. `compute_score` on TVR responses (perfect, partial, enumerating, empty, long reasoning):
   rewards per second, single process; then milliseconds per reward of the worst responses the
   tests feed the scorers (megabytes, binary junk, thousands of items or triplets), whose bounded
   work the tests check by what is read, not by the clock.
2. The same rollout batch through veRL 0.9.1's `NaiveRewardManager` and through
   `StarRewardManager`, both with a trivial score function (so only the managers differ), as
   veRL's RewardLoopWorker runs them (`asyncio.gather` of `run_single` per sample); then
   StarRewardManager with the real `compute_score`. Prints the ratio star / naive.
Without --tokenizer the tiny test tokenizer is built locally (it has <think>/<answer> as special
tokens, so StarRewardManager takes its tag-keeping decode path; a Qwen2.5-VL tokenizer has no such
tokens and takes veRL's plain decode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `tests.*` helpers of this checkout


def responses(n: int) -> list[str]:
    from tests.tvr_fixtures import tagged

    think = "Object 2 was gray and is now cyan. " * 40  # ~1.4k characters of reasoning
    kinds = [
        tagged("2.color.cyan, 4.color.brown", think),
        tagged("2.color.cyan, 4.color.red, 5.size.large", think),
        tagged(", ".join(f"{i}.color.{c}" for i in range(10) for c in ("red", "cyan", "brown")), think),
        "",
        think + "<answer>2.color.cyan</answer>",
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def bench_scorer(n: int, repeat: int) -> float:
    from star_verl.rewards import compute_score
    from tests.tvr_fixtures import WORKED_GT

    gt = json.dumps(WORKED_GT)
    texts = responses(n)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            compute_score("tvr", text, gt, {"index": 0})
        best = min(best, time.perf_counter() - start)
    return n / best


def bench_worst_cases(repeat: int) -> dict[str, float]:
    """Best-of-`repeat` milliseconds of `compute_score` per worst-case response of the reward tests."""
    from star_verl.rewards import compute_score
    from tests.test_multiview_reward_on_cpu import KEY, choice, huge_response, per_view
    from tests.test_tvr_reward_on_cpu import _junk_responses
    from tests.tvr_fixtures import WORKED_GT

    cases = [("tvr", response, WORKED_GT) for response in _junk_responses()] + [("mindcube", huge_response(), choice(per_view(KEY)))]
    out = {}
    for source, response, gt in cases:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            compute_score(source, response, gt)
            best = min(best, time.perf_counter() - start)
        out[f"{source} {repr(response)[:40]}"] = best * 1e3
    return out


def trivial_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return 0.0


async def bench_managers(tok_path: str, n: int, repeat: int) -> dict[str, float]:
    from hydra import compose, initialize_config_module
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.utils import hf_tokenizer

    from star_verl.rewards import compute_score
    from star_verl.rewards.managers import StarRewardManager
    from tests.test_reward_manager_on_cpu import make_batch
    from tests.tvr_fixtures import WORKED_GT

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=["reward.custom_reward_function.path=pkg://star_verl.rewards"])
    tok = hf_tokenizer(tok_path)
    gt = json.dumps(WORKED_GT)
    batch = make_batch(tok, [("tvr", text, gt) for text in responses(n)])
    items = [batch[i : i + 1] for i in range(n)]
    managers = {
        "naive+trivial": NaiveRewardManager(cfg, tok, trivial_score),
        "star+trivial": StarRewardManager(cfg, tok, trivial_score),
        "star+compute_score": StarRewardManager(cfg, tok, compute_score),
    }
    print(f"StarRewardManager decode path: {'tag-keeping' if managers['star+trivial']._keep_ids else 'plain (as veRL)'}")
    times: dict[str, list[float]] = {name: [] for name in managers}
    for _ in range(repeat):
        for name, manager in managers.items():  # interleaved, so drift hits all alike
            start = time.perf_counter()
            await asyncio.gather(*(manager.run_single(item) for item in items))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="responses per batch")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tokenizer", help="a local tokenizer path (default: the tiny test tokenizer, built here)")
    args = parser.parse_args()

    rate = bench_scorer(args.n, args.repeat)
    print(f"TVR compute_score: {rate:,.0f} rewards/s (best of {args.repeat}, {args.n} mixed responses)")
    for case, ms in bench_worst_cases(args.repeat).items():
        print(f"worst case {case:<52} {ms:8.2f} ms per reward")

    tok_path = args.tokenizer
    if tok_path is None:
        from star_verl.tiny_model import build_tiny_qwen25vl

        tok_path = str(build_tiny_qwen25vl(tempfile.mkdtemp(prefix="bench_tok_")))
    t = asyncio.run(bench_managers(tok_path, args.n, args.repeat))
    for name, sec in t.items():
        print(f"{name:>20}: {sec * 1e3:8.1f} ms per batch of {args.n} ({args.n / sec:,.0f} samples/s, median of {args.repeat})")
    print(f"manager overhead ratio star/naive (trivial score): {t['star+trivial'] / t['naive+trivial']:.2f}")
    print(f"full star reward vs naive manager + trivial score: {t['star+compute_score'] / t['naive+trivial']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

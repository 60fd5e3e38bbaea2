"""Evaluation: `star-verl eval score | generate | report`.

- `star_verl.eval.official`: the benchmarks' own scorers (MindCube, SPAR-Bench/lmms-eval, MMSI-Bench), quirks included.
- `star_verl.eval.scoring`: reading generations (star-verl lines, veRL validation dumps), scoring under the
  `official` or `strict` protocol, per-benchmark aggregation, `score_file`.
- `star_verl.eval.generate`: prompts built with the training template and pixel budget; vLLM or transformers.
- `star_verl.eval.report`: runs beside the paper's numbers (`paper_numbers.json`).
"""

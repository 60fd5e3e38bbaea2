"""Stage 1 data of STAR-R1: teacher chains of thought for the SFT cold start.

`python data_prep/generate_cot.py --in POOL.parquet --out DIR --base-url URL --model NAME ...`
(`star-verl generate-cot ...`; the program is `star_verl.prep.teacher.run`).

1. Requests (`client`). Each pool question (`pool`: an RL row: raw question with `<image>`
   placeholders, images, ground truth) is rendered with the `three_step` template by the prompt
   builder the RL and SFT datasets use (`star_verl.prompts`) and sent with its images (base64 data
   URLs, in placeholder order) to an OpenAI-compatible `POST {base_url}/chat/completions` (vLLM,
   SGLang, a hosted API), K samples per question. The client is `httpx` (async): bounded concurrency,
   a per-request timeout, retries with exponential backoff on 429/5xx/timeouts/transport
   errors/unreadable bodies (a server's Retry-After wins), and an optional request-rate limit.
   401/403/404 stop the run (a wrong key, URL or model would fail every request): the runner
   (`run`) then cancels every request in flight.
2. Cache (`cache`). Every answer is appended to `DIR/responses.jsonl` (flushed and fsynced) as it
   arrives, keyed by (question_id, sample k, model, prompt hash). A rerun (after a crash, a kill, or
   to add samples) asks only for what the cache lacks. Failures are not cached: a rerun tries them again.
3. Filtering and outputs (`outputs`), decided from the cache alone, in pool order, so an interrupted
   and resumed run writes the same bytes as an uninterrupted one (`--offline` rebuilds them without
   any request). The filter is `filter.judge_chain`, the one SFT filter of the project: a chain is kept
   only if `star_verl.rewards.compute_score` gives `acc == 1.0` (result-oriented),
   `star_verl.tasks.references.three_step_structure` finds the three steps (triplets for every view, a
   cross-view mapping, reasoning, an answer), it states a key reference where the row has some (so
   R_ref pays it), it fits the RL response length in the student's tokens (`--tokenizer`; skipped and
   reported without it) and it was not truncated; identical chains of one question are kept once. Each sample is judged once per run (the progress
   counts and the outputs share the decision). Outputs: `DIR/train.parquet`, `DIR/val.parquet` (SFT
   rows: the raw question and the chain; a held-out slice of the kept questions), `DIR/rejected.jsonl`
   (every rejected chain with its reasons), `DIR/failed.jsonl` (samples with no answer),
   `DIR/report.json` and `DIR/report.md` (kept rate per category); each is written under a temporary
   name and renamed, and a failed run removes its temporary files.

The API key is read from the environment variable named by `--api-key-env` and is never written to a
file or a log (error texts are redacted). Settings: `settings`.
"""

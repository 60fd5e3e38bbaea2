"""StarRLDataset through veRL's own paths: `create_rl_dataset` with a recipe's data config, the
AgentLoop's multimodal step (SingleTurnAgentLoop.process_multi_modal_info, then its Continuous Token
builder, which runs `processor.apply_chat_template` and `processor(text=..., images=...)`), the
validation errors, the overlong rule and the prompt-length cache."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from star_verl.data import lengths
from star_verl.data.settings import DatasetError, StarDataSettings
from star_verl.pixels import image_tokens, processor_pixel_range
from star_verl.prep.schema import image_entry
from star_verl.recipes import compose_recipe
from star_verl.rewards import compute_score, split_reward_kwargs
from star_verl.templates import TEMPLATES
from tests.dataset_fixtures import (
    BAD_FILE_CASES,
    MV_GT,
    agent_loop_prompts,
    bad_data_file,
    mv_question,
    mv_rl_row,
    tvr_rl_row,
    without_column,
    write_rows,
)
from tests.images import noise

# Four views whose fitted sizes under the budget below are worked out by hand (Qwen's smart_resize,
# factor 28): per-image cap = min(max_pixels 23520, total 50176 // 4 = 12544) = 12544, min 3136.
#   448x336: 150528 px > 12544 -> beta = sqrt(150528/12544) = 3.464; h = floor(336/3.464/28)*28 = 84,
#            w = floor(448/3.464/28)*28 = 112 -> 112x84, grid (1, 6, 8), 4*3 = 12 tokens
#   112x112: 12544 px, multiples of 28, at the cap -> unchanged, grid (1, 8, 8), 16 tokens
#   56x84:   4704 px in [3136, 12544] -> unchanged, grid (1, 6, 4), 6 tokens
#   40x20:   rounds to 28x28 = 784 < 3136 -> beta = sqrt(3136/800) = 1.980; h = ceil(20*1.98/28)*28 = 56,
#            w = ceil(40*1.98/28)*28 = 84 -> 84x56, grid (1, 4, 6), 6 tokens
VIEW_SIZES = [(448, 336), (112, 112), (56, 84), (40, 20)]
FITTED = [(112, 84), (112, 112), (56, 84), (84, 56)]
GRIDS = [[1, 6, 8], [1, 8, 8], [1, 6, 4], [1, 4, 6]]
BUDGET = ["data.star.min_pixels=3136", "data.star.max_pixels=23520", "data.star.total_max_pixels=50176"]


@pytest.fixture(scope="module")
def base_cfg(tiny_qwen25vl):
    """The star_r1_mv recipe as main_ppo composes it (one composition per module: it takes a second)."""
    return compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={tiny_qwen25vl}", "data.max_prompt_length=1024", *BUDGET])


def data_cfg(base_cfg, **star):
    """cfg.data with data.star / data keys overridden (dotted keys: 'max_prompt_length', 'star.template')."""
    cfg = copy.deepcopy(base_cfg)
    for key, value in star.items():
        OmegaConf.update(cfg, f"data.{key.replace('__', '.')}", value, force_add=True)
    return cfg


def build(cfg, files, tok_proc):
    from verl.trainer.ppo.utils import create_rl_dataset

    tok, proc = tok_proc
    return create_rl_dataset([str(f) for f in files], cfg.data, tok, proc)


def agent_loop_prompt(cfg, item, tok_proc):
    return agent_loop_prompts(cfg, [item], tok_proc)[0]


@pytest.fixture
def four_view(tmp_path):
    return write_rows(tmp_path / "mv.parquet", [mv_rl_row(0, VIEW_SIZES), mv_rl_row(1, VIEW_SIZES)])


# ------------------------------------------------------------------ the 4-view sample end to end


@pytest.mark.parametrize("template", ["three_step", "tvr", "plain", "auto"])
def test_four_view_sample_reaches_the_agent_loop_templated_and_in_budget(template, base_cfg, four_view, tok_proc):
    tok, proc = tok_proc
    cfg = data_cfg(base_cfg, star__template=template, train_files=str(four_view))
    ds = build(cfg, [four_view], tok_proc)
    assert type(ds).__name__ == "StarRLDataset" and len(ds) == 2
    item = ds[0]
    system, user = item["raw_prompt"]
    expected = TEMPLATES["three_step" if template == "auto" else template]
    assert system["role"] == "system" and system["content"] == [{"type": "text", "text": expected.system}]
    assert [c["type"] for c in user["content"]].count("image") == 4

    ids, mm_inputs, images = agent_loop_prompt(cfg, item, tok_proc)
    assert [im.size for im in images] == FITTED
    assert mm_inputs["image_grid_thw"].tolist() == GRIDS
    pad = tok.convert_tokens_to_ids(proc.image_token)
    n_pad = sum(1 for t in ids if t == pad)
    assert n_pad == sum(t * h * w for t, h, w in GRIDS) // 4 == 12 + 16 + 6 + 6
    assert mm_inputs["pixel_values"].shape[0] == sum(t * h * w for t, h, w in GRIDS)
    # The cached length is the AgentLoop's, token for token.
    assert len(ids) == ds.prompt_lengths[0]
    text = tok.decode(ids)
    assert expected.system in text and "which object is behind the sofa?" in text


def test_auto_template_follows_the_data_source(base_cfg, tmp_path, tok_proc):
    path = write_rows(tmp_path / "mixed.parquet", [tvr_rl_row(0), mv_rl_row(1, VIEW_SIZES)])
    ds = build(data_cfg(base_cfg, star__template="auto"), [path], tok_proc)
    systems = [ds[i]["raw_prompt"][0]["content"][0]["text"] for i in range(2)]
    assert systems == [TEMPLATES["tvr"].system, TEMPLATES["three_step"].system]
    # The parquet keeps the raw question: the same file under another template gives another prompt.
    ds_plain = build(data_cfg(base_cfg, star__template="plain"), [path], tok_proc)
    assert ds_plain[0]["raw_prompt"][0]["content"][0]["text"] == TEMPLATES["plain"].system
    assert ds_plain[0]["prompt"] == ds[0]["prompt"]


def test_length_arithmetic_matches_the_real_processor(base_cfg, tmp_path, tok_proc):
    """`PixelBudget.fitted_sizes` + `image_tokens` against the processor, for budgets inside and beyond the
    processor's own range (the tiny processor caps at 64 tokens an image, so 90000 px is cut twice)."""
    tok, proc = tok_proc
    rng = np.random.default_rng(0)
    sizes = [(int(w), int(h)) for w, h in rng.integers(20, 700, size=(4, 2))] + [(1400, 30), (30, 900)]
    pairs = [[sizes[i], sizes[(i + 5) % len(sizes)]] for i in range(len(sizes))]
    path = write_rows(tmp_path / "sizes.parquet", [mv_rl_row(i, pair) for i, pair in enumerate(pairs)])
    for budget in ({}, {"star__max_pixels": 90000, "star__total_max_pixels": None}, {"star__total_max_pixels": 8000}):
        cfg = data_cfg(base_cfg, **budget)
        ds = build(cfg, [path], tok_proc)
        settings = StarDataSettings.from_config(cfg.data)
        for i, (ids, mm_inputs, _images) in enumerate(agent_loop_prompts(cfg, [ds[i] for i in range(len(ds))], tok_proc)):
            expected = settings.budget.fitted_sizes(pairs[i], 14, processor_pixel_range(proc))
            grids = mm_inputs["image_grid_thw"].tolist()
            assert [(w // 14, h // 14) for w, h in expected] == [(g[2], g[1]) for g in grids]
            assert sum(image_tokens(w, h) for w, h in expected) == sum(1 for t in ids if t == tok.convert_tokens_to_ids(proc.image_token))
            assert len(ids) == ds.prompt_lengths[i]


def test_total_budget_sets_the_four_view_cost(base_cfg, four_view, tok_proc):
    """A 4-view sample never costs more than total_max_pixels / 784 image tokens (while the per-image
    share stays above min_pixels: smart_resize rounds an image below min_pixels up, not down)."""
    tok, proc = tok_proc
    for total in (50176, 4 * 6272):
        cfg = data_cfg(base_cfg, star__total_max_pixels=total, star__max_pixels=1_000_000)
        ds = build(cfg, [four_view], tok_proc)
        ids, _, images = agent_loop_prompt(cfg, ds[0], tok_proc)
        assert all(w * h <= total // 4 for w, h in (im.size for im in images))
        assert sum(1 for t in ids if t == tok.convert_tokens_to_ids(proc.image_token)) <= total // 784


# ------------------------------------------------------------------ bad input: clear errors


def bad_row(tmp_path, name, row, good=2):
    rows = [mv_rl_row(i, VIEW_SIZES[:2]) for i in range(good)] + [row]
    return write_rows(tmp_path / f"{name}.parquet", rows)


def test_placeholder_count_mismatch_names_file_and_row(base_cfg, tmp_path, tok_proc):
    row = mv_rl_row(5, VIEW_SIZES)
    row["prompt"] = [{"role": "user", "content": mv_question(3)}]
    path = bad_row(tmp_path, "placeholders", row)
    with pytest.raises(DatasetError, match=rf"{path} row 2 \(question_id 'q5'\): 3 <image> placeholder\(s\) but 4 image\(s\)"):
        build(base_cfg, [path], tok_proc)


def test_image_that_does_not_decode_names_file_and_row(base_cfg, tmp_path, tok_proc):
    row = mv_rl_row(6, VIEW_SIZES[:2])
    row["images"][1] = image_entry(noise((64, 64))[:-200])  # a truncated PNG
    path = bad_row(tmp_path, "truncated", row)
    with pytest.raises(DatasetError, match=rf"{path} row 2 \(question_id 'q6'\): image 1 does not decode"):
        build(base_cfg, [path], tok_proc)


def test_ground_truth_that_does_not_parse_names_file_and_row(base_cfg, tmp_path, tok_proc):
    row = mv_rl_row(7, VIEW_SIZES[:2])
    row["reward_model"] = {"style": "rule", "ground_truth": json.dumps({**MV_GT, "answer": "E"})}
    path = bad_row(tmp_path, "gt", row)
    with pytest.raises(DatasetError, match=rf"{path} row 2 .*bad mindcube ground truth: choice answer 'E' is not one of the options"):
        build(base_cfg, [path], tok_proc)


def test_templated_row_is_refused(base_cfg, tmp_path, tok_proc):
    row = mv_rl_row(8, VIEW_SIZES[:2])
    row["prompt"] = [{"role": "system", "content": "You are..."}, row["prompt"][0]]
    path = bad_row(tmp_path, "templated", row)
    with pytest.raises(DatasetError, match=r"row 2 .*prompt must be one user message with the raw question.*\['system', 'user'\]"):
        build(base_cfg, [path], tok_proc)


def test_every_bad_row_is_listed(base_cfg, tmp_path, tok_proc):
    rows = [mv_rl_row(i, VIEW_SIZES[:2]) for i in range(4)]
    rows[1]["prompt"] = [{"role": "user", "content": "no images here"}]
    rows[3]["reward_model"] = {"style": "rule", "ground_truth": "not json"}
    path = write_rows(tmp_path / "two_bad.parquet", rows)
    with pytest.raises(DatasetError) as info:
        build(base_cfg, [path], tok_proc)
    message = str(info.value)
    assert f"{path}: 2 bad row(s)" in message and f"{path} row 1 " in message and f"{path} row 3 " in message
    assert "ground truth is not JSON" in message


def test_settings_the_dataset_refuses_are_named(base_cfg, four_view, tok_proc):
    with pytest.raises(DatasetError, match=r"unknown data.star key\(s\) \['max_pixel'\]"):
        build(data_cfg(base_cfg, star__max_pixel=1), [four_view], tok_proc)
    with pytest.raises(DatasetError, match=r"data.star.template='cot'"):
        build(data_cfg(base_cfg, star__template="cot"), [four_view], tok_proc)
    with pytest.raises(DatasetError, match="data.filter_overlong_prompts=true"):
        build(data_cfg(base_cfg, filter_overlong_prompts=True), [four_view], tok_proc)
    with pytest.raises(DatasetError, match=r"data.mm_processor_kwargs sets \['max_pixels'\]"):
        build(data_cfg(base_cfg, mm_processor_kwargs={"max_pixels": 1000}), [four_view], tok_proc)
    # 4 views x 3136 px minimum cannot fit a 10000 px total
    with pytest.raises(DatasetError, match=r"total_max_pixels=10000 over 4 images leaves 2500 pixels per image, below data.star.min_pixels=3136"):
        build(data_cfg(base_cfg, star__total_max_pixels=10000), [four_view], tok_proc)


@pytest.mark.parametrize(("case", "cause"), BAD_FILE_CASES)
def test_a_file_bad_as_a_whole_is_named_with_the_cause(case, cause, base_cfg, tmp_path, tok_proc):
    path = bad_data_file(tmp_path, case)
    with pytest.raises(DatasetError, match=rf"^{path}: {cause}"):
        build(base_cfg, [path], tok_proc)


def test_a_json_lines_file_that_does_not_parse_is_named(base_cfg, tmp_path, tok_proc):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"data_source": "tvr"}\n{oops\n')
    with pytest.raises(DatasetError, match=rf"^{path}: not readable as JSON \("):
        build(base_cfg, [path], tok_proc)


@pytest.mark.parametrize("column", ["prompt", "reward_model"])
def test_a_missing_column_is_one_error_naming_the_file(column, base_cfg, four_view, tok_proc):
    path = without_column(four_view, column)
    with pytest.raises(DatasetError) as err:
        build(base_cfg, [path], tok_proc)
    assert str(err.value).startswith(f"{path}: missing column(s) ['{column}']") and "\n" not in str(err.value)


def test_empty_file_is_an_error(base_cfg, tmp_path, tok_proc):
    path = write_rows(tmp_path / "empty.parquet", [])
    with pytest.raises(DatasetError, match=r"empty.parquet: no rows"):
        build(base_cfg, [path], tok_proc)


# ------------------------------------------------------------------ overlong prompts


def test_overlong_is_an_error_listing_the_offenders(base_cfg, tmp_path, tok_proc):
    rows = [mv_rl_row(0, [(56, 56)]), mv_rl_row(1, VIEW_SIZES), mv_rl_row(2, [(56, 56)]), mv_rl_row(3, VIEW_SIZES)]
    path = write_rows(tmp_path / "long.parquet", rows)
    full = build(base_cfg, [path], tok_proc).prompt_lengths
    limit = int(full[0])
    assert full[1] > limit and full[2] == limit  # 4 views cost more than 1
    with pytest.raises(DatasetError) as info:
        build(data_cfg(base_cfg, max_prompt_length=limit), [path], tok_proc)
    message = str(info.value)
    assert f"2 of 4 sample(s) exceed data.max_prompt_length={limit}" in message
    assert f"{path} row 1: {full[1]} tokens" in message and f"{path} row 3: {full[3]} tokens" in message
    assert "data.star.drop_overlong=true" in message


def test_drop_overlong_counts_and_prints(base_cfg, tmp_path, tok_proc, capsys):
    rows = [mv_rl_row(0, [(56, 56)]), mv_rl_row(1, VIEW_SIZES), mv_rl_row(2, [(56, 56)]), mv_rl_row(3, VIEW_SIZES)]
    path = write_rows(tmp_path / "long.parquet", rows)
    limit = int(build(base_cfg, [path], tok_proc).prompt_lengths[0])
    capsys.readouterr()
    ds = build(data_cfg(base_cfg, max_prompt_length=limit, star__drop_overlong=True), [path], tok_proc)
    out = capsys.readouterr().out
    assert len(ds) == 2 and [ds[i]["extra_info"]["index"] for i in range(2)] == [0, 2]
    assert "2 of 4 sample(s) exceed" in out and "dropped 2 overlong sample(s), 2 left" in out
    # Everything overlong: an error now, never an empty dataset (nor an IndexError later).
    with pytest.raises(DatasetError, match=r"no samples left \(4 selected, 4 over data.max_prompt_length=10\)"):
        build(data_cfg(base_cfg, max_prompt_length=10, star__drop_overlong=True), [path], tok_proc)


def test_max_samples_selects_the_rows_verl_selects(base_cfg, tmp_path, tok_proc):
    from verl.trainer.ppo.utils import create_rl_dataset

    path = write_rows(tmp_path / "five.parquet", [mv_rl_row(i, VIEW_SIZES[:1]) for i in range(5)])
    tok, proc = tok_proc
    ds = create_rl_dataset([str(path)], data_cfg(base_cfg, shuffle=False).data, tok, proc, max_samples=3)
    assert [ds[i]["extra_info"]["index"] for i in range(len(ds))] == [0, 1, 2]
    # shuffle: veRL's own rule (RLHFDataset._read_files_and_tokenize), so a resumed run selects the same rows
    ds = create_rl_dataset([str(path)], data_cfg(base_cfg, shuffle=True, seed=7).data, tok, proc, max_samples=3)
    expected = np.random.default_rng(7).choice(5, size=3, replace=False).tolist()
    assert [ds[i]["extra_info"]["index"] for i in range(len(ds))] == expected


# ------------------------------------------------------------------ the prompt-length cache


def test_cache_hit_miss_and_invalidation(base_cfg, tmp_path, tok_proc, capsys, monkeypatch):
    path = write_rows(tmp_path / "c.parquet", [mv_rl_row(i, VIEW_SIZES) for i in range(3)])
    first = build(base_cfg, [path], tok_proc)
    assert "validated and measured 3 rows" in capsys.readouterr().out
    cached = list((tmp_path / lengths.CACHE_SUBDIR).glob("c.parquet.*.lengths.json"))
    assert len(cached) == 1

    calls = []
    real = lengths.measure_rows
    monkeypatch.setattr(lengths, "measure_rows", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = build(data_cfg(base_cfg, max_prompt_length=2000), [path], tok_proc)  # the limit is not part of the key
    assert "3 prompt lengths from cache" in capsys.readouterr().out and calls == []
    assert again.prompt_lengths.tolist() == first.prompt_lengths.tolist()

    for changed in ({"star__max_pixels": 12544}, {"star__template": "plain"}):
        build(data_cfg(base_cfg, **changed), [path], tok_proc)
    assert len(calls) == 2

    # Rewriting the file (same rows but one) misses, and measures the new content.
    write_rows(path, [mv_rl_row(i, VIEW_SIZES[: 1 + i]) for i in range(3)])
    rewritten = build(base_cfg, [path], tok_proc)
    assert len(calls) == 3 and rewritten.prompt_lengths.tolist() != first.prompt_lengths.tolist()
    # A touched file (same bytes, new mtime) misses too: the fingerprint is size + mtime + head/tail hash.
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    build(base_cfg, [path], tok_proc)
    assert len(calls) == 4


def test_cache_dir_is_used_and_a_corrupt_cache_is_measured_again(base_cfg, tmp_path, tok_proc, capsys):
    path = write_rows(tmp_path / "d.parquet", [mv_rl_row(0, VIEW_SIZES)])
    cache_dir = tmp_path / "lengths"
    cfg = data_cfg(base_cfg, star__cache_dir=str(cache_dir))
    build(cfg, [path], tok_proc)
    (cache_file,) = cache_dir.glob("d.parquet.*.lengths.json")
    assert not (tmp_path / lengths.CACHE_SUBDIR).exists()
    cache_file.write_text("{broken")
    capsys.readouterr()
    build(cfg, [path], tok_proc)
    assert "validated and measured 1 rows" in capsys.readouterr().out
    assert json.loads(cache_file.read_text())["lengths"]


# ------------------------------------------------------------------ issue 6 round trip


def test_synthetic_tvr_round_trip_scores_the_answer_highest(base_cfg, tmp_path, tok_proc):
    """Synthetic generator -> TVR converter -> StarRLDataset -> compute_score: the ground-truth
    answer gets the maximum score on every row (format 1 + exact 5 per transformation, the paper's
    dense reward with the star_r1_tvr settings), and dropping or adding a transformation scores less."""
    from tests.tvr_prep_fixtures import synthetic_tvr_set

    out = synthetic_tvr_set(tmp_path / "tvr", n=3, seed=1)
    tvr_cfg = compose_recipe("star_r1_tvr", [f"actor_rollout_ref.model.path={base_cfg.actor_rollout_ref.model.path}"])
    kwargs = OmegaConf.to_container(tvr_cfg.reward.custom_reward_function.reward_kwargs)
    tvr_settings, _ = split_reward_kwargs(kwargs)
    files = [out / f"{split}.parquet" for split in ("train", "val", "test") if pq.read_metadata(out / f"{split}.parquet").num_rows]
    ds = build(tvr_cfg, files, tok_proc)
    assert len(ds) == sum(pq.read_metadata(f).num_rows for f in files) > 0
    for i in range(len(ds)):
        item = ds[i]
        assert item["raw_prompt"][0]["content"][0]["text"] == TEMPLATES["tvr"].system
        gt = json.loads(item["reward_model"]["ground_truth"])
        items = [f"{t['obj_idx']}.{t['attr']}.{t['val']}" for t in gt["transformations"]]

        def score(answer_items, item=item):
            response = f"<think>compare the two images</think><answer>{', '.join(answer_items)}</answer>"
            return compute_score(item["data_source"], response, item["reward_model"]["ground_truth"], item["extra_info"], **kwargs)

        best = score(items)
        assert best["acc"] == 1.0
        assert best["score"] == tvr_settings.tvr_format_weight + tvr_settings.tvr_exact_weight * len(items)
        assert score(items[:-1])["score"] < best["score"]
        assert score([*items, "0.size.large" if "0.size.large" not in items else "0.size.small"])["score"] < best["score"]

"""StarSFTDataset through `verl.trainer.sft_trainer.create_sft_dataset` with the star_r1_sft recipe:
a 2-image chain-of-thought sample, the shared prompt, validation, the length rule and the cache."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest
import torch
from omegaconf import OmegaConf

from star_verl.data.settings import DatasetError
from star_verl.prep.schema import image_entry
from star_verl.recipes import compose_recipe
from star_verl.templates import TEMPLATES
from tests.dataset_fixtures import BAD_FILE_CASES, MV_GT, MV_RESPONSE, bad_data_file, mv_question, mv_rl_row, mv_sft_row, without_column, write_rows

# Budget (hand-worked, Qwen smart_resize, factor 28): 2 images, cap = min(23520, 50176 // 2) = 23520.
#   448x336: 150528 px -> beta = sqrt(150528/23520) = 2.530; h = floor(336/2.53/28)*28 = 112,
#            w = floor(448/2.53/28)*28 = 168 -> grid (1, 8, 12), 6*4 = 24 tokens
#   112x112: 12544 px inside [3136, 23520] -> unchanged, grid (1, 8, 8), 16 tokens
SIZES = [(448, 336), (112, 112)]
GRIDS = [[1, 8, 12], [1, 8, 8]]
BUDGET = ["data.star.min_pixels=3136", "data.star.max_pixels=23520", "data.star.total_max_pixels=50176"]


@pytest.fixture(scope="module")
def sft_cfg(tiny_qwen25vl):
    return compose_recipe("star_r1_sft", [f"model.path={tiny_qwen25vl}", *BUDGET])


def with_data(cfg, **keys):
    cfg = copy.deepcopy(cfg)
    for key, value in keys.items():
        OmegaConf.update(cfg, f"data.{key.replace('__', '.')}", value, force_add=True)
    return cfg


def build(cfg, files, tok_proc, max_samples=-1):
    from verl.trainer.sft_trainer import create_sft_dataset

    tok, proc = tok_proc
    return create_sft_dataset([str(f) for f in files], cfg.data, tok, proc, max_samples=max_samples)


@pytest.fixture
def cot(tmp_path):
    return write_rows(tmp_path / "sft.parquet", [mv_sft_row(i, SIZES) for i in range(2)], sft=True)


def test_two_image_sample_has_loss_on_the_answer_images_in_budget_and_mrope(sft_cfg, cot, tok_proc):
    tok, proc = tok_proc
    ds = build(sft_cfg, [cot], tok_proc)
    assert type(ds).__name__ == "StarSFTDataset" and len(ds) == 2
    item = ds[0]
    ids, mask, pos = item["input_ids"], item["loss_mask"], item["position_ids"]
    assert ids.shape == mask.shape and len(ids) == ds.sample_lengths[0]

    # loss only on the assistant turn: everything after "<|im_start|>assistant\n", nothing before
    generation_prompt = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
    starts = [i for i in range(len(ids)) if ids[i : i + len(generation_prompt)].tolist() == generation_prompt]
    assert len(starts) == 1
    first = starts[0] + len(generation_prompt)
    assert mask[:first].sum() == 0 and bool(mask[first:].all())
    assert tok.decode(ids[first:]).startswith(MV_RESPONSE)
    text = tok.decode(ids[:first])
    assert TEMPLATES["three_step"].system in text and "which object is behind the sofa?" in text

    # images at the budget
    mm = item["multi_modal_inputs"]
    assert mm["image_grid_thw"].tolist() == GRIDS
    assert mm["pixel_values"].shape[0] == sum(t * h * w for t, h, w in GRIDS)
    pad = tok.convert_tokens_to_ids(proc.image_token)
    assert int((ids == pad).sum()) == 24 + 16

    # mrope: 4 rows (text positions, then temporal/height/width); over the first image the height and
    # width rows walk its 4 x 6 merged grid while the temporal row stays put
    assert pos.shape == (4, len(ids))
    assert torch.equal(pos[0], torch.arange(len(ids)))
    image = (ids == pad).nonzero().flatten()[:24]
    t, h, w = pos[1, image], pos[2, image], pos[3, image]
    assert len(set(t.tolist())) == 1
    assert (h - h.min()).tolist() == [r for r in range(4) for _ in range(6)]
    assert (w - w.min()).tolist() == list(range(6)) * 4


def test_sft_prompt_is_the_rl_prompt(sft_cfg, cot, tmp_path, tok_proc):
    """The tokens before the response are the RL prompt of the same question and images: one
    function (`star_verl.prompts.prompt_messages`) builds both, and both resize with the same budget."""
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils.dataset.rl_dataset import get_dataset_class

    tok, proc = tok_proc
    sft = build(sft_cfg, [cot], tok_proc)[0]
    rl_file = write_rows(tmp_path / "rl.parquet", [mv_rl_row(0, SIZES)])
    rl_cfg = compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={sft_cfg.model.path}", *BUDGET])
    rl_ds = create_rl_dataset([str(rl_file)], rl_cfg.data, tok, proc)

    async def rl_prompt():
        loop = SingleTurnAgentLoop(
            trainer_config=DictConfigWrap(rl_cfg),
            server_manager=None,
            tokenizer=tok,
            processor=proc,
            dataset_cls=get_dataset_class(rl_cfg.data),
            data_config=DictConfigWrap(rl_cfg.data),
            hf_model_type="qwen2_5_vl",
        )
        messages = list(rl_ds[0]["raw_prompt"])
        mm = await loop.process_multi_modal_info(messages)
        out: dict = {}
        return await loop.ct_build_initial_tokens(messages, images=mm["images"], mm_inputs_out=out), out

    rl_ids, rl_mm = asyncio.run(rl_prompt())
    assert sft["input_ids"][: len(rl_ids)].tolist() == list(rl_ids)
    assert torch.equal(sft["multi_modal_inputs"]["pixel_values"], rl_mm["pixel_values"])


# ------------------------------------------------------------------ bad input


def write_with_bad(tmp_path, name, row):
    return write_rows(tmp_path / f"{name}.parquet", [mv_sft_row(0, SIZES), row], sft=True)


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("placeholders", r"row 1 \(question_id 'q1'\): 1 <image> placeholder\(s\) but 2 image\(s\)"),
        ("image", r"row 1 \(question_id 'q1'\): image 0 does not decode"),
        ("ground_truth", r"row 1 .*bad mindcube ground truth: .*no 'answer'"),
        ("roles", r"row 1 .*messages must be \[user \(raw question\), assistant \(response\)\].*\['system', 'user', 'assistant'\]"),
        ("empty_response", r"row 1 .*the assistant response is empty"),
        ("response_image", r"row 1 .*the template or response adds <image> placeholders"),
    ],
)
def test_bad_rows_are_named(case, pattern, sft_cfg, tmp_path, tok_proc):
    row = mv_sft_row(1, SIZES)
    if case == "placeholders":
        row["messages"][0]["content"] = mv_question(1)
    elif case == "image":
        row["images"][0] = image_entry(b"\x89PNG\r\n\x1a\n not a png")
    elif case == "ground_truth":
        row["reward_model"] = {"style": "rule", "ground_truth": json.dumps({k: v for k, v in MV_GT.items() if k != "answer"})}
    elif case == "roles":
        row["messages"] = [{"role": "system", "content": "templated"}, *row["messages"]]
    elif case == "empty_response":
        row["messages"][1]["content"] = "  "
    elif case == "response_image":
        row["messages"][1]["content"] = "<think>see <image></think><answer>C</answer>"
    path = write_with_bad(tmp_path, case, row)
    with pytest.raises(DatasetError, match=rf"{path}: 1 bad row\(s\):\n  {path} {pattern}"):
        build(sft_cfg, [path], tok_proc)


@pytest.mark.parametrize(("case", "cause"), BAD_FILE_CASES)
def test_a_file_bad_as_a_whole_is_named_with_the_cause(case, cause, sft_cfg, tmp_path, tok_proc):
    path = bad_data_file(tmp_path, case)
    with pytest.raises(DatasetError, match=rf"^{path}: {cause}"):
        build(sft_cfg, [path], tok_proc)


def test_a_missing_messages_column_is_one_error_naming_the_file(sft_cfg, cot, tok_proc):
    path = without_column(cot, "messages")
    with pytest.raises(DatasetError) as err:
        build(sft_cfg, [path], tok_proc)
    assert str(err.value).startswith(f"{path}: missing column(s) ['messages']") and "\n" not in str(err.value)


def test_overlong_samples_fail_or_are_dropped_and_none_left_fails(sft_cfg, tmp_path, tok_proc, capsys):
    rows = [mv_sft_row(0, SIZES[1:]), mv_sft_row(1, SIZES), mv_sft_row(2, SIZES[1:])]
    path = write_rows(tmp_path / "long.parquet", rows, sft=True)
    lengths = build(sft_cfg, [path], tok_proc).sample_lengths
    limit = int(lengths[0])
    assert lengths[1] > limit == lengths[2]
    with pytest.raises(DatasetError, match=rf"1 of 3 sample\(s\) exceed data.max_length={limit}.*\n  {path} row 1: {lengths[1]} tokens"):
        build(with_data(sft_cfg, max_length=limit), [path], tok_proc)
    capsys.readouterr()
    ds = build(with_data(sft_cfg, max_length=limit, star__drop_overlong=True), [path], tok_proc)
    assert len(ds) == 2 and "dropped 1 overlong sample(s), 2 left" in capsys.readouterr().out
    assert [int(len(ds[i]["input_ids"])) for i in range(2)] == [limit, limit]
    with pytest.raises(DatasetError, match="no samples left"):
        build(with_data(sft_cfg, max_length=8, star__drop_overlong=True), [path], tok_proc)


def test_max_samples_reads_the_cached_lengths(sft_cfg, cot, tok_proc, capsys):
    build(sft_cfg, [cot], tok_proc)
    assert "validated and measured 2 rows" in capsys.readouterr().out
    ds = build(with_data(sft_cfg, shuffle=False), [cot], tok_proc, max_samples=1)
    assert "2 prompt lengths from cache" in capsys.readouterr().out
    assert len(ds) == 1 and len(ds.messages) == 1
    assert len(list((cot.parent / ".star_verl_cache").glob("sft.parquet.*.lengths.json"))) == 1

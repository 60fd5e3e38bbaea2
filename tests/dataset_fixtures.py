"""Small RL/SFT parquet files for the dataset-class tests, written with the project's own row
builders (`star_verl.prep.schema`) and noise images (tests/images.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from star_verl.prep.schema import RL_SCHEMA, SFT_SCHEMA, ParquetRowWriter, image_entry, make_extra_info, make_rl_row, make_sft_row
from tests.images import noise
from tests.tvr_fixtures import scene, tvr_gt

MV_GT = {"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], "task": "rotation", "references": [["sofa", "ball", "behind"]]}
MV_RESPONSE = (
    "<think>Step 1: Image 1: [sofa, ball, behind]\nStep 2: the sofa is the same object.\nStep 3: so the answer is C.</think><answer>C</answer>"
)


def mv_question(n_views: int) -> str:
    views = " ".join(f"View {k + 1}: <image>" for k in range(n_views))
    return f"{views}\nBased on these views, which object is behind the sofa?\nA. ball\nB. lamp\nC. chair\nD. table"


def mv_rl_row(
    index: int,
    sizes: Sequence[tuple[int, int]],
    *,
    question: str | None = None,
    images: list[dict] | None = None,
    ground_truth: dict[str, Any] | None = None,
    data_source: str = "mindcube",
) -> dict[str, Any]:
    images = images if images is not None else [image_entry(noise(s, seed=index * 10 + k)) for k, s in enumerate(sizes)]
    question = question if question is not None else mv_question(len(images))
    extra = make_extra_info(index=index, split="train", origin="mindcube", task="rotation", question_id=f"q{index}", n_images=len(images))
    return make_rl_row(data_source=data_source, question=question, images=images, ground_truth=ground_truth or MV_GT, extra_info=extra)


def tvr_rl_row(index: int, size: tuple[int, int] = (320, 240)) -> dict[str, Any]:
    objects = scene(4)
    question = "Initial image: <image> Final image: <image>\nObjects: " + "; ".join(f"{i}: {o['color']} {o['shape']}" for i, o in enumerate(objects))
    images = [image_entry(noise(size, seed=1000 + index)), image_entry(noise(size, seed=2000 + index))]
    extra = make_extra_info(index=index, split="train", origin="synthetic", task="tvr", view="left", question_id=f"t{index}", n_images=2)
    gt = tvr_gt([(1, "color", "cyan")], objects=objects, view="left")
    return make_rl_row(data_source="tvr", question=question, images=images, ground_truth=gt, extra_info=extra)


def mv_sft_row(index: int, sizes: Sequence[tuple[int, int]], response: str = MV_RESPONSE) -> dict[str, Any]:
    images = [image_entry(noise(s, seed=index * 10 + k)) for k, s in enumerate(sizes)]
    extra = make_extra_info(index=index, split="train", origin="mindcube", task="rotation", question_id=f"q{index}", n_images=len(images))
    return make_sft_row(
        data_source="mindcube", question=mv_question(len(images)), response=response, images=images, ground_truth=MV_GT, extra_info=extra
    )


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]], *, sft: bool = False) -> Path:
    with ParquetRowWriter(path, SFT_SCHEMA if sft else RL_SCHEMA, overwrite=True) as writer:
        writer.write_all(rows)
    return Path(path)


def agent_loop_prompts(cfg, items, tok_proc):
    """The AgentLoop's multimodal step for dataset items: [(prompt ids, mm inputs, images)]."""
    import asyncio

    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
    from verl.utils.dataset.rl_dataset import get_dataset_class

    tok, proc = tok_proc

    async def run():
        loop = SingleTurnAgentLoop(
            trainer_config=DictConfigWrap(cfg),
            server_manager=None,
            tokenizer=tok,
            processor=proc,
            dataset_cls=get_dataset_class(cfg.data),
            data_config=DictConfigWrap(cfg.data),
            hf_model_type="qwen2_5_vl",
        )
        out = []
        for item in items:
            messages = list(item["raw_prompt"])
            mm = await loop.process_multi_modal_info(messages)
            mm_inputs: dict = {}
            ids = await loop.ct_build_initial_tokens(messages, images=mm.get("images"), mm_inputs_out=mm_inputs)
            out.append((ids, mm_inputs, mm.get("images")))
        return out

    return asyncio.run(run())


# (case, what the error must say after "FILE: ") for a data path that is bad as a whole
BAD_FILE_CASES = [
    ("directory", r"is a directory, not a data file"),
    ("empty", r"empty file \(0 bytes\)"),
    ("corrupt", r"not a readable parquet file \(Parquet magic bytes not found"),
    ("missing", r"no such file"),
]


def bad_data_file(folder: Path, case: str) -> Path:
    """A data path that is bad as a whole: a folder named like a parquet, a 0-byte file, bytes that are no parquet, nothing."""
    path = folder / f"{case}.parquet"
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(b"this is not a parquet file")
    return path


def without_column(path: Path, column: str) -> Path:
    """A copy of a parquet file without one column, next to it."""
    import pyarrow.parquet as pq

    out = path.with_name(f"no_{column}_{path.name}")
    pq.write_table(pq.read_table(path).drop([column]), out)
    return out

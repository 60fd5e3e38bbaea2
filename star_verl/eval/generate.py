"""`star-verl eval generate`: run a model on a star-verl parquet and write a generations file for
`eval score`.

The prompt is built exactly as training builds it, by the same functions (`star_verl.prompts`): the
raw question of the row, rendered by the same `star_verl.templates` object (`--template auto` = the
data source's default), `<image>` placeholders replaced by the row's images in order, and the images
resized to the recipe's pixel budget (`star_verl.pixels`: per-image cap, lowered so a multi-view
sample stays within `total_max_pixels`) with the processor's patch size, as the AgentLoop does. The
template and the pixel budget are the recipe's `data.star`, read by the dataset's own settings class
(`StarDataSettings`); they, the decoding length and the validation decoding (`rollout.val_kwargs`)
default to the recipe the data source trains with (`star_r1_tvr` for TVR, `star_r1_mv` otherwise) or
to `--recipe`; flags override them (and are checked as `data.star` values). Every output line records
the settings it was generated with (`generation`).

Backends: vLLM when it is installed (offline `LLM.generate`, batched); otherwise transformers'
`generate`, one row at a time (slow: small models and tests).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from star_verl.data.files import parquet_file, require_columns
from star_verl.data.settings import StarDataSettings
from star_verl.pixels import DEFAULT_PATCH_SIZE, BudgetError, PixelBudget, processor_patch_size
from star_verl.prompts import IMAGE_PART, PromptError, budget_images, prompt_messages, raw_question
from star_verl.templates import PromptTemplate, get_template

DEFAULT_RECIPE_FOR_SOURCE = {"tvr": "star_r1_tvr", "mindcube": "star_r1_mv", "spar": "star_r1_mv", "mmsi": "star_r1_mv"}
# The data.star keys a generation takes from its recipe (and that flags override).
STAR_KEYS = ("template", "min_pixels", "max_pixels", "total_max_pixels")


@dataclass
class GenerationSettings:
    """What one output line was generated with (stored in the line's `generation`)."""

    model: str
    backend: str
    template: str  # the template's name, or "auto" resolved per row (the line stores the resolved one)
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 2048
    seed: int = 0
    min_pixels: int = StarDataSettings.min_pixels
    max_pixels: int = StarDataSettings.max_pixels
    total_max_pixels: int | None = None
    recipe: str | None = None

    @property
    def budget(self) -> PixelBudget:
        return PixelBudget(self.min_pixels, self.max_pixels, self.total_max_pixels)


@functools.cache
def recipe_defaults(name: str) -> dict[str, Any]:
    """The evaluation-relevant values of a shipped recipe, as veRL composes it (inherited recipes and
    veRL's defaults included): `data.star` (template, pixel budget) as the dataset reads it,
    `data.max_response_length`, and `actor_rollout_ref.rollout.val_kwargs` (the validation decoding:
    temperature, top_p, n)."""
    from omegaconf import OmegaConf

    from star_verl.recipes import compose_recipe

    cfg = compose_recipe(name)
    star = StarDataSettings.from_config(cfg.data)
    val = OmegaConf.to_container(OmegaConf.select(cfg, "actor_rollout_ref.rollout.val_kwargs") or {}, resolve=False)
    out: dict[str, Any] = {"recipe": name, **{key: getattr(star, key) for key in STAR_KEYS}}
    length = OmegaConf.select(cfg, "data.max_response_length")  # SFT recipes have none
    if isinstance(length, int):
        out["max_new_tokens"] = length
    for key in ("temperature", "top_p", "n"):
        if isinstance(val.get(key), (int, float)):
            out[key] = val[key]
    if val.get("do_sample") is False:
        out["temperature"] = 0.0
    return out


# ------------------------------------------------------------------------------------------- rows


_COLUMNS = ("data_source", "prompt", "images", "reward_model", "extra_info")


def open_rows(parquet: str | Path, limit: int | None = None, batch_size: int = 64) -> tuple[int, set[str], int, Iterator[list[dict[str, Any]]]]:
    """(rows, data sources, most images in a row, batches of rows) of a star-verl RL parquet; the rows
    are streamed batch by batch, so a benchmark with thousands of images is never all in memory."""
    path = Path(parquet)
    file = parquet_file(path)  # a directory, a missing, empty or corrupt file: one error naming it
    require_columns(path, _COLUMNS)
    head = file.read(columns=["data_source", "extra_info"]).slice(0, limit).to_pylist()
    sources = {r["data_source"] for r in head}
    max_images = max((int((r["extra_info"] or {}).get("n_images") or 0) for r in head), default=0)

    def batches() -> Iterator[list[dict[str, Any]]]:
        left = len(head)
        for batch in file.iter_batches(batch_size=max(1, batch_size), columns=list(_COLUMNS)):
            rows = batch.to_pylist()[:left]
            left -= len(rows)
            if rows:
                yield rows
            if left <= 0:
                return

    return len(head), sources, max_images, batches()


def prepare_row(row: Mapping[str, Any], where: str, template: PromptTemplate, settings: GenerationSettings,
                image_patch_size: int = DEFAULT_PATCH_SIZE) -> tuple[list[dict[str, Any]], list[Any]]:  # fmt: skip
    """(chat messages with image parts, PIL images at the budget) for one row: the RL dataset's
    prompt (`prompt_messages`) with the images as the AgentLoop loads them (`budget_images`)."""
    try:
        entries = list(row.get("images") or [])
        messages = prompt_messages(template, raw_question(row["prompt"]), [IMAGE_PART] * len(entries))
        return messages, budget_images(entries, settings.budget, image_patch_size)
    except (PromptError, BudgetError) as exc:
        raise PromptError(f"{where}: {exc}") from None


def sample_id(row: Mapping[str, Any], row_no: int) -> str:
    info = row.get("extra_info") or {}
    key = info.get("question_id") or info.get("index", row_no)
    return f"{info.get('origin') or row.get('data_source')}/{info.get('split', '')}/{key}"


# -------------------------------------------------------------------------------------- backends


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, max_images: int, seed: int):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.torch = torch
        self.processor = AutoProcessor.from_pretrained(model)
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        self.model = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).eval()
        if torch.cuda.is_available():
            self.model = self.model.to("cuda")
        torch.manual_seed(seed)

    def generate(self, batch: list[tuple[list[dict[str, Any]], list[Any]]], s: GenerationSettings) -> list[list[str]]:
        outputs = []
        for messages, images in batch:
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            inputs = self.processor(text=[text], images=images or None, return_tensors="pt").to(self.model.device)
            sample = s.temperature > 0
            kwargs = {"do_sample": sample, "max_new_tokens": s.max_new_tokens, "num_return_sequences": s.n}
            if sample:
                kwargs.update(temperature=s.temperature, top_p=s.top_p)
            else:  # greedy: unset the checkpoint's sampling defaults so transformers does not warn
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with self.torch.no_grad():
                ids = self.model.generate(**inputs, **kwargs)
            new = ids[:, inputs["input_ids"].shape[1] :]
            outputs.append(self.processor.batch_decode(new, skip_special_tokens=True))
        return outputs


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, max_images: int, seed: int):
        from transformers import AutoProcessor
        from vllm import LLM

        self.processor = AutoProcessor.from_pretrained(model)
        self.llm = LLM(model=model, limit_mm_per_prompt={"image": max(1, max_images)}, seed=seed)

    def generate(self, batch: list[tuple[list[dict[str, Any]], list[Any]]], s: GenerationSettings) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=s.n, temperature=s.temperature, top_p=s.top_p if s.temperature > 0 else 1.0, max_tokens=s.max_new_tokens, seed=s.seed
        )
        prompts = []
        for messages, images in batch:
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompts.append({"prompt": text, "multi_modal_data": {"image": images}} if images else {"prompt": text})
        results = self.llm.generate(prompts, params, use_tqdm=False)
        return [[o.text for o in r.outputs] for r in results]


# ------------------------------------------------------------------------------------------- main


def source_settings(
    source: str, *, model: str, backend: str, recipe: str | None = None, overrides: Mapping[str, Any] | None = None, seed: int = 0
) -> GenerationSettings:
    """The settings of a data source's rows: the defaults of the recipe it trains with (or `recipe`),
    then the explicit flags (`overrides`, None = not given); `data.star`'s are checked by
    `StarDataSettings`, as the dataset checks the recipe's."""
    values = dict(recipe_defaults(recipe or DEFAULT_RECIPE_FOR_SOURCE[source]))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    star = StarDataSettings.from_config({"star": {key: values[key] for key in STAR_KEYS}})
    return GenerationSettings(
        model=str(model), backend=backend, template=star.template_for(source).name, n=int(values.get("n", 1)),
        temperature=float(values.get("temperature", 0.0)), top_p=float(values.get("top_p", 1.0)),
        max_new_tokens=int(values.get("max_new_tokens", 2048)), seed=seed, min_pixels=star.min_pixels, max_pixels=star.max_pixels,
        total_max_pixels=star.total_max_pixels, recipe=values.get("recipe"),
    )  # fmt: skip


def generate(model: str, data: str | Path, out: str | Path, *, template: str = "auto", recipe: str | None = None, n: int | None = None,
             temperature: float | None = None, top_p: float | None = None, max_new_tokens: int | None = None, min_pixels: int | None = None,
             max_pixels: int | None = None, total_max_pixels: int | None = None, limit: int | None = None, batch_size: int = 64,
             backend: str = "auto", seed: int = 0, overwrite: bool = False, progress: bool = True) -> int:  # fmt: skip
    """Generate for every row of `data` (or the first `limit`); write `out` (JSON lines). Returns the lines written."""
    from tqdm import tqdm

    from star_verl.model_path import model_source

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    problem, _ = model_source(str(model))
    if problem is not None:
        raise FileNotFoundError(f"--model {problem}")
    n_rows, sources, max_images, batches = open_rows(data, limit, batch_size)
    if not n_rows:
        raise ValueError(f"{data}: no rows")
    if backend == "auto":
        backend = "vllm" if vllm_available() else "transformers"
    overrides = {"template": None if template == "auto" else template, "n": n, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                 "min_pixels": min_pixels, "max_pixels": max_pixels, "total_max_pixels": total_max_pixels}  # fmt: skip
    per_source: dict[str, GenerationSettings] = {}
    for source in sorted(sources):
        if source not in DEFAULT_RECIPE_FOR_SOURCE:
            raise ValueError(f"{data}: unknown data_source {source!r}")
        per_source[source] = source_settings(source, model=model, backend=backend, recipe=recipe, overrides=overrides, seed=seed)
        if per_source[source].n > 1 and per_source[source].temperature == 0:
            print(f"warning: {source}: n={per_source[source].n} samples with temperature 0 are identical (greedy)", file=sys.stderr)
    engine = (VLLMBackend if backend == "vllm" else TransformersBackend)(str(model), max_images, seed)
    patch_size = processor_patch_size(engine.processor)  # the AgentLoop resizes with the processor's patch size
    written = row_no = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=n_rows, desc="generate", unit="row", disable=not progress)
    with open(out, "w", encoding="utf-8") as fh:
        for rows in batches:
            by_source: dict[str, list[tuple[int, dict[str, Any]]]] = {}
            for row in rows:
                by_source.setdefault(row["data_source"], []).append((row_no, row))
                row_no += 1
            for source, items in by_source.items():
                settings = per_source[source]
                template = get_template(settings.template)
                prepared = [prepare_row(row, f"{data} row {i}", template, settings, patch_size) for i, row in items]
                responses = engine.generate(prepared, settings)
                for (i, row), outs in zip(items, responses, strict=True):
                    for k, text in enumerate(outs):
                        fh.write(json.dumps(_line(row, i, k, text, settings), ensure_ascii=False) + "\n")
                        written += 1
                fh.flush()
            bar.update(len(rows))
    bar.close()
    return written


def _line(row: Mapping[str, Any], row_no: int, k: int, text: str, settings: GenerationSettings) -> dict[str, Any]:
    sid = sample_id(row, row_no)
    return {
        "id": f"{sid}#{k}" if settings.n > 1 else sid,
        "data_source": row["data_source"],
        "response": text,
        "ground_truth": row["reward_model"]["ground_truth"],
        "extra_info": row.get("extra_info") or {},
        "generation": {**asdict(settings), "sample_index": k},
    }

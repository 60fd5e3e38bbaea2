"""The one prompt builder (`star_verl.prompts`): the RL dataset, `eval generate` and the teacher
client build the prompt of a row with the same function and get the same prompt (the same text
around the images, in the same order; the same pixels where they resize), and the builder's own
rules for image entries, placeholders and content parts."""

from __future__ import annotations

import base64

import pytest

from star_verl import prompts
from star_verl.data import rl_dataset, rows, sft_dataset
from star_verl.eval import generate as eval_generate
from star_verl.pixels import processor_patch_size
from star_verl.prep.schema import image_entry
from star_verl.prep.teacher import cache as teacher_cache
from star_verl.prep.teacher import client as teacher_client
from star_verl.prompts import IMAGE_PART, PromptError, image_bytes, open_image, prompt_messages
from star_verl.recipes import compose_recipe
from star_verl.templates import get_template
from tests.dataset_fixtures import agent_loop_prompts, mv_rl_row, write_rows
from tests.images import decode, noise

# Two views over star_r1_mv's 90000-pixel cap and one inside it, so the budget resizes.
SIZES = [(448, 336), (640, 480), (112, 112)]


def shape(messages) -> list[tuple[str, list[tuple[str, ...]]]]:
    """A prompt as (role, [("text", ...) or ("image",)]): what a model is shown, whatever the part format."""
    out = []
    for message in messages:
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out.append((message["role"], [("text", p["text"]) if p["type"] == "text" else ("image",) for p in parts]))
    return out


def test_every_prompt_site_calls_the_one_builder():
    for module in (rl_dataset, sft_dataset, rows, eval_generate, teacher_client, teacher_cache):
        assert module.prompt_messages is prompts.prompt_messages, module.__name__
    for module in (rl_dataset, sft_dataset, eval_generate):
        assert module.budget_images is prompts.budget_images, module.__name__


def test_rl_dataset_eval_generate_and_teacher_build_the_same_prompt(tiny_qwen25vl, tok_proc, tmp_path):
    from verl.trainer.ppo.utils import create_rl_dataset

    tok, proc = tok_proc
    row = mv_rl_row(0, SIZES)
    question = row["prompt"][0]["content"]
    expected = shape(prompt_messages(get_template("three_step"), question, [IMAGE_PART] * len(SIZES)))
    assert [kind for _, parts in expected for kind, *_ in parts].count("image") == len(SIZES)

    # the RL dataset (star_r1_mv, as main_ppo composes it) and the AgentLoop's images
    cfg = compose_recipe("star_r1_mv", [f"actor_rollout_ref.model.path={tiny_qwen25vl}", "data.max_prompt_length=2048"])
    path = write_rows(tmp_path / "one.parquet", [row])
    item = create_rl_dataset([str(path)], cfg.data, tok, proc)[0]
    assert shape(item["raw_prompt"]) == expected
    ((_, _, rl_images),) = agent_loop_prompts(cfg, [item], tok_proc)

    # eval generate, with the settings it takes for a mindcube row (star_r1_mv's data.star)
    settings = eval_generate.source_settings("mindcube", model="m", backend="transformers")
    messages, eval_images = eval_generate.prepare_row(row, "row 0", get_template(settings.template), settings, processor_patch_size(proc))
    assert shape(messages) == expected
    assert [im.size for im in eval_images] == [im.size for im in rl_images]
    assert [im.tobytes() for im in eval_images] == [im.tobytes() for im in rl_images]  # the same pixels
    assert eval_images[0].size != SIZES[0]  # the budget did resize

    # the teacher's request (OpenAI format: data URLs, the system message as a string)
    blobs = [entry["bytes"] for entry in row["images"]]
    request = teacher_client.request_messages(question, blobs)
    assert shape(request) == expected
    assert isinstance(request[0]["content"], str)
    urls = [p["image_url"]["url"] for p in request[1]["content"] if p["type"] == "image_url"]
    assert [base64.b64decode(url.split(",", 1)[1]) for url in urls] == blobs  # the original bytes, in order


def test_prompt_is_split_at_the_placeholders_and_their_count_checked():
    template = get_template("plain")
    text = prompt_messages(template, "<image> and <image>?")
    assert text == template.messages("<image> and <image>?")  # None: string contents, placeholders kept
    a, b = {"type": "image", "id": "a"}, {"type": "image", "id": "b"}
    system, user = prompt_messages(template, "<image> and <image>?", [a, b])
    assert system["content"] == [{"type": "text", "text": template.system}]
    assert user["content"] == [a, {"type": "text", "text": " and "}, b, {"type": "text", "text": "?"}]
    assert prompt_messages(template, "no image", []) == template.messages("no image")  # no images: strings
    with_response = prompt_messages(template, "<image>q", [a], response="<answer>A</answer>")
    assert with_response[-1] == {"role": "assistant", "content": [{"type": "text", "text": "<answer>A</answer>"}]}
    with pytest.raises(PromptError, match=r"2 <image> placeholder\(s\) but 1 image\(s\)"):
        prompt_messages(template, "<image><image>", [a])
    with pytest.raises(PromptError, match=r"the template or response adds <image> placeholders \(2 in all, 1 in the question\)"):
        prompt_messages(template, "<image>", [a], response="see <image>")


def test_every_image_entry_form_gives_the_same_image(tmp_path):
    data = noise((30, 20), seed=3)
    (tmp_path / "view.png").write_bytes(data)
    entries = [
        image_entry(data, "ignored.png"),  # the schema's {"bytes", "path"}: the bytes win
        {"bytes": None, "path": str(tmp_path / "view.png")},
        {"image": str(tmp_path / "view.png")},  # veRL's form
        f"file://{tmp_path / 'view.png'}",
    ]
    for entry in entries:
        assert image_bytes(entry) == data
        assert open_image(entry).size == (30, 20)
    assert image_bytes({"image": "view.png"}, base_dir=tmp_path) == data  # relative to the data file's folder
    pil = decode(data)
    assert open_image({"image": pil}) is pil and open_image(pil) is pil
    with pytest.raises(PromptError, match="no encoded bytes"):
        image_bytes(pil)
    with pytest.raises(PromptError, match=r"neither bytes nor a path: keys \['bytes', 'path'\]"):
        open_image({"bytes": b"", "path": None})
    with pytest.raises(PromptError, match="cannot be read"):
        image_bytes({"path": str(tmp_path / "missing.png")})

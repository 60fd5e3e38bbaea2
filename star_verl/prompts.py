"""The one prompt builder: from a row's raw question and images to the messages a model is given.

Every place that gives a model a prompt builds it here: the RL dataset (`raw_prompt`, and the images
the AgentLoop loads), the SFT dataset, the prompt-length measurement, the teacher client, `eval
generate` and `star-verl doctor`. "The prompt is built exactly as training builds it" holds because
they call the same functions, not because they were written alike:

- `raw_question` / `raw_conversation`: the raw question of a row (rows are never templated);
- `template_for`: the template of a data source (`auto`: its default);
- `prompt_messages`: the template's [system, user] (+ assistant) messages, each `<image>` placeholder
  replaced by the caller's image part, in order (a veRL item, a bare `{"type": "image"}` for a
  processor, an OpenAI `image_url`);
- `open_image` / `image_bytes`: a row's image entry (`{"bytes", "path"}`, `{"image": path}`, a PIL
  image or a path) as a PIL image or as its encoded bytes;
- `budget_images`: a sample's images decoded and resized to the pixel budget (`star_verl.pixels`).

Errors are `PromptError`s that name the problem; the caller adds the file and row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image

from star_verl.pixels import PixelBudget
from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE, IMAGE_PLACEHOLDER, PromptTemplate, get_template

# What a processor's chat template needs to render an image: its place, not its pixels.
IMAGE_PART: dict[str, str] = {"type": "image"}
_SEGMENTS = re.compile(f"({re.escape(IMAGE_PLACEHOLDER)})")


class PromptError(ValueError):
    """A row whose prompt cannot be built (the message names the problem; the caller adds the file and row)."""


# ---------------------------------------------------------------------------------------------
# the raw question and the template


def raw_question(prompt: Any) -> str:
    """The raw question of an RL row's `prompt`: exactly one user message (rows are never templated)."""
    messages = list(prompt) if prompt is not None else []
    if (
        len(messages) != 1
        or not isinstance(messages[0], Mapping)
        or messages[0].get("role") != "user"
        or not isinstance(messages[0].get("content"), str)
    ):
        roles = [m.get("role") if isinstance(m, Mapping) else type(m).__name__ for m in messages]
        raise PromptError(f"prompt must be one user message with the raw question (the template is applied at load time), got roles {roles}")
    return messages[0]["content"]


def raw_conversation(messages: Any) -> tuple[str, str]:
    """(question, response) of an SFT row's `messages`: [user (raw question), assistant]."""
    messages = list(messages) if messages is not None else []
    roles = [m.get("role") if isinstance(m, Mapping) else type(m).__name__ for m in messages]
    if roles != ["user", "assistant"] or not all(isinstance(m.get("content"), str) for m in messages):
        raise PromptError(f"messages must be [user (raw question), assistant (response)] with string contents, got roles {roles}")
    if not messages[1]["content"].strip():
        raise PromptError("the assistant response is empty")
    return messages[0]["content"], messages[1]["content"]


def template_for(name: str, data_source: str) -> PromptTemplate:
    """The template `name` (a name in star_verl.templates.TEMPLATES), or for "auto" the data source's default."""
    if name != "auto":
        return get_template(name)
    if data_source not in DEFAULT_TEMPLATE_FOR_SOURCE:
        raise PromptError(f"template auto has no template for data_source {data_source!r} (known: {sorted(DEFAULT_TEMPLATE_FOR_SOURCE)})")
    return get_template(DEFAULT_TEMPLATE_FOR_SOURCE[data_source])


# ---------------------------------------------------------------------------------------------
# messages


def prompt_messages(
    template: PromptTemplate, question: str, image_parts: Sequence[Mapping[str, Any]] | None = None, *, response: str | None = None
) -> list[dict[str, Any]]:
    """The messages of a raw question: the template's [system, user], then the assistant's
    `response` for an SFT conversation.

    `image_parts` None: string contents with the `<image>` placeholders kept (the text form, for a
    reader that places the images itself, as MultiTurnSFTDataset does). A sequence: one part per
    image, in placeholder order; the question must hold exactly that many placeholders and the
    template and response none. A sample with images then gets every content as a list of parts
    (veRL's RLHFDataset form): text parts, and the k-th `<image>` replaced by `image_parts[k]`; a
    sample without images keeps string contents."""
    messages: list[dict[str, Any]] = template.messages(question)
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    if image_parts is None:
        return messages
    n_all = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in messages)
    n_question = question.count(IMAGE_PLACEHOLDER)
    if n_all != n_question:
        raise PromptError(f"the template or response adds {IMAGE_PLACEHOLDER} placeholders ({n_all} in all, {n_question} in the question)")
    if n_all != len(image_parts):
        raise PromptError(f"{n_all} {IMAGE_PLACEHOLDER} placeholder(s) but {len(image_parts)} image(s)")
    if not image_parts:
        return messages
    parts = iter(image_parts)
    return [{"role": m["role"], "content": _content_parts(m["content"], parts)} for m in messages]


def _content_parts(text: str, image_parts) -> list[dict[str, Any]]:
    """`text` as content parts: text parts, and the next of `image_parts` for each `<image>`."""
    out: list[dict[str, Any]] = []
    for segment in _SEGMENTS.split(text):
        if segment == IMAGE_PLACEHOLDER:
            out.append(dict(next(image_parts)))
        elif segment:
            out.append({"type": "text", "text": segment})
    return out


def image_part(entry: Any) -> dict[str, Any]:
    """A row's image entry as veRL's content item, left undecoded (the AgentLoop's
    `process_multi_modal_info` decodes it at the budget): `{"type": "image", "bytes": ..., "path": ...}`
    for the schema's entries, `{"type": "image", "image": ...}` for a path or a PIL image."""
    if isinstance(entry, Mapping):
        return {"type": "image", **entry}
    return {"type": "image", "image": os.fspath(entry) if isinstance(entry, os.PathLike) else entry}


# ---------------------------------------------------------------------------------------------
# images


def _image_source(entry: Any, base_dir: str | os.PathLike | None) -> Image.Image | bytes | Path:
    """What an image entry points at: a PIL image, encoded bytes, or a file (a relative path that does
    not exist as given is looked up under `base_dir`, the data file's folder, when one is given)."""
    if isinstance(entry, (Image.Image, bytes, bytearray)):
        return bytes(entry) if isinstance(entry, bytearray) else entry
    if isinstance(entry, Mapping):
        if entry.get("bytes"):
            return bytes(entry["bytes"])
        inner = entry.get("image") if entry.get("image") is not None else entry.get("path")
        if inner is None or (isinstance(inner, str) and not inner):
            raise PromptError(f"image entry has neither bytes nor a path: keys {sorted(entry)}")
        return _image_source(inner, base_dir)
    if isinstance(entry, (str, os.PathLike)):
        path = Path(os.fspath(entry).removeprefix("file://"))
        if base_dir is not None and not path.is_absolute() and not path.exists():
            path = Path(base_dir) / path
        return path
    raise PromptError(f"unsupported image entry of type {type(entry).__name__}")


def open_image(entry: Any, base_dir: str | os.PathLike | None = None) -> Image.Image:
    """A row's image entry as a PIL image (lazily decoded, as `Image.open` leaves it)."""
    source = _image_source(entry, base_dir)
    if isinstance(source, Image.Image):
        return source
    return Image.open(BytesIO(source) if isinstance(source, bytes) else source)


def image_bytes(entry: Any, base_dir: str | os.PathLike | None = None) -> bytes:
    """A row's image entry as its encoded bytes (the file's bytes for a path entry)."""
    source = _image_source(entry, base_dir)
    if isinstance(source, bytes):
        return source
    if isinstance(source, Image.Image):
        raise PromptError("a decoded (PIL) image entry has no encoded bytes")
    try:
        return source.read_bytes()
    except OSError as exc:
        raise PromptError(f"image {os.fspath(source)!r} cannot be read ({exc})") from None


def budget_images(entries: Sequence[Any], budget: PixelBudget, image_patch_size: int) -> list[Image.Image]:
    """A sample's images decoded, in RGB, resized to the budget (per image, and the per-sample total
    split evenly): what the processor receives, and what `PixelBudget.fitted_sizes` predicts."""
    return budget.resize([open_image(entry) for entry in entries], image_patch_size)

"""The prompt templates: one object per template, used unchanged by data prep (prompt lengths), the
SFT dataset, the RL dataset, the teacher client and evaluation.

A template renders a system part and a user part around the sample's raw question; the question
keeps its `<image>` placeholders, in order. Data rows never hold templated text.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    description: str
    system: str
    user_prefix: str = ""
    user_suffix: str = ""

    def user_text(self, question: str) -> str:
        return f"{self.user_prefix}{question}{self.user_suffix}"

    def messages(self, question: str) -> list[dict[str, str]]:
        """Chat messages (text with <image> placeholders) for a raw question."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user_text(question)}]


THREE_STEP = PromptTemplate(
    name="three_step",
    description="STAR-R1 multi-view: per-view references, cross-view mapping, reasoning to the answer",
    system=(
        "You are a spatial reasoning assistant. You are shown several images of the same scene taken from different viewpoints.\n"
        "Think in three steps inside <think></think>:\n"
        "Step 1 (per-view reference analysis): for each image, choose the key reference objects and write their spatial relations "
        "as triplets [object 1, object 2, relation], for example [sofa, ball, behind].\n"
        "Step 2 (cross-view spatial mapping): match the objects across the views by appearance and relative layout, "
        "and merge the per-view relations into one scene-level spatial map.\n"
        "Step 3 (spatial reasoning): reason on that map to answer the question.\n"
        "Then give only the final answer inside <answer></answer>: the option letter for a multiple-choice question, "
        "the number for a numeric question, or the requested string."
    ),
)

TVR = PromptTemplate(
    name="tvr",
    description="STAR-R1 TVR: list every object transformation between two images",
    system=(
        "You are shown two images of the same scene: the initial state (from the center camera) and the final state "
        "(from the center, left or right camera). Between them some objects changed one attribute each.\n"
        "Attributes and their values: color (gray, red, blue, green, brown, purple, cyan, yellow); "
        "shape (cube, sphere, cylinder); size (small, medium, large); material (rubber, metal, glass).\n"
        "Find every transformation. Reason inside <think></think>, then write the transformations inside <answer></answer> "
        "as index.attribute.value items separated by commas, where index is the object's index in the initial object list, "
        "for example <answer>2.color.cyan, 4.size.small</answer>."
    ),
)

PLAIN = PromptTemplate(
    name="plain",
    description="baseline: only the think/answer output format",
    system="Answer the question about the images. Reason inside <think></think>, then give only the final answer inside <answer></answer>.",
)

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (THREE_STEP, TVR, PLAIN)}

# The template a data source gets when the recipe names none.
DEFAULT_TEMPLATE_FOR_SOURCE = {"tvr": "tvr", "mindcube": "three_step", "spar": "three_step", "mmsi": "three_step"}


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown template {name!r}; available: {sorted(TEMPLATES)}") from None

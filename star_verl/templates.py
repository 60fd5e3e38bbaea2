"""The prompt templates: one object per template, used unchanged by data prep (prompt lengths), the
SFT dataset, the RL dataset, the teacher client and evaluation.

A template renders a system part and a user part around the sample's raw question; the question
keeps its `<image>` placeholders, in order. Data rows never hold templated text.
"""

from __future__ import annotations

from dataclasses import dataclass

from star_verl.tasks.references import RELATIONS
from star_verl.tasks.tvr import VOCAB as TVR_VOCAB

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
        "You are a spatial reasoning assistant. The images show the same scene from different viewpoints; "
        "image 1 is the first image of the question, image 2 the second, and so on.\n"
        "Think in three steps inside <think></think>, starting each step on a new line with its heading:\n"
        'Step 1 (per-view reference analysis): for each image, write "Image k:" and list the key reference objects '
        "of that view as relation triplets [object 1, object 2, relation], meaning object 1 is <relation> object 2, "
        'for example [sofa, ball, behind]. Use short object names, "observer" for the camera itself '
        "(for example [door, observer, left]), and one relation from: "
        f"{', '.join(RELATIONS)}.\n"
        "Step 2 (cross-view spatial mapping): match the objects that appear in several images by their appearance "
        "and relative layout, and merge the per-image relations into one scene-level spatial map.\n"
        "Step 3 (spatial reasoning): reason on that scene-level map to answer the question.\n"
        "Then give only the final answer inside <answer></answer>: the option letter for a multiple-choice question "
        "(for example <answer>B</answer>), the number for a numeric question (for example <answer>2.6</answer>), "
        "or the string in the format the question asks for."
    ),
)

TVR = PromptTemplate(
    name="tvr",
    description="STAR-R1 TVR: list every object transformation between two images",
    system=(
        "You are shown two images of the same scene. The first image is the initial state, seen from the center camera. "
        "The second image is the final state, seen from the center, left or right camera, so the viewpoint may differ. "
        "Between the two states some objects changed: each transformation changes one attribute of one object.\n"
        "The question lists the objects of the initial state with their indices. "
        "Attributes and their values: " + "; ".join(f"{attr} ({', '.join(values)})" for attr, values in TVR_VOCAB.items()) + ".\n"
        "Find every transformation. Reason inside <think></think>, then write all transformations inside <answer></answer> "
        "as index.attribute.value items separated by commas, where index is the object's index in the initial object list, "
        "for example <answer>2.color.cyan, 4.size.small</answer>."
    ),
)

PLAIN = PromptTemplate(
    name="plain",
    description="baseline: only the think/answer output format",
    system=(
        "Answer the question about the images. Reason inside <think></think>, then give only the final answer inside "
        "<answer></answer>: the option letter for a multiple-choice question, the number for a numeric question, "
        "or the string in the format the question asks for."
    ),
)

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (THREE_STEP, TVR, PLAIN)}

# The template a data source gets when the recipe names none.
DEFAULT_TEMPLATE_FOR_SOURCE = {"tvr": "tvr", "mindcube": "three_step", "spar": "three_step", "mmsi": "three_step"}


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown template {name!r}; available: {sorted(TEMPLATES)}") from None

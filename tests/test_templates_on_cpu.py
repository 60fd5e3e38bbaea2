"""Prompt templates: golden renders (every change to a prompt is a visible diff), placeholders kept in
order, and agreement between what the templates ask for and what the scorers read.

Regenerate the golden files after an intended prompt change with
`STAR_VERL_UPDATE_GOLDEN=1 python -m pytest tests/test_templates_on_cpu.py` and review `git diff tests/golden`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from star_verl.prep.trance import build_question
from star_verl.tasks.references import RELATIONS, normalize_relation, parse_reference_triplets, three_step_structure
from star_verl.tasks.registry import DATA_SOURCES
from star_verl.tasks.tvr import parse_tvr_answer
from star_verl.templates import DEFAULT_TEMPLATE_FOR_SOURCE, IMAGE_PLACEHOLDER, TEMPLATES, get_template

GOLDEN = Path(__file__).parent / "golden" / "templates"
# the objects of the TVR example in docs/templates.md
TVR_EXAMPLE_OBJECTS = [
    {"size": "small", "color": "gray", "material": "metal", "shape": "cylinder", "position": [-8, 3]},
    {"size": "large", "color": "red", "material": "rubber", "shape": "cube", "position": [5, -12]},
    {"size": "medium", "color": "yellow", "material": "glass", "shape": "sphere", "position": [14, 9]},
]
UPDATE = os.environ.get("STAR_VERL_UPDATE_GOLDEN") == "1"

# One raw question per source, as the converters write them (DESIGN.md: raw question with one <image>
# per image; TVR's carries the initial objects with their indices). Texts follow the real samples
# quoted in shared/reference/datasets.md.
QUESTIONS = {
    "tvr": build_question(TVR_EXAMPLE_OBJECTS, with_positions_outside=False),
    "mindcube": (
        "<image>\n<image>\nBased on these two views showing the same scene: in which direction did I move from the first view "
        "to the second view? A. Directly left B. Diagonally forward and right C. Diagonally forward and left D. Directly right"
    ),
    "spar_numeric": (
        "<image>\n<image>\n<image>\nIf the books (red point) is 2.5 meters deep, how deep is the bookshelf (blue point)?  "
        "Calculate or judge based on the 3D center points of these objects. Answer by providing just one numeric value."
    ),
    "spar_choice": (
        "<image>\n<image>\n<image>\nHow is object sink (bbox) situated with respect to the observer's main viewpoint? "
        "Calculate or judge based on the 3D center points of these objects.\nPick the right response from the available choices.\n"
        "A. left, above, front\nB. , below, behind\nC. right, , front\nD. right, below, front\n"
        "Your answer can only include one of options A, B, C or D."
    ),
    "mmsi": (
        "<image><image>\nThe two pictures are taken by a camera moving through the room. Where is the lamp relative to the "
        "camera of the second picture?\nOptions: A: front left, B: front right, C: behind left, D: behind right"
    ),
}


def render(template_name: str, question: str) -> str:
    system, user = get_template(template_name).messages(question)
    assert (system["role"], user["role"]) == ("system", "user")
    return f"=== system ===\n{system['content']}\n=== user ===\n{user['content']}\n"


CASES = [(t, s) for t in sorted(TEMPLATES) for s in QUESTIONS]


@pytest.mark.parametrize(("template_name", "source"), CASES)
def test_render_matches_golden(template_name, source):
    path = GOLDEN / f"{template_name}__{source}.txt"
    text = render(template_name, QUESTIONS[source])
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with STAR_VERL_UPDATE_GOLDEN=1 and review the diff"
    assert text == path.read_text(encoding="utf-8"), f"rendered prompt differs from {path}; if intended, regenerate and review the diff"


def test_no_stale_golden_files():
    expected = {f"{t}__{s}.txt" for t, s in CASES}
    assert {p.name for p in GOLDEN.glob("*.txt")} == expected


@pytest.mark.parametrize("template_name", sorted(TEMPLATES))
def test_placeholders_kept_in_order_and_only_in_user(template_name):
    question = "a <image> b\n<image><image> c <image>"
    system, user = get_template(template_name).messages(question)
    assert IMAGE_PLACEHOLDER not in system["content"]
    # the question is embedded unchanged: placeholders in order, with the same text between them
    assert question in user["content"]
    assert user["content"].count(IMAGE_PLACEHOLDER) == 4


def test_every_source_has_a_default_template():
    assert set(DEFAULT_TEMPLATE_FOR_SOURCE) == set(DATA_SOURCES)
    assert all(name in TEMPLATES for name in DEFAULT_TEMPLATE_FOR_SOURCE.values())
    assert DEFAULT_TEMPLATE_FOR_SOURCE["tvr"] == "tvr"
    assert {DEFAULT_TEMPLATE_FOR_SOURCE[s] for s in ("mindcube", "spar", "mmsi")} == {"three_step"}


def test_unknown_template_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown template 'three-step'.*three_step"):
        get_template("three-step")


def test_three_step_example_and_relations_are_what_the_scorer_reads():
    system = TEMPLATES["three_step"].system
    example = re.search(r"for example (\[[^\]]+\])", system).group(1)
    assert [(r.obj1, r.obj2, r.relation) for r in parse_reference_triplets(example)] == [("sofa", "ball", "behind")]
    observer = re.search(r"\(for example (\[[^\]]+\])\)", system).group(1)
    assert [(r.obj1, r.obj2, r.relation) for r in parse_reference_triplets(observer)] == [("door", "observer", "left")]
    listed = re.search(r"one relation from: ([a-z, ]+)\.", system).group(1).split(", ")
    assert listed == list(RELATIONS)
    assert [normalize_relation(r) for r in listed] == listed


def test_a_response_written_as_the_three_step_template_asks_passes_the_structure_check():
    """The headings the template asks for ("Step k", "Image k:") are the ones the SFT filter checks."""
    response = (
        "<think>Step 1 (per-view reference analysis):\nImage 1: [sofa, ball, behind], [lamp, sofa, left]\n"
        "Image 2: [ball, door, front]\nStep 2 (cross-view spatial mapping): the ball is the same object in both views; "
        "the door is behind the ball.\nStep 3 (spatial reasoning): from image 1 the door is straight ahead, so B.</think>"
        "<answer>B</answer>"
    )
    result = three_step_structure(response, n_images=2)
    assert result.ok, result.reasons
    assert result.n_triplets == 3 and result.views_with_triplets == (1, 2)


def test_tvr_example_answer_is_what_the_tvr_parser_reads():
    system = TEMPLATES["tvr"].system
    example = re.search(r"for example <answer>(.*?)</answer>", system).group(1)
    assert [(t.obj_idx, t.attr, t.val) for t in parse_tvr_answer(example)] == [(2, "color", "cyan"), (4, "size", "small")]


def test_the_documented_tvr_example_is_what_the_converter_writes():
    """The TVR template example of docs/templates.md: the template on the question the converter builds."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "templates.md").read_text(encoding="utf-8")
    assert render("tvr", QUESTIONS["tvr"]) in page

"""The `>>>` examples in the docstrings of `star_verl.tasks` and `star_verl.rewards` (TRL's habit:
each public parser and reward function shows a call and its result) run here, module by module, so
an example that stops being true fails the suite."""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import types

import pytest

import star_verl.rewards
import star_verl.tasks

MODULES = sorted(
    name
    for package in (star_verl.tasks, star_verl.rewards)
    for name in (package.__name__, *(m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")))
)

# The public parsers and reward functions whose docstrings must show an example.
WITH_EXAMPLES = {
    "star_verl.tasks.choice": ("extract_option_letter",),
    "star_verl.tasks.numeric": ("extract_number", "mean_relative_accuracy"),
    "star_verl.tasks.tags": ("as_text", "last_answer", "parse_tags"),
    "star_verl.tasks.view_change": ("extract_view_change", "parse_view_change", "view_change_score"),
    "star_verl.tasks.tvr": ("parse_tvr_answer", "response_triplets", "match_triplets"),
    "star_verl.tasks.references": (
        "normalize_object",
        "normalize_relation",
        "reference_from_ground_truth",
        "step1_text",
        "parse_reference_triplets",
        "step1_triplets",
        "names_match",
        "match_tier",
        "match_references",
        "three_step_structure",
    ),  # fmt: skip
    "star_verl.tasks.multiview": ("parse_multiview_ground_truth", "score_answer"),
    "star_verl.tasks.ground_truth": ("sample_name", "parse_ground_truth", "ground_truth_json"),
    "star_verl.tasks.registry": ("Origin.scored_as", "origins_of", "mindcube_setting", "spar_answer_type", "mmsi_category", "ground_truth_family"),
    "star_verl.rewards": ("split_reward_kwargs", "compute_score"),
    "star_verl.rewards.base": ("finalize",),
    "star_verl.rewards.tvr": ("tvr_reward",),
    "star_verl.rewards.multiview": ("multiview_reward",),
}


def run_examples(module: types.ModuleType) -> tuple[doctest.TestResults, str]:
    """Run every docstring example of a module (in its own globals, as `python -m doctest` does):
    the counts and the report of each failing example."""
    report = io.StringIO()
    runner = doctest.DocTestRunner(verbose=False)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module):
        runner.run(test, out=report.write)
    return runner.summarize(verbose=False), report.getvalue()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    results, report = run_examples(importlib.import_module(name))
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples of {name} fail:\n{report}"


@pytest.mark.parametrize("name", sorted(WITH_EXAMPLES))
def test_public_parsers_and_rewards_show_an_example(name):
    module = importlib.import_module(name)
    parser = doctest.DocTestParser()
    missing = []
    for qualified in WITH_EXAMPLES[name]:
        target = module
        for part in qualified.split("."):
            target = getattr(target, part)
        if not parser.get_examples(target.__doc__ or ""):
            missing.append(qualified)
    assert not missing, f"{name}: no `>>>` example in the docstring of {missing}"


def test_a_wrong_example_fails():
    module = types.ModuleType("examples_under_test")
    exec(
        'def double(x):\n    """\n    >>> double(2)\n    4\n    >>> double(3)\n    7\n    """\n    return 2 * x\n',
        module.__dict__,
    )
    results, report = run_examples(module)
    assert (results.attempted, results.failed) == (2, 1)
    assert "double(3)" in report and "Expected:\n    7\nGot:\n    6" in report

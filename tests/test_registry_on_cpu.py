"""The benchmark vocabulary has one home, `star_verl.tasks.registry`: each list is imported from there,
and a scan of the package's source (ast) finds no other module that assigns one of its names or
writes one of its lists again as a literal (in any order), and no docstring example (`>>>`, run by
tests/test_docstring_examples_on_cpu.py) that writes one, in the registry itself included."""

from __future__ import annotations

import ast
import doctest
from collections.abc import Iterator
from pathlib import Path

import pytest

import star_verl
from star_verl.eval.report import paper_numbers
from star_verl.prep.markers import MULTIVIEW_MARKER_TASKS
from star_verl.tasks import registry
from star_verl.tasks.registry import (
    DATA_SOURCES,
    MINDCUBE_SETTINGS,
    MINDCUBE_TRAINING_SETTINGS,
    MMSI_CATEGORIES,
    MULTIVIEW_SOURCES,
    ORIGINS,
    SPAR7M_MULTIVIEW_TASKS,
    SPAR7M_TASKS,
    SPARBENCH_LAST_NUMBER_TASKS,
    SPARBENCH_LEVELS,
    SPARBENCH_NUMERIC_TASKS,
    SPARBENCH_TASKS,
    Origin,
    ground_truth_family,
    mindcube_setting,
    mmsi_category,
    origins_of,
    spar_answer_type,
)

PACKAGE = Path(star_verl.__file__).resolve().parent
HOME = PACKAGE / "tasks" / "registry.py"


def registry_lists() -> dict[str, frozenset[str]]:
    """Every list of names the registry holds (tuples, the keys of ORIGINS, SPAR's levels), as sets."""
    lists: dict[str, frozenset[str]] = {}
    for name, value in vars(registry).items():
        if isinstance(value, tuple) and len(value) >= 2 and all(isinstance(v, str) for v in value):
            lists[name] = frozenset(value)
    lists["ORIGINS"] = frozenset(ORIGINS)
    lists.update({f"SPARBENCH_LEVELS[{level!r}]": frozenset(tasks) for level, tasks in SPARBENCH_LEVELS.items()})
    return lists


def _literal_strings(node: ast.AST) -> frozenset[str] | None:
    """The strings of a tuple/list/set literal made of string constants only (or of a dict literal's keys)."""
    elements = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else None
    if not elements or len(elements) < 2 or not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elements):
        return None
    return frozenset(e.value for e in elements)  # type: ignore[union-attr]


def _examples(tree: ast.Module) -> Iterator[tuple[int, ast.Module]]:
    """The docstring examples of a module (each one's source and expected output, where they parse as
    Python), with the line of the example."""
    parser = doctest.DocTestParser()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ">>>" in node.value:
            for example in parser.get_examples(node.value):
                for text in (example.source, example.want):
                    try:
                        yield node.lineno + example.lineno, ast.parse(text)
                    except SyntaxError:  # an output such as a traceback
                        continue


def _place(where: Path, example_line: int | None, node: ast.AST) -> str:
    return f"{where}:{node.lineno}" if example_line is None else f"{where}:{example_line} (docstring example)"  # type: ignore[attr-defined]


def copies(root: Path, home: Path) -> list[str]:
    """Where a module other than `home` assigns a registry name or writes a registry list literally,
    and where a docstring example (in any module) writes a registry list."""
    names = {n for n in vars(registry) if not n.startswith("_") and n.isupper()}
    lists = registry_lists()
    by_set: dict[frozenset[str], str] = {}
    for name, strings in lists.items():
        by_set.setdefault(strings, name)  # a list that is also a level is named as the list
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root.parent)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        code = [] if path == home else [(None, tree)]  # (the example's line or None, the tree scanned)
        for example_line, scanned in code + list(_examples(tree)):
            for node in ast.walk(scanned):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in names:
                        found.append(f"{_place(where, example_line, node)}: assigns {target.id}")
                strings = _literal_strings(node)
                if strings is None or strings not in by_set:
                    continue
                if isinstance(node, ast.Dict) and by_set[strings] != "ORIGINS":
                    continue  # a mapping keyed by data source or level (a template, a color per level) is not a copy
                found.append(f"{_place(where, example_line, node)}: writes {by_set[strings]} again")
    return found


def test_no_module_but_the_registry_holds_the_vocabulary():
    found = copies(PACKAGE, HOME)
    assert not found, "benchmark vocabulary outside star_verl.tasks.registry:\n  " + "\n  ".join(found)


def test_the_scan_finds_a_copy(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "home.py").write_text(
        'DATA_SOURCES = ("tvr", "mindcube", "spar", "mmsi")\n"""\n>>> DATA_SOURCES\n(\'tvr\', \'mindcube\', \'spar\', \'mmsi\')\n"""\n'
    )
    (package / "a.py").write_text(
        'SOURCES = ("mmsi", "spar", "tvr", "mindcube")\n'  # another order, same list
        "def f():\n    DATA_SOURCES = []\n"
        'BY_ORIGIN = {"trance": 1, "synthetic": 1, "mindcube": 1, "spar7m": 1, "synthetic_mv": 1, "mindcube_tiny": 1, "sparbench": 1, "mmsi": 1}\n'
        'TEMPLATE = {"tvr": "a", "mindcube": "b", "spar": "b", "mmsi": "b"}\n'  # keyed by data source: not a copy
        'def g():\n    """Scores a family.\n\n    >>> [score(s) for s in ["mmsi", "spar", "tvr", "mindcube"]]\n    [1, 1, 1, 1]\n    """\n'
        'def h():\n    """\n    >>> score("spar"), score("tvr")\n    (1, 1)\n    """\n'  # single names: not a copy
    )
    assert copies(package, package / "home.py") == [
        "pkg/a.py:1: writes DATA_SOURCES again",
        "pkg/a.py:3: assigns DATA_SOURCES",
        "pkg/a.py:4: writes ORIGINS again",
        "pkg/a.py:9 (docstring example): writes DATA_SOURCES again",
        "pkg/home.py:3 (docstring example): writes DATA_SOURCES again",
    ]


def test_each_origin_has_its_family_and_where_eval_reports_it():
    assert set(MULTIVIEW_SOURCES) == set(DATA_SOURCES) - {"tvr"}
    assert all(o.data_source in DATA_SOURCES for o in ORIGINS.values())
    assert origins_of("tvr") == ("trance", "synthetic") and origins_of("spar") == ("spar7m", "sparbench")
    # every benchmark an origin names is one the paper reports (and eval report draws beside runs)
    assert {o.benchmark for o in ORIGINS.values() if o.benchmark} == set(paper_numbers()["benchmarks"])
    scored_as = {
        "trance": "tvr", "synthetic": "tvr_synthetic", "mindcube": "mindcube", "spar7m": "spar7m",
        "mindcube_tiny": "mindcube_tiny", "sparbench": "sparbench", "mmsi": "mmsi",
    }  # fmt: skip
    assert {name: ORIGINS[name].scored_as for name in scored_as} == scored_as
    # an origin is one line: its family, and where eval reports it (its own name for a training source)
    extra = Origin("synthetic_mv", "mindcube")
    assert extra.scored_as == "synthetic_mv" and extra.benchmark is None


def test_spar_task_groups_nest_and_give_the_answer_types():
    assert len(SPARBENCH_TASKS) == len(set(SPARBENCH_TASKS)) == 20 and set(SPARBENCH_TASKS) <= set(SPAR7M_TASKS)
    assert len(SPAR7M_TASKS) == len(set(SPAR7M_TASKS))
    assert set(SPAR7M_MULTIVIEW_TASKS) == set(MULTIVIEW_MARKER_TASKS)  # each multi-view task has its marker rule
    assert set(SPARBENCH_LAST_NUMBER_TASKS) == {
        "depth_prediction_oc_mv",
        "depth_prediction_oo_mv",
        "distance_prediction_oc_mv",
        "distance_prediction_oo_mv",
    }
    assert set(SPARBENCH_LAST_NUMBER_TASKS) <= set(SPARBENCH_NUMERIC_TASKS)
    assert [spar_answer_type(t) for t in ("position_matching", "depth_prediction_oc", "view_change_infer", "obj_count")] == [
        "choice",
        "numeric",
        "view_change",
        None,
    ]


def test_mindcube_setting_is_the_first_one_the_id_contains():
    assert set(MINDCUBE_TRAINING_SETTINGS) == set(MINDCUBE_SETTINGS) - {"translation"}
    assert [mindcube_setting(i) for i in ("among_group693_q1_5_2", "aroundnew_x", "Rotation_group000", "translation_1", "xyz", "")] == [
        "among", "around", "rotation", "translation", None, None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("written", "category"),
    [
        ("Positional Relationship (Cam.\u2013Obj.)", "Positional Relationship (Cam.\u2013Obj.)"),  # the release
        ("Positional Relationship (Cam.-Obj.)", "Positional Relationship (Cam.\u2013Obj.)"),  # an older copy
        ("Positional  Relationship (Obj. \u2014 Reg.)", "Positional Relationship (Obj.\u2013Reg.)"),
        (" MSR ", "MSR"),
    ],
)
def test_mmsi_category_is_the_release_spelling(written, category):
    assert mmsi_category(written) == category and category in MMSI_CATEGORIES


def test_ground_truth_family_follows_its_keys_or_task():
    assert ground_truth_family({"transformations": [], "objects": [], "view": "center"}) == "tvr"
    assert ground_truth_family({"type": "choice", "task": "rotation"}) == "mindcube"
    assert ground_truth_family({"type": "numeric", "task": "obj_count"}) == "spar"  # a SPAR-7M task outside SPAR-Bench
    assert ground_truth_family({"type": "choice", "task": "Motion (Cam.)"}) == "mmsi"
    assert ground_truth_family({"type": "choice", "task": "Positional Relationship (Cam.-Obj.)"}) == "mmsi"
    assert ground_truth_family({"type": "choice", "task": "riddles"}) is None and ground_truth_family({}) is None

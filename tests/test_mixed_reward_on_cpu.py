"""A mixed batch (TVR, MindCube, SPAR numeric, SPAR choice, MMSI) through StarRewardManager inside
veRL's Ray `RewardLoopManager` on CPU: one key set for every sample, the right score per source."""

from __future__ import annotations

import json

import pytest

from star_verl.rewards import REWARD_KEYS, compute_score
from tests.test_reward_manager_on_cpu import CUSTOM_FN, compose, make_batch, tokenizer  # noqa: F401 (tokenizer: fixture)
from tests.tvr_fixtures import WORKED_GT, tagged


def three_step(triplets: str, answer: str) -> str:
    return tagged(answer, think=f"Step 1 (per-view reference analysis):\nImage 1: {triplets}\nStep 2: one map.\nStep 3: reasoning.")


MINDCUBE_GT = {"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], "task": "among",
               "references": {"1": [["sofa", "ball", "behind"], ["lamp", "ball", "left"]]}}  # fmt: skip
SPAR_NUMERIC_GT = {
    "type": "numeric",
    "answer": 2.6,
    "task": "depth_prediction_oc_mv",
    "references": [["books", None, None], ["bookshelf", None, None]],
}
SPAR_CHOICE_GT = {"type": "choice", "answer": "D", "options": ["A", "B", "C", "D"], "task": "obj_spatial_relation_oo_mv",
                  "references": {"1": [["sink", "observer", "right"], ["towel", None, None]]}}  # fmt: skip
MMSI_GT = {"type": "choice", "answer": "A", "options": ["A", "B", "C", "D"], "task": "Positional Relationship (Cam.-Obj.)"}

# A multi-view sample first: veRL takes the key set of the first sample for the whole batch.
CASES = [
    ("mindcube", three_step("[sofa, ball, behind], [ball, lamp, right]", "C"), json.dumps(MINDCUBE_GT)),
    ("tvr", tagged("2.color.cyan, 4.color.brown"), json.dumps(WORKED_GT)),
    ("spar", three_step("[books, bookshelf, front]", "2.0 meters"), json.dumps(SPAR_NUMERIC_GT)),
    ("spar", three_step("[sink, observer, right], [sink, camera, below]", "D"), json.dumps(SPAR_CHOICE_GT)),
    ("mmsi", three_step("[lamp, observer, left]", "B"), json.dumps(MMSI_GT)),
]
# Hand-computed with the default settings (docs/rewards.md):
# mindcube: format 0.1 + answer 1 + R_ref 0.3 x F(image 1) = 0.3 x 1 (2 of 2 stated, nothing else)     = 1.4
# tvr:      format 1 + 2 exact x 5                                                                      = 11.0
# spar num: format 0.1 + 1 x 0.5 x MRA(2.0 vs 2.6) = 0.3; the references are bare: no R_ref             = 0.4
# spar mc:  format 0.1 + answer 1 + 0.3 x F = 2 x 1 / (1 key + 2 stated) (the towel is bare)           = 1.3
# mmsi:     format 0.1 + wrong answer 0, no references                                                  = 0.1
EXPECTED = [1.4, 11.0, 0.4, 1.3, 0.1]
HAS_REF = [1.0, 0.0, 0.0, 1.0, 0.0]


def test_hand_computed_scores_match_compute_score():
    got = [compute_score(ds, resp, gt) for ds, resp, gt in CASES]
    assert [g["score"] for g in got] == pytest.approx(EXPECTED)
    assert [g["has_ref"] for g in got] == HAS_REF
    assert all(list(g) == list(REWARD_KEYS) for g in got)


def test_format_is_logged_zero_or_one_in_every_family_and_weighted_only_in_score():
    """One meaning of `format` in a mixed run's logs: 1 for well-formed tags whatever a family's weight."""
    weights = {"tvr_format_weight": 0.3, "mv_format_weight": 0.05}
    change = {"tvr": 0.3 - 1.0, "mindcube": 0.05 - 0.1, "spar": 0.05 - 0.1, "mmsi": 0.05 - 0.1}  # from the default weights
    for (ds, resp, gt), default in zip(CASES, EXPECTED, strict=True):
        weighted = compute_score(ds, resp, gt, **weights)
        assert weighted["format"] == 1.0, ds
        assert weighted["score"] == pytest.approx(default + change[ds]), ds  # the weight changes only `score`
        malformed = compute_score(ds, resp.replace("<think>", ""), gt, **weights)
        assert malformed["format"] == 0.0, ds


def test_reward_families_import_the_shared_names_not_the_package():
    """Imports point down: the package's __init__ imports the families, never the reverse."""
    import ast
    from pathlib import Path

    import star_verl.rewards as rewards

    for module in Path(rewards.__file__).parent.glob("*.py"):
        if module.name in ("__init__.py", "managers.py"):  # the package itself; the veRL manager sits above it
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [node.module]
                if isinstance(node, ast.ImportFrom) and node.module
                else [a.name for a in getattr(node, "names", [])]
                if isinstance(node, ast.Import)
                else []
            )
            assert "star_verl.rewards" not in names, f"{module.name} imports star_verl.rewards"


def test_mixed_batch_through_rays_reward_loop_manager(ray_local, tiny_qwen25vl, tokenizer):  # noqa: F811
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager

    manager = RewardLoopManager(compose(tiny_qwen25vl, *CUSTOM_FN))
    batch = make_batch(tokenizer, CASES, prompt="Answer the spatial question.")
    out = manager.compute_rm_score(batch)
    assert out.meta_info["reward_extra_keys"] == list(REWARD_KEYS)
    assert out.batch["rm_scores"].sum(-1).tolist() == pytest.approx(EXPECTED)
    want = [compute_score(ds, resp, gt) for ds, resp, gt in CASES]
    for key in REWARD_KEYS:
        assert len(out.non_tensor_batch[key]) == len(CASES), key
        assert out.non_tensor_batch[key].tolist() == pytest.approx([w[key] for w in want]), key
    assert out.non_tensor_batch["has_ref"].tolist() == HAS_REF
    assert out.non_tensor_batch["r_pos"].tolist() == [0.0, 10.0, 0.0, 0.0, 0.0]  # TVR's term only for TVR

"""The paper's numbers at every validation of a `main_ppo` run, as veRL 0.9.1 computes and names them.

TVR: a validation set with a different number of rows per view (center 4, left 3, right 2) and
scripted responses whose per-view accuracies and NDiffs differ goes through the path of veRL's v1
`_validate`: `create_rl_dataset(data.val_files, ...)` (StarRLDataset adds `view_rows` to every
row's extra_info), veRL's `AgentLoopWorker` (the dataset's multimodal step, the prompt, the reward
in the `RewardLoopManager`'s Ray workers: the streaming path), the trainer's collection of
`reward_extra_info`, then veRL's own `PPOTrainer._val_metrics_update` (`process_validation_metrics`
and the key naming). The dump is written with veRL's own `PPOTrainer._write_generations`, and
`star-verl eval score` on it gives the same TAcc, ID, OOD, NDiff and strict Acc as the logged keys,
with one and with two responses per prompt (val_kwargs.n). The only stand-in is the LLM server.

Multi-view: `star_r1_mv`'s own val_files, the converted MindCube-Tiny, SPAR-Bench and MMSI-Bench,
through `RewardLoopManager.compute_rm_score` and the same metric code: each benchmark's official
score reaches veRL's validation metrics as its own data source, equal to `eval score` on the dump.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from star_verl.eval.scoring import score_file
from star_verl.rewards.benchmark import TVR_VALIDATION_KEYS, validation_metric
from star_verl.tasks.tvr import VIEW_ROWS_KEY, VOCAB
from tests.multiview_fixtures import response_for, write_mindcube_fixture, write_mmsi_fixture, write_sparbench_fixture
from tests.test_reward_manager_on_cpu import make_batch
from tests.test_rl_step_on_cpu import KINDS, SMALL, ScriptedRollout, question_marker, wait_for_free_names
from tests.tvr_fixtures import tagged

VIEW_COUNTS = {"center": 4, "left": 3, "right": 2}


def _collate_validation(outputs):
    """`_validate`'s step 4: `reward` (the summed rm_scores), then every reward_extra_info key per sample."""
    infos: dict[str, list] = {"reward": [float(x) for x in outputs["scores"]]}
    for extra in outputs["reward_extra_info"]:
        for key, value in extra.items():
            infos.setdefault(key, []).append(value)
    return infos


def _val_metrics(data_sources, uids, infos, n):
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    expected = {(str(ds), str(uid)): n for ds, uid in zip(data_sources, uids, strict=True)}
    # an instance method that reads nothing of the instance: veRL's own code, called as the trainer calls it
    return PPOTrainer._val_metrics_update(None, data_sources, uids, infos, [1] * len(uids), expected_acc_counts=expected)


def _dump(tmp_path: Path, outputs: list[str], gts: list[str], infos: dict[str, list], uids: list[str]) -> Path:
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    PPOTrainer._write_generations(
        inputs=["prompt"] * len(outputs), outputs=outputs, gts=gts, scores=infos["reward"],
        reward_extra_infos_dict={**infos, "uid": uids}, dump_path=str(tmp_path / "validation"), global_steps=5,
    )  # fmt: skip
    return tmp_path / "validation" / "5.jsonl"


# ------------------------------------------------------------------------------------------- TVR


@pytest.fixture(scope="module")
def tvr_files(tmp_path_factory) -> tuple[str, str]:
    """A train file and a validation file with unequal views: the synthetic set's test split (9
    samples x 3 views), each sample in one view only (the rollout tells prompts apart by their text)."""
    from star_verl.prep.build_tvr import main

    out = tmp_path_factory.mktemp("val_tvr")
    args = ["--synthetic", "11", "--split-sizes", "1,1,9", "--seed", "0", "--out", str(out), "--workers", "1", "--no-progress"]
    assert main(args) == 0
    table = pq.read_table(out / "test.parquet")
    rows = table.to_pylist()

    def sample(row: dict) -> str:
        return json.dumps({k: v for k, v in json.loads(row["reward_model"]["ground_truth"]).items() if k != "view"}, sort_keys=True)

    samples = list(dict.fromkeys(map(sample, rows)))
    assert len(samples) == sum(VIEW_COUNTS.values())
    plan = [view for view, count in VIEW_COUNTS.items() for _ in range(count)]
    view_of = dict(zip(samples, plan, strict=True))
    kept = [r for r in rows if r["extra_info"]["view"] == view_of[sample(r)]]
    path = out / "val_unequal.parquet"
    pq.write_table(type(table).from_pylist(kept, schema=table.schema), path)
    return str(out / "train.parquet"), str(path)


def _tvr_script(gt: dict, view: str, k: int) -> str:
    """The k-th validation row of a view: right or wrong by a per-view pattern, wrong in two ways
    (one value off: diff 1; nothing answered: diff = the changes), so views differ in Acc and NDiff."""
    items = [f"{t['obj_idx']}.{t['attr']}.{t['val']}" for t in gt["transformations"]]
    last = gt["transformations"][-1]
    off = f"{last['obj_idx']}.{last['attr']}.{next(v for v in VOCAB[last['attr']] if v != last['val'])}"
    right = {"center": (True, True, True, False), "left": (True, False, False), "right": (True, True)}[view][k]
    if right:
        return tagged(", ".join(items))
    return tagged(", ".join([*items[:-1], off])) if view == "center" else tagged("")


def _run_tvr_validation(cfg, model: str, ray, n: int):
    from verl import DataProto
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import collate_fn

    tokenizer, processor = hf_tokenizer(model), hf_processor(model, use_fast=True)
    # exactly the trainer's call (`_init_dataloader`)
    dataset = create_rl_dataset(cfg.data.val_files, cfg.data, tokenizer, processor, is_train=False, max_samples=cfg.data.get("val_max_samples", -1))
    items = [dataset[i] for i in range(len(dataset))]
    assert all(it["extra_info"][VIEW_ROWS_KEY] == VIEW_COUNTS for it in items)
    gts = [json.loads(it["reward_model"]["ground_truth"]) for it in items]
    position = {v: 0 for v in VIEW_COUNTS}
    scripts = []
    for it, gt in zip(items, gts, strict=True):
        view, k = it["extra_info"]["view"], position[it["extra_info"]["view"]]
        position[view] += 1
        first = _tvr_script(gt, view, k)
        right_again = ", ".join(f"{t['obj_idx']}.{t['attr']}.{t['val']}" for t in gt["transformations"]) if view == "left" else ""
        second = tagged(right_again, think="look again")  # a second response per prompt (val_kwargs.n=2), told apart by its reasoning
        scripts.append({KINDS[0]: first, KINDS[1]: second})  # the rollout serves a row's responses in KINDS order
    rollout = ScriptedRollout(tokenizer, [question_marker(it["prompt"]) for it in items], scripts)

    batch = DataProto.from_single_dict(collate_fn(items))
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
    batch.meta_info.update(global_steps=5, validate=True)
    gen_batch = batch.repeat(repeat_times=n, interleave=True)
    wait_for_free_names(ray, int(cfg.reward.num_workers))
    manager = RewardLoopManager(cfg)
    try:
        worker = AgentLoopWorker(cfg, llm_client=rollout, reward_loop_worker_handles=manager.reward_loop_workers)
        out = asyncio.run(worker.generate_sequences(gen_batch))
    finally:
        for handle in manager.reward_loop_workers:
            ray.kill(handle)
    responses, mask = out.batch["responses"], out.batch["attention_mask"][:, -out.batch["responses"].shape[1] :]
    texts = [tokenizer.decode(responses[i][mask[i].bool()], skip_special_tokens=True) for i in range(len(out))]  # as _validate decodes
    outputs = {"scores": out.batch["rm_scores"].sum(-1).tolist(), "reward_extra_info": list(out.non_tensor_batch["reward_extra_info"])}
    uids = gen_batch.non_tensor_batch["uid"].tolist()
    data_sources = gen_batch.non_tensor_batch["data_source"].tolist()
    infos = _collate_validation(outputs)
    gt_texts = gen_batch.non_tensor_batch["reward_model"].tolist()
    rows = np.repeat(np.arange(len(items)), n)  # gen_batch row -> dataset row (interleaved repeat)
    decode = lambda text: tokenizer.decode(tokenizer.encode(text, add_special_tokens=False), skip_special_tokens=True)  # noqa: E731
    slots = [[decode(scripts[r][kind]) for kind in KINDS[:2]].index(text) for r, text in zip(rows, texts, strict=True)]
    assert sorted(slots) == sorted(list(range(n)) * len(items))
    return texts, [g["ground_truth"] for g in gt_texts], infos, uids, data_sources, slots


def _first_responses(run, n: int):
    """The run's first n scripted responses of every prompt: n=1 is what a validation with
    val_kwargs.n=1 generates (the AgentLoop serves a prompt's requests concurrently, so the rows
    are told apart by the script they got, not by their position)."""
    texts, gts, infos, uids, data_sources, slots = run
    keep = [i for i in range(len(uids)) if slots[i] < n]
    pick = lambda values: [values[i] for i in keep]  # noqa: E731
    return pick(texts), pick(gts), {k: pick(v) for k, v in infos.items()}, pick(uids), pick(data_sources)


@pytest.fixture(scope="module")
def tvr_validation(ray_local, tiny_qwen25vl, tvr_files):
    """One validation of star_r1_tvr with two responses per prompt (val_kwargs.n=2), interleaved."""
    from star_verl.recipes import compose_recipe

    train, val = tvr_files
    cfg = compose_recipe(
        "star_r1_tvr",
        [f"actor_rollout_ref.model.path={tiny_qwen25vl}", f"data.train_files={train}", f"data.val_files={val}",
         "actor_rollout_ref.rollout.val_kwargs.n=2", *SMALL],
    )  # fmt: skip
    return _run_tvr_validation(cfg, tiny_qwen25vl, ray_local, 2)


@pytest.mark.parametrize("n", [1, 2])
def test_tvr_validation_logs_the_papers_metrics_equal_to_eval_score(tvr_validation, tmp_path, n):
    texts, gts, infos, uids, data_sources = _first_responses(tvr_validation, n)
    metrics = _val_metrics(data_sources, uids, infos, n)
    logged = {key: metrics[validation_metric("tvr", key, n)] for key in TVR_VALIDATION_KEYS}

    scored = score_file(_dump(tmp_path, texts, gts, infos, uids), tmp_path / "eval", origin="trance", plots=False)
    tvr = scored["benchmarks"]["tvr"]
    head = tvr["headline"]
    assert {v: b["n"] for v, b in tvr["views"].items()} == {v: c * n for v, c in VIEW_COUNTS.items()}
    assert 100 * logged["tacc"] == pytest.approx(head["TAcc"], rel=1e-12, abs=1e-12)
    assert 100 * logged["acc_id"] == pytest.approx(head["ID"], rel=1e-12, abs=1e-12)
    assert 100 * logged["acc_ood"] == pytest.approx(head["OOD"], rel=1e-12, abs=1e-12)
    assert logged["ndiff"] == pytest.approx(head["NDiff"], rel=1e-12, abs=1e-12)
    assert 100 * logged["official"] == pytest.approx(tvr["total"]["Acc"], rel=1e-12, abs=1e-12)

    # the views really differ, and TAcc is not the pooled accuracy veRL logs as its core metric
    accs = [tvr["views"][v]["Acc"] for v in VIEW_COUNTS]
    ndiffs = [tvr["views"][v]["NDiff"] for v in VIEW_COUNTS]
    assert len(set(accs)) == 3 and len(set(ndiffs)) == 3
    if n == 1:  # center 3/4, left 1/3, right 2/2
        assert accs == pytest.approx([75.0, 100 / 3, 100.0])
        assert head["TAcc"] == pytest.approx((75.0 + 100 / 3 + 100.0) / 3)
        assert head["OOD"] == pytest.approx((100 / 3 + 100.0) / 2)
    pooled = metrics[validation_metric("tvr", "acc", n)]
    assert pooled == pytest.approx(tvr["total"]["Acc"] / 100) and abs(100 * pooled - head["TAcc"]) > 1.0
    assert validation_metric("tvr", "acc", n).startswith("val-core/")
    assert all(name.startswith("val-aux/tvr/") for name in map(lambda k: validation_metric("tvr", k, n), TVR_VALIDATION_KEYS))


def test_tvr_validation_subset_is_stratified_fixed_and_the_weights_follow_it(tiny_qwen25vl, tvr_files, tok_proc, capsys):
    """data.star.val_subset on the validation set: the same rows every time, each stratum (view x number
    of transformations) in proportion; view_rows counts the rows kept; the training set is untouched."""
    from collections import Counter

    from verl.trainer.ppo.utils import create_rl_dataset

    from star_verl.data.validation import file_strata
    from star_verl.recipes import compose_recipe

    train, val = tvr_files
    cfg = compose_recipe("star_r1_tvr", [f"actor_rollout_ref.model.path={tiny_qwen25vl}", f"data.train_files={train}",
                                         f"data.val_files={val}", "data.star.val_subset=6"])  # fmt: skip
    tok, proc = tok_proc
    build = lambda files: create_rl_dataset(files, cfg.data, tok, proc, is_train=False, max_samples=-1)  # noqa: E731
    first, again = build(cfg.data.val_files), build(cfg.data.val_files)
    out = capsys.readouterr().out
    assert "validation on 6 of 9 rows (data.star.val_subset=6" in out
    ids = [first[i]["extra_info"]["question_id"] for i in range(len(first))]
    assert len(ids) == 6 and ids == [again[i]["extra_info"]["question_id"] for i in range(len(again))]
    everything = Counter(file_strata([val]))
    picked = Counter(
        ("tvr", "synthetic", first[i]["extra_info"]["view"], len(json.loads(first[i]["reward_model"]["ground_truth"])["transformations"]))
        for i in range(len(first))
    )
    assert set(picked) <= set(everything)
    assert all(int(6 * n / 9) <= picked[stratum] <= int(6 * n / 9) + 1 for stratum, n in everything.items())  # proportional
    views = [first[i]["extra_info"]["view"] for i in range(len(first))]
    counts = {v: views.count(v) for v in VIEW_COUNTS}
    assert all(first[i]["extra_info"][VIEW_ROWS_KEY] == counts for i in range(len(first)))
    training = build(cfg.data.train_files)
    assert len(training) == pq.read_metadata(train).num_rows and VIEW_ROWS_KEY not in training[0]["extra_info"]
    # veRL's own bound beside it is refused
    from star_verl.data.settings import DatasetError

    with pytest.raises(DatasetError, match=r"data.val_max_samples=3 and data.star.val_subset=6 both bound the validation set"):
        create_rl_dataset(cfg.data.val_files, cfg.data, tok, proc, is_train=False, max_samples=3)


def test_stratified_subset_shares_and_the_same_rows_every_time(capsys):
    from collections import Counter

    from star_verl.data.settings import StarDataSettings
    from star_verl.data.validation import is_validation_set, stratified_subset

    strata = (
        [("spar", "sparbench", f"task{i % 4}") for i in range(80)] + [("mmsi", "mmsi", "MSR")] * 10 + [("mindcube", "mindcube_tiny", "among")] * 30
    )
    picked = stratified_subset(strata, 60)
    assert list(picked) == sorted(picked) and len(set(picked.tolist())) == 60
    assert np.array_equal(picked, stratified_subset(strata, 60))  # fixed seed: the same rows
    sources = Counter(strata[p][0] for p in picked)
    assert sources == {"mmsi": 10, "mindcube": 25, "spar": 25}  # an equal share each; MMSI's 10 give their rest away
    assert set(Counter(strata[p][2] for p in picked if strata[p][0] == "spar").values()) <= {6, 7}  # SPAR's 4 tasks in proportion
    assert np.array_equal(stratified_subset(strata, 500), np.arange(len(strata)))
    # the validation set is the one built from data.val_files; the same files as train_files: the training set
    cfg = {"train_files": ["t.parquet"], "val_files": ["v.parquet"]}
    on = StarDataSettings(val_subset=10)
    assert is_validation_set(["v.parquet"], cfg, on) and not is_validation_set(["t.parquet"], cfg, on)
    assert not is_validation_set("t.parquet", {"train_files": "t.parquet", "val_files": "t.parquet"}, on)
    assert "data.val_files is data.train_files, so this set is the training set" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- multi-view


@pytest.fixture(scope="module")
def mv_data_root(tmp_path_factory) -> Path:
    """$STAR_VERL_DATA with multiview/rl_train.parquet and the three converted benchmarks."""
    from star_verl.prep.build_multiview import BuildOptions, build

    root = tmp_path_factory.mktemp("val_mv")
    build(
        BuildOptions(
            out=root / "multiview", mindcube=write_mindcube_fixture(root / "src" / "mc", n=12, n_tiny=4), rl_samples=6, val_samples=0, sft_pool=0,
            benchmarks=("mindcube_tiny", "sparbench", "mmsi"), sparbench=write_sparbench_fixture(root / "src" / "sb", n=8),
            mmsi=write_mmsi_fixture(root / "src" / "mmsi.parquet", n=6), progress=False,
        )
    )  # fmt: skip
    return root


def _mv_response(data_source: str, gt: dict, k: int) -> str:
    """The k-th choice row of a benchmark: one that its official scorer and the reward's strict
    parser judge differently; then right and wrong in turn (every other row too)."""
    if k == 0 and gt["type"] == "choice":
        other = next(o for o in gt["options"] if o != gt["answer"])
        if data_source == "mindcube":
            return f"<think>Option {other}. is tempting</think><answer>{gt['answer']}</answer>"  # official: the letter in the reasoning (wrong)
        if data_source == "mmsi":
            return f"<answer>{other} or {gt['answer']}</answer>"  # official: the letter after "X or" (right); strict: ambiguous
        return "<think>x</think><answer></answer>"  # SPAR official: an empty answer is right
    return response_for(gt, right=k % 2 == 1)


def test_multiview_validation_logs_each_benchmarks_official_score(ray_local, tiny_qwen25vl, tok_proc, mv_data_root, tmp_path, monkeypatch):
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.trainer.ppo.utils import create_rl_dataset

    from star_verl.recipes import compose_recipe

    monkeypatch.setenv("STAR_VERL_DATA", str(mv_data_root))
    monkeypatch.setenv("SFT_CKPT", tiny_qwen25vl)
    cfg = compose_recipe("star_r1_mv", [*SMALL, "reward.num_workers=2"])
    OmegaConf.resolve(cfg)  # as the TaskRunner does before it starts any worker ($STAR_VERL_DATA, $SFT_CKPT are the driver's)
    assert [Path(f).name for f in cfg.data.val_files] == ["mindcube_tiny.parquet", "sparbench.parquet", "mmsi.parquet", "synthetic_mv.parquet"]
    tok, proc = tok_proc
    dataset = create_rl_dataset(cfg.data.val_files, cfg.data, tok, proc, is_train=False, max_samples=-1)
    items = [dataset[i] for i in range(len(dataset))]
    assert {it["data_source"] for it in items} == {"mindcube", "spar", "mmsi"}
    seen: dict[tuple[str, bool], int] = {}
    cases = []
    for it in items:
        gt = json.loads(it["reward_model"]["ground_truth"])
        group = (it["data_source"], gt["type"] == "choice")
        k = seen.get(group, 0)
        seen[group] = k + 1
        cases.append((it["data_source"], _mv_response(it["data_source"], gt, k), it["reward_model"]["ground_truth"]))
    batch = make_batch(tok, cases, prompt="Answer the spatial question.")
    batch.non_tensor_batch["extra_info"] = np.array([it["extra_info"] for it in items], dtype=object)  # the dataset's rows
    wait_for_free_names(ray_local, 2)
    manager = RewardLoopManager(cfg)
    try:
        out = manager.compute_rm_score(batch)
    finally:
        for handle in manager.reward_loop_workers:
            ray_local.kill(handle)
    keys = out.meta_info["reward_extra_keys"]
    infos = {"reward": out.batch["rm_scores"].sum(-1).tolist(), **{key: out.non_tensor_batch[key].tolist() for key in keys}}
    uids = [f"u{i}" for i in range(len(items))]
    data_sources = [c[0] for c in cases]
    metrics = _val_metrics(data_sources, uids, infos, 1)

    scored = score_file(_dump(tmp_path, [c[1] for c in cases], [c[2] for c in cases], infos, uids), tmp_path / "eval", plots=False)
    per_sample = [json.loads(line) for line in (tmp_path / "eval" / "per_sample.jsonl").read_text().splitlines()]
    for source, overall in (("mindcube", scored["benchmarks"]["mindcube"]["overall"]), ("mmsi", scored["benchmarks"]["mmsi"]["overall"])):
        assert 100 * metrics[validation_metric(source, "official")] == pytest.approx(overall, rel=1e-12)
    spar = [s["score"] for s in per_sample if s["data_source"] == "spar"]
    assert metrics[validation_metric("spar", "official")] == pytest.approx(sum(spar) / len(spar), rel=1e-12)
    for source in ("mindcube", "spar", "mmsi"):  # beside the reward's own acc, which the disagreements move apart
        assert validation_metric(source, "acc") in metrics
        assert metrics[validation_metric(source, "official")] != pytest.approx(metrics[validation_metric(source, "acc")]), source
        assert metrics[validation_metric(source, "tacc")] == 0.0  # TVR's keys are 0.0 on other sources
    assert scored["warnings"] and "--origin" in scored["warnings"][0]  # a dump has no origin: no paper numbers beside it


def test_multiview_validation_leaves_out_benchmarks_not_built(tiny_qwen25vl, tok_proc, mv_data_root, tmp_path, monkeypatch, capsys):
    from verl.trainer.ppo.utils import create_rl_dataset

    from star_verl.data.settings import DatasetError
    from star_verl.recipes import compose_recipe

    partial = tmp_path / "data"
    (partial / "multiview" / "bench").mkdir(parents=True)
    for name in ("rl_train.parquet", "bench/mmsi.parquet"):
        (partial / "multiview" / name).symlink_to(mv_data_root / "multiview" / name)
    monkeypatch.setenv("STAR_VERL_DATA", str(partial))
    monkeypatch.setenv("SFT_CKPT", tiny_qwen25vl)
    cfg = compose_recipe("star_r1_mv")
    tok, proc = tok_proc
    dataset = create_rl_dataset(cfg.data.val_files, cfg.data, tok, proc, is_train=False, max_samples=-1)
    lines = [line for line in capsys.readouterr().out.splitlines() if "was not built" in line]
    assert len(lines) == 3 and "mindcube_tiny.parquet" in lines[0] and "sparbench.parquet" in lines[1] and "synthetic_mv.parquet" in lines[2]
    assert {dataset[i]["data_source"] for i in range(len(dataset))} == {"mmsi"}
    (partial / "multiview" / "bench" / "mmsi.parquet").unlink()
    with pytest.raises(DatasetError, match="none of data.val_files exists"):
        create_rl_dataset(cfg.data.val_files, cfg.data, tok, proc, is_train=False, max_samples=-1)
    # the training set is never thinned: a missing train file stays an error
    with pytest.raises(Exception, match="mindcube_tiny.parquet"):
        create_rl_dataset([str(partial / "multiview" / "bench" / "mindcube_tiny.parquet")], cfg.data, tok, proc)

"""The teacher client against a real chat-completions server on loopback: request format, filtering
decisions, retries (500, 429 + Retry-After, timeouts, unreadable bodies), the rate limit, the key, and
a resume after the CLI process is killed mid-run."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from star_verl.prep.teacher import client
from star_verl.prep.teacher.cache import CACHE_FILE, ResponseCache
from star_verl.prep.teacher.client import retry_after_seconds
from star_verl.prep.teacher.filter import ResponseLimit, judge_chain, reason_code
from star_verl.prep.teacher.pool import load_pool
from star_verl.prep.teacher.run import generate, main
from star_verl.prep.teacher.settings import TeacherError, TeacherSettings
from star_verl.rewards.multiview import multiview_reward
from star_verl.tasks.references import DEFAULT_MAX_TRIPLETS, INVERSE
from star_verl.templates import get_template
from tests.teacher_fixtures import ScriptedChatServer, chain, pool_question, write_pool, wrong_letter
from tests.test_multiview_reward_on_cpu import samples as mv_samples
from tests.test_multiview_reward_on_cpu import valid_settings as mv_settings

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("train.parquet", "val.parquet", "rejected.jsonl", "failed.jsonl", "report.json", "report.md")


def settings(server: ScriptedChatServer, **kw) -> TeacherSettings:
    base = dict(
        base_url=server.base_url,
        model="teacher-test",
        concurrency=4,
        timeout=5.0,
        max_retries=3,
        backoff_base=0.05,
        backoff_max=0.2,
        seed=0,
        val_fraction=0.0,
    )
    base.update(kw)
    return TeacherSettings(**base)


def sft_rows(out: Path) -> list[dict]:
    rows = []
    for name in ("train.parquet", "val.parquet"):
        rows += pq.read_table(out / name).to_pylist()
    return rows


def test_request_is_the_three_step_template_with_images_in_order(tmp_path):
    truth = write_pool(tmp_path / "pool.parquet", 1)
    with ScriptedChatServer(truth) as server:
        generate(settings(server), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
    (entry,) = server.log
    system, user = get_template("three_step").messages(pool_question("q0"))
    assert entry["system"] == system["content"] and entry["model"] == "teacher-test"
    # the user text with each <image> replaced by an image part, in placeholder order
    before, middle, after = user["content"].split("<image>")
    parts = entry["user"]
    assert middle == ""  # "<image><image>": two image parts with no text between them
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "text"]
    assert parts[0]["text"] == before and parts[-1]["text"] == after
    decoded = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in parts if p["type"] == "image_url"]
    assert decoded == truth["q0"]["images"]
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts if p["type"] == "image_url")


def test_each_answer_is_kept_rejected_or_failed_after_its_retries(tmp_path):
    truth = write_pool(tmp_path / "pool.parquet", 11)
    script = {
        "q0": ["right"], "q1": ["wrong"], "q2": ["malformed"], "q3": ["nosteps"], "q4": ["500", "500", "right"],
        "q5": ["429", "right"], "q6": ["slow", "right"], "q7": ["badjson", "right"], "q8": ["500"], "q9": ["truncated"], "q10": ["right"],
    }  # fmt: skip
    messages = []
    with ScriptedChatServer(truth, script, retry_after=1.0, slow_s=3.0) as server:
        result = generate(
            settings(server, timeout=1.0, max_retries=2), tmp_path / "pool.parquet", tmp_path / "out", progress=False, log=messages.append
        )
    out = tmp_path / "out"
    asked = server.requests_per_question()
    # retries: two 500s then an answer; one 429; one timeout; one unreadable body; q8 gives up after 1 + 2 attempts
    assert asked == {"q0": 1, "q1": 1, "q2": 1, "q3": 1, "q4": 3, "q5": 2, "q6": 2, "q7": 2, "q8": 3, "q9": 1, "q10": 1}
    # Retry-After: 1 honored (the backoff alone would be <= 0.2 s)
    assert [m.split(": ", 1)[1] for m in messages if "q5" in m] == ["HTTP 429; retry 1/2 in 1.0 s"]
    assert result.counts.retries == 2 + 1 + 1 + 1 + 2

    rows = sft_rows(out)
    assert sorted(r["extra_info"]["question_id"] for r in rows) == ["q0", "q10", "q4", "q5", "q6", "q7"]
    for row in rows:
        qid = row["extra_info"]["question_id"]
        # the RAW question with its placeholders (the SFT dataset applies the template) + the chain
        assert row["messages"] == [{"role": "user", "content": pool_question(qid)}, {"role": "assistant", "content": chain(truth[qid]["answer"])}]
        assert [img["bytes"] for img in row["images"]] == truth[qid]["images"]
        assert row["data_source"] == truth[qid]["data_source"] and row["extra_info"]["split"] == "sft_train"
        assert json.loads(row["reward_model"]["ground_truth"])["answer"] == truth[qid]["answer"]

    rejected = {(r["question_id"]): r for r in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert sorted(rejected) == ["q1", "q2", "q3", "q9"]
    codes = {qid: sorted({reason.split(":")[0] for reason in r["reasons"]}) for qid, r in rejected.items()}
    assert codes == {"q1": ["wrong_answer"], "q2": ["structure", "wrong_answer"], "q3": ["structure"], "q9": ["truncated"]}
    assert (
        f"expected {truth['q1']['answer']!r}" in rejected["q1"]["reasons"][0]
        and repr(wrong_letter(truth["q1"]["answer"])) in rejected["q1"]["reasons"][0]
    )
    assert any("Step 2" in reason for reason in rejected["q3"]["reasons"])
    assert [json.loads(line)["question_id"] for line in (out / "failed.jsonl").read_text().splitlines()] == ["q8"]

    report = json.loads((out / "report.json").read_text())
    # categories by hand: mindcube/among = q0 q4 q6 q10 ; mindcube/around = q1 q3 q7 q9 ; spar = q2 q5 q8
    among, around, spar = (report["categories"][c] for c in ("mindcube/among", "mindcube/around", "spar/obj_spatial_relation_oo"))
    assert (among["answered"], among["kept"], among["kept_rate"]) == (4, 4, 1.0)
    assert (around["answered"], around["kept"], around["kept_rate"]) == (4, 1, 0.25)
    assert (spar["samples"], spar["answered"], spar["kept"], spar["failed"], spar["kept_rate"]) == (3, 2, 1, 1, 0.5)
    assert report["total"]["kept"] == 6 and report["rows"] == {"train": 6, "val": 0}
    assert report["rejected_by"] == {"structure": 2, "truncated": 1, "wrong_answer": 2}
    assert "| mindcube/around | 4 | 4 | 4 | 1 | 25.0% |" in (out / "report.md").read_text()


def test_rerun_asks_only_what_failed(tmp_path):
    truth = write_pool(tmp_path / "pool.parquet", 3)
    with ScriptedChatServer(truth, {"q1": ["500"]}) as server:
        argv = [
            "--in",
            str(tmp_path / "pool.parquet"),
            "--out",
            str(tmp_path / "out"),
            "--base-url",
            server.base_url,
            "--model",
            "teacher-test",
            "--max-retries",
            "1",
            "--seed",
            "0",
            "--no-progress",
        ]
        assert main(argv) == 1  # a sample without an answer: the outputs are written, the exit code says so
        assert server.requests_per_question() == {"q0": 1, "q1": 2, "q2": 1}
        assert [json.loads(line)["question_id"] for line in (tmp_path / "out" / "failed.jsonl").read_text().splitlines()] == ["q1"]
        server.reset()
        server.script = {}
        result = generate(settings(server, max_retries=1, val_fraction=0.05), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
        assert server.requests_per_question() == {"q1": 1}  # the cached answers are never asked again
    assert result.counts.cached == 2 and result.report["total"]["kept"] == 3 and result.report["total"]["failed"] == 0


def test_max_questions_is_a_stable_subset_that_grows(tmp_path):
    import hashlib

    truth = write_pool(tmp_path / "pool.parquet", 10)
    by_digest = sorted(truth, key=lambda qid: hashlib.sha256(qid.encode()).hexdigest())
    with ScriptedChatServer(truth) as server:
        generate(settings(server, max_questions=3), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
        assert set(server.requests_per_question()) == set(by_digest[:3])
        server.reset()
        result = generate(settings(server, max_questions=5), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
        assert set(server.requests_per_question()) == set(by_digest[3:5])  # the first 3 come from the cache
    assert result.counts.cached == 3
    rows = pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()
    order = [int(qid[1:]) for qid in by_digest[:5]]
    assert [r["extra_info"]["question_id"] for r in rows] == [f"q{i}" for i in sorted(order)]  # pool order


def test_samples_per_question_duplicates_and_held_out_slice(tmp_path):
    truth = write_pool(tmp_path / "pool.parquet", 6)
    # q0: sample 0 and 1 identical chains -> the second is a duplicate; q1 sample 1 wrong
    script = {"q1#1": ["wrong"]}
    with ScriptedChatServer(truth, script) as server:
        server._content_orig = server._content
        server._content = lambda step, qid, seed: server._content_orig(step, qid, 0 if qid == "q0" else seed)
        result = generate(settings(server, samples_per_question=2, val_fraction=0.34), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
    assert {(e["qid"], e["seed"]) for e in server.log} == {(f"q{i}", k) for i in range(6) for k in (0, 1)}
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["question_id"], r["sample"], r["reasons"][0].split(":")[0]) for r in rejected] == [("q0", 1, "duplicate"), ("q1", 1, "wrong_answer")]
    train = pq.read_table(tmp_path / "out" / "train.parquet").to_pylist()
    val = pq.read_table(tmp_path / "out" / "val.parquet").to_pylist()
    # 6 questions with kept chains, round(0.34 * 6) = 2 held out, by question (never split across files)
    val_q = {r["extra_info"]["question_id"] for r in val}
    train_q = {r["extra_info"]["question_id"] for r in train}
    assert len(val_q) == 2 and not (val_q & train_q) and val_q | train_q == set(truth)
    assert len(train) + len(val) == 12 - 2 and result.report["rows"] == {"train": len(train), "val": len(val)}
    assert [r["extra_info"]["index"] for r in train] == list(range(len(train)))
    assert all(r["extra_info"]["split"] == "sft_val" for r in val)


def test_rate_limit_spaces_request_starts(tmp_path, monkeypatch):
    limiters = []

    class RecordingLimiter(client.RateLimiter):
        """The client's limiter, noting the start it grants each request and when it lets the request go."""

        def __init__(self, rate):
            super().__init__(rate)
            self.starts, self.released = [], []
            limiters.append(self)

        async def wait(self):
            start = await super().wait()
            self.starts.append(start)
            self.released.append(asyncio.get_running_loop().time())
            return start

    monkeypatch.setattr(client, "RateLimiter", RecordingLimiter)
    truth = write_pool(tmp_path / "pool.parquet", 8)
    with ScriptedChatServer(truth, {"q3": ["500", "right"]}) as server:
        generate(settings(server, concurrency=8, requests_per_second=5.0), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
    # one limiter for all 8 workers; every request, the retry included, waited for a start of its own
    (limiter,) = limiters
    assert len(limiter.starts) == len(server.log) == 9
    # the starts are 1/5 s apart (8 workers asking at once are queued, not let go together) ...
    starts = sorted(limiter.starts)
    assert all(later - earlier >= 0.2 - 1e-9 for earlier, later in itertools.pairwise(starts))
    # ... and no request left before its start (asyncio may wake a timer up to its clock resolution early)
    early = time.get_clock_info("monotonic").resolution
    assert all(released >= start - early for start, released in zip(limiter.starts, limiter.released, strict=True))


def test_api_key_is_sent_and_never_written(tmp_path, monkeypatch, capfd):
    secret = "sk-test-7f3a9c-do-not-log"
    monkeypatch.setenv("STAR_TEACHER_KEY", secret)
    truth = write_pool(tmp_path / "pool.parquet", 2)
    with ScriptedChatServer(truth, {"q1": ["500", "right"]}, expected_key=secret) as server:
        generate(settings(server, api_key_env="STAR_TEACHER_KEY"), tmp_path / "pool.parquet", tmp_path / "out", progress=True)
        assert {entry["auth"] for entry in server.log} == {f"Bearer {secret}"}
        # a server that echoes the key in its 401 error: the run stops, the message is redacted
        server.reset()
        server.script = {"q0": ["401"]}
        with pytest.raises(TeacherError, match="HTTP 401") as info:
            generate(settings(server, api_key_env="STAR_TEACHER_KEY"), tmp_path / "pool.parquet", tmp_path / "out2", progress=False)
        assert secret not in str(info.value) and "***" in str(info.value)
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
    for folder in (tmp_path / "out", tmp_path / "out2"):
        for file in folder.rglob("*"):
            if file.is_file():
                assert secret.encode() not in file.read_bytes(), file
    monkeypatch.delenv("STAR_TEACHER_KEY")
    with pytest.raises(TeacherError, match="STAR_TEACHER_KEY"):
        generate(
            TeacherSettings(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="STAR_TEACHER_KEY"),
            tmp_path / "pool.parquet",
            tmp_path / "out3",
            progress=False,
        )


def test_cache_drops_a_partial_last_line_and_rejects_corruption(tmp_path):
    path = tmp_path / CACHE_FILE
    good = {
        "question_id": "q0",
        "sample": 0,
        "model": "m",
        "prompt_hash": "h",
        "response": "x",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "question_id": "q1"})[:40])
    messages = []
    cache = ResponseCache(path, log=messages.append)
    assert list(cache.entries) == [("q0", 0, "m", "h")] and "partial write" in messages[0]
    assert path.read_text() == json.dumps(good) + "\n"  # cut back so appends start on a fresh line
    path.write_text("not json\n" + json.dumps(good) + "\n")
    with pytest.raises(TeacherError, match=r"responses.jsonl line 1: not a cache record"):
        ResponseCache(path)


def test_bad_pool_rows_are_named(tmp_path):
    from star_verl.prep.schema import RL_SCHEMA, ParquetRowWriter, image_entry, make_extra_info, make_rl_row
    from tests.images import solid

    def write(path, rows):
        with ParquetRowWriter(path, RL_SCHEMA) as writer:
            writer.write_all(rows)

    def row(i, qid, source="mindcube", answer="C"):
        return make_rl_row(
            data_source=source, question=pool_question(qid), images=[image_entry(solid((i, 0, 0), (32, 32))), image_entry(solid((0, i, 0), (32, 32)))],
            ground_truth={"type": "choice", "answer": answer, "options": ["A", "B", "C"], "task": "among"},
            extra_info=make_extra_info(index=i, split="sft_pool", origin="mindcube", task="among", question_id=qid, n_images=2),
        )  # fmt: skip

    write(tmp_path / "dup.parquet", [row(0, "a"), row(1, "a")])
    with pytest.raises(TeacherError, match=r"dup.parquet: question_id 'a' appears in rows 0 and 1"):
        load_pool(tmp_path / "dup.parquet")
    write(tmp_path / "tvr.parquet", [row(0, "a", source="tvr")])
    with pytest.raises(TeacherError, match=r"tvr.parquet row 0 \(question_id 'a'\): data_source 'tvr'"):
        load_pool(tmp_path / "tvr.parquet")
    bad = row(0, "b")
    bad["reward_model"]["ground_truth"] = json.dumps({"type": "choice", "answer": "Z", "options": ["A", "B"], "task": "among"})
    write(tmp_path / "gt.parquet", [row(1, "a"), bad])
    with pytest.raises(TeacherError, match=r"gt.parquet row 1 \(question_id 'b'\).*not one of the options"):
        load_pool(tmp_path / "gt.parquet")


def judge(response: str, gt: dict, n_images: int = 2, **kw):
    return judge_chain(response, data_source="mindcube", ground_truth=gt, extra_info={"n_images": n_images, "task": "among"}, **kw)


def test_judge_uses_the_project_scorer():
    gt = {"type": "choice", "answer": "B", "options": ["A", "B", "C", "D"], "task": "among"}
    assert judge(chain("B"), gt).keep
    only_image_1 = chain("B").replace("Image 2: [chair, sofa, right]", "Image 2: the chair is on the right")
    decision = judge(only_image_1, gt)
    assert not decision.keep and decision.acc == 1.0 and decision.reasons == ("structure: 'Step 1' has no triplet for image(s) [2]",)
    assert judge(chain("B"), gt, finish_reason="length").reasons[0].startswith("truncated")
    # a row with key references: a chain stating none of them is refused (R_ref would pay nothing)
    keyed = {**gt, "references": {"1": [["sofa", "ball", "behind"]], "2": [["ball", "sofa", "left"]]}}
    assert judge(chain("B"), keyed).keep  # image 1 states [sofa, ball, behind]
    other = chain("B").replace("[sofa, ball, behind], ", "")
    assert judge(other, keyed).reasons == ("references: Step 1 states none of the 2 key references with its relation (R_ref would pay nothing)",)
    # bare references ask for nothing
    assert judge(other, {**gt, "references": {"1": [["sofa", None, None]]}}).keep


@settings_(max_examples=150, deadline=None)
@given(mv_samples(), mv_settings(), st.data())
def test_the_sft_filter_and_r_ref_agree_on_teacher_style_chains(sample, reward_settings, data):
    """Stage 1 keeps only what stage 2 pays for: a teacher-style chain whose Step 1 triplets are true (each
    image's key references, some written the other way round, plus relations between other objects that
    no key reference contradicts) is kept exactly when it states a key reference, and then earns R_ref > 0
    under any settings with ref_weight > 0 that read as many triplets as the filter (ref_max_triplets >= 64,
    the default)."""
    views, gt_views = sample
    assume(reward_settings.ref_weight > 0)
    reward_settings = dataclasses.replace(reward_settings, ref_max_triplets=max(reward_settings.ref_max_triplets, DEFAULT_MAX_TRIPLETS))
    n_images = max(views)
    stated = {}
    for k in range(1, n_images + 1):
        keys = views.get(k, [])
        chosen = data.draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
        chosen = [(b, a, INVERSE[r]) if data.draw(st.booleans()) else (a, b, r) for a, b, r in chosen]
        extra = [("lamp" + "x" * i, "rug" + "x" * i, "near") for i in range(data.draw(st.integers(0 if chosen else 1, 2)))]  # objects of no key
        stated[k] = chosen + extra
    think = "Step 1 (per-view reference analysis):\n" + "\n".join(
        f"Image {k}: " + " ".join(f"[{a}, {b}, {r}]" for a, b, r in t) for k, t in stated.items()
    )
    response = f"<think>{think}\nStep 2 (cross-view mapping): one map.\nStep 3 (spatial reasoning): so C.</think><answer>C</answer>"
    gt = {"type": "choice", "answer": "C", "options": ["A", "B", "C", "D"], "task": "among", "references": gt_views}
    decision = judge(response, gt, n_images=n_images)
    names_a_key = any(t in views.get(k, []) or (t[1], t[0], INVERSE[t[2]]) in views.get(k, []) for k, ts in stated.items() for t in ts)
    assert decision.keep == names_a_key, decision.reasons
    r_ref = multiview_reward(response, gt, reward_settings)["r_ref"]
    if decision.keep:
        assert r_ref > 0
    else:
        assert [reason_code(r) for r in decision.reasons] == ["references"]


def test_the_length_limit_counts_the_students_tokens(tiny_qwen25vl):
    limit = ResponseLimit.from_tokenizer(tiny_qwen25vl, 10**6)
    n = limit.count_tokens(chain("B"))
    assert n > 20  # the chain's tokens plus the end-of-turn token
    gt = {"type": "choice", "answer": "B", "options": ["A", "B", "C", "D"], "task": "among"}
    assert judge(chain("B"), gt, limit=ResponseLimit.from_tokenizer(tiny_qwen25vl, n)).keep
    too_long = judge(chain("B"), gt, limit=ResponseLimit.from_tokenizer(tiny_qwen25vl, n - 1))
    assert too_long.reasons == (f"too_long: {n} student tokens > data.max_response_length {n - 1}",)


def test_an_overlong_chain_is_rejected_and_counted_and_a_skipped_check_is_reported_once(tmp_path, tiny_qwen25vl):
    truth = write_pool(tmp_path / "pool.parquet", 4)
    n = ResponseLimit.from_tokenizer(tiny_qwen25vl, 1).count_tokens(chain("A"))
    logged: list[str] = []
    with ScriptedChatServer(truth) as server:
        result = generate(settings(server), tmp_path / "pool.parquet", tmp_path / "skipped", progress=False, log=logged.append)
        assert [m for m in logged if "no --tokenizer" in m] == [logged[0]] and "2048 student tokens" in logged[0]  # star_r1_mv's, once
        assert result.report["length_check"] == {"checked": False, "tokenizer": None, "max_response_length": None}
        assert "length check was skipped" in (tmp_path / "skipped" / "report.md").read_text()
        # every chain of the script has the same length in tokens of this tokenizer: a limit one short rejects them all
        result = generate(
            settings(server, tokenizer=tiny_qwen25vl, max_response_length=n - 1), tmp_path / "pool.parquet", tmp_path / "out", progress=False
        )
    assert result.report["length_check"] == {"checked": True, "tokenizer": tiny_qwen25vl, "max_response_length": n - 1}
    assert result.report["total"]["kept"] == 0 and result.report["rejected_by"] == {"too_long": 4}
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert {r["reasons"][0] for r in rejected} == {f"too_long: {n} student tokens > data.max_response_length {n - 1}"}
    # the same cache, the limit met: all kept (no new request; --offline)
    kept = generate(
        settings(server, tokenizer=tiny_qwen25vl, max_response_length=n), tmp_path / "pool.parquet", tmp_path / "out", offline=True, progress=False
    )
    assert kept.report["total"]["kept"] == 4


def test_the_rl_recipes_response_length_is_read_without_composing():
    from star_verl.recipes import compose_recipe, recipe_value

    cfg = compose_recipe("star_r1_mv", ["actor_rollout_ref.model.path=x"])
    assert recipe_value("star_r1_mv", "data.max_response_length") == cfg.data.max_response_length == 2048
    assert TeacherSettings(base_url="http://x", model="m").response_length() == 2048
    with pytest.raises(KeyError, match="does not set"):
        recipe_value("star_r1_mv", "data.no_such_key")


def test_retry_after_forms(monkeypatch):
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds("0.5") == 0.5 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None and retry_after_seconds("-3") == 0.0

    class Noon(datetime.datetime):  # the client's clock, stopped: an HTTP date is read relative to it
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=tz)

    monkeypatch.setattr(client, "datetime", Noon)
    assert retry_after_seconds("Tue, 01 Jan 2030 12:00:30 GMT") == 30.0
    assert retry_after_seconds("Tue, 01 Jan 2030 11:59:00 GMT") == 0.0  # a date past: at once
    assert retry_after_seconds("Wed, 02 Jan 2030 12:00:00 GMT") == client.MAX_RETRY_AFTER_S  # capped


def _cli(pool: Path, out: Path, server: ScriptedChatServer, *extra: str) -> list[str]:
    return [
        sys.executable, str(REPO / "data_prep" / "generate_cot.py"), "--in", str(pool), "--out", str(out), "--base-url", server.base_url,
        "--model", "teacher-test", "--concurrency", "2", "--seed", "7", "--val-fraction", "0.2", "--no-progress", *extra,
    ]  # fmt: skip


def test_killed_run_resumes_without_asking_twice(tmp_path):
    n = 12
    pool = tmp_path / "pool.parquet"
    truth = write_pool(pool, n)
    script = {"q3": ["wrong"], "q7": ["malformed"]}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with ScriptedChatServer(truth, script, delay_s=0.3) as server:
        # the reference: one uninterrupted run
        subprocess.run(_cli(pool, tmp_path / "whole", server), check=True, env=env, capture_output=True, timeout=120)
        assert server.requests_per_question() == {f"q{i}": 1 for i in range(n)}
        server.reset()

        # the same run, SIGKILLed once a few answers are cached
        cache = tmp_path / "resumed" / CACHE_FILE
        proc = subprocess.Popen(_cli(pool, tmp_path / "resumed", server), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not cache.exists() or cache.read_text().count("\n") < 4):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        cached_before = {json.loads(line)["question_id"] for line in cache.read_text().splitlines() if line.strip()}
        assert 4 <= len(cached_before) < n
        assert not (tmp_path / "resumed" / "train.parquet").exists()  # outputs come only at the end
        server.reset()

        done = subprocess.run(_cli(pool, tmp_path / "resumed", server), env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        asked_again = server.requests_per_question()
    # no question asked twice: the rerun asked exactly the questions the killed run had no answer for
    assert set(asked_again) == {f"q{i}" for i in range(n)} - cached_before and max(asked_again.values()) == 1
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert sorted(r["question_id"] for r in lines) == sorted(f"q{i}" for i in range(n))  # nothing lost, nothing twice
    for name in OUTPUTS:
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    report = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert report["total"]["kept"] == n - 2 and report["rows"]["val"] == 2  # round(0.2 * 10)
    assert f"{n} samples answered" in done.stdout.replace(f"{n}/{n}", f"{n}")


def test_a_fatal_error_cancels_the_requests_in_flight(tmp_path):
    truth = write_pool(tmp_path / "pool.parquet", 10)
    # q0 is refused (401) while q1-q3 are in flight (each answer takes 30 s): the run stops at once,
    # no in-flight answer is awaited or cached, and nothing else is asked
    script = {f"q{i}": ["slow"] for i in range(1, 10)} | {"q0": ["401"]}
    with ScriptedChatServer(truth, script, slow_s=30.0) as server:
        with pytest.raises(TeacherError, match="HTTP 401"):
            generate(settings(server, concurrency=4), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
        asked = set(server.requests_per_question())
    assert "q0" in asked and asked <= {"q0", "q1", "q2", "q3"}
    cache = tmp_path / "out" / CACHE_FILE
    assert not cache.exists() or cache.read_text() == ""
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name != ".lock"] == []


def test_each_sample_is_judged_once(tmp_path, monkeypatch):
    from star_verl.prep.teacher import outputs

    calls = []
    real = outputs.judge_chain
    monkeypatch.setattr(outputs, "judge_chain", lambda *a, **k: calls.append(k["extra_info"]["question_id"]) or real(*a, **k))
    truth = write_pool(tmp_path / "pool.parquet", 4)
    with ScriptedChatServer(truth) as server:
        result = generate(settings(server, samples_per_question=2), tmp_path / "pool.parquet", tmp_path / "out", progress=False)
        assert sorted(calls) == sorted(f"q{i}" for i in range(4) for _ in range(2))  # the bar and the outputs share one decision
        assert result.counts.kept == result.report["total"]["kept"] == 8
        calls.clear()
        generate(settings(server, samples_per_question=2), tmp_path / "pool.parquet", tmp_path / "out", progress=False)  # all cached
        assert len(calls) == 8
    calls.clear()
    generate(settings(server, samples_per_question=2), tmp_path / "pool.parquet", tmp_path / "out", offline=True, progress=False)
    assert len(calls) == 8


def test_a_failed_write_removes_its_temporary_files_and_keeps_the_old_outputs(tmp_path, monkeypatch):
    from star_verl.prep.teacher import outputs

    truth = write_pool(tmp_path / "pool.parquet", 6)
    out = tmp_path / "out"
    with ScriptedChatServer(truth) as server:
        generate(settings(server), tmp_path / "pool.parquet", out, progress=False)
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    real, written = outputs.make_sft_row, []

    def fail_on_the_third_row(**row):
        if len(written) == 2:
            raise OSError("No space left on device")
        written.append(row)
        return real(**row)

    monkeypatch.setattr(outputs, "make_sft_row", fail_on_the_third_row)
    with pytest.raises(OSError, match="No space left"):
        generate(settings(server), tmp_path / "pool.parquet", out, offline=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([".lock", CACHE_FILE, *OUTPUTS])  # no *.tmp left behind
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before

"""Session-wide fixtures shared by the test modules (expensive things are built once)."""

from __future__ import annotations

import os

import pytest

from tests.trainer_runs import mv_run, sft_run, stage1, tvr_resumed, tvr_run  # noqa: F401  (session fixtures)

# veRL prints accelerator warnings at import; keep Ray and tokenizers quiet and single-threaded on 2 cores.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_qwen25vl(tmp_path_factory) -> str:
    """Path of a tiny random Qwen2.5-VL checkpoint (model, tokenizer, processor) built locally:
    the package's builder, the model of `star-verl tiny-model` and `star-verl smoke`."""
    from star_verl.tiny_model import build_tiny_qwen25vl

    return str(build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny_qwen25vl")))


@pytest.fixture(scope="session")
def tok_proc(tiny_qwen25vl):
    """The tiny model's tokenizer and processor, loaded as veRL loads them (tests must not mutate them)."""
    from verl.utils import hf_processor, hf_tokenizer

    return hf_tokenizer(tiny_qwen25vl), hf_processor(tiny_qwen25vl)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for every test that needs Ray workers (started once: ~10 s on 2 cores),
    its own even where another process's local cluster runs."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        )
    yield ray
    ray.shutdown()

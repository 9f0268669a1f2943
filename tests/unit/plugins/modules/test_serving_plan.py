# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""serving_plan: the real module main() on a GGUF file, a safetensors directory and a (fake) Hugging Face hub."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before huggingface_hub is imported anywhere: it reads these once, at import time.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="gpufleet-hf-home-"))
atexit.register(shutil.rmtree, os.environ["HF_HOME"], True)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

# pylint: disable=wrong-import-position
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ansible_collections.gpufleet.inference.plugins.modules import serving_plan  # noqa: E402
from ansible_collections.gpufleet.inference.tests.support.fake_hub import FakeHub  # noqa: E402
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (  # noqa: E402
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

ROOT = Path(__file__).resolve().parents[4]
CONFIGS = ROOT / "tests" / "unit" / "fixtures" / "plan"
CHECK_MODEL = ROOT / "roles" / "llamacpp_image" / "files" / "check-model.gguf"
GIB = 1024 ** 3
GB10 = {
    "vendor": "nvidia", "count": 1, "unified_memory": True, "memory_total_bytes": None,
    "memory_budget_bytes": 118548480 * 1024, "system_memory_bytes": 127598748 * 1024,
    "devices": [{"index": 0, "name": "NVIDIA GB10", "unified_memory": True}],
}


def run(args, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with set_module_args(args), pytest.raises(AnsibleExitJson) as exc:
        serving_plan.main()
    return exc.value.args[0]


def run_fail(args):
    with set_module_args(args), pytest.raises(AnsibleFailJson) as exc:
        serving_plan.main()
    return exc.value.args[0]


@pytest.fixture
def safetensors_dir(tmp_path):
    directory = tmp_path / "qwen"
    directory.mkdir()
    shutil.copy(CONFIGS / "Qwen2.5-7B-Instruct.json", directory / "config.json")
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 15231233024}, "weight_map": {}}), encoding="utf-8")
    return directory


@pytest.mark.parametrize("check_mode", [False, True])
def test_gguf_file_plans_a_llamacpp_service(check_mode):
    pytest.importorskip("gguf")
    result = run({"service": {"name": "demo", "context": 128}, "gpu": GB10, "path": str(CHECK_MODEL)}, check_mode)
    assert result["changed"] is False
    assert result["shape"]["format"] == "gguf"
    assert result["plan"]["fits"] is True and result["plan"]["context"] == 128


def test_directory_with_a_gguf_file_reads_it(tmp_path):
    pytest.importorskip("gguf")
    shutil.copy(CHECK_MODEL, tmp_path / "model.gguf")
    assert run({"service": {"name": "demo"}, "path": str(tmp_path)})["shape"]["architecture"] == "llama"


def test_safetensors_directory_takes_the_index_total_size(safetensors_dir):
    result = run({"service": {"name": "qwen", "engine": "vllm", "context": 16384}, "gpu": GB10,
                  "path": str(safetensors_dir)})
    assert result["shape"]["weight_bytes"] == 15231233024
    assert result["shape"]["weight_bytes_source"] == "files"
    assert result["plan"]["gpu_memory_utilization"] == 0.8 and result["plan"]["max_num_seqs"] >= 1


def test_context_above_the_models_limit_fails_naming_service_and_variable(safetensors_dir):
    result = run_fail({"service": {"name": "qwen", "engine": "vllm", "context": 65536}, "gpu": GB10,
                       "path": str(safetensors_dir)})
    assert "gpufleet_services (qwen).context 65536 is above the model's own limit of 32768" in result["msg"]
    assert result["plan"]["error"] == result["msg"]


def test_a_model_that_does_not_fit_fails_with_sizes(safetensors_dir):
    small = dict(GB10, memory_budget_bytes=10 * GIB)
    result = run_fail({"service": {"name": "qwen", "engine": "vllm"}, "gpu": small, "path": str(safetensors_dir)})
    assert "(qwen): the model does not fit" in result["msg"] and "GiB" in result["msg"]


def test_missing_path_fails_naming_the_service(tmp_path):
    result = run_fail({"service": {"name": "x"}, "path": str(tmp_path / "absent.gguf")})
    assert "gpufleet_services (x)" in result["msg"] and "absent.gguf" in result["msg"]


def test_without_gguf_package_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)
    result = run_fail({"service": {"name": "demo"}, "path": str(CHECK_MODEL)})
    assert "gguf" in result["msg"] and "(demo)" in result["msg"]


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub" / "meta-llama" / "Llama-3.1-8B-Instruct"
    root.mkdir(parents=True)
    shutil.copy(CONFIGS / "Llama-3.1-8B-Instruct.json", root / "config.json")
    # Small stand-ins for the weights: the module reads their sizes from the hub, never their bytes.
    (root / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 3000)
    (root / "model-00002-of-00002.safetensors").write_bytes(b"\0" * 1000)
    with FakeHub(tmp_path / "hub") as server:
        yield server


def test_hf_repo_reads_config_and_file_sizes_only(hub):
    result = run({"service": {"name": "llama", "engine": "vllm"}, "hf_repo": "meta-llama/Llama-3.1-8B-Instruct",
                  "endpoint": hub.url})
    assert result["shape"]["layers"] == 32 and result["shape"]["weight_bytes"] == 4000
    fetched = [r["path"] for r in hub.requests if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert fetched and all(path.endswith("config.json") for path in fetched)


def test_hf_repo_that_does_not_exist_fails_clearly(hub):
    result = run_fail({"service": {"name": "llama"}, "hf_repo": "nobody/nothing", "endpoint": hub.url})
    assert "nobody/nothing" in result["msg"] and "(llama)" in result["msg"]


def test_path_and_hf_repo_are_exclusive():
    result = run_fail({"service": {"name": "x"}, "path": "/tmp/x", "hf_repo": "a/b"})
    assert "mutually exclusive" in result["msg"]

"""The seed deployments, rendered: ``playbooks/render.yml`` on each ``inventory/examples/<seed>`` inventory.

Every example inventory names its hosts with documentation addresses (RFC 5737, 192.0.2.x) over SSH: a render that
contacted a host would fail as unreachable. Each rendered ``compose.yaml`` must pass ``docker compose config``, and
its normalised form (``docker compose config --format json``) must carry the seed's settings point by point: image,
published and container ports, context, memory fraction, ipc, ulimits, GPU devices, model files and flags.
The figures a service leaves to the planner must be the ones ``plan.json`` reports.

Needs: the vLLM engine and the new service keys in plugins/filter/stack.py (``inference_compose``,
``inference_docker_run``) and the planner's ``serving_plan`` filter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
DOCKER = shutil.which("docker")


def render(out, inventory, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", inventory, "playbooks/render.yml",
                           "-e", f"gpufleet_render_dir={out}", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "unreachable=0" in proc.stdout and "unreachable=1" not in proc.stdout, log
    return log


def compose_config(path):
    """The compose file as docker compose reads it (it fails on anything it would refuse)."""
    if not DOCKER:
        pytest.skip("docker compose is needed to check the rendered compose files")
    check = subprocess.run([DOCKER, "compose", "-f", str(path), "config", "--quiet"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    proc = subprocess.run([DOCKER, "compose", "-f", str(path), "config", "--format", "json"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def host(out, name):
    folder = Path(out) / name
    assert {p.name for p in folder.iterdir()} >= {"compose.yaml", "docker-run.sh", "plan.json", "secrets"}
    run = folder / "docker-run.sh"
    assert run.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["sh", "-n", str(run)], check=False).returncode == 0
    return {"compose": compose_config(folder / "compose.yaml"), "plan": json.loads((folder / "plan.json").read_text()),
            "run": run.read_text(), "secrets": {p.name: p.read_text() for p in (folder / "secrets").iterdir()}}


def argv(service):
    """Entrypoint and command as one line of words (vLLM's run through `/bin/sh -c`, llama.cpp's as a list)."""
    words = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        words += value if isinstance(value, list) else [value]
    return " ".join(" ".join(str(w).split()) for w in words)


def has_flag(line, flag, value=None):
    if value is None:
        return re.search(rf"(^|\s){re.escape(flag)}(\s|$)", line) is not None
    return re.search(rf"(^|\s){re.escape(flag)}[ =]['\"]?{re.escape(str(value))}['\"]?(\s|$)", line) is not None


def flag_value(line, flag):
    match = re.search(rf"(^|\s){re.escape(flag)}[ =]['\"]?([^\s'\"]+)", line)
    return match and match.group(2)


def port(service, published):
    found = [p for p in service["ports"] if str(p["published"]) == str(published)]
    assert found, service["ports"]
    return found[0]


def ulimit(service, name):
    value = service["ulimits"][name]
    if isinstance(value, dict):
        assert value["soft"] == value["hard"], value
        return value["soft"]
    return value


def nvidia_reservation(service):
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1 and devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"], devices
    return devices[0].get("count")


def engine(compose, name):
    """The engine service (a vLLM service beyond loopback has a proxy in front: not this one)."""
    return compose["services"][name]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    logs = {}
    for example in ("terrarium", "glm-flash", "vllm-planned", "strieber", "cortex"):
        logs[example] = render(out, f"inventory/examples/{example}")
    return out


def test_terrarium_is_seed_000(rendered):
    got = host(rendered, "terrarium.example.net")
    service = engine(got["compose"], "vllm-server")
    # docker pull nvcr.io/nvidia/vllm:25.09-py3
    assert service["image"] == "nvcr.io/nvidia/vllm:25.09-py3"
    # -p 8000:8000, published on loopback (the seed's clients call http://localhost:8000)
    published = port(service, 8000)
    assert published["target"] == 8000 and published["host_ip"] == "127.0.0.1"
    # --ipc=host --ulimit memlock=-1 --ulimit stack=67108864
    assert service["ipc"] == "host"
    assert ulimit(service, "memlock") == -1 and ulimit(service, "stack") == 67108864
    # --gpus all on one GB10: a GPU reservation for the tensor-parallel size, 1
    assert str(nvidia_reservation(service)) in ("1", "all", "-1")
    line = argv(service)
    assert has_flag(line, "--model", "/models/GLM-4.5-Air-AWQ-4bit")
    assert any(v["target"] == "/models/GLM-4.5-Air-AWQ-4bit" and v.get("read_only") for v in service["volumes"])
    assert has_flag(line, "--served-model-name", "/models/GLM-4.5-Air-AWQ-4bit")
    assert has_flag(line, "--port", 8000)
    assert has_flag(line, "--max-model-len", 8192)
    assert has_flag(line, "--gpu-memory-utilization", 0.9)
    assert has_flag(line, "--dtype", "float16")
    assert has_flag(line, "--tool-call-parser", "glm45") and has_flag(line, "--reasoning-parser", "glm45")
    assert has_flag(line, "--enable-auto-tool-choice")
    # The seed's clients send no key: api_key_required false, so the engine gets none.
    assert not has_flag(line, "--api-key")
    assert "nvcr.io/nvidia/vllm:25.09-py3" in got["run"]
    assert all("Placeholder" in text for text in got["secrets"].values())
    assert got["plan"]["services"]["vllm-server"]["error"] is None


def test_glm_flash_is_seed_001(rendered):
    got = host(rendered, "hordak.example.net")
    q4, q8 = engine(got["compose"], "glm-q4"), engine(got["compose"], "glm-q8")
    # Ports 11346:11346 and 11347:11346, on every interface (OpenCode on other machines, no key).
    assert port(q4, 11346)["target"] == 11346 and port(q4, 11346).get("host_ip") in (None, "0.0.0.0")
    assert port(q8, 11347)["target"] == 11346 and port(q8, 11347).get("host_ip") in (None, "0.0.0.0")
    # One models directory, mounted into both.
    assert [v["source"] for v in q4["volumes"]] == [v["source"] for v in q8["volumes"]]
    for service, quant in ((q4, "Q4_K_XL"), (q8, "Q8_K_XL")):
        assert service["image"].startswith("gpufleet/llama.cpp:cuda-")
        assert str(nvidia_reservation(service)) in ("1", "all", "-1")
        line = argv(service)
        assert has_flag(line, "--model", f"/models/GLM-4.7-Flash-GGUF/GLM-4.7-Flash-UD-{quant}.gguf")
        assert has_flag(line, "--alias", "unsloth/GLM-4.7-Flash")
        assert has_flag(line, "--port", 11346)
        assert has_flag(line, "--ctx-size", 202752)
        assert "--threads -1 --fit on --temp 0.7 --top-p 1.0 --min-p 0.01 --jinja --repeat-penalty 1.0" in line
        assert not has_flag(line, "--api-key-file") and not has_flag(line, "--api-key")
        assert "11346/health" in " ".join(service["healthcheck"]["test"])


@pytest.mark.parametrize("name, service_name, context", [
    ("a100-1x.example.net", "llama2-7b", None),
    ("a100-4x.example.net", "llama2-70b", 4096),
])
def test_vllm_planned_is_seed_002(rendered, name, service_name, context):
    got = host(rendered, name)
    service = engine(got["compose"], service_name)
    plan = got["plan"]["services"][service_name]
    assert plan["error"] is None and plan["fits"] is True
    # vllm-wizard: vllm/vllm-openai, -p 8000:8000, $HF_HOME:/root/.cache/huggingface, ipc host,
    # GPU reservation count = tensor_parallel_size.
    assert service["image"].startswith("vllm/vllm-openai:") and not service["image"].endswith(":latest")
    assert port(service, 8000)["target"] == 8000
    assert any(v["target"] == "/root/.cache/huggingface" for v in service["volumes"])
    assert service["ipc"] == "host"
    line = argv(service)
    assert has_flag(line, "--max-model-len", context or plan["context"])
    assert float(flag_value(line, "--gpu-memory-utilization")) == pytest.approx(plan["gpu_memory_utilization"])
    assert int(flag_value(line, "--max-num-seqs")) == plan["max_num_seqs"]
    tp = int(flag_value(line, "--tensor-parallel-size") or 1)
    assert tp == plan["tensor_parallel_size"]
    assert int(nvidia_reservation(service)) == tp
    if name == "a100-4x.example.net":
        # 138 GB of float16 weights do not fit one 80 GB GPU.
        assert tp > 1


def test_strieber_is_seed_004(rendered):
    got = host(rendered, "strieber.example.net")
    service = engine(got["compose"], "llama-server")
    assert service["image"].startswith("gpufleet/llama.cpp:cuda-")
    assert port(service, 8000)["target"] == 8000
    assert str(nvidia_reservation(service)) in ("1", "all", "-1")
    assert service["environment"]["GGML_CUDA_ENABLE_UNIFIED_MEMORY"] == "1"
    line = argv(service)
    # make download-20b: unsloth/gpt-oss-20b-GGUF gpt-oss-20b-Q4_K_M.gguf; CONTEXT_SIZE=8192; GPU_LAYERS=999
    assert has_flag(line, "--model", "/models/gpt-oss-20b/gpt-oss-20b-Q4_K_M.gguf")
    assert has_flag(line, "--ctx-size", 8192)
    assert has_flag(line, "--n-gpu-layers", 999)
    assert has_flag(line, "--jinja")
    # The build: CUDA for sm_121 with the CLI tools.
    build = got["plan"]["llamacpp_build"]
    assert build["backend"] == "cuda" and build["cuda_architectures"] == "121"
    assert "-DCMAKE_CUDA_ARCHITECTURES=121" in build["cmake_flags"] and "-DGGML_CUDA=ON" in build["cmake_flags"]
    assert {"llama-server", "llama-cli", "llama-bench", "llama-quantize", "llama-perplexity", "llama-embedding",
            "llama-tokenize", "llama-imatrix"} <= set(build["targets"])


def test_cortex_is_seed_003(rendered):
    got = host(rendered, "cortex.example.net")
    compose = got["compose"]
    service = engine(compose, "inference-vllm")
    # "11434:8000": the proxy publishes 11434 (every route needs the key) and forwards to the switcher on 8000.
    assert "ports" not in service or not service["ports"]
    proxy = compose["services"]["inference-vllm-proxy"]
    assert port(proxy, 11434)["host_ip"] == "0.0.0.0"
    lanes = json.loads((rendered / "cortex.example.net" / "lanes" / "inference-vllm.json").read_text())
    assert lanes["port"] == 8000
    # Three lanes, one loaded at a time in vLLM's 48 GB; the model field selects the lane.
    assert [lane["name"] for lane in lanes["lanes"]] == [
        "DeepSeek-R1-Distill-Qwen-32B", "Qwen2.5-Coder-32B-Instruct", "Llama-3.2-11B-Vision-Instruct"]
    assert (lanes["mode"], lanes["max_loaded"], lanes["budget_bytes"]) == ("switching", 1, 48 * 10**9)
    for lane in lanes["lanes"]:
        line = " ".join(lane["command"])
        assert has_flag(line, "--served-model-name", lane["name"])
        # VLLM_MAX_MODEL_LEN=32768; VLLM_GPU_MEMORY_UTILIZATION=0.45 ("48GB for vLLM out of 128GB"): here 48 GB of
        # the GPU's 96.5 GiB (GTT plus carve-out), the seed's intent.
        assert has_flag(line, "--max-model-len", 32768)
        assert abs(float(flag_value(line, "--gpu-memory-utilization")) - 0.45) <= 0.02
    # ROCm: /dev/kfd, /dev/dri, the video and render groups; the seed's shm_size 16gb; its ROCm variables.
    assert {d["source"] for d in service["devices"]} == {"/dev/kfd", "/dev/dri"}
    assert len(service["group_add"]) == 2
    assert service["shm_size"] in (16 * 2**30, "17179869184", 17179869184, "16gb", "16g")
    assert service["environment"]["HSA_ENABLE_SDMA"] == "1" and service["environment"]["HIP_VISIBLE_DEVICES"] == "0"
    # gfx1151 has native kernels in the ROCm the collection installs: no override anywhere.
    assert "HSA_OVERRIDE_GFX_VERSION" not in (rendered / "cortex.example.net" / "compose.yaml").read_text()
    # The persistent lanes: llama.cpp for ROCm on 8080 and 8081, always loaded.
    for name, published in (("super-reader", 8080), ("governance", 8081)):
        persistent = engine(compose, name)
        assert persistent["image"].startswith("gpufleet/llama.cpp:rocm-")
        assert port(persistent, published)["target"] == published
        assert {d["source"] for d in persistent["devices"]} == {"/dev/kfd", "/dev/dri"}
    assert got["plan"]["services"]["inference-vllm"]["mode"] == "switching"


def test_strieber_upgrades_to_120b_with_one_variable(tmp_path):
    render(tmp_path, "inventory/examples/strieber", "-e", "strieber_model=gpt-oss-120b")
    line = argv(host(tmp_path, "strieber.example.net")["compose"]["services"]["llama-server"])
    # .env of "Upgrading to gpt-oss-120b": MODEL_FILE=gpt-oss-120b-mxfp4-00001-of-00003.gguf, 65536, 70 layers
    assert has_flag(line, "--model", "/models/gpt-oss-120b/gpt-oss-120b-mxfp4-00001-of-00003.gguf")
    assert has_flag(line, "--ctx-size", 65536)
    assert has_flag(line, "--n-gpu-layers", 70)


def test_render_contacts_no_host_and_writes_no_key(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n    unreachable.example.net:\n      ansible_host: 192.0.2.99\n      ansible_connection: ssh\n"
        "      ansible_user: nobody\n  vars:\n"
        "    gpufleet_models: [{name: m, url: 'https://example.net/m.gguf', sha256: '" + "0" * 64 + "'}]\n"
        "    gpufleet_services: [{name: s, model: m, model_file: m.gguf, port: 8080, api_key: not-for-the-render}]\n")
    render(tmp_path / "out", str(inventory))
    got = host(tmp_path / "out", "unreachable.example.net")
    assert "not-for-the-render" not in got["secrets"]["s.key"]
    assert got["compose"]["services"]["s"]["image"] == "gpufleet/llama.cpp:cpu-render"

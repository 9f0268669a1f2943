"""What the collection builds and runs on a GB10, an H100 and a Strix Halo host, from their GPU facts.

tests/collection/files/render-gpu.yml renders, through ansible-playbook, the llamacpp_image role's Dockerfile and
the inference_stack role's compose file for a ``gpufleet_gpu`` fact set (the shape gpu_facts returns). The
assertions are the flags and device wiring the vendors' own guides use:

- llama.cpp's build guide: ``-DGGML_CUDA=ON`` with ``CMAKE_CUDA_ARCHITECTURES`` of the GPU (``121`` for GB10 in
  NVIDIA's DGX Spark playbook, ``90`` for H100), ``-DGGML_HIP=ON`` with ``AMDGPU_TARGETS``/``GPU_TARGETS``
  ``gfx1151`` and ``HIPCXX="$(hipconfig -l)/clang" HIP_PATH="$(hipconfig -R)"`` for ROCm;
- Docker's "GPU support in Compose": ``deploy.resources.reservations.devices`` with ``driver: nvidia``,
  ``count: all``, ``capabilities: [gpu]``; NVIDIA's CDI name ``nvidia.com/gpu=all``;
- AMD's "Running ROCm Docker containers": ``--device /dev/kfd --device /dev/dri`` and the ``video`` group
  (``render`` too on recent distributions), as numeric ids inside an image that lacks those groups;
- ``GGML_CUDA_ENABLE_UNIFIED_MEMORY=1`` at run time (not a build flag) on unified-memory NVIDIA hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "tests" / "collection" / "files" / "render-gpu.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

GB10 = {
    "vendor": "nvidia", "reason": "", "source": "nvml", "count": 1, "driver_version": "580.95.05",
    "cuda_driver_version": "13.0", "cuda_architectures": ["121"], "hip_targets": [], "unified_memory": True,
    "memory_total_bytes": None, "memory_budget_bytes": 119_000_000_000,
    "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA GB10", "compute_capability": "12.1",
                 "cuda_architecture": "121", "memory_total_bytes": None, "memory_free_bytes": None,
                 "unified_memory": True, "pci_bus_id": "000f:01:00.0"}],
}
H100 = {
    "vendor": "nvidia", "reason": "", "source": "nvml", "count": 1, "driver_version": "580.95.05",
    "cuda_driver_version": "13.0", "cuda_architectures": ["90"], "hip_targets": [], "unified_memory": False,
    "memory_total_bytes": 85_520_809_984, "memory_budget_bytes": 84_900_000_000,
    "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                 "cuda_architecture": "90", "memory_total_bytes": 85_520_809_984, "unified_memory": False,
                 "pci_bus_id": "0000:18:00.0"}],
}
STRIX = {
    "vendor": "amd", "reason": "", "source": "sysfs", "count": 1, "driver_version": "6.14.0-33-generic",
    "cuda_driver_version": None, "cuda_architectures": [], "hip_targets": ["gfx1151"], "unified_memory": True,
    "memory_total_bytes": 536_870_912, "memory_budget_bytes": 110_000_000_000,
    "devices": [{"index": 0, "vendor": "amd", "name": "AMD Radeon 8060S", "gfx_target": "gfx1151",
                 "gfx_target_version": 110501, "apu": True, "unified_memory": True, "pci_bus_id": "0000:c5:00.0",
                 "render_node": "/dev/dri/renderD128"}],
}
NO_GPU = {"vendor": "none", "reason": "no GPU found", "source": "none", "count": 0, "devices": [],
          "cuda_architectures": [], "hip_targets": [], "unified_memory": False}
DRIVER_NOT_LOADED = dict(NO_GPU, reason="NVIDIA GPU 000f:01:00.0 (10de:2e12) present but the driver is not loaded",
                         unusable_devices=[{"vendor": "nvidia", "pci_bus_id": "000f:01:00.0", "pci_device_id": "0x2e12",
                                            "driver": None}])


def render(tmp_path, gpu, **extra):
    out = tmp_path / "out"
    out.mkdir()
    extra_vars = dict(gpu=gpu, out=str(out), **extra)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(PLAYBOOK), "-e", json.dumps(extra_vars)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        return None, proc.stdout + proc.stderr
    plan = json.loads((out / "plan.json").read_text())
    compose = json.loads((out / "compose.json").read_text())
    return {"plan": plan, "dockerfile": (out / "Dockerfile").read_text(), "service": compose["services"]["qwen-q4"]}, ""


def cmake_flags(dockerfile):
    return {token.strip("'").removeprefix("-D").split("=", 1)[0]: token.strip("'").split("=", 1)[1]
            for token in dockerfile.split() if token.strip("'").startswith("-D")}


def test_gb10_gets_cuda_121_with_unified_memory_at_run_time(tmp_path):
    got, log = render(tmp_path, GB10)
    assert got, log
    assert got["plan"]["backend"] == "cuda"
    assert "FROM nvidia/cuda:13.0.1-devel-ubuntu24.04 AS build" in got["dockerfile"]
    flags = cmake_flags(got["dockerfile"])
    assert flags["GGML_CUDA"] == "ON"
    assert flags["CMAKE_CUDA_ARCHITECTURES"] == "121"
    assert flags["GGML_NATIVE"] == "OFF"
    assert flags["GGML_BACKEND_DL"] == "ON"
    assert "GGML_CUDA_ENABLE_UNIFIED_MEMORY" not in flags  # a runtime variable, not a build flag
    service = got["service"]
    assert service["environment"]["GGML_CUDA_ENABLE_UNIFIED_MEMORY"] == "1"
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "devices" not in service and "group_add" not in service


def test_h100_gets_cuda_90_and_no_unified_memory(tmp_path):
    got, log = render(tmp_path, H100)
    assert got, log
    assert cmake_flags(got["dockerfile"])["CMAKE_CUDA_ARCHITECTURES"] == "90"
    assert "GGML_CUDA_ENABLE_UNIFIED_MEMORY" not in got["service"].get("environment", {})
    assert got["service"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_nvidia_through_cdi(tmp_path):
    got, log = render(tmp_path, GB10, inference_stack_nvidia_devices="cdi")
    assert got, log
    assert got["service"]["devices"] == ["nvidia.com/gpu=all"]
    assert "deploy" not in got["service"]


def test_strix_halo_gets_hip_gfx1151_with_kfd_dri_and_numeric_groups(tmp_path):
    got, log = render(tmp_path, STRIX, group_ids=["44", "992"])
    assert got, log
    assert got["plan"] == {"backend": "rocm", "cuda_architectures": "", "hip_targets": "gfx1151",
                           "reason": got["plan"]["reason"]}
    dockerfile = got["dockerfile"]
    assert "FROM rocm/dev-ubuntu-24.04:7.0.2-complete AS build" in dockerfile
    assert 'export HIPCXX="$(hipconfig -l)/clang" HIP_PATH="$(hipconfig -R)"' in dockerfile
    flags = cmake_flags(dockerfile)
    assert flags["GGML_HIP"] == "ON"
    assert flags["AMDGPU_TARGETS"] == flags["GPU_TARGETS"] == "gfx1151"
    assert "GGML_CUDA" not in flags
    service = got["service"]
    assert service["devices"] == ["/dev/kfd", "/dev/dri"]
    assert service["group_add"] == ["44", "992"]
    assert "deploy" not in service
    # gfx1151 is supported by ROCm 7.0.2 and later: no HSA_OVERRIDE_GFX_VERSION unless the inventory sets one.
    assert "HSA_OVERRIDE_GFX_VERSION" not in service.get("environment", {})


def test_strix_halo_with_vulkan(tmp_path):
    got, log = render(tmp_path, STRIX, llamacpp_image_amd_backend="vulkan", group_ids=["44", "992"])
    assert got, log
    assert cmake_flags(got["dockerfile"])["GGML_VULKAN"] == "ON"
    assert got["service"]["devices"] == ["/dev/dri"]


def test_an_explicit_backend_wins_over_the_facts(tmp_path):
    got, log = render(tmp_path, GB10, llamacpp_image_backend="cpu")
    assert got, log
    assert "GGML_CUDA" not in cmake_flags(got["dockerfile"])
    assert "deploy" not in got["service"] and "devices" not in got["service"]


def test_no_gpu_builds_for_the_cpu(tmp_path):
    got, log = render(tmp_path, NO_GPU)
    assert got, log
    assert got["plan"]["backend"] == "cpu"
    assert "FROM ubuntu:24.04 AS build" in got["dockerfile"]
    flags = cmake_flags(got["dockerfile"])
    assert not {"GGML_CUDA", "GGML_HIP", "GGML_VULKAN"} & set(flags)
    # The CPU image has the GPU images' shape: its backend is a library loaded at start-up.
    assert flags["GGML_BACKEND_DL"] == "ON" and flags["GGML_CPU_ALL_VARIANTS"] == "ON"


def test_a_gpu_without_driver_is_refused_not_built_for_the_cpu(tmp_path):
    got, log = render(tmp_path, DRIVER_NOT_LOADED)
    assert got is None
    assert "llamacpp_image_backend is auto" in log
    assert "driver is not loaded" in log


def test_cuda_on_a_host_without_an_nvidia_gpu_is_refused(tmp_path):
    got, log = render(tmp_path, NO_GPU, llamacpp_image_backend="cuda")
    assert got is None
    assert "llamacpp_image_backend is cuda" in log
    assert "no NVIDIA GPU" in log


def test_rocm_on_an_nvidia_host_is_refused(tmp_path):
    got, log = render(tmp_path, H100, llamacpp_image_backend="rocm")
    assert got is None
    assert "llamacpp_image_backend is rocm" in log


def test_every_image_loads_its_backends_from_beside_the_programs(tmp_path):
    # ggml looks for libggml-<backend>*.so in the executable's directory: programs and libraries share /app/bin.
    got, log = render(tmp_path, GB10)
    assert got, log
    dockerfile = got["dockerfile"]
    assert "-exec cp -P {} /app/bin/" in dockerfile
    assert "LD_LIBRARY_PATH=/app/bin" in dockerfile
    assert "/app/lib" not in dockerfile
    assert cmake_flags(dockerfile)["GGML_BACKEND_DL"] == "ON"

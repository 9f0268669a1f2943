# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading what llama.cpp loaded and uses from its own output (tests/unit/fixtures/llamacpp/, captured from the
images this collection builds), and the image check's verdict on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import llamacpp_check_report
from ansible_collections.gpufleet.inference.plugins.module_utils import _llamacpp_log

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "llamacpp"


def text(name):
    return (FIXTURES / name).read_text()


def test_cpu_server_log():
    parsed = _llamacpp_log.parse(text("server-cpu.log"))
    assert parsed["backends_loaded"] == [{"name": "CPU", "path": "/app/bin/libggml-cpu-zen4.so"}]
    assert [d["name"] for d in parsed["devices_listed"]] == ["CPU"]
    assert parsed["devices_used"] == []
    assert (parsed["build_number"], parsed["build_commit"]) == (0, "0c1e57098")
    assert parsed["errors"] == []
    assert _llamacpp_log.summary(parsed) == {"backend": "CPU", "devices": ["CPU"]}


def test_vulkan_server_log_with_every_layer_on_lavapipe():
    parsed = _llamacpp_log.parse(text("server-vulkan.log"))
    assert [d["name"] for d in parsed["devices_listed"]] == ["Vulkan0", "CPU"]
    assert [d["name"] for d in parsed["devices_used"]] == ["Vulkan0"]
    assert parsed["devices_used"][0]["description"].startswith("llvmpipe")
    assert parsed["devices_used"][0]["memory_free_mib"] > 0
    assert (parsed["layers_offloaded"], parsed["layers_total"]) == (19, 19)
    assert _llamacpp_log.summary(parsed) == {"backend": "Vulkan", "devices": ["Vulkan0"]}


def test_vulkan_server_that_skipped_lavapipe_runs_on_the_cpu():
    parsed = _llamacpp_log.parse(text("server-vulkan-no-device.log"))
    assert [d["name"] for d in parsed["devices_listed"]] == ["CPU"]
    assert "the server found no usable GPU (its --gpu-layers is ignored)" in parsed["errors"]
    assert _llamacpp_log.summary(parsed)["backend"] == "CPU"


def test_server_whose_backends_are_not_beside_it():
    parsed = _llamacpp_log.parse(text("server-no-backend.log"))
    assert parsed["backends_loaded"] == []
    assert "no ggml backend was loaded (the backend libraries were not found)" in parsed["errors"]
    assert "the model failed to load" in parsed["errors"]


@pytest.mark.parametrize("name, backend", [("CUDA0", "CUDA"), ("ROCm1", "ROCm"), ("Vulkan0", "Vulkan"), ("CPU", "CPU")])
def test_backend_of_a_device(name, backend):
    assert _llamacpp_log.backend_of(name) == backend


def test_listed_devices_of_a_cuda_host():
    # `llama-server --list-devices` on an H200 (its format: name, description, total and free MiB).
    parsed = _llamacpp_log.parse("Available devices:\n  CUDA0: NVIDIA H200 (143156 MiB, 142540 MiB free)\n")
    assert parsed["devices_listed"] == [{"name": "CUDA0", "description": "NVIDIA H200", "memory_total_mib": 143156,
                                         "memory_free_mib": 142540}]


# ---- the image check ---------------------------------------------------------------------------------------------

def test_check_of_the_cpu_image():
    report = llamacpp_check_report(text("check-cpu.txt"), "cpu")
    assert report["problems"] == []
    assert report["backend"] == "CPU"
    assert report["cpu_variant"] == "libggml-cpu-zen4.so"
    assert report["tokens_per_second"] > 0


def test_check_of_an_image_whose_backends_are_not_found():
    # The layout GPU images had before: programs in one directory, libraries in another.
    report = llamacpp_check_report(text("check-no-backend.txt"), "cpu")
    assert report["backend"] is None
    assert "the CPU backend was not loaded (the backend libraries were not found)" in report["problems"]
    assert any(p.startswith("llama-bench failed (exit 1)") for p in report["problems"])


def test_check_of_the_vulkan_image_on_lavapipe():
    report = llamacpp_check_report(text("check-vulkan.txt"), "vulkan")
    assert report["problems"] == []
    assert report["backend"] == "Vulkan"
    assert report["devices"] == ["Vulkan0"]


def test_check_of_the_vulkan_image_that_sees_no_device():
    # llama-bench still labels its row "Vulkan"; the device list says the truth.
    report = llamacpp_check_report(text("check-vulkan-no-device.txt"), "vulkan")
    assert report["bench_backends"] == "Vulkan"
    problem = next(p for p in report["problems"] if p.startswith("no Vulkan device was found (listed: none), so the model would run on the CPU"))
    assert "GGML_VK_VISIBLE_DEVICES=0 in llamacpp_image_check_environment" in problem


def test_a_cpu_image_is_no_cuda_image():
    report = llamacpp_check_report(text("check-cpu.txt"), "cuda")
    assert "the CUDA backend library was not loaded" in report["problems"]


def test_no_output_at_all():
    report = llamacpp_check_report("", "cpu")
    assert "the check did not run (no output from llama-server --list-devices)" in report["problems"]

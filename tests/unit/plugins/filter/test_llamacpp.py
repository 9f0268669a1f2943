"""CMake flags per backend, as llama.cpp's own container recipes and the vendors' guides set them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import llamacpp_cmake_flags


def flags(*args, **kwargs):
    return dict(f.removeprefix("-D").split("=", 1) for f in llamacpp_cmake_flags(*args, **kwargs))


def test_every_build_is_portable_and_offline():
    for backend, extra in (("cpu", {}), ("cuda", {"cuda_architectures": "121"}),
                           ("rocm", {"hip_targets": "gfx1151"}), ("vulkan", {})):
        f = flags(backend, **extra)
        assert f["GGML_NATIVE"] == "OFF", backend
        assert f["LLAMA_BUILD_TESTS"] == "OFF"
        # No download of the prebuilt web UI during the build unless asked.
        assert f["LLAMA_USE_PREBUILT_UI"] == "OFF"


def test_cpu_has_no_gpu_backend():
    f = flags("cpu")
    assert not {"GGML_CUDA", "GGML_HIP", "GGML_VULKAN"} & set(f)


def test_dgx_spark_gb10():
    f = flags("cuda", cuda_architectures="121")
    assert f["GGML_CUDA"] == "ON"
    assert f["CMAKE_CUDA_ARCHITECTURES"] == "121"
    assert f["GGML_BACKEND_DL"] == "ON"
    # Unified memory is a runtime switch, never a build flag.
    assert not any("UNIFIED_MEMORY" in name for name in f)


def test_h100_and_an_integer_architecture():
    assert flags("cuda", cuda_architectures=90)["CMAKE_CUDA_ARCHITECTURES"] == "90"


def test_strix_halo_gfx1151():
    f = flags("rocm", hip_targets="gfx1151")
    assert f["GGML_HIP"] == "ON"
    assert f["AMDGPU_TARGETS"] == "gfx1151"
    assert f["GPU_TARGETS"] == "gfx1151"


def test_vulkan():
    assert flags("vulkan")["GGML_VULKAN"] == "ON"


def test_web_ui_on_request():
    assert flags("cpu", web_ui=True)["LLAMA_USE_PREBUILT_UI"] == "ON"


@pytest.mark.parametrize("extra", [{"GGML_NATIVE": "ON"}, ["GGML_NATIVE=ON"], ["-DGGML_NATIVE=ON"]])
def test_extra_flags_win(extra):
    assert flags("cpu", extra=extra)["GGML_NATIVE"] == "ON"


@pytest.mark.parametrize("args, message", [
    (("cuda",), "cuda_architectures"),
    (("rocm",), "hip_targets"),
    (("metal",), "unknown backend"),
])
def test_missing_or_unknown_settings_are_named(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        llamacpp_cmake_flags(*args)


def test_extra_without_value_is_refused():
    with pytest.raises(AnsibleFilterError, match="NAME=VALUE"):
        llamacpp_cmake_flags("cpu", extra=["GGML_NATIVE"])


# ---- build plan: bad input is refused, naming the variable ------------------------------------------------------

from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import image_pin, llamacpp_build_plan  # noqa: E402

NVIDIA = {"vendor": "nvidia", "cuda_architectures": ["90"], "devices": [{"name": "NVIDIA H200"}]}
AMD = {"vendor": "amd", "hip_targets": ["gfx1151"], "devices": [{"name": "AMD Radeon 8060S"}]}
NONE = {"vendor": "none", "reason": "no GPU found", "devices": []}


@pytest.mark.parametrize("archs, expected", [
    ("121", "121"), ("90;120", "90;120"), ("90a", "90a"), ("100f", "100f"), ("120-real", "120-real"),
    ("90-virtual", "90-virtual"), ("all-major", "all-major"), ("native", "native"), (["90", "121"], "90;121"),
])
def test_cuda_architectures_that_cmake_takes(archs, expected):
    assert llamacpp_build_plan(NVIDIA, backend="cuda", cuda_architectures=archs)["cuda_architectures"] == expected


@pytest.mark.parametrize("archs", ["sm_121", "12.1", "compute_90", "gb10", "9", "121x", "121;sm_90"])
def test_what_is_not_a_cuda_architecture_is_refused(archs):
    with pytest.raises(AnsibleFilterError, match="llamacpp_image_cuda_architectures: .* not a CUDA architecture"):
        llamacpp_build_plan(NVIDIA, backend="cuda", cuda_architectures=archs)


@pytest.mark.parametrize("target", ["gfx1151", "gfx90a", "gfx942", "gfx1100", "gfx11-generic", "gfx10-3-generic",
                                    "gfx90a:xnack-"])
def test_gfx_targets(target):
    assert llamacpp_build_plan(AMD, backend="rocm", hip_targets=target)["hip_targets"] == target


@pytest.mark.parametrize("target", ["1151", "gfx", "gfx1151x", "sm_121", "gfx 1151", "Gfx1151"])
def test_what_is_not_a_gfx_target_is_refused(target):
    with pytest.raises(AnsibleFilterError, match="llamacpp_image_hip_targets: .* not an AMD gfx target"):
        llamacpp_build_plan(AMD, backend="rocm", hip_targets=target)


@pytest.mark.parametrize("backend, gpu, needs", [
    ("cuda", NONE, "no NVIDIA GPU"), ("cuda", AMD, "no NVIDIA GPU"), ("rocm", NONE, "no AMD GPU"), ("rocm", NVIDIA, "no AMD GPU"),
])
def test_a_backend_the_host_cannot_run_is_refused(backend, gpu, needs):
    with pytest.raises(AnsibleFilterError, match=f"llamacpp_image_backend is {backend}, but this host has {needs}"):
        llamacpp_build_plan(gpu, backend=backend, cuda_architectures="90", hip_targets="gfx1151")


@pytest.mark.parametrize("gpu", [NONE, NVIDIA, AMD])
def test_cpu_and_vulkan_run_anywhere(gpu):
    assert llamacpp_build_plan(gpu, backend="cpu")["backend"] == "cpu"
    assert llamacpp_build_plan(gpu, backend="vulkan")["backend"] == "vulkan"


def test_unknown_backend_is_named():
    with pytest.raises(AnsibleFilterError, match="llamacpp_image_backend must be auto or one of"):
        llamacpp_build_plan(NONE, backend="metal")


# ---- base images by digest ---------------------------------------------------------------------------------------

UBUNTU = {"Id": "sha256:" + "1" * 64, "RepoTags": ["ubuntu:24.04"],
          "RepoDigests": ["ubuntu@sha256:" + "a" * 64]}
CUDA = {"Id": "sha256:" + "2" * 64, "RepoTags": ["nvidia/cuda:13.0.1-devel-ubuntu24.04"],
        "RepoDigests": ["nvidia/cuda@sha256:" + "b" * 64]}
LOCAL = {"Id": "sha256:" + "3" * 64, "RepoTags": ["gpufleet/debian:bookworm"], "RepoDigests": []}


def test_a_pulled_base_is_named_by_its_digest():
    assert image_pin([LOCAL, UBUNTU], "ubuntu:24.04") == {
        "ref": "ubuntu:24.04@sha256:" + "a" * 64, "id": "sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64}
    assert image_pin([CUDA], "nvidia/cuda:13.0.1-devel-ubuntu24.04")["ref"] == \
        "nvidia/cuda:13.0.1-devel-ubuntu24.04@sha256:" + "b" * 64


def test_a_local_base_keeps_its_name_and_its_id_stands_for_it():
    assert image_pin([UBUNTU, LOCAL], "gpufleet/debian:bookworm") == {
        "ref": "gpufleet/debian:bookworm", "id": "sha256:" + "3" * 64, "digest": None}


def test_a_pinned_reference_stays_as_it_is():
    ref = "nvcr.io/nvidia/vllm:25.09-py3@sha256:" + "c" * 64
    assert image_pin([], ref) == {"ref": ref, "id": "sha256:" + "c" * 64, "digest": "sha256:" + "c" * 64}


def test_a_missing_base_is_named():
    with pytest.raises(AnsibleFilterError, match="ubuntu:24.04"):
        image_pin([LOCAL], "ubuntu:24.04")


def test_a_changed_base_changes_what_the_dockerfile_names():
    newer = dict(UBUNTU, RepoDigests=["ubuntu@sha256:" + "d" * 64])
    assert image_pin([UBUNTU], "ubuntu:24.04")["ref"] != image_pin([newer], "ubuntu:24.04")["ref"]

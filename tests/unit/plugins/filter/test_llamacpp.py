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

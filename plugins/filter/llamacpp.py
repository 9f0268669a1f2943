# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
name: llamacpp_cmake_flags
short_description: The CMake flags that build llama.cpp for a backend
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Returns the C(-DNAME=VALUE) flags for a llama.cpp build, for the backend named in the input
    (C(cpu), C(cuda), C(rocm), C(vulkan)), the way llama.cpp's own container recipes set them.
  - Every build is portable (C(GGML_NATIVE=OFF)), leaves out tests and examples, and does not download the web UI
    at build time unless O(web_ui=true).
  - C(cuda) builds for O(cuda_architectures) (for example C(121) for GB10 / DGX Spark, C(90) for H100), with
    C(GGML_BACKEND_DL) so the CPU code and the CUDA code load as backends. C(GGML_CUDA_ENABLE_UNIFIED_MEMORY) is a
    runtime environment variable, not a build flag, and is not set here.
  - C(rocm) builds HIP code for O(hip_targets) (C(gfx1151) for Strix Halo).
options:
  _input:
    description: The backend.
    type: str
    choices: [cpu, cuda, rocm, vulkan]
    required: true
  cuda_architectures:
    description: CUDA architectures (C(CMAKE_CUDA_ARCHITECTURES)), for example V(121) or V(90;120). Required for C(cuda).
    type: str
  hip_targets:
    description: AMD GPU targets (C(AMDGPU_TARGETS)), for example V(gfx1151). Required for C(rocm).
    type: str
  web_ui:
    description: Let the build fetch llama.cpp's prebuilt web UI (needs network access during the build).
    type: bool
    default: false
  extra:
    description: More flags, appended last (so they win), as C(NAME=VALUE) strings or a dict.
    type: raw
"""

EXAMPLES = r"""
- name: Flags for DGX Spark
  ansible.builtin.debug:
    msg: "{{ 'cuda' | gpufleet.inference.llamacpp_cmake_flags(cuda_architectures='121') }}"
"""

RETURN = r"""
_value:
  description: The flags, each C(-DNAME=VALUE), in a fixed order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


BACKENDS = ("cpu", "cuda", "rocm", "vulkan")


def _normalise_extra(extra):
    if not extra:
        return []
    if isinstance(extra, dict):
        return [f"{key}={value}" for key, value in extra.items()]
    if isinstance(extra, (list, tuple)):
        return [str(item).removeprefix("-D") for item in extra]
    raise AnsibleFilterError(f"llamacpp_cmake_flags: extra must be a list or a dict, not {type(extra).__name__}")


def llamacpp_cmake_flags(backend, cuda_architectures=None, hip_targets=None, web_ui=False, extra=None):
    if backend not in BACKENDS:
        raise AnsibleFilterError(f"llamacpp_cmake_flags: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    flags = {
        "CMAKE_BUILD_TYPE": "Release",
        "BUILD_SHARED_LIBS": "ON",
        "GGML_NATIVE": "OFF",
        "LLAMA_BUILD_TESTS": "OFF",
        "LLAMA_BUILD_EXAMPLES": "OFF",
        "LLAMA_BUILD_UI": "OFF",
        "LLAMA_USE_PREBUILT_UI": "ON" if web_ui else "OFF",
    }
    if backend == "cuda":
        if not cuda_architectures:
            raise AnsibleFilterError("llamacpp_cmake_flags: the cuda backend needs cuda_architectures (for example '121' for GB10)")
        flags.update({
            "GGML_CUDA": "ON",
            "CMAKE_CUDA_ARCHITECTURES": str(cuda_architectures),
            "GGML_BACKEND_DL": "ON",
            "GGML_CPU_ALL_VARIANTS": "ON",
            # libcuda.so comes from the driver at run time; the build links against the toolkit's stub.
            "CMAKE_EXE_LINKER_FLAGS": "-Wl,--allow-shlib-undefined",
        })
    elif backend == "rocm":
        if not hip_targets:
            raise AnsibleFilterError("llamacpp_cmake_flags: the rocm backend needs hip_targets (for example 'gfx1151' for Strix Halo)")
        flags.update({
            "GGML_HIP": "ON",
            "AMDGPU_TARGETS": str(hip_targets),
            "GPU_TARGETS": str(hip_targets),
            "GGML_BACKEND_DL": "ON",
            "GGML_CPU_ALL_VARIANTS": "ON",
        })
    elif backend == "vulkan":
        flags.update({"GGML_VULKAN": "ON", "GGML_BACKEND_DL": "ON", "GGML_CPU_ALL_VARIANTS": "ON"})
    for item in _normalise_extra(extra):
        name, sep, value = item.partition("=")
        if not sep:
            raise AnsibleFilterError(f"llamacpp_cmake_flags: extra flag {item!r} is not NAME=VALUE")
        flags[name] = value
    return [f"-D{name}={value}" for name, value in flags.items()]


AMD_BACKENDS = ("rocm", "vulkan")


def _archs(value):
    """``'121'``, ``'90;120'``, ``['90', '121']`` -> ``['121']``, ``['90', '120']``, ... (as strings, in order, unique)."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).replace(",", ";").split(";")
    out = []
    for item in items:
        item = str(item).strip()
        if item and item not in out:
            out.append(item)
    return out


def llamacpp_build_plan(gpu, backend="auto", amd_backend="rocm", cuda_architectures="", hip_targets=""):
    """What to build llama.cpp for: ``{backend, cuda_architectures, hip_targets, reason}``.

    ``gpu`` is the ``gpufleet_gpu`` fact of gpu_facts (or empty). ``backend`` ``auto`` follows it: NVIDIA -> cuda for
    the GPUs' architectures, AMD -> ``amd_backend`` (rocm for the GPUs' gfx targets, or vulkan), no GPU -> cpu.
    An explicit backend, architectures or targets from the inventory win over the facts. A GPU that the host has but
    whose driver is not loaded is an error in ``auto`` mode, so that a GPU host never gets a CPU build by accident.
    """
    gpu = gpu or {}
    vendor = gpu.get("vendor", "none")
    if amd_backend not in AMD_BACKENDS:
        raise AnsibleFilterError(f"llamacpp_image_amd_backend must be one of {', '.join(AMD_BACKENDS)} (got {amd_backend!r})")
    if backend == "auto":
        if vendor == "nvidia":
            chosen, reason = "cuda", f"gpu_facts: NVIDIA {', '.join(sorted({d.get('name') or '?' for d in gpu.get('devices', [])}))}"
        elif vendor == "amd":
            chosen, reason = amd_backend, f"gpu_facts: AMD {', '.join(gpu.get('hip_targets') or []) or 'GPU'}"
        elif gpu.get("unusable_devices"):
            raise AnsibleFilterError(
                "llamacpp_image_backend is auto, but the host's GPU is not usable: %s. Install or load its driver "
                "(the nvidia_driver / rocm roles, then reboot), or set llamacpp_image_backend explicitly (cpu to build "
                "without the GPU)." % (gpu.get("reason") or "gpu_facts found a GPU without a driver"))
        else:
            chosen, reason = "cpu", "gpu_facts: no GPU" + (f" ({gpu['reason']})" if gpu.get("reason") else "")
    elif backend in BACKENDS:
        chosen, reason = backend, "llamacpp_image_backend"
    else:
        raise AnsibleFilterError(f"llamacpp_image_backend must be auto or one of {', '.join(BACKENDS)} (got {backend!r})")
    plan = {"backend": chosen, "cuda_architectures": "", "hip_targets": "", "reason": reason}
    if chosen == "cuda":
        archs = _archs(cuda_architectures) or (_archs(gpu.get("cuda_architectures")) if vendor == "nvidia" else [])
        if not archs:
            raise AnsibleFilterError("llamacpp_image_cuda_architectures must be set for the cuda backend when gpu_facts "
                                     "does not report the GPUs' compute capability (121 for GB10, 90 for H100)")
        plan["cuda_architectures"] = ";".join(archs)
    elif chosen == "rocm":
        targets = _archs(hip_targets) or (_archs(gpu.get("hip_targets")) if vendor == "amd" else [])
        if not targets:
            raise AnsibleFilterError("llamacpp_image_hip_targets must be set for the rocm backend when gpu_facts does not "
                                     "report the GPUs' gfx targets (gfx1151 for Strix Halo)")
        plan["hip_targets"] = ";".join(targets)
    return plan


class FilterModule:
    def filters(self):
        return {"llamacpp_cmake_flags": llamacpp_cmake_flags, "llamacpp_build_plan": llamacpp_build_plan}

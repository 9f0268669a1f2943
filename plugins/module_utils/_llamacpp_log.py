# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a llama.cpp program says about the backends and devices it uses, read from its own output.

llama.cpp loads every ggml backend as a library at start-up (``GGML_BACKEND_DL``) and logs what it loaded, which
devices a model uses and how many layers went to them. The lines read here, as llama.cpp prints them:

- ``load_backend: loaded CPU backend from /app/bin/libggml-cpu-haswell.so`` (ggml-backend-reg.cpp)
- ``llama_model_load_from_file_impl: using device Vulkan0 (llvmpipe (LLVM 15.0.6, 256 bits)) (unknown id) - 7857 MiB free``
- ``load_tensors: offloaded 19/19 layers to GPU`` (llama-model.cpp)
- ``--list-devices``: ``Available devices:`` then ``  CUDA0: NVIDIA H200 (143156 MiB, 142540 MiB free)`` or ``  (none)``;
  CPU devices are never listed there
- llama-server's start-up ``device_info:`` block: ``common_param:   - Vulkan0 : llvmpipe (...) (2048 MiB, 2048 MiB free)``,
  the CPU included
- ``warning: no usable GPU found, --gpu-layers option will be ignored`` (llama-server, when no GPU device is there)
- failures: ``no backends are loaded``, ``CPU backend is not loaded`` (an assertion), ``ggml_vulkan: No devices
  found.`` (the Vulkan backend found no device it uses: CPU-type devices such as Mesa's lavapipe are skipped unless
  ``GGML_VK_VISIBLE_DEVICES`` names them)
- ``common_params_print_info: build 0 (0c1e57098) with GNU 12.2.0 for Linux x86_64`` and ``build_info: b0-0c1e57098``

llama-server prints the library's lines (devices, offload, build) only from log verbosity 4 (``-lv 4``, "trace"); the
inference_stack role starts it so. Whether its ``load_backend`` lines make it into the log depends on when the logger
is set up, so the server's devices are read from ``device_info`` and ``using device`` instead.
"""

from __future__ import annotations

import re

_LOADED = re.compile(r"load_backend: loaded (?P<name>\S+) backend from (?P<path>\S+)")
_USING = re.compile(r"using device (?P<name>\S+) \((?P<description>.*)\) \((?P<id>[^()]*)\) - (?P<free>\d+) MiB free")
_USING_OLD = re.compile(r"using device (?P<name>\S+) \((?P<description>.*)\) - (?P<free>\d+) MiB free")
_OFFLOADED = re.compile(r"offloaded (?P<done>\d+)/(?P<total>\d+) layers to GPU")
# llama-server's start-up "device_info:" block: "common_param:   - Vulkan0 : llvmpipe (...) (2048 MiB, 2048 MiB free)".
_DEVICE_INFO = re.compile(r":\s+- (?P<name>[A-Za-z_]+\d*)\s*: (?P<description>.*) \((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")
_LISTED = re.compile(r"^\s+(?P<name>[A-Za-z_]+\d+): (?P<description>.*) \((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")
_BUILD = re.compile(r"\bbuild:? (?P<number>\d+) \((?P<commit>[0-9a-zA-Z]+)\)|\bbuild_info\W+b(?P<number2>\d+)-(?P<commit2>[0-9a-zA-Z]+)")
_ERRORS = (
    ("no backends are loaded", "no ggml backend was loaded (the backend libraries were not found)"),
    ("CPU backend is not loaded", "the CPU backend was not loaded (the backend libraries were not found)"),
    ("ggml_vulkan: No devices found", "the Vulkan backend found no device it uses"),
    ("no usable GPU found", "the server found no usable GPU (its --gpu-layers is ignored)"),
    ("failed to load model", "the model failed to load"),
    ("CUDA error", "a CUDA error"),
    ("ROCm error", "a ROCm/HIP error"),
)


def backend_of(device_name):
    """``CUDA0`` -> ``CUDA``, ``Vulkan1`` -> ``Vulkan``, ``ROCm0`` -> ``ROCm``, ``CPU`` -> ``CPU``."""
    return re.sub(r"\d+$", "", device_name or "")


def parse(text):
    """The backends, devices, offload and build a llama.cpp program reports in ``text`` (its output)."""
    result = {
        "backends_loaded": [],
        "devices_listed": [],
        "devices_used": [],
        "layers_offloaded": None,
        "layers_total": None,
        "build_number": None,
        "build_commit": None,
        "errors": [],
    }
    listing = False
    for line in (text or "").splitlines():
        match = _LOADED.search(line)
        if match:
            result["backends_loaded"].append({"name": match["name"], "path": match["path"]})
            continue
        match = _USING.search(line) or _USING_OLD.search(line)
        if match:
            device = {"name": match["name"], "description": match["description"], "memory_free_mib": int(match["free"])}
            if device["name"] not in [d["name"] for d in result["devices_used"]]:
                result["devices_used"].append(device)
            continue
        match = _OFFLOADED.search(line)
        if match:
            result["layers_offloaded"], result["layers_total"] = int(match["done"]), int(match["total"])
            continue
        match = _DEVICE_INFO.search(line)
        if match:
            if match["name"] not in [d["name"] for d in result["devices_listed"]]:
                result["devices_listed"].append({"name": match["name"], "description": match["description"],
                                                 "memory_total_mib": int(match["total"]),
                                                 "memory_free_mib": int(match["free"])})
            continue
        if line.startswith("Available devices:"):
            listing = True
            continue
        if listing:
            match = _LISTED.match(line)
            if match:
                result["devices_listed"].append({"name": match["name"], "description": match["description"],
                                                 "memory_total_mib": int(match["total"]),
                                                 "memory_free_mib": int(match["free"])})
                continue
            listing = False
        match = _BUILD.search(line)
        if match and result["build_number"] is None:
            result["build_number"] = int(match["number"] or match["number2"])
            result["build_commit"] = match["commit"] or match["commit2"]
        for needle, message in _ERRORS:
            if needle in line and message not in result["errors"]:
                result["errors"].append(message)
    return result


def summary(parsed):
    """``{backend, devices}``: the GPU backend the program runs on (or ``CPU``) and the devices it uses."""
    used = parsed.get("devices_used") or []
    gpu = [d for d in used if backend_of(d["name"]) != "CPU"]
    offloaded = parsed.get("layers_offloaded")
    if gpu and (offloaded is None or offloaded > 0):
        backend = backend_of(gpu[0]["name"])
    else:
        backend = "CPU"
    return {"backend": backend, "devices": [d["name"] for d in used] or ["CPU"]}

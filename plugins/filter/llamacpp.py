# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.module_utils import _llamacpp_log, _validate


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
        # Every backend, the CPU one too, is a library loaded at start-up (from the executable's directory), and
        # the CPU code is built once per instruction-set level; ggml loads the best one the host's CPU runs.
        "GGML_BACKEND_DL": "ON",
        "GGML_CPU_ALL_VARIANTS": "ON",
    }
    if backend == "cuda":
        if not cuda_architectures:
            raise AnsibleFilterError("llamacpp_cmake_flags: the cuda backend needs cuda_architectures (for example '121' for GB10)")
        flags.update({
            "GGML_CUDA": "ON",
            "CMAKE_CUDA_ARCHITECTURES": str(cuda_architectures),
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
        })
    elif backend == "vulkan":
        flags["GGML_VULKAN"] = "ON"
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


# CMAKE_CUDA_ARCHITECTURES entries and AMD GPU targets: one definition, the inventory check's.
CUDA_ARCH_RE = _validate.CUDA_ARCHITECTURE_RE
GFX_TARGET_RE = _validate.GFX_TARGET_RE


def _checked(values, pattern, variable, example):
    wrong = [v for v in values if not pattern.match(v)]
    if wrong:
        raise AnsibleFilterError(f"{variable}: {', '.join(repr(w) for w in wrong)} "
                                 f"{'is' if len(wrong) == 1 else 'are'} not {example}")
    return values


def llamacpp_build_plan(gpu, backend="auto", amd_backend="rocm", cuda_architectures="", hip_targets=""):
    """What to build llama.cpp for: ``{backend, cuda_architectures, hip_targets, reason}``.

    ``gpu`` is the ``gpufleet_gpu`` fact of gpu_facts (or empty). ``backend`` ``auto`` follows it: NVIDIA -> cuda for
    the GPUs' architectures, AMD -> ``amd_backend`` (rocm for the GPUs' gfx targets, or vulkan), no GPU -> cpu.
    An explicit backend, architectures or targets from the inventory win over the facts, but a backend the host
    cannot run (cuda without an NVIDIA GPU, rocm without an AMD GPU) is refused, and so is an architecture that is
    not a CUDA architecture or a target that is not a gfx target. A GPU that the host has but whose driver is not
    loaded is an error in ``auto`` mode, so that a GPU host never gets a CPU build by accident.
    """
    gpu = gpu or {}
    vendor = gpu.get("vendor", "none")
    if amd_backend not in AMD_BACKENDS:
        raise AnsibleFilterError(f"llamacpp_image_amd_backend must be one of {', '.join(AMD_BACKENDS)} (got {amd_backend!r})")
    cuda_archs = _checked(_archs(cuda_architectures), CUDA_ARCH_RE, "llamacpp_image_cuda_architectures",
                          "a CUDA architecture (121 for GB10, 90 for H100, 120 for RTX 50xx)")
    gfx_targets = _checked(_archs(hip_targets), GFX_TARGET_RE, "llamacpp_image_hip_targets",
                           "an AMD gfx target (gfx1151 for Strix Halo, gfx942 for MI300)")
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
        needs = {"cuda": ("nvidia", "NVIDIA GPU"), "rocm": ("amd", "AMD GPU")}.get(backend)
        if needs and vendor != needs[0]:
            found = f"gpu_facts: {gpu.get('reason') or 'vendor ' + vendor}" if vendor != "none" or gpu.get("reason") \
                else "gpu_facts found no GPU"
            raise AnsibleFilterError(
                f"llamacpp_image_backend is {backend}, but this host has no {needs[1]} that a driver serves ({found}); "
                f"the image could not run here. Use cpu or vulkan, auto, or install the driver first.")
    else:
        raise AnsibleFilterError(f"llamacpp_image_backend must be auto or one of {', '.join(BACKENDS)} (got {backend!r})")
    plan = {"backend": chosen, "cuda_architectures": "", "hip_targets": "", "reason": reason}
    if chosen == "cuda":
        archs = cuda_archs or (_archs(gpu.get("cuda_architectures")) if vendor == "nvidia" else [])
        if not archs:
            raise AnsibleFilterError("llamacpp_image_cuda_architectures must be set for the cuda backend when gpu_facts "
                                     "does not report the GPUs' compute capability (121 for GB10, 90 for H100)")
        plan["cuda_architectures"] = ";".join(archs)
    elif chosen == "rocm":
        targets = gfx_targets or (_archs(gpu.get("hip_targets")) if vendor == "amd" else [])
        if not targets:
            raise AnsibleFilterError("llamacpp_image_hip_targets must be set for the rocm backend when gpu_facts does not "
                                     "report the GPUs' gfx targets (gfx1151 for Strix Halo)")
        plan["hip_targets"] = ";".join(targets)
    return plan


def _split_reference(reference):
    """``ubuntu:24.04`` -> (``ubuntu``, ``24.04``, None); ``nvcr.io/nvidia/vllm@sha256:ab`` -> (..., None, ``sha256:ab``)."""
    name, _at, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:], digest or None
    return name, None, digest or None


def image_pin(images, reference):
    """How a Dockerfile names the base image ``reference``, pinned to what the host has: ``{ref, id, digest}``.

    ``images`` is ``docker_image_info``'s list. A reference that already has a digest stays as it is. An image that
    came from a registry is named ``name:tag@sha256:...`` (the digest wins, the tag stays for the reader). An image
    that never came from a registry (built or imported locally) has no digest: it keeps its name, and its image id
    stands for its content in ``id``.
    """
    repo, tag, digest = _split_reference(reference)
    if digest:
        return {"ref": reference, "id": digest, "digest": digest}
    tagged = f"{repo}:{tag or 'latest'}"
    for image in images or []:
        tags = image.get("RepoTags") or []
        if tagged not in tags and reference not in tags:
            continue
        for repo_digest in image.get("RepoDigests") or []:
            digest_repo, _tag, found = _split_reference(repo_digest)
            if digest_repo == repo and found:
                return {"ref": f"{tagged}@{found}", "id": found, "digest": found}
        return {"ref": reference, "id": image.get("Id"), "digest": None}
    raise AnsibleFilterError(f"image_pin: the base image {reference!r} is not on the host")


# The GPU device names each backend's ggml library registers (CUDA0, ROCm0, Vulkan0).
DEVICE_PREFIX = {"cuda": "CUDA", "rocm": "ROCm", "vulkan": "Vulkan"}
_SECTION = re.compile(r"^=== (?P<name>devices|bench|bench json)(?: rc=(?P<rc>\d+))?\s*$")


def _sections(output):
    sections, codes, current = {}, {}, None
    for line in (output or "").splitlines():
        match = _SECTION.match(line)
        if match:
            if match["rc"] is not None:
                codes[match["name"]] = int(match["rc"])
                current = None
            else:
                current = match["name"]
                sections.setdefault(current, [])
            continue
        if current:
            sections[current].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}, codes


def llamacpp_check_report(output, backend):
    """What the image check found, from the output of its container (see the llamacpp_image role's tasks/check.yml).

    ``{backend, devices, backends_loaded, cpu_variant, tokens_per_second, problems}``. A problem is a backend library
    that did not load, a failed or missing llama-bench run, or, for a GPU backend, no device of that backend among
    the devices llama-server lists: llama-bench alone would still label such a run with the GPU backend's name
    although it computed on the CPU.
    """
    sections, codes = _sections(output)
    text = "\n".join([sections.get("devices", ""), sections.get("bench", "")])
    parsed = _llamacpp_log.parse(text)
    problems = list(parsed["errors"])
    loaded = [b["name"] for b in parsed["backends_loaded"]]
    cpu_libs = [b["path"].rsplit("/", 1)[-1] for b in parsed["backends_loaded"] if b["name"] == "CPU"]
    if "devices" not in sections:
        problems.append("the check did not run (no output from llama-server --list-devices)")
    bench = None
    if codes.get("bench", 1) != 0:
        last = [line for line in sections.get("bench", "").splitlines() if line.strip()][-3:]
        problems.append("llama-bench failed (exit %s)%s" % (codes.get("bench", "unknown"), (": " + " / ".join(last)) if last else ""))
    else:
        try:
            rows = json.loads(sections.get("bench json") or "[]")
        except ValueError:
            rows = []
        bench = rows[-1] if rows else None
        if bench is None:
            problems.append("llama-bench printed no result")
    if "CPU" not in loaded and not any("CPU backend" in p for p in problems):
        problems.append("the CPU backend library was not loaded")
    devices = [d["name"] for d in parsed["devices_listed"]]
    if backend in DEVICE_PREFIX:
        prefix = DEVICE_PREFIX[backend]
        if prefix not in loaded:
            problems.append(f"the {prefix} backend library was not loaded")
        if not any(_llamacpp_log.backend_of(d) == prefix for d in devices):
            hint = ""
            if backend == "vulkan" and any("No devices found" in e or "found no device" in e for e in parsed["errors"]):
                hint = ("; ggml's Vulkan backend skips CPU Vulkan devices such as Mesa's lavapipe: on a host without a "
                        "GPU, set GGML_VK_VISIBLE_DEVICES=0 in llamacpp_image_check_environment (and in the services' "
                        "environment) to use one")
            problems.append(f"no {prefix} device was found (listed: {', '.join(devices) or 'none'}), so the model would "
                            f"run on the CPU{hint}")
    return {
        "backend": DEVICE_PREFIX.get(backend, "CPU") if not problems else None,
        "devices": devices,
        "backends_loaded": loaded,
        "cpu_variant": ", ".join(cpu_libs) or None,
        "tokens_per_second": round(float(bench.get("avg_ts") or 0), 1) if bench else None,
        "bench_backends": bench.get("backends") if bench else None,
        "problems": problems,
    }


# The build contexts the llamacpp_image role makes under llamacpp_image_build_dir, one per source.
CONTEXT_NAME = re.compile(r"^(git|archive-[0-9a-f]{16}|dir-[0-9a-f]{16})$")


def llamacpp_contexts_to_prune(found, history, current, keep=2):
    """``{"history": [...], "prune": [paths]}``: the contexts kept, in the order they were used (``current`` last),
    and the build contexts in ``found`` to remove - every one the role names but the ``keep`` used last.

    ``found`` are the directories under the build directory (``path`` and ``mtime``, as ``ansible.builtin.find``
    lists them); only names of the role's contexts are ever pruned. Contexts the record does not know (made before
    it was kept) count as used before every recorded one, in the order of their mtime.
    """
    try:
        count = int(keep)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or isinstance(keep, (bool, float)):
        raise AnsibleFilterError(f"llamacpp_contexts_to_prune: keep must be a whole number of at least 1 (got {keep!r})")
    current = str(current).rstrip("/").rsplit("/", 1)[-1]
    by_name = {}
    for entry in found or []:
        name = str(entry.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
        if CONTEXT_NAME.match(name):
            by_name[name] = entry
    recorded = [name for name in history or [] if isinstance(name, str) and name != current]
    unknown = sorted((name for name in by_name if name not in recorded and name != current),
                     key=lambda name: (by_name[name].get("mtime") or 0, name))
    order = unknown + recorded + [current]
    kept = set(order[-count:])
    return {
        "history": [name for name in order if name in kept and (name in by_name or name == current)],
        "prune": sorted(by_name[name]["path"] for name in by_name if name not in kept),
    }


class FilterModule:
    def filters(self):
        return {
            "llamacpp_contexts_to_prune": llamacpp_contexts_to_prune,
            "llamacpp_cmake_flags": llamacpp_cmake_flags,
            "llamacpp_build_plan": llamacpp_build_plan,
            "image_pin": image_pin,
            "llamacpp_check_report": llamacpp_check_report,
        }

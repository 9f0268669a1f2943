# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA GPUs for ``gpu_facts``: NVML through nvidia-ml-py (``import pynvml``), else ``nvidia-smi``.

Unified memory (GB10, DGX Spark): NVML has no framebuffer to report there, so ``nvmlDeviceGetMemoryInfo`` and its
``_v2`` form raise ``NVMLError_NotSupported`` and ``nvidia-smi`` prints ``[N/A]``. Such a device is reported with
``unified_memory: true`` and null memory, and the budget comes from MemAvailable (see ``_gpu.facts``); this is what
NVIDIA's DGX Spark known-issues page tells tools to do.

Any other NVML call that is not supported gives null for its field; other NVML errors on a field give null and a
note in the reason. Only errors of ``nvmlInit`` (library not found, driver not loaded, ...) end the NVML path.

Not being allowed to read the memory is not unified memory: NVML raises ``NVMLError_NoPermission`` and nvidia-smi
prints ``[Insufficient Permissions]`` (seen for a MIG-enabled GPU queried from an unprivileged container). Such a
device has ``unified_memory: false``, null memory and a reason that says the memory is unknown.
"""

from __future__ import annotations

import re
import traceback

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.gpufleet.inference.plugins.module_utils import _gpu

try:
    import pynvml
except ImportError:
    pynvml = None
    HAS_PYNVML = False
    PYNVML_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PYNVML = True
    PYNVML_IMPORT_ERROR = None

# nvidia-smi --query-gpu fields, in the order parse_smi_csv expects them (see `nvidia-smi --help-query-gpu`).
SMI_FIELDS = (
    "index", "name", "uuid", "pci.bus_id", "pci.device_id", "compute_cap", "driver_version",
    "memory.total", "memory.free", "mig.mode.current", "persistence_mode",
)
MIB = 1024 * 1024
_NOT_SUPPORTED = object()


def cuda_architecture(compute_capability):
    """``"12.1"`` -> ``"121"``, ``"9.0"`` -> ``"90"``: the form CMAKE_CUDA_ARCHITECTURES and ``sm_XX`` use."""
    if not compute_capability:
        return None
    major, _dot, minor = str(compute_capability).partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        return None
    return "%d%d" % (int(major), int(minor or 0))


def cuda_version_text(version):
    """nvmlSystemGetCudaDriverVersion's integer (13000, 12040) -> ``"13.0"``, ``"12.4"``."""
    if not version:
        return None
    return "%d.%d" % (version // 1000, (version % 1000) // 10)


def pci_device_id(pci_device_id_word):
    """NVML's pciDeviceId packs device << 16 | vendor (0x2E1210DE); the device id is the upper half (0x2e12)."""
    if pci_device_id_word is None:
        return None
    return "0x%04x" % ((int(pci_device_id_word) >> 16) & 0xFFFF)


def detect(run_command, get_bin_path, problems):
    """The facts for NVIDIA GPUs, or None (with the reason appended to ``problems``) when there are none to report."""
    if HAS_PYNVML:
        try:
            return NvmlReader().read()
        except _gpu.GpuError as exc:
            problems.append(to_text(exc))
    result = from_nvidia_smi(run_command, get_bin_path, problems)
    if result is not None and not HAS_PYNVML:
        result["reason"] = "; ".join(
            ["nvidia-ml-py (pynvml) is not installed on the host, details come from nvidia-smi"]
            + ([result["reason"]] if result["reason"] else [])
        )
    return result


class NvmlReader:
    """Read every device through NVML; nvmlShutdown afterwards whatever happens."""

    def __init__(self):
        self.notes = []

    def call(self, label, func, *args):
        """func(*args); _NOT_SUPPORTED when NVML says so, None (and a note) for other NVML errors."""
        try:
            return func(*args)
        except pynvml.NVMLError_NotSupported:
            return _NOT_SUPPORTED
        except pynvml.NVMLError as exc:
            self.notes.append("%s: %s" % (label, to_text(exc)))
            return None

    def read(self):
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise _gpu.GpuError("NVML: %s" % to_text(exc))
        try:
            count = pynvml.nvmlDeviceGetCount()
            if not count:
                raise _gpu.GpuError("NVML: the driver is loaded but reports no GPU")
            driver = self.value(self.call("nvmlSystemGetDriverVersion", pynvml.nvmlSystemGetDriverVersion))
            cuda = self.value(self.call("nvmlSystemGetCudaDriverVersion", pynvml.nvmlSystemGetCudaDriverVersion))
            devices = [self.device(index) for index in range(count)]
        except pynvml.NVMLError as exc:
            raise _gpu.GpuError("NVML: %s" % to_text(exc))
        finally:
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass
        if any(d["unified_memory"] for d in devices):
            self.notes.insert(0, "NVML reports no device memory on unified-memory GPUs; "
                                 "memory_budget_bytes is MemAvailable from /proc/meminfo")
        return _gpu.facts("nvidia", "nvml", devices, driver_version=to_text(driver) if driver else None,
                          cuda_driver_version=cuda_version_text(cuda), notes=self.notes)

    @staticmethod
    def value(result):
        return None if result is _NOT_SUPPORTED else result

    def device(self, index):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        label = "device %d" % index

        def get(name, *args):
            func = getattr(pynvml, name, None)
            if func is None:
                # An nvidia-ml-py older than the query (Ubuntu 22.04's python3-pynvml is 7.352, before MIG).
                self.notes.append("%s %s: not in this pynvml (nvidia-ml-py too old)" % (label, name))
                return None
            return self.call("%s %s" % (label, name), func, handle, *args)

        name = self.value(get("nvmlDeviceGetName"))
        uuid = self.value(get("nvmlDeviceGetUUID"))
        pci = self.value(get("nvmlDeviceGetPciInfo"))
        capability = self.value(get("nvmlDeviceGetCudaComputeCapability"))
        compute_capability = "%d.%d" % tuple(capability) if capability else None

        # _v2 first (it separates reserved memory; recent drivers), then the original call (older drivers lack _v2).
        memory = None
        if hasattr(pynvml, "nvmlMemory_v2"):
            memory = self.call_quiet(pynvml.nvmlDeviceGetMemoryInfo, handle, pynvml.nvmlMemory_v2)
        if memory is None or memory is _NOT_SUPPORTED:
            first = memory
            memory = get("nvmlDeviceGetMemoryInfo")
            if memory is None and first is _NOT_SUPPORTED:
                memory = _NOT_SUPPORTED
        unified = memory is _NOT_SUPPORTED
        memory = self.value(memory)

        mig = self.value(get("nvmlDeviceGetMigMode"))
        persistence = self.value(get("nvmlDeviceGetPersistenceMode"))
        return {
            "index": index,
            "vendor": "nvidia",
            "name": to_text(name) if name is not None else None,
            "uuid": to_text(uuid) if uuid is not None else None,
            "pci_bus_id": _gpu.normalize_bus_id(to_text(pci.busId)) if pci is not None else None,
            "pci_device_id": pci_device_id(pci.pciDeviceId) if pci is not None else None,
            "memory_total_bytes": int(memory.total) if memory is not None else None,
            "memory_free_bytes": int(memory.free) if memory is not None else None,
            "unified_memory": unified,
            "compute_capability": compute_capability,
            "cuda_architecture": cuda_architecture(compute_capability),
            "mig_mode": None if mig is None else ("enabled" if mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE else "disabled"),
            "persistence_mode": None if persistence is None else persistence == pynvml.NVML_FEATURE_ENABLED,
        }

    def call_quiet(self, func, *args):
        """Like call(), without a note: a failing _v2 is retried with the original call."""
        try:
            return func(*args)
        except pynvml.NVMLError_NotSupported:
            return _NOT_SUPPORTED
        except pynvml.NVMLError:
            return None


# ---- nvidia-smi -------------------------------------------------------------------------------


# What nvidia-smi prints in a CSV cell for a value NVML does not support on the device. Any other bracketed text
# ("[Insufficient Permissions]", "[Unknown Error]", "[GPU is lost]") is a value that exists but could not be read.
SMI_NOT_SUPPORTED = ("[N/A]", "[Not Supported]", "N/A")


def _smi_value(text):
    """nvidia-smi prints ``[N/A]``, ``[Not Supported]``, ``[Insufficient Permissions]`` ... for what it cannot tell."""
    text = text.strip()
    if not text or (text.startswith("[") and text.endswith("]")) or text == "N/A":
        return None
    return text


def _smi_int(text):
    value = _smi_value(text)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def parse_smi_csv(stdout, notes=None):
    """Devices from ``nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits``; and the driver version.

    Why a device's memory is unknown, when it is not unified memory, is appended to ``notes``.
    """
    devices = []
    drivers = set()
    for line in stdout.splitlines():
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(SMI_FIELDS):
            raise _gpu.GpuError("nvidia-smi: unexpected line %r (expected %d fields)" % (line, len(SMI_FIELDS)))
        row = dict(zip(SMI_FIELDS, cells))
        total = _smi_int(row["memory.total"])
        free = _smi_int(row["memory.free"])
        # No total because NVML does not support it on the device: no framebuffer, the GPU uses system memory (GB10).
        # No total for any other reason (permissions, an error): the memory is unknown, which says nothing about its kind.
        unified = total is None and row["memory.total"] in SMI_NOT_SUPPORTED
        device_word = _smi_value(row["pci.device_id"])
        compute_capability = _smi_value(row["compute_cap"])
        mig = _smi_value(row["mig.mode.current"])
        persistence = _smi_value(row["persistence_mode"])
        if _smi_value(row["driver_version"]):
            drivers.add(row["driver_version"])
        device = {
            "index": _smi_int(row["index"]),
            "vendor": "nvidia",
            "name": _smi_value(row["name"]),
            "uuid": _smi_value(row["uuid"]),
            "pci_bus_id": _gpu.normalize_bus_id(_smi_value(row["pci.bus_id"])),
            "pci_device_id": pci_device_id(int(device_word, 16)) if device_word else None,
            "memory_total_bytes": total * MIB if total is not None else None,
            "memory_free_bytes": free * MIB if free is not None else None,
            "unified_memory": unified,
            "compute_capability": compute_capability,
            "cuda_architecture": cuda_architecture(compute_capability),
            "mig_mode": mig.lower() if mig and mig.lower() in ("enabled", "disabled") else None,
            "persistence_mode": None if persistence is None else persistence.lower() == "enabled",
        }
        if total is None and not unified and notes is not None:
            notes.append("nvidia-smi could not read the memory of GPU %s (%s): memory.total is %s; memory unknown, "
                         "not unified memory" % (device["index"], device["pci_bus_id"], row["memory.total"] or "empty"))
        devices.append(device)
    return devices, (sorted(drivers)[0] if drivers else None)


def from_nvidia_smi(run_command, get_bin_path, problems):
    smi = get_bin_path("nvidia-smi")
    if not smi:
        problems.append("nvidia-ml-py (pynvml) is not installed and nvidia-smi is not on the PATH"
                        if not HAS_PYNVML else "nvidia-smi is not on the PATH")
        return None
    rc, out, err = run_command([smi, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader,nounits"])
    if rc != 0:
        lines = [line.strip() for line in ((err or "") + "\n" + (out or "")).splitlines() if line.strip()]
        problems.append("nvidia-smi failed (rc=%d): %s" % (rc, lines[0] if lines else "no output"))
        return None
    notes = []
    try:
        devices, driver = parse_smi_csv(out, notes)
    except _gpu.GpuError as exc:
        problems.append(to_text(exc))
        return None
    if not devices:
        problems.append("nvidia-smi reports no GPU")
        return None
    # The CUDA version the driver supports is only in nvidia-smi's banner.
    cuda = None
    rc, out, err = run_command([smi])
    match = re.search(r"CUDA Version:\s*([0-9]+\.[0-9]+)", out or "") if rc == 0 else None
    if match:
        cuda = match.group(1)
    if any(d["unified_memory"] for d in devices):
        notes.insert(0, "nvidia-smi reports no device memory on unified-memory GPUs; "
                        "memory_budget_bytes is MemAvailable from /proc/meminfo")
    return _gpu.facts("nvidia", "nvidia-smi", devices, driver_version=driver, cuda_driver_version=cuda, notes=notes)

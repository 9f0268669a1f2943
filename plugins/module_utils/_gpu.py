# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``gpu_facts`` reports: the GPUs of a host, read from NVML, nvidia-smi or sysfs.

The module ``gpu_facts`` builds the ``gpufleet_gpu`` fact with these helpers. It tries, in order:

1. NVIDIA through NVML (``pynvml`` from nvidia-ml-py), see ``_gpu_nvidia``;
2. NVIDIA through ``nvidia-smi --query-gpu`` when ``pynvml`` cannot be imported or NVML did not answer;
3. AMD through the KFD topology and the PCI device's sysfs files, enriched by ``amdsmi``, see ``_gpu_amd``;
4. none: ``vendor: none`` with a ``reason`` that says what was found on the PCI bus and why it is not usable.

A host with GPUs of both vendors reports the NVIDIA ones. Nothing here raises for a missing library, a missing
driver or an unreadable file: every such case ends in a reason.

The roots below are module-level so that unit tests can point them at a fake tree (monkeypatch); the module has
no option for them.
"""

from __future__ import annotations

import os

SYSFS_ROOT = "/sys"
PROC_ROOT = "/proc"
DEV_ROOT = "/dev"
# pci.ids, for a readable AMD device name when amdsmi is not there (Debian: pci.ids, RHEL: hwdata).
PCI_IDS_FILES = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")

VENDOR_NVIDIA = 0x10DE
VENDOR_AMD = 0x1002
VENDOR_NAMES = {VENDOR_NVIDIA: "NVIDIA", VENDOR_AMD: "AMD"}


class GpuError(Exception):
    """A backend could not give an answer; the message becomes (part of) the reason."""


def sysfs_path(*parts):
    return os.path.join(SYSFS_ROOT, *parts)


def read_text(path):
    """The stripped content of a small text file, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def read_int(path, base=10):
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def mem_available_bytes():
    """MemAvailable of /proc/meminfo in bytes (the kernel's estimate of memory that can be allocated without swapping)."""
    return meminfo_bytes("MemAvailable")


def meminfo_bytes(key):
    """A line of /proc/meminfo (``MemTotal``, ``MemAvailable``) in bytes, or None."""
    text = read_text(os.path.join(PROC_ROOT, "meminfo"))
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            fields = line.split()
            try:
                value = int(fields[1])
            except (IndexError, ValueError):
                return None
            return value * 1024 if len(fields) > 2 and fields[2] == "kB" else value
    return None


def kernel_release():
    return read_text(os.path.join(PROC_ROOT, "sys", "kernel", "osrelease"))


def normalize_bus_id(bus_id):
    """``00000000:53:00.0`` / ``0000000F:01:00.0`` (NVML, nvidia-smi) -> ``0000:53:00.0`` / ``000f:01:00.0`` (sysfs form)."""
    if not bus_id:
        return None
    text = str(bus_id).strip().lower()
    try:
        domain, bus, rest = text.split(":")
        device, function = rest.split(".")
        return "%04x:%02x:%02x.%x" % (int(domain, 16), int(bus, 16), int(device, 16), int(function, 16))
    except ValueError:
        return text


def pci_display_devices():
    """PCI functions of class 0x03xxxx (VGA, 3D, display controller) from NVIDIA or AMD, in bus order.

    Each is a dict with ``pci_bus_id``, ``vendor_id`` (int), ``device_id`` (``0x2e12``) and ``driver`` (the name of the
    kernel driver bound to it, or None when none is).
    """
    root = sysfs_path("bus", "pci", "devices")
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(root, name)
        vendor = read_int(os.path.join(path, "vendor"), 16)
        klass = read_int(os.path.join(path, "class"), 16)
        if vendor not in VENDOR_NAMES or klass is None or klass >> 16 != 0x03:
            continue
        device = read_int(os.path.join(path, "device"), 16)
        try:
            driver = os.path.basename(os.readlink(os.path.join(path, "driver")))
        except OSError:
            driver = None
        found.append({
            "pci_bus_id": normalize_bus_id(name),
            "vendor_id": vendor,
            "device_id": None if device is None else "0x%04x" % device,
            "driver": driver,
        })
    return found


def describe_pci(device):
    return "%s GPU %s (%04x:%s)" % (
        VENDOR_NAMES[device["vendor_id"]], device["pci_bus_id"], device["vendor_id"],
        (device["device_id"] or "0x????")[2:],
    )


def facts(vendor, source, devices, driver_version=None, cuda_driver_version=None, notes=None):
    """Assemble the ``gpufleet_gpu`` fact from per-device dicts (see the module's RETURN)."""
    unified = any(d.get("unified_memory") for d in devices)
    totals = [d.get("memory_total_bytes") for d in devices]
    memory_total = sum(totals) if devices and None not in totals else None
    if unified:
        budget = mem_available_bytes()
        apu_sizes = [(d.get("gtt_total_bytes") or 0) + (d.get("vram_total_bytes") or 0) for d in devices if d.get("apu")]
        if apu_sizes and sum(apu_sizes) and budget is not None:
            # An AMD APU can map no more than its GTT plus the carve-out, however much memory is free.
            budget = min(sum(apu_sizes), budget)
        elif apu_sizes and sum(apu_sizes):
            budget = sum(apu_sizes)
    else:
        free = [d.get("memory_free_bytes") for d in devices]
        budget = sum(free) if devices and None not in free else None
    cuda_archs = sorted({d["cuda_architecture"] for d in devices if d.get("cuda_architecture")}, key=_arch_key)
    hip_targets = sorted({d["gfx_target"] for d in devices if d.get("gfx_target")})
    return {
        "vendor": vendor,
        "reason": "; ".join(notes or []),
        "source": source,
        "count": len(devices),
        "driver_version": driver_version,
        "cuda_driver_version": cuda_driver_version,
        "cuda_architectures": cuda_archs,
        "hip_targets": hip_targets,
        "unified_memory": unified,
        "memory_total_bytes": memory_total,
        "memory_budget_bytes": budget,
        "system_memory_bytes": meminfo_bytes("MemTotal") if unified else None,
        "devices": devices,
    }


def none_facts(reason):
    result = facts("none", "none", [], notes=[reason])
    result["memory_budget_bytes"] = None
    return result


def _arch_key(arch):
    return (len(arch), arch)


def none_reason(pci, problems):
    """Why there is no usable GPU: what the PCI bus shows (``pci_display_devices()``) and what the backends said."""
    if not pci:
        reason = ("no GPU found: no NVIDIA (0x10de) or AMD (0x1002) display or 3D controller under %s"
                  % sysfs_path("bus", "pci", "devices"))
        return "; ".join([reason] + problems) if problems else reason
    parts = []
    for device in pci:
        if device["vendor_id"] == VENDOR_NVIDIA:
            if device["driver"] == "nvidia":
                state = "the nvidia kernel driver is bound but its user-space side did not answer"
            elif device["driver"]:
                state = "it is bound to %s, not to the nvidia driver" % device["driver"]
            else:
                state = "the driver is not loaded"
        else:
            if device["driver"] == "amdgpu":
                state = "amdgpu is bound but the GPU is not in the KFD topology (ROCm compute is not available)"
            elif device["driver"]:
                state = "it is bound to %s, not to amdgpu" % device["driver"]
            else:
                state = "the amdgpu driver is not loaded"
        parts.append("%s present but %s" % (describe_pci(device), state))
    return "; ".join(parts + problems)

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AMD GPUs for ``gpu_facts``: the KFD topology and the PCI device's amdgpu files in sysfs, names from amdsmi.

What is read, and where ROCm reads the same:

- ``/sys/class/kfd/kfd/topology/nodes/N/properties``: one node per CPU socket and per GPU; a node with
  ``simd_count 0`` is a CPU node (libhsakmt ``topology_sysfs_get_node_props`` stops there for the same reason).
  ``gfx_target_version`` is the kernel's ``major * 10000 + minor * 100 + stepping`` (amdkfd ``kfd_device.c``:
  ``IP_VERSION(11, 5, 1)`` -> 110501, ``IP_VERSION(9, 4, 2)`` -> 90010); the LLVM target name prints minor and
  stepping in hex: 110501 -> gfx1151, 90010 -> gfx90a, 120001 -> gfx1201. ``domain`` and ``location_id``
  (bus << 8 | device << 3 | function) give the PCI address, ``drm_render_minor`` the render node.
- ``/sys/bus/pci/devices/<address>/mem_info_vram_total``, ``mem_info_vram_used`` and ``mem_info_gtt_total``
  (amdgpu): the VRAM (on an APU: the BIOS carve-out) and the GTT, the system memory the GPU can map.

APU or discrete: ROCm itself asks the amdgpu DRM driver (``AMDGPU_INFO_DEV_INFO``, flag
``AMDGPU_IDS_FLAGS_FUSION``; libhsakmt sets ``Integrated`` from it), which sysfs does not show. Here a GPU is an
APU when its KFD node also has CPU cores (``cpu_cores_count > 0``, how HSA describes a combined node) or when its
gfx target is one of the APU targets of LLVM's AMDGPU processor table (``APU_GFX_TARGETS``). The size of the
carve-out decides nothing: a Strix Halo can be set to 512 MiB or to 96 GiB of "VRAM".
"""

from __future__ import annotations

import glob
import os

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.gpufleet.inference.plugins.module_utils import _gpu

try:
    import amdsmi
except Exception:  # pylint: disable=broad-except
    # ImportError, but also OSError / AttributeError when the Python package is there without libamd_smi.so.
    amdsmi = None
    HAS_AMDSMI = False
else:
    HAS_AMDSMI = True

AMD_VENDOR_ID = 4098  # 0x1002, as the KFD properties print it (decimal)

# Integrated targets (LLVM AMDGPUUsage, "Processors": the ones marked APU), Carrizo to Strix Halo.
APU_GFX_TARGETS = frozenset((
    "gfx801", "gfx902", "gfx909", "gfx90c", "gfx1013", "gfx1033", "gfx1035", "gfx1036", "gfx1103",
    "gfx1150", "gfx1151", "gfx1152", "gfx1153",
))


def gfx_target(version):
    """KFD gfx_target_version -> LLVM target name: 110501 -> gfx1151, 90010 -> gfx90a, 120001 -> gfx1201."""
    if not version:
        return None
    version = int(version)
    major, minor, stepping = version // 10000, (version // 100) % 100, version % 100
    return "gfx%d%x%x" % (major, minor, stepping)


def bus_id_from_location(domain, location_id):
    """KFD ``domain`` / ``location_id`` -> ``0000:c5:00.0``."""
    if location_id is None:
        return None
    return "%04x:%02x:%02x.%x" % (domain or 0, (location_id >> 8) & 0xFF, (location_id >> 3) & 0x1F, location_id & 0x7)


def read_properties(path):
    """A KFD ``properties`` file (``name value`` per line) as a dict of ints; None when unreadable."""
    text = _gpu.read_text(path)
    if text is None:
        return None
    props = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2:
            try:
                props[fields[0]] = int(fields[1])
            except ValueError:
                continue
    return props


def kfd_nodes_dir():
    return _gpu.sysfs_path("class", "kfd", "kfd", "topology", "nodes")


def kfd_gpu_nodes(problems):
    """(node id, properties) of the AMD GPU nodes, in node order; None when there is no KFD topology."""
    root = kfd_nodes_dir()
    if not os.path.isdir(root):
        return None
    nodes = []
    for path in glob.glob(os.path.join(root, "*", "properties")):
        node = os.path.basename(os.path.dirname(path))
        props = read_properties(path)
        if props is None:
            problems.append("cannot read %s" % path)
            continue
        if not props.get("simd_count") or props.get("vendor_id") != AMD_VENDOR_ID:
            continue  # a CPU node, or another vendor's agent
        nodes.append((int(node) if node.isdigit() else node, props))
    return sorted(nodes, key=lambda item: (str(type(item[0])), item[0]))


def pci_ids_name(vendor_id, device_id):
    """The device's name in pci.ids (``Strix Halo [Radeon Graphics / ...]``), when a pci.ids file is there."""
    vendor_key = "%04x" % vendor_id
    device_key = "\t%04x" % device_id
    for path in _gpu.PCI_IDS_FILES:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                in_vendor = False
                for line in handle:
                    if not line.startswith("\t") and not line.startswith("#"):
                        if in_vendor:
                            break
                        in_vendor = line.lower().startswith(vendor_key + " ")
                    elif in_vendor and line.lower().startswith(device_key + " "):
                        return line.strip().split(None, 1)[1].strip()
        except OSError:
            continue
    return None


def driver_version():
    """amdgpu's module version (DKMS builds from the ROCm repository have one), else the kernel release."""
    return _gpu.read_text(_gpu.sysfs_path("module", "amdgpu", "version")) or _gpu.kernel_release()


def device_from_node(index, props, problems):
    bus_id = bus_id_from_location(props.get("domain"), props.get("location_id"))
    pci_dir = _gpu.sysfs_path("bus", "pci", "devices", bus_id) if bus_id else None

    def pci_int(name):
        return _gpu.read_int(os.path.join(pci_dir, name)) if pci_dir else None

    vram_total = pci_int("mem_info_vram_total")
    vram_used = pci_int("mem_info_vram_used")
    gtt_total = pci_int("mem_info_gtt_total")
    if pci_dir and vram_total is None:
        problems.append("cannot read %s" % os.path.join(pci_dir, "mem_info_vram_total"))
    target = gfx_target(props.get("gfx_target_version"))
    apu = bool(props.get("cpu_cores_count")) or target in APU_GFX_TARGETS
    device_id = props.get("device_id")

    render_node = None
    minor = props.get("drm_render_minor")
    if minor is not None and minor >= 0:
        render_node = "/dev/dri/renderD%d" % minor
        if not os.path.exists(os.path.join(_gpu.DEV_ROOT, "dri", "renderD%d" % minor)):
            problems.append("%s of GPU %s does not exist" % (render_node, bus_id))
            render_node = None

    name = _gpu.read_text(os.path.join(pci_dir, "product_name")) if pci_dir else None
    if not name and device_id:
        name = pci_ids_name(_gpu.VENDOR_AMD, device_id)
        name = "AMD %s" % name if name else None
    return {
        "index": index,
        "vendor": "amd",
        "name": name or ("AMD GPU %s" % target if target else "AMD GPU"),
        "uuid": None,
        "pci_bus_id": bus_id,
        "pci_device_id": "0x%04x" % device_id if device_id else None,
        "memory_total_bytes": vram_total,
        "memory_free_bytes": vram_total - vram_used if vram_total is not None and vram_used is not None else None,
        "unified_memory": apu,
        "gfx_target": target,
        "gfx_target_version": props.get("gfx_target_version"),
        "vram_total_bytes": vram_total,
        "gtt_total_bytes": gtt_total,
        "apu": apu,
        "render_node": render_node,
    }


def enrich_with_amdsmi(devices, notes):
    """Marketing names and UUIDs from amdsmi, matched by PCI address. True when amdsmi answered."""
    if not HAS_AMDSMI:
        return False
    by_bus = {d["pci_bus_id"]: d for d in devices}
    try:
        amdsmi.amdsmi_init()
    except Exception as exc:  # pylint: disable=broad-except
        notes.append("amdsmi: %s" % to_text(exc))
        return False
    try:
        for handle in amdsmi.amdsmi_get_processor_handles():
            device = by_bus.get(_gpu.normalize_bus_id(amdsmi.amdsmi_get_gpu_device_bdf(handle)))
            if device is None:
                continue
            market_name = (amdsmi.amdsmi_get_gpu_asic_info(handle) or {}).get("market_name")
            if market_name and market_name != "N/A":
                device["name"] = market_name
            try:
                device["uuid"] = amdsmi.amdsmi_get_gpu_device_uuid(handle) or None
            except Exception:  # pylint: disable=broad-except
                pass
    except Exception as exc:  # pylint: disable=broad-except
        notes.append("amdsmi: %s" % to_text(exc))
        return False
    finally:
        try:
            amdsmi.amdsmi_shut_down()
        except Exception:  # pylint: disable=broad-except
            pass
    return True


def detect(problems):
    """The facts for AMD GPUs, or None (with the reason appended to ``problems``) when there are none to report."""
    nodes = kfd_gpu_nodes(problems)
    if nodes is None:
        return None
    notes = []
    devices = [device_from_node(index, props, notes) for index, (_node, props) in enumerate(nodes)]
    if not devices:
        problems.append("the KFD topology (%s) lists no AMD GPU" % kfd_nodes_dir())
        return None
    if any(not d["apu"] for d in devices) and any(d["apu"] for d in devices):
        # Next to a discrete GPU an integrated one only adds a slow device and makes the budget system memory.
        for d in devices:
            if d["apu"]:
                notes.append("integrated GPU %s (%s) left out next to the discrete GPU(s)" % (d["pci_bus_id"], d["gfx_target"]))
        devices = [d for d in devices if not d["apu"]]
        for index, d in enumerate(devices):
            d["index"] = index
    source = "amdsmi" if enrich_with_amdsmi(devices, notes) else "sysfs"
    return _gpu.facts("amd", source, devices, driver_version=driver_version(), notes=notes)

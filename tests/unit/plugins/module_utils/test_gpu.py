# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The conversions gpu_facts relies on: gfx targets, CUDA architectures, PCI addresses, nvidia-smi CSV."""

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _gpu, _gpu_amd, _gpu_nvidia


# amdkfd kfd_device.c (kgd2kfd_probe): IP_VERSION -> gfx_target_version; the names are LLVM's targets.
@pytest.mark.parametrize("version, target", [
    (90006, "gfx906"),    # Vega20, IP 9.4.0
    (90010, "gfx90a"),    # Aldebaran (MI200), IP 9.4.2: stepping 10 prints as "a"
    (90012, "gfx90c"),    # Renoir APU
    (90402, "gfx942"),    # MI300, IP 9.4.2/9.4.3
    (100300, "gfx1030"),  # Navi21
    (110001, "gfx1101"),  # Navi32: "compiler version is 11.0.1 while HW version is 11.0.3"
    (110501, "gfx1151"),  # Strix Halo, IP 11.5.1
    (120001, "gfx1201"),  # Navi48, IP 12.0.1
])
def test_gfx_target_from_kfd_version(version, target):
    assert _gpu_amd.gfx_target(version) == target


def test_gfx_target_unknown():
    assert _gpu_amd.gfx_target(0) is None and _gpu_amd.gfx_target(None) is None


@pytest.mark.parametrize("cc, arch", [("12.1", "121"), ("9.0", "90"), ("8.6", "86"), ("10.0", "100"), ("8.9", "89"), ("12", "120")])
def test_cuda_architecture(cc, arch):
    assert _gpu_nvidia.cuda_architecture(cc) == arch


@pytest.mark.parametrize("cc", [None, "", "[N/A]", "x.y"])
def test_cuda_architecture_unknown(cc):
    assert _gpu_nvidia.cuda_architecture(cc) is None


@pytest.mark.parametrize("value, text", [(13000, "13.0"), (12040, "12.4"), (12080, "12.8"), (13020, "13.2"), (0, None)])
def test_cuda_driver_version(value, text):
    assert _gpu_nvidia.cuda_version_text(value) == text


@pytest.mark.parametrize("raw, normalized", [
    ("0000000F:01:00.0", "000f:01:00.0"),   # GB10, as NVML and nvidia-smi print it
    ("00000000:53:00.0", "0000:53:00.0"),   # H100
    ("0000:c5:00.0", "0000:c5:00.0"),       # sysfs form stays
])
def test_normalize_bus_id(raw, normalized):
    assert _gpu.normalize_bus_id(raw) == normalized


def test_pci_device_id_is_upper_half_of_nvml_word():
    assert _gpu_nvidia.pci_device_id(0x2E1210DE) == "0x2e12"
    assert _gpu_nvidia.pci_device_id(0x233010DE) == "0x2330"


def test_bus_id_from_kfd_location():
    # location_id = bus << 8 | device << 3 | function
    assert _gpu_amd.bus_id_from_location(0, 0xC500) == "0000:c5:00.0"
    assert _gpu_amd.bus_id_from_location(1, (0x03 << 8) | (0x1F << 3) | 7) == "0001:03:1f.7"


def test_parse_smi_csv_not_available_values():
    out = ("0, NVIDIA GB10, GPU-x, 0000000F:01:00.0, 0x2E1210DE, 12.1, 580.95.05, [N/A], [Not Supported], [N/A], Enabled\n"
           "1, NVIDIA H100 80GB HBM3, GPU-y, 00000000:64:00.0, 0x233010DE, 9.0, 580.95.05, 81559, 81080, Enabled, Disabled\n")
    devices, driver = _gpu_nvidia.parse_smi_csv(out)
    assert driver == "580.95.05"
    gb10, h100 = devices
    assert gb10["memory_total_bytes"] is None and gb10["memory_free_bytes"] is None and gb10["unified_memory"] is True
    assert gb10["mig_mode"] is None and gb10["persistence_mode"] is True
    assert h100["memory_total_bytes"] == 81559 * 1024 * 1024 and h100["unified_memory"] is False
    assert h100["mig_mode"] == "enabled" and h100["persistence_mode"] is False
    assert h100["index"] == 1 and h100["pci_bus_id"] == "0000:64:00.0"


@pytest.mark.parametrize("total,free,unified", [
    ("[N/A]", "[N/A]", True),  # GB10: NVML does not support device memory on unified memory
    ("[Not Supported]", "[Not Supported]", True),
    ("[Insufficient Permissions]", "[Insufficient Permissions]", False),  # MIG GPU seen from an unprivileged container
    ("[Unknown Error]", "[Unknown Error]", False),
], ids=["n/a", "not-supported", "insufficient-permissions", "unknown-error"])
def test_parse_smi_csv_tells_unified_memory_from_unreadable_memory(total, free, unified):
    out = ("0, NVIDIA A100-SXM4-80GB, GPU-z, 00000000:07:00.0, 0x20B210DE, 8.0, 535.161.08, %s, %s, Enabled, Enabled\n"
           % (total, free))
    notes = []
    devices, _driver = _gpu_nvidia.parse_smi_csv(out, notes)
    assert devices[0]["unified_memory"] is unified
    assert devices[0]["memory_total_bytes"] is None and devices[0]["memory_free_bytes"] is None
    if unified:
        assert notes == []
    else:
        assert notes == ["nvidia-smi could not read the memory of GPU 0 (0000:07:00.0): memory.total is %s; "
                         "memory unknown, not unified memory" % total]


def test_parse_smi_csv_rejects_a_changed_format():
    with pytest.raises(_gpu.GpuError, match="expected 11 fields"):
        _gpu_nvidia.parse_smi_csv("0, NVIDIA GB10, 12.1\n")


def test_meminfo_missing_gives_no_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(_gpu, "PROC_ROOT", str(tmp_path))
    assert _gpu.mem_available_bytes() is None
    (tmp_path / "meminfo").write_text("MemTotal:       16311120 kB\nMemAvailable:   15174668 kB\n")
    assert _gpu.mem_available_bytes() == 15174668 * 1024


def test_cuda_architectures_sorted_numerically():
    devices = [{"cuda_architecture": "90"}, {"cuda_architecture": "121"}, {"cuda_architecture": "86"}, {"cuda_architecture": "90"}]
    assert _gpu.facts("nvidia", "nvml", devices)["cuda_architectures"] == ["86", "90", "121"]


def test_discrete_amd_gpu_is_not_an_apu_and_an_igpu_next_to_it_is_left_out(tmp_path, monkeypatch):
    """A Ryzen 7000 desktop: Raphael iGPU (gfx1036) next to a Radeon RX 7900 XTX (gfx1100, 24 GiB)."""
    monkeypatch.setattr(_gpu, "SYSFS_ROOT", str(tmp_path / "sys"))
    monkeypatch.setattr(_gpu, "DEV_ROOT", str(tmp_path / "dev"))
    monkeypatch.setattr(_gpu_amd, "HAS_AMDSMI", False)
    nodes = tmp_path / "sys" / "class" / "kfd" / "kfd" / "topology" / "nodes"
    for node, (version, device, location, minor) in enumerate([(110000, 0x744C, 0x0300, 128), (100306, 0x164E, 0x7C00, 129)], 1):
        (nodes / str(node)).mkdir(parents=True)
        (nodes / str(node) / "properties").write_text(
            "cpu_cores_count 0\nsimd_count 192\ngfx_target_version %d\nvendor_id 4098\ndevice_id %d\n"
            "location_id %d\ndomain 0\ndrm_render_minor %d\n" % (version, device, location, minor))
        (tmp_path / "dev" / "dri").mkdir(parents=True, exist_ok=True)
        (tmp_path / "dev" / "dri" / ("renderD%d" % minor)).touch()
    pci = tmp_path / "sys" / "bus" / "pci" / "devices" / "0000:03:00.0"
    pci.mkdir(parents=True)
    (pci / "mem_info_vram_total").write_text("25753026560\n")
    (pci / "mem_info_vram_used").write_text("25753026\n")
    (pci / "mem_info_gtt_total").write_text("33554432000\n")

    problems = []
    gpu = _gpu_amd.detect(problems)

    assert problems == []
    assert gpu["hip_targets"] == ["gfx1100"] and gpu["count"] == 1
    assert gpu["unified_memory"] is False and gpu["devices"][0]["apu"] is False
    assert gpu["memory_budget_bytes"] == 25753026560 - 25753026
    assert "integrated GPU 0000:7c:00.0 (gfx1036) left out" in gpu["reason"]

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_facts: the real module main() on fake hosts.

Each host is a fixture in tests/unit/fixtures/gpu/ (with the source of every figure): its sysfs, /proc and /dev
trees are written under tmp_path and the module's roots pointed there; NVML is the real pynvml module with its C
calls replaced (returning pynvml's own structures and raising pynvml's own exception classes); nvidia-smi is
AnsibleModule.run_command answering with the recorded output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pynvml
import pytest
import yaml

from ansible.module_utils import basic

from ansible_collections.gpufleet.inference.plugins.module_utils import _gpu, _gpu_amd, _gpu_nvidia
from ansible_collections.gpufleet.inference.plugins.modules import gpu_facts
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    set_module_args,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"
MIB = 1024 * 1024
NOT_SUPPORTED = "NOT_SUPPORTED"
NO_PERMISSION = "NO_PERMISSION"


def load(name):
    return yaml.safe_load((FIXTURES / ("%s.yml" % name)).read_text(encoding="utf-8"))


def kib_line(meminfo, key):
    for line in meminfo.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class Host:
    """A fake machine under tmp_path: sysfs, /proc, /dev, pci.ids; nvidia-smi answers; NVML answers."""

    def __init__(self, root, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self.commands = []
        self.smi = {}
        for name in ("sys", "proc", "dev"):
            (root / name).mkdir()
        monkeypatch.setattr(_gpu, "SYSFS_ROOT", str(root / "sys"))
        monkeypatch.setattr(_gpu, "PROC_ROOT", str(root / "proc"))
        monkeypatch.setattr(_gpu, "DEV_ROOT", str(root / "dev"))
        monkeypatch.setattr(_gpu, "PCI_IDS_FILES", (str(root / "pci.ids"),))
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", self.get_bin_path)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", self.run_command)
        # Whatever this machine has, amdsmi is not part of these hosts.
        monkeypatch.setattr(_gpu_amd, "HAS_AMDSMI", False)

    def write(self, tree, base):
        for rel, content in (tree or {}).items():
            path = self.root / base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content if content.endswith("\n") else content + "\n", encoding="utf-8")

    def install(self, fixture, with_driver=True):
        data = load(fixture) if isinstance(fixture, str) else fixture
        self.write(data.get("sysfs"), "sys")
        self.write(data.get("proc"), "proc")
        for rel in data.get("dev") or []:
            path = self.root / "dev" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        if with_driver:
            for rel, target in (data.get("links") or {}).items():
                driver_dir = (self.root / "sys" / rel).parent / target
                driver_dir.mkdir(parents=True, exist_ok=True)
                os.symlink(target, self.root / "sys" / rel)
        if data.get("pci_ids"):
            (self.root / "pci.ids").write_text(data["pci_ids"], encoding="utf-8")
        return data

    def bind(self, pci_bus_id, driver):
        """Link the PCI device to a kernel driver, as sysfs shows a bound driver."""
        target = self.root / "sys" / "bus" / "pci" / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        os.symlink(target, self.root / "sys" / "bus" / "pci" / "devices" / pci_bus_id / "driver")

    # ---- nvidia-smi through AnsibleModule (set on the class as bound methods of this Host: no module argument) ---

    def get_bin_path(self, name, *args, **kwargs):
        return "/usr/bin/nvidia-smi" if name == "nvidia-smi" and self.smi else None

    def run_command(self, args, *more, **kwargs):
        self.commands.append(list(args))
        if args[0] != "/usr/bin/nvidia-smi":
            raise AssertionError("unexpected command %r" % (args,))
        if self.smi.get("fail"):
            return self.smi["fail"]
        if len(args) == 1:
            return 0, self.smi.get("banner", ""), ""
        assert args[1].startswith("--query-gpu=") and args[2] == "--format=csv,noheader,nounits"
        return 0, self.smi["query_gpu"], ""


class FakeNvml:
    """pynvml's C-backed calls replaced; values and errors in pynvml's own types."""

    def __init__(self, monkeypatch, fixture=None, init_error=None):
        self.devices = (fixture or {}).get("devices", [])
        self.driver = (fixture or {}).get("driver_version")
        self.cuda = (fixture or {}).get("cuda_driver_version")
        self.init_error = init_error
        self.memory_calls = []
        self.shutdown = 0
        self.errors = {}  # (index, function name) -> exception
        monkeypatch.setattr(_gpu_nvidia, "HAS_PYNVML", True)
        monkeypatch.setattr(_gpu_nvidia, "pynvml", pynvml)
        for name in ("nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlSystemGetDriverVersion",
                     "nvmlSystemGetCudaDriverVersion", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetName",
                     "nvmlDeviceGetUUID", "nvmlDeviceGetPciInfo", "nvmlDeviceGetCudaComputeCapability",
                     "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMigMode", "nvmlDeviceGetPersistenceMode"):
            monkeypatch.setattr(pynvml, name, getattr(self, name))

    def nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdown += 1

    def nvmlDeviceGetCount(self):
        return len(self.devices)

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        return self.cuda

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def field(self, handle, key, function):
        if (handle, function) in self.errors:
            raise self.errors[(handle, function)]
        value = self.devices[handle][key]
        if value == NOT_SUPPORTED:
            raise pynvml.NVMLError_NotSupported()
        if value == NO_PERMISSION:
            raise pynvml.NVMLError_NoPermission()
        return value

    def nvmlDeviceGetName(self, handle):
        return self.field(handle, "name", "nvmlDeviceGetName")

    def nvmlDeviceGetUUID(self, handle):
        return self.field(handle, "uuid", "nvmlDeviceGetUUID")

    def nvmlDeviceGetPciInfo(self, handle):
        info = pynvml.nvmlPciInfo_t()
        bus_id = self.field(handle, "bus_id", "nvmlDeviceGetPciInfo")
        info.busId = bus_id.encode()
        info.busIdLegacy = bus_id[4:].encode()
        info.pciDeviceId = self.devices[handle]["pci_device_id"]
        return info

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return tuple(self.field(handle, "compute_capability", "nvmlDeviceGetCudaComputeCapability"))

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        self.memory_calls.append((handle, version))
        if version:
            memory = self.field(handle, "memory_v2", "nvmlDeviceGetMemoryInfo_v2")
            struct = pynvml.c_nvmlMemory_v2_t()
            struct.version = version
            struct.reserved = memory["reserved_mib"] * MIB
        else:
            memory = self.field(handle, "memory", "nvmlDeviceGetMemoryInfo")
            struct = pynvml.c_nvmlMemory_t()
        struct.total = memory["total_mib"] * MIB
        struct.free = memory["free_mib"] * MIB
        struct.used = memory["used_mib"] * MIB
        return struct

    def nvmlDeviceGetMigMode(self, handle):
        return list(self.field(handle, "mig_mode", "nvmlDeviceGetMigMode"))

    def nvmlDeviceGetPersistenceMode(self, handle):
        return self.field(handle, "persistence_mode", "nvmlDeviceGetPersistenceMode")


@pytest.fixture
def host(tmp_path, monkeypatch):
    return Host(tmp_path, monkeypatch)


def no_nvml_library(monkeypatch):
    """pynvml installed, libnvidia-ml.so.1 not: what nvmlInit raises on a host without the NVIDIA driver."""
    return FakeNvml(monkeypatch, init_error=pynvml.NVMLError_LibraryNotFound())


def without_pynvml(monkeypatch):
    monkeypatch.setattr(_gpu_nvidia, "HAS_PYNVML", False)
    monkeypatch.setattr(_gpu_nvidia, "pynvml", None)


def run(check_mode=False):
    args = {"_ansible_check_mode": True} if check_mode else {}
    with set_module_args(args), pytest.raises(AnsibleExitJson) as exc:
        gpu_facts.main()
    result = exc.value.args[0]
    assert result["changed"] is False
    assert not result.get("failed")
    return result["ansible_facts"]["gpufleet_gpu"]


# ---- NVIDIA through NVML ------------------------------------------------------------------------


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check_mode"])
def test_gb10_unified_memory_budget_from_meminfo(host, monkeypatch, check_mode):
    data = host.install("gb10")
    nvml = FakeNvml(monkeypatch, data["nvml"])

    gpu = run(check_mode)

    assert gpu["vendor"] == "nvidia" and gpu["source"] == "nvml" and gpu["count"] == 1
    assert gpu["cuda_architectures"] == ["121"]  # what the llama.cpp image is built for
    assert gpu["driver_version"] == "580.95.05"
    assert gpu["cuda_driver_version"] == "13.0"
    assert gpu["unified_memory"] is True
    assert gpu["memory_total_bytes"] is None
    assert gpu["memory_budget_bytes"] == kib_line(data["proc"]["meminfo"], "MemAvailable") == 121393643520
    assert "MemAvailable" in gpu["reason"]
    # MemTotal: what vLLM's gpu_memory_utilization is a fraction of on GB10 (the serving planner needs it).
    assert gpu["system_memory_bytes"] == kib_line(data["proc"]["meminfo"], "MemTotal")
    device = gpu["devices"][0]
    assert device["name"] == "NVIDIA GB10"
    assert device["pci_bus_id"] == "000f:01:00.0"
    assert device["pci_device_id"] == "0x2e12"
    assert device["compute_capability"] == "12.1" and device["cuda_architecture"] == "121"
    assert device["memory_total_bytes"] is None and device["memory_free_bytes"] is None
    assert device["unified_memory"] is True
    assert device["mig_mode"] is None
    assert device["persistence_mode"] is True
    # Both NVML memory calls were asked before the device was taken for unified memory.
    assert nvml.memory_calls == [(0, pynvml.nvmlMemory_v2), (0, None)]
    assert nvml.shutdown == 1
    assert gpu["unusable_devices"] == []  # the GPU on the PCI bus is the one NVML serves


def test_two_h100_discrete_budget_is_free_device_memory(host, monkeypatch):
    data = host.install("h100")
    FakeNvml(monkeypatch, data["nvml"])

    gpu = run()

    assert gpu["vendor"] == "nvidia" and gpu["count"] == 2
    assert gpu["cuda_architectures"] == ["90"]
    assert gpu["unified_memory"] is False
    assert gpu["system_memory_bytes"] is None
    assert gpu["memory_total_bytes"] == 2 * 81559 * MIB == 171041619968
    assert gpu["memory_budget_bytes"] == 2 * 81080 * MIB
    assert gpu["reason"] == ""
    assert [d["pci_bus_id"] for d in gpu["devices"]] == ["0000:53:00.0", "0000:64:00.0"]
    assert {d["pci_device_id"] for d in gpu["devices"]} == {"0x2330"}
    assert {d["mig_mode"] for d in gpu["devices"]} == {"disabled"}
    assert {d["persistence_mode"] for d in gpu["devices"]} == {True}
    assert gpu["devices"][1]["uuid"] == "GPU-00000001-0000-0000-0000-000000000001"


def test_mig_enabled_and_old_driver_without_memory_v2(host, monkeypatch):
    data = host.install("h100")
    nvml = FakeNvml(monkeypatch, data["nvml"])
    data["nvml"]["devices"][0]["mig_mode"] = [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]
    # A driver older than nvmlDeviceGetMemoryInfo_v2: the original call answers.
    nvml.errors[(0, "nvmlDeviceGetMemoryInfo_v2")] = pynvml.NVMLError_FunctionNotFound()

    gpu = run()

    assert gpu["devices"][0]["mig_mode"] == "enabled"
    assert gpu["devices"][0]["memory_total_bytes"] == 81559 * MIB
    assert gpu["devices"][0]["unified_memory"] is False
    assert gpu["reason"] == ""


def test_an_nvml_error_on_one_field_is_null_and_named(host, monkeypatch):
    data = host.install("h100")
    nvml = FakeNvml(monkeypatch, data["nvml"])
    nvml.errors[(1, "nvmlDeviceGetUUID")] = pynvml.NVMLError_NoPermission()
    nvml.errors[(1, "nvmlDeviceGetPersistenceMode")] = pynvml.NVMLError_NotSupported()

    gpu = run()

    assert gpu["count"] == 2
    assert gpu["devices"][1]["uuid"] is None
    assert gpu["devices"][1]["persistence_mode"] is None
    assert "device 1 nvmlDeviceGetUUID: Insufficient Permissions" in gpu["reason"]
    assert "Persistence" not in gpu["reason"]  # not supported is a plain null


def test_memory_nvml_may_not_read_is_unknown_not_unified(host, monkeypatch):
    """A MIG-enabled A100 from an unprivileged container: NVML says NO_PERMISSION, not NOT_SUPPORTED as on GB10."""
    data = host.install("a100_mig_container")
    FakeNvml(monkeypatch, data["nvml"])

    gpu = run()

    assert gpu["vendor"] == "nvidia" and gpu["source"] == "nvml" and gpu["count"] == 1
    assert gpu["cuda_architectures"] == ["80"]
    assert gpu["unified_memory"] is False
    assert gpu["memory_total_bytes"] is None
    # Unknown: neither the free device memory (none read) nor MemAvailable (it is not system memory).
    assert gpu["memory_budget_bytes"] is None
    assert "device 0 nvmlDeviceGetMemoryInfo: Insufficient Permissions" in gpu["reason"]
    assert "MemAvailable" not in gpu["reason"]
    device = gpu["devices"][0]
    assert device["unified_memory"] is False and device["memory_free_bytes"] is None
    assert device["mig_mode"] == "enabled"


def test_an_nvidia_ml_py_without_a_query_gives_null_and_says_so(host, monkeypatch):
    """An old binding (a distribution's python3-pynvml from before MIG) lacks nvmlDeviceGetMigMode."""
    data = host.install("h100")
    FakeNvml(monkeypatch, data["nvml"])
    monkeypatch.delattr(pynvml, "nvmlDeviceGetMigMode")

    gpu = run()

    assert gpu["source"] == "nvml" and gpu["count"] == 2
    assert {d["mig_mode"] for d in gpu["devices"]} == {None}
    assert gpu["devices"][0]["memory_total_bytes"] == 81559 * MIB
    assert "device 0 nvmlDeviceGetMigMode: not in this pynvml (nvidia-ml-py too old)" in gpu["reason"]


# ---- NVIDIA through nvidia-smi ------------------------------------------------------------------


def test_gb10_without_pynvml_reads_nvidia_smi(host, monkeypatch):
    data = host.install("gb10")
    without_pynvml(monkeypatch)
    host.smi = data["nvidia_smi"]

    gpu = run()

    assert gpu["vendor"] == "nvidia" and gpu["source"] == "nvidia-smi"
    assert "nvidia-ml-py (pynvml) is not installed" in gpu["reason"]
    assert gpu["cuda_architectures"] == ["121"]
    assert gpu["cuda_driver_version"] == "13.0"
    assert gpu["driver_version"] == "580.95.05"
    assert gpu["unified_memory"] is True
    assert gpu["memory_total_bytes"] is None
    assert gpu["memory_budget_bytes"] == kib_line(data["proc"]["meminfo"], "MemAvailable")
    device = gpu["devices"][0]
    assert device["pci_bus_id"] == "000f:01:00.0" and device["pci_device_id"] == "0x2e12"
    assert device["mig_mode"] is None and device["persistence_mode"] is True
    assert host.commands[0][1].startswith("--query-gpu=index,name,uuid,pci.bus_id,pci.device_id,compute_cap,")


def test_h100_without_pynvml_memory_in_mib(host, monkeypatch):
    data = host.install("h100")
    without_pynvml(monkeypatch)
    host.smi = data["nvidia_smi"]

    gpu = run()

    assert gpu["source"] == "nvidia-smi" and gpu["count"] == 2
    assert gpu["cuda_architectures"] == ["90"]
    assert gpu["memory_total_bytes"] == 2 * 81559 * MIB
    assert gpu["memory_budget_bytes"] == 2 * 81080 * MIB
    assert gpu["cuda_driver_version"] is None  # no banner recorded for this host
    assert {d["mig_mode"] for d in gpu["devices"]} == {"disabled"}


def test_memory_nvidia_smi_may_not_read_is_unknown_not_unified(host, monkeypatch):
    """"[Insufficient Permissions]" in memory.total is not GB10's "[N/A]": the memory is unknown, not system memory."""
    data = host.install("a100_mig_container")
    without_pynvml(monkeypatch)
    host.smi = data["nvidia_smi"]

    gpu = run()

    assert gpu["vendor"] == "nvidia" and gpu["source"] == "nvidia-smi" and gpu["count"] == 1
    assert gpu["cuda_architectures"] == ["80"]
    assert gpu["unified_memory"] is False
    assert gpu["memory_total_bytes"] is None
    assert gpu["memory_budget_bytes"] is None
    assert ("nvidia-smi could not read the memory of GPU 0 (0000:07:00.0): memory.total is [Insufficient Permissions]; "
            "memory unknown, not unified memory") in gpu["reason"]
    assert "MemAvailable" not in gpu["reason"]
    device = gpu["devices"][0]
    assert device["unified_memory"] is False
    assert device["memory_total_bytes"] is None and device["memory_free_bytes"] is None
    assert device["mig_mode"] == "enabled" and device["pci_device_id"] == "0x20b2"
    assert gpu["unusable_devices"] == []


# ---- AMD through sysfs --------------------------------------------------------------------------


def test_strix_halo_apu(host, monkeypatch):
    data = host.install("strix_halo")
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["vendor"] == "amd" and gpu["source"] == "sysfs"
    assert gpu["count"] == 1  # the KFD CPU node is not a GPU
    assert gpu["hip_targets"] == ["gfx1151"]  # what the llama.cpp image is built for
    assert gpu["cuda_architectures"] == [] and gpu["cuda_driver_version"] is None
    assert gpu["unified_memory"] is True
    assert gpu["driver_version"] == "6.14.0-29-generic"
    assert gpu["memory_total_bytes"] == 536870912
    # The GPU can map its GTT plus the carve-out; less than MemAvailable here.
    assert gpu["memory_budget_bytes"] == 103079215104 + 536870912
    assert gpu["memory_budget_bytes"] < kib_line(data["proc"]["meminfo"], "MemAvailable")
    device = gpu["devices"][0]
    assert device["apu"] is True and device["unified_memory"] is True
    assert device["gfx_target"] == "gfx1151" and device["gfx_target_version"] == 110501
    assert device["vram_total_bytes"] == 536870912 and device["gtt_total_bytes"] == 103079215104
    assert device["memory_free_bytes"] == 536870912 - 80121856
    assert device["pci_bus_id"] == "0000:c5:00.0" and device["pci_device_id"] == "0x1586"
    assert device["render_node"] == "/dev/dri/renderD128"
    assert device["name"] == "AMD Strix Halo [Radeon Graphics / Radeon 8050S Graphics / Radeon 8060S Graphics]"
    assert device["uuid"] is None
    assert gpu["reason"] == ""


def test_strix_halo_budget_capped_by_memavailable(host, monkeypatch):
    data = load("strix_halo")
    data["proc"]["meminfo"] = data["proc"]["meminfo"].replace("MemAvailable:   126402112 kB", "MemAvailable:    50331648 kB")
    host.install(data)
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["memory_budget_bytes"] == 50331648 * 1024


def test_amdgpu_dkms_module_version_wins_over_kernel_release(host, monkeypatch):
    data = load("strix_halo")
    data["sysfs"]["module/amdgpu/version"] = "6.12.12"
    host.install(data)
    no_nvml_library(monkeypatch)

    assert run()["driver_version"] == "6.12.12"


class FakeAmdsmi:
    """amdsmi's calls that enrich_with_amdsmi makes (amdsmi itself is not installed on our machines): stand-in answers."""

    def __init__(self, bdf, init_error=None):
        self.bdf = bdf
        self.init_error = init_error

    def amdsmi_init(self):
        if self.init_error is not None:
            raise self.init_error

    def amdsmi_shut_down(self):
        pass

    def amdsmi_get_processor_handles(self):
        return ["handle-0"]

    def amdsmi_get_gpu_device_bdf(self, handle):
        return self.bdf

    def amdsmi_get_gpu_asic_info(self, handle):
        return {"market_name": "AMD Radeon Graphics"}

    def amdsmi_get_gpu_device_uuid(self, handle):
        return "00000000-0000-0000-0000-000000000030"


def test_amd_names_from_amdsmi_give_source_amdsmi(host, monkeypatch):
    host.install("strix_halo")
    no_nvml_library(monkeypatch)
    monkeypatch.setattr(_gpu_amd, "HAS_AMDSMI", True)
    monkeypatch.setattr(_gpu_amd, "amdsmi", FakeAmdsmi("0000:c5:00.0"))

    gpu = run()

    assert gpu["vendor"] == "amd" and gpu["source"] == "amdsmi"
    assert gpu["devices"][0]["name"] == "AMD Radeon Graphics"
    assert gpu["devices"][0]["uuid"] == "00000000-0000-0000-0000-000000000030"
    assert gpu["hip_targets"] == ["gfx1151"]  # still from the KFD topology


def test_amdsmi_that_does_not_start_leaves_source_sysfs(host, monkeypatch):
    host.install("strix_halo")
    no_nvml_library(monkeypatch)
    monkeypatch.setattr(_gpu_amd, "HAS_AMDSMI", True)
    monkeypatch.setattr(_gpu_amd, "amdsmi", FakeAmdsmi("0000:c5:00.0", init_error=RuntimeError("AMDSMI_STATUS_INIT_ERROR")))

    gpu = run()

    assert gpu["vendor"] == "amd" and gpu["source"] == "sysfs"
    assert "amdsmi: AMDSMI_STATUS_INIT_ERROR" in gpu["reason"]


def test_missing_render_node_is_null_and_named(host, monkeypatch):
    data = load("strix_halo")
    data["dev"] = []
    host.install(data)
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["devices"][0]["render_node"] is None
    assert "/dev/dri/renderD128 of GPU 0000:c5:00.0 does not exist" in gpu["reason"]


# ---- nothing usable -----------------------------------------------------------------------------


def test_no_gpu_at_all(host, monkeypatch):
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["vendor"] == "none" and gpu["source"] == "none"
    assert gpu["count"] == 0 and gpu["devices"] == []
    assert gpu["reason"].startswith("no GPU found: no NVIDIA (0x10de) or AMD (0x1002) display or 3D controller")
    assert gpu["cuda_architectures"] == [] and gpu["hip_targets"] == []
    assert gpu["memory_budget_bytes"] is None
    assert gpu["unusable_devices"] == []


def test_gb10_without_driver_names_the_device(host, monkeypatch):
    """A fresh DGX OS reinstall: the GPU is on the PCI bus, no nvidia module, no libnvidia-ml, no nvidia-smi."""
    host.install("gb10")
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["vendor"] == "none" and gpu["source"] == "none" and gpu["count"] == 0
    assert gpu["reason"].startswith("NVIDIA GPU 000f:01:00.0 (10de:2e12) present but the driver is not loaded")
    assert "NVML: NVML Shared Library Not Found" in gpu["reason"]
    assert "nvidia-smi is not on the PATH" in gpu["reason"]
    # What the llamacpp_image role and preflight read to tell "GPU without driver" from "no GPU".
    assert gpu["unusable_devices"] == [{"vendor": "nvidia", "pci_bus_id": "000f:01:00.0", "pci_device_id": "0x2e12",
                                        "driver": None}]


def test_driver_not_loaded_with_library_and_nvidia_smi_installed(host, monkeypatch):
    """Packages installed, kernel module not loaded (e.g. before the reboot after installing the driver)."""
    host.install("h100")
    FakeNvml(monkeypatch, init_error=pynvml.NVMLError_DriverNotLoaded())
    host.smi = {"fail": (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                            "Make sure that the latest NVIDIA driver is installed and running.\n\n", "")}

    gpu = run()

    assert gpu["vendor"] == "none"
    assert gpu["reason"].startswith("NVIDIA GPU 0000:53:00.0 (10de:2330) present but the driver is not loaded; "
                                    "NVIDIA GPU 0000:64:00.0 (10de:2330) present")
    assert "NVML: Driver Not Loaded" in gpu["reason"]
    assert "nvidia-smi failed (rc=9): NVIDIA-SMI has failed because it couldn't communicate" in gpu["reason"]


def test_nvidia_module_bound_but_no_user_space(host, monkeypatch):
    host.install("gb10")
    host.bind("000f:01:00.0", "nvidia")
    without_pynvml(monkeypatch)

    gpu = run()

    assert gpu["vendor"] == "none"
    assert "the nvidia kernel driver is bound but its user-space side did not answer" in gpu["reason"]
    assert "nvidia-ml-py (pynvml) is not installed and nvidia-smi is not on the PATH" in gpu["reason"]


def test_amd_gpu_without_amdgpu(host, monkeypatch):
    """Strix Halo on a kernel without amdgpu (or blacklisted): on the PCI bus, no KFD topology."""
    data = load("strix_halo")
    data["sysfs"] = {k: v for k, v in data["sysfs"].items() if not k.startswith("class/kfd")}
    host.install(data, with_driver=False)
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["vendor"] == "none"
    assert gpu["reason"].startswith("AMD GPU 0000:c5:00.0 (1002:1586) present but the amdgpu driver is not loaded")
    assert [(d["vendor"], d["pci_bus_id"]) for d in gpu["unusable_devices"]] == [("amd", "0000:c5:00.0")]


def test_unreadable_kfd_node(host, monkeypatch):
    data = load("strix_halo")
    gpu_node = "class/kfd/kfd/topology/nodes/1/properties"
    del data["sysfs"][gpu_node]
    host.install(data)
    (host.root / "sys" / gpu_node).mkdir(parents=True)  # reading it fails (EISDIR), even as root
    no_nvml_library(monkeypatch)

    gpu = run()

    assert gpu["vendor"] == "none"
    assert "amdgpu is bound but the GPU is not in the KFD topology" in gpu["reason"]
    assert "cannot read %s" % (host.root / "sys" / gpu_node) in gpu["reason"]


def test_nvidia_wins_over_amd_on_a_mixed_host(host, monkeypatch):
    host.install("strix_halo")
    data = host.install("h100")
    FakeNvml(monkeypatch, data["nvml"])

    gpu = run()

    assert gpu["vendor"] == "nvidia" and gpu["hip_targets"] == []

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: gpu_facts
short_description: Report the host's GPUs - vendor, architecture, driver and the memory models can use
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Sets the fact C(gpufleet_gpu) - the GPU vendor of the host, its devices, the CUDA architectures or HIP targets
    to build for, the driver, whether memory is shared with the CPU, and how much memory models can use.
  - NVIDIA GPUs are read through NVML with nvidia-ml-py (C(import pynvml)) on the managed host. Without it (for
    example before anything is installed) the module runs C(nvidia-smi --query-gpu) instead and says so in
    RV(ansible_facts.gpufleet_gpu.reason).
  - On unified-memory NVIDIA GPUs (GB10 in the DGX Spark) NVML and nvidia-smi report no device memory. Such a device
    has C(unified_memory=true) and null memory, and the memory budget is C(MemAvailable) of C(/proc/meminfo).
  - Memory that NVML or nvidia-smi may not read (C(Insufficient Permissions), for example on a MIG-enabled GPU seen from
    an unprivileged container) is not taken for unified memory. Such a device has C(unified_memory=false), null memory
    and a null budget, and RV(ansible_facts.gpufleet_gpu.reason) says that its memory is unknown.
  - AMD GPUs are read from the KFD topology (C(/sys/class/kfd/kfd/topology/nodes)) and the amdgpu files of the PCI
    device (C(mem_info_vram_total), C(mem_info_gtt_total)); the C(amdsmi) Python package, when present, adds
    marketing names and UUIDs. An APU (Strix Halo and other integrated GPUs) has C(unified_memory=true) and a budget
    of its GTT plus its carve-out, at most C(MemAvailable).
  - A host with GPUs of both vendors reports the NVIDIA ones. Next to a discrete AMD GPU, an integrated one is left
    out (the reason says so).
  - No GPU, no driver, a driver without its user-space library, or unreadable sysfs files are not errors - the
    module reports C(vendor=none) with a reason naming the PCI devices it saw and what is missing. It fails only on
    a bug.
  - The module changes nothing.
extends_documentation_fragment:
  - gpufleet.inference.attributes
  - gpufleet.inference.attributes.facts
attributes:
  check_mode:
    support: full
    details: Reads the same in check mode; it never changes anything.
  diff_mode:
    support: none
  idempotent:
    support: full
  facts:
    support: full
  platform:
    description: Target operating system.
    support: full
    platforms: linux
options: {}
requirements:
  - nvidia-ml-py for the Python that runs the module on the managed host, for NVIDIA details from NVML (else
    C(nvidia-smi) is used); tested with 13.615. The C(gpufleet.inference.nvidia_driver) role installs it.
  - amdsmi on the managed host for AMD marketing names (optional)
notes:
  - C(memory_total_bytes) counts dedicated device memory only (on an AMD APU, the carve-out the BIOS sets aside).
    Use C(memory_budget_bytes) to size models.
  - C(devices) lists usable GPUs only, so C(count) is always the length of C(devices). GPUs that are present but
    unusable (no driver) are named in C(reason).
seealso:
  - name: NVIDIA DGX Spark known issues
    description: Memory reporting on the GB10's unified memory, and MemAvailable as the figure to use.
    link: https://docs.nvidia.com/dgx/dgx-spark/known-issues.html
  - name: NVML API reference
    description: The device queries behind the NVIDIA facts.
    link: https://docs.nvidia.com/deploy/nvml-api/
  - name: ROCm - system requirements (Linux)
    description: The AMD GPUs and gfx targets ROCm supports.
    link: https://rocm.docs.amd.com/projects/install-on-linux/en/latest/reference/system-requirements.html
"""

EXAMPLES = r"""
- name: Read the GPUs
  gpufleet.inference.gpu_facts:

- name: Stop early on a host without a usable GPU
  ansible.builtin.assert:
    that: ansible_facts.gpufleet_gpu.vendor != 'none'
    fail_msg: "No usable GPU on {{ inventory_hostname }}: {{ ansible_facts.gpufleet_gpu.reason }}"

- name: Build llama.cpp for exactly the GPUs of this host
  ansible.builtin.set_fact:
    llamacpp_image_cuda_architectures: "{{ ansible_facts.gpufleet_gpu.cuda_architectures }}"
    llamacpp_image_hip_targets: "{{ ansible_facts.gpufleet_gpu.hip_targets }}"

- name: Memory a model may take, in GiB
  ansible.builtin.debug:
    msg: "{{ (ansible_facts.gpufleet_gpu.memory_budget_bytes | default(0, true) / 1024 ** 3) | round(1) }} GiB"
"""

RETURN = r"""
ansible_facts:
  description: The facts set by the module.
  returned: always
  type: dict
  contains:
    gpufleet_gpu:
      description: The GPUs of the host.
      returned: always
      type: dict
      contains:
        vendor:
          description: V(nvidia), V(amd), or V(none) when there is no usable GPU.
          type: str
          sample: nvidia
        reason:
          description:
            - Empty when everything was read. Otherwise why the vendor is V(none) (the PCI devices seen and what is
              missing), or what is partial (details from nvidia-smi, memory not reported on unified memory, memory
              that could not be read, a query that failed).
          type: str
          sample: "NVIDIA GPU 000f:01:00.0 (10de:2e12) present but the driver is not loaded; NVML: NVML Shared Library Not Found"
        source:
          description:
            - Where the details came from - V(nvml) (NVML answered through nvidia-ml-py), V(nvidia-smi) (pynvml is not
              installed or NVML did not answer, and C(nvidia-smi) did), V(sysfs) (AMD, KFD topology and sysfs),
              V(amdsmi) (AMD, sysfs plus names from amdsmi) or V(none) (no usable GPU).
          type: str
          sample: nvml
        count:
          description: Number of usable GPUs (the length of RV(ansible_facts.gpufleet_gpu.devices)).
          type: int
          sample: 1
        driver_version:
          description: NVIDIA driver version; for AMD the amdgpu module version, or the kernel release when amdgpu has none. Null when unknown.
          type: str
          sample: "580.95.05"
        cuda_driver_version:
          description: Newest CUDA version the NVIDIA driver supports. Null for AMD and when unknown.
          type: str
          sample: "13.0"
        cuda_architectures:
          description: Unique CUDA architectures of the devices (compute capability without the dot), sorted.
          type: list
          elements: str
          sample: ["121"]
        hip_targets:
          description: Unique AMD gfx targets of the devices, sorted.
          type: list
          elements: str
          sample: ["gfx1151"]
        unified_memory:
          description:
            - Whether any device shares system memory (GB10, AMD APUs). False for a device whose memory could not be
              read (the reason says so).
          type: bool
          sample: true
        memory_total_bytes:
          description: Sum of the devices' dedicated memory; null when a device does not report it (GB10).
          type: int
          sample: 171041619968
        memory_budget_bytes:
          description:
            - Memory models can use. Unified memory - C(MemAvailable) of C(/proc/meminfo) (AMD APU - GTT plus
              carve-out, at most C(MemAvailable)). Discrete GPUs - the sum of free device memory. Null when unknown.
          type: int
          sample: 121397862400
        system_memory_bytes:
          description:
            - On unified memory, C(MemTotal) of C(/proc/meminfo) - the total that vLLM's C(gpu_memory_utilization) is a
              fraction of on GB10. Null on discrete GPUs and when unknown.
          type: int
          sample: 130661117952
        unusable_devices:
          description:
            - NVIDIA and AMD display or 3D controllers on the PCI bus that are not in RV(ansible_facts.gpufleet_gpu.devices)
              (no driver loaded, another driver bound, no ROCm compute, an integrated GPU next to a discrete one).
            - A host with entries here and vendor V(none) has a GPU that its driver does not serve yet.
          type: list
          elements: dict
          sample: [{"vendor": "nvidia", "pci_bus_id": "000f:01:00.0", "pci_device_id": "0x2e12", "driver": null}]
          contains:
            vendor:
              description: V(nvidia) or V(amd).
              type: str
            pci_bus_id:
              description: PCI address.
              type: str
            pci_device_id:
              description: PCI device id.
              type: str
            driver:
              description: The kernel driver bound to the device, null when none is.
              type: str
        devices:
          description: One entry per usable GPU.
          type: list
          elements: dict
          contains:
            index:
              description: Index of the device (NVML / nvidia-smi index; for AMD, order in the KFD topology).
              type: int
            vendor:
              description: V(nvidia) or V(amd).
              type: str
            name:
              description: Product name.
              type: str
              sample: NVIDIA GB10
            uuid:
              description: GPU UUID; null for AMD without amdsmi.
              type: str
            pci_bus_id:
              description: PCI address, lower case, 4-digit domain.
              type: str
              sample: "000f:01:00.0"
            pci_device_id:
              description: PCI device id.
              type: str
              sample: "0x2e12"
            memory_total_bytes:
              description: Dedicated device memory; null when not reported.
              type: int
            memory_free_bytes:
              description: Free device memory; null when not reported.
              type: int
            unified_memory:
              description: Whether the device uses system memory.
              type: bool
            compute_capability:
              description: NVIDIA only - CUDA compute capability.
              type: str
              sample: "12.1"
            cuda_architecture:
              description: NVIDIA only - the compute capability without the dot, as C(CMAKE_CUDA_ARCHITECTURES) takes it.
              type: str
              sample: "121"
            mig_mode:
              description: NVIDIA only - V(enabled), V(disabled), or null when the GPU has no MIG.
              type: str
            persistence_mode:
              description: NVIDIA only - whether persistence mode is on; null when not supported.
              type: bool
            gfx_target:
              description: AMD only - LLVM target name.
              type: str
              sample: gfx1151
            gfx_target_version:
              description: AMD only - the KFD C(gfx_target_version) it comes from.
              type: int
              sample: 110501
            vram_total_bytes:
              description: AMD only - VRAM (on an APU, the carve-out).
              type: int
              sample: 536870912
            gtt_total_bytes:
              description: AMD only - system memory the GPU can map (GTT).
              type: int
              sample: 103079215104
            apu:
              description: AMD only - whether the GPU is integrated with the CPU.
              type: bool
            render_node:
              description: AMD only - the DRM render node containers need.
              type: str
              sample: /dev/dri/renderD128
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.inference.plugins.module_utils import _gpu, _gpu_amd, _gpu_nvidia


class GpuFacts:
    """Ask each backend in turn; the first that finds GPUs answers, else explain why there are none."""

    def __init__(self, module):
        self.module = module

    def run(self):
        problems = []
        pci = _gpu.pci_display_devices()
        found = _gpu_nvidia.detect(self.module.run_command, self.module.get_bin_path, problems)
        if found is None:
            found = _gpu_amd.detect(problems)
        if found is None:
            found = _gpu.none_facts(_gpu.none_reason(pci, problems))
        usable = {device.get("pci_bus_id") for device in found["devices"]}
        found["unusable_devices"] = [
            {"vendor": _gpu.VENDOR_NAMES[device["vendor_id"]].lower(), "pci_bus_id": device["pci_bus_id"],
             "pci_device_id": device["device_id"], "driver": device["driver"]}
            for device in pci if device["pci_bus_id"] not in usable
        ]
        return {"changed": False, "ansible_facts": {"gpufleet_gpu": found}}


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(**GpuFacts(module).run())


if __name__ == "__main__":
    main()

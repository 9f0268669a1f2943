"""The preflight role's checks, fed what its tasks read on real hosts: each problem a user would see, exactly."""

from __future__ import annotations

import base64
import json

from pathlib import Path

import pytest

from ansible_collections.gpufleet.inference.plugins.filter.preflight import (
    preflight_dir_chain,
    preflight_disk_check,
    preflight_gpu_check,
    preflight_kernel_check,
    preflight_listeners,
    preflight_platform_check,
    preflight_port_services,
    preflight_ports_check,
    preflight_ports_taken,
)

SUPPORTED = [
    {"distribution": "Ubuntu", "versions": ["22.04", "24.04"], "architectures": ["x86_64", "aarch64"]},
    {"distribution": "Debian", "versions": ["12"], "architectures": ["x86_64", "aarch64"]},
]
# ansible_facts of the hosts (from their /etc/os-release); DGX OS 7 is Ubuntu 24.04 with /etc/dgx-release.
DGX_SPARK = {"distribution": "Ubuntu", "distribution_version": "24.04", "distribution_major_version": "24",
             "architecture": "aarch64"}
UBUNTU_2404 = {"distribution": "Ubuntu", "distribution_version": "24.04", "distribution_major_version": "24",
               "architecture": "x86_64"}
DEBIAN_12 = {"distribution": "Debian", "distribution_version": "12.12", "distribution_major_version": "12",
             "architecture": "x86_64"}
FEDORA_41 = {"distribution": "Fedora", "distribution_version": "41", "distribution_major_version": "41",
             "architecture": "x86_64"}
DGX_RELEASE = """DGX_NAME="DGX Spark"
DGX_PRETTY_NAME="NVIDIA DGX Spark"
DGX_SWBUILD_DATE="2025-09-10-13-50-03"
DGX_SWBUILD_VERSION="7.2.3"
DGX_COMMIT_ID="833b4a7"
DGX_PLATFORM="DGX Server for KVM"
DGX_SERIAL_NUMBER="Not Specified"

DGX_OTA_VERSION="7.2.3"
DGX_OTA_DATE="Thu Oct  2 16:32:11 UTC 2025"
"""

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "preflight"
# /proc/net/tcp and tcp6 of a host: sshd on 0.0.0.0:22 and [::]:22, systemd-resolved on 127.0.0.53:53,
# python3 -m http.server on 127.0.0.1:18090 (with a client connected: not a listener), docker-proxy of our own
# stack on 127.0.0.1:18091, a server on [::1]:8080, one on fd00::1:8000 and one on ::ffff:127.0.0.1:9090.
PROC_NET_TCP = (FIXTURES / "proc-net-tcp").read_text()
PROC_NET_TCP6 = (FIXTURES / "proc-net-tcp6").read_text()
# ss -Htlnp on that host (names the processes).
SS = (FIXTURES / "ss-Htlnp.txt").read_text()
OWN_PORTS = "127.0.0.1:18091->8080/tcp\n"


def test_listeners_are_read_from_tcp_and_tcp6_without_connections():
    assert preflight_listeners([PROC_NET_TCP, PROC_NET_TCP6]) == [
        {"address": "0.0.0.0", "port": 22}, {"address": "127.0.0.53", "port": 53},
        {"address": "127.0.0.1", "port": 18090}, {"address": "127.0.0.1", "port": 18091},
        {"address": "::", "port": 22}, {"address": "::1", "port": 8080}, {"address": "fd00::1", "port": 8000},
        {"address": "127.0.0.1", "port": 9090},
    ]


def test_a_host_without_ipv6_has_only_tcp():
    assert preflight_listeners([PROC_NET_TCP])[-1] == {"address": "127.0.0.1", "port": 18091}


def _check(services):
    ports = preflight_port_services(services)
    taken = preflight_ports_taken(ports, preflight_listeners([PROC_NET_TCP, PROC_NET_TCP6]))
    return preflight_ports_check(ports, taken, OWN_PORTS, SS, "gpufleet")


def test_our_own_stack_port_is_accepted_and_a_free_port_is_free():
    result = _check([{"name": "chat", "port": 18080}, {"name": "small", "port": 18091}])
    assert result["problems"] == []
    assert result["report"] == [
        {"service": "chat", "port": 18080, "bind_address": "127.0.0.1", "state": "free", "listeners": []},
        {"service": "small", "port": 18091, "bind_address": "127.0.0.1", "state": "gpufleet",
         "listeners": ["127.0.0.1:18091"]},
    ]


def test_a_port_another_process_holds_is_refused_naming_the_process():
    assert _check([{"name": "chat", "port": 18080}, {"name": "busy", "port": 18090}])["problems"] == [
        "port: gpufleet_services[1] (busy).port 18090 on 127.0.0.1 is in use by python3 (pid 4242) (listening on "
        "127.0.0.1:18090), not by a container of Compose project gpufleet: stop it or choose another port",
    ]


def test_a_wildcard_listener_takes_the_port_on_every_address():
    # sshd listens on 0.0.0.0:22 and [::]:22.
    assert _check([{"name": "ssh", "port": 22, "bind_address": "10.0.0.5"}])["problems"] == [
        "port: gpufleet_services[0] (ssh).port 22 on 10.0.0.5 is in use by sshd (pid 812) (listening on "
        "0.0.0.0:22, [::]:22), not by a container of Compose project gpufleet: stop it or choose another port",
    ]


def test_a_service_on_a_wildcard_meets_listeners_on_any_address():
    result = _check([{"name": "dns", "port": 53, "bind_address": "0.0.0.0"},
                     {"name": "web", "port": 8080, "bind_address": "[::]"}])
    assert [p.split(" is in use by ")[1].split(" (listening")[0] for p in result["problems"]] == [
        "systemd-resolve (pid 611)", "node (pid 7001), node (pid 7002)"]
    assert [r["listeners"] for r in result["report"]] == [["127.0.0.53:53"], ["[::1]:8080"]]


def test_specific_addresses_only_meet_the_same_address():
    result = _check([{"name": "a", "port": 18090, "bind_address": "192.168.1.10"},
                     {"name": "b", "port": 8000, "bind_address": "fd00:0::1"},
                     {"name": "c", "port": 8000, "bind_address": "fd00::2"},
                     {"name": "d", "port": 9090}])
    assert [r["state"] for r in result["report"]] == ["free", "in use", "free", "in use"]
    # No ss line for these: the process is not named.
    assert result["problems"][0].startswith(
        "port: gpufleet_services[1] (b).port 8000 on fd00:0::1 is in use by another process (listening on [fd00::1]:8000)")
    assert "gpufleet_services[3] (d).port 9090 on 127.0.0.1" in result["problems"][1]


def test_entries_without_a_valid_port_are_left_to_the_inventory_check():
    ports = preflight_port_services([{"name": "a"}, "x", {"name": "b", "port": True}, {"port": 8000}])
    assert ports == [{"index": 3, "name": "#3", "port": 8000, "bind": "127.0.0.1"}]


def test_without_an_engine_nothing_is_ours():
    ports = preflight_port_services([{"name": "small", "port": 18091}])
    taken = preflight_ports_taken(ports, preflight_listeners([PROC_NET_TCP]))
    result = preflight_ports_check(ports, taken, "", "", "gpufleet")
    assert result["problems"] == [
        "port: gpufleet_services[0] (small).port 18091 on 127.0.0.1 is in use by another process (listening on "
        "127.0.0.1:18091), not by a container of Compose project gpufleet: stop it or choose another port"]


# Platform


@pytest.mark.parametrize("facts, release, name", [
    (DGX_SPARK, DGX_RELEASE, "DGX OS 7.2.3 (Ubuntu 24.04, aarch64)"),
    (UBUNTU_2404, None, "Ubuntu 24.04 (x86_64)"),
    (DEBIAN_12, None, "Debian 12.12 (x86_64)"),
])
def test_the_default_platforms_are_supported(facts, release, name):
    result = preflight_platform_check(facts, SUPPORTED, release)
    assert result["problems"] == []
    assert result["report"]["name"] == name
    assert result["report"]["supported"]


def test_fedora_is_refused_naming_what_is_allowed():
    assert preflight_platform_check(FEDORA_41, SUPPORTED)["problems"] == [
        "platform: Fedora 41 (x86_64) is not supported here: preflight_supported_platforms allows "
        "Ubuntu 22.04/24.04 on x86_64/aarch64; Debian 12 on x86_64/aarch64"]


def test_dgx_os_entries_match_the_dgx_release_version_not_plain_ubuntu():
    dgx_only = [{"distribution": "DGX OS", "versions": ["7"], "architectures": ["arm64"]}]
    assert preflight_platform_check(DGX_SPARK, dgx_only, DGX_RELEASE)["report"]["dgx_os_version"] == "7.2.3"
    assert preflight_platform_check(DGX_SPARK, dgx_only, DGX_RELEASE)["problems"] == []
    assert preflight_platform_check(dict(DGX_SPARK, architecture="x86_64"), dgx_only)["problems"] == [
        "platform: Ubuntu 24.04 (x86_64) is not supported here: preflight_supported_platforms allows "
        "DGX OS 7 on aarch64"]


def test_a_dgx_release_without_a_version_is_unknown_and_amd64_is_x86_64():
    result = preflight_platform_check(dict(UBUNTU_2404, architecture="amd64"),
                                      [{"distribution": "DGX OS", "versions": ["7"]}], "DGX_NAME=x\n")
    assert result["problems"] == [
        "platform: DGX OS unknown (Ubuntu 24.04, x86_64) is not supported here: preflight_supported_platforms allows "
        "DGX OS 7 on any architecture"]
    assert preflight_platform_check(UBUNTU_2404, [])["problems"][0].endswith("allows nothing")


# GPU

GB10 = {"vendor": "nvidia", "count": 1, "unified_memory": True, "memory_budget_bytes": 128 * 1024 ** 3,
        "devices": [{"name": "NVIDIA GB10", "vendor": "nvidia"}], "unusable_devices": []}
NO_DRIVER = {"vendor": "none", "count": 0, "reason": "no NVIDIA driver loaded (libnvidia-ml.so.1 not found)",
             "devices": [], "unusable_devices": [{"vendor": "nvidia", "pci": "000f:01:00.0"}]}
STRIX = {"vendor": "amd", "count": 1, "devices": [{"name": "AMD Radeon 8060S", "vendor": "amd", "apu": True}]}


def test_a_gpu_whose_driver_is_not_installed_yet_counts():
    result = preflight_gpu_check(NO_DRIVER, "nvidia", [])
    assert result["problems"] == []
    assert result["report"]["present"] == ["nvidia"]
    assert not result["report"]["driver_loaded"]


def test_a_missing_gpu_is_refused_with_gpu_facts_reason():
    cpu = {"vendor": "none", "count": 0, "reason": "no GPU on the PCI bus", "devices": []}
    assert preflight_gpu_check(cpu, "any", [])["problems"] == [
        "GPU: preflight_require_gpu is any but gpu_facts (fact gpufleet_gpu) found none: no GPU on the PCI bus"]
    assert preflight_gpu_check(None, "nvidia", [])["problems"] == [
        "GPU: preflight_require_gpu is nvidia but gpu_facts (fact gpufleet_gpu) found none: gpu_facts gave no reason"]


def test_a_gpu_of_the_other_vendor_is_named_as_such():
    assert preflight_gpu_check(STRIX, "nvidia", [])["problems"] == [
        "GPU: preflight_require_gpu is nvidia but gpu_facts (fact gpufleet_gpu) found amd (1 device(s)); "
        "a GPU of another vendor"]
    assert preflight_gpu_check(STRIX, "none", [])["report"]["amd_apu"]


def test_tensor_parallel_over_more_gpus_than_the_host_has_is_refused():
    services = [{"name": "glm", "engine": "vllm", "tensor_parallel_size": 2}]
    assert preflight_gpu_check(GB10, "nvidia", services)["problems"] == [
        "GPU: gpufleet_services[0] (glm).tensor_parallel_size 2 is more than the 1 GPU(s) found on the host"]
    assert preflight_gpu_check(NO_DRIVER, "nvidia", services)["problems"] == []


# Disk

MODELS = [{"name": "gemma-3-270m", "hf": {"repo": "o/r"}, "size_gb": 0.3},
          {"name": "qwen", "url": "https://example.com/q.gguf", "size_gb": 1.1},
          {"name": "present", "path": "/srv/tiny.gguf", "size_gb": 1000000},
          {"name": "nohint", "path": "/srv/other.gguf"}]
# df -P -B1 /opt on a host whose / has 50 GB free.
DF = ("Filesystem        1-blocks        Used   Available Capacity Mounted on\n"
      "/dev/nvme0n1p2 982820896768 882820896768 50000000000      95% /\n")


def _record(name, sizes):
    files = {f"f{i}.gguf": {"size": size, "sha256": "0" * 64} for i, size in enumerate(sizes)}
    return {"item": f"/opt/gpufleet/models/{name}/.gpufleet-verified.json",
            "content": base64.b64encode(json.dumps({"files": files}).encode()).decode()}


def test_the_dir_chain_ends_at_the_root():
    assert preflight_dir_chain("/opt/gpufleet/models/") == ["/opt/gpufleet/models", "/opt/gpufleet", "/opt", "/"]
    assert preflight_dir_chain("/") == ["/"]


def test_models_that_fit_pass_and_verified_ones_need_no_space():
    result = preflight_disk_check(MODELS, "/opt/gpufleet/models", "/opt", DF,
                                  [_record("present", [12000, 7000]), {"item": "/x/skipped/.r", "skipped": True}], 10)
    assert result["problems"] == []
    report = result["report"]
    assert [m["needed_bytes"] for m in report["models"]] == [300000000, 1100000000, 0, 0]
    assert report["models"][2]["present_bytes"] == 19000
    assert (report["free_bytes"], report["mount_point"], report["unknown_size"]) == (50000000000, "/", ["nohint"])


def test_models_larger_than_the_free_space_are_refused_naming_each():
    result = preflight_disk_check(MODELS, "/opt/gpufleet/models", "/opt", DF, [], 10)
    assert result["problems"] == [
        "disk: gpufleet_models still to download need 1000001.4 GB (gemma-3-270m 0.3 GB, qwen 1.1 GB, present "
        "1000000.0 GB, from their size_gb) plus preflight_disk_margin_gb 10 GB, but the filesystem of "
        "gpufleet_models_dir (/opt/gpufleet/models, mounted on /) has only 50.0 GB free"]


def test_the_margin_counts():
    result = preflight_disk_check([{"name": "big", "size_gb": 45}], "/opt/gpufleet/models", "/opt", DF, [], 10)
    assert result["problems"][0].startswith("disk: gpufleet_models still to download need 45.0 GB (big 45.0 GB")
    assert preflight_disk_check([{"name": "big", "size_gb": 39.9}], "/opt/m", "/opt", DF, [], 10)["problems"] == []


def test_a_bad_size_hint_and_a_relative_directory_are_refused():
    assert preflight_disk_check([{"name": "m", "size_gb": "4GB"}, {"name": "n", "size_gb": True}],
                                "/opt/m", "/opt", DF, [], 10)["problems"] == [
        "gpufleet_models[0] (m).size_gb must be a number of GB, 0 or more (got 4GB)",
        "gpufleet_models[1] (n).size_gb must be a number of GB, 0 or more (got True)"]
    assert preflight_disk_check(MODELS, "models") == {
        "report": {}, "problems": ["disk: gpufleet_models_dir must be an absolute path (got models)"]}
    assert preflight_disk_check([], "/opt/m") == {"report": {}, "problems": []}


# Kernel command line

CMDLINE = "BOOT_IMAGE=/vmlinuz-6.14.0-1013-oem root=UUID=0b1c ro quiet splash amd_iommu=off"


def test_the_kernel_command_line_of_an_apu():
    why = "gpu_facts reports an AMD APU"
    assert preflight_kernel_check(CMDLINE + " ttm.pages_limit=27648000", 96, True, why)["problems"] == []
    assert preflight_kernel_check(CMDLINE + " amdgpu.gttsize=131072 ttm.pages_limit=16777216", 96, True, why) == {
        "report": {"checked": True, "amdgpu_gttsize": "131072", "ttm_pages_limit": 16777216},
        "problems": [
            "kernel: /proc/cmdline has amdgpu.gttsize=131072, which is deprecated and conflicts with ttm.pages_limit: "
            "remove it and size the GPU memory with ttm.pages_limit only (checked because gpu_facts reports an AMD APU)",
            "kernel: /proc/cmdline has ttm.pages_limit=16777216 (64.0 GiB), less than preflight_min_gpu_memory_gb 96: "
            "set ttm.pages_limit=25165824 or more (checked because gpu_facts reports an AMD APU)"]}


def test_the_kernel_command_line_is_not_judged_where_not_wanted():
    result = preflight_kernel_check(CMDLINE + " amdgpu.gttsize=131072", 0, False, "")
    assert result == {"report": {"checked": False, "amdgpu_gttsize": "131072", "ttm_pages_limit": None},
                      "problems": []}

"""nvidia_driver and nvidia_container_toolkit on a host without a GPU: what a user relies on, checked in the test host."""

import json
import shlex
from pathlib import Path

import pytest
import yaml

CUDA_BASE = "http://127.0.0.1:18082/compute/cuda/repos"
TOOLKIT_BASE = "http://127.0.0.1:18083/libnvidia-container/stable/deb"
DRIVER_PACKAGES = ("nvidia-open", "nvidia-kernel-open-dkms", "nvidia-driver-cuda", "libcuda1", "nvidia-smi")
DRIVER_DEFAULTS = Path(__file__).resolve().parents[3] / "roles" / "nvidia_driver" / "defaults" / "main.yml"
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                    "libnvidia-container1")


def fingerprints(host, path):
    listing = host.check_output(f"gpg --show-keys --with-colons {path}")
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]


def deb822(host, path):
    text = host.file(path).content_string
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def facts(host):
    return json.loads(host.file("/var/lib/gpufleet-test/facts.json").content_string)


def python(host, code):
    """Run code with the Python that runs Ansible's modules on the host (converge recorded which one)."""
    return host.check_output(f"{facts(host)['python_executable']} -c {shlex.quote(code)}")


def cuda_repo_url(host):
    release = dict(line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines() if "=" in line)
    distro = release["ID"].strip('"') + release["VERSION_ID"].strip('"').replace(".", "")
    machine = host.check_output("uname -m")
    return f"{CUDA_BASE}/{distro}/{'sbsa' if machine == 'aarch64' else machine}"


@pytest.mark.parametrize("name,fingerprint_file", [
    ("cuda", "/srv/nvidia-repos/cuda.fingerprint"),
    ("nvidia-container-toolkit", "/srv/nvidia-repos/toolkit.fingerprint"),
])
def test_keyring_has_the_expected_fingerprint(host, name, fingerprint_file):
    keyring = host.file(f"/etc/apt/keyrings/{name}.asc")
    assert keyring.is_file
    assert keyring.mode == 0o644
    assert fingerprints(host, keyring.path) == [host.file(fingerprint_file).content_string.strip()]


def test_cuda_source_is_the_flat_repository_of_this_distribution_and_architecture(host):
    fields = deb822(host, "/etc/apt/sources.list.d/cuda.sources")
    assert fields["URIs"] == cuda_repo_url(host)
    assert fields["Suites"] == "/"
    assert "Components" not in fields
    assert fields["Signed-By"] == "/etc/apt/keyrings/cuda.asc"


def test_toolkit_source_is_the_flat_repository_of_this_architecture(host):
    fields = deb822(host, "/etc/apt/sources.list.d/nvidia-container-toolkit.sources")
    assert fields["URIs"] == f"{TOOLKIT_BASE}/{host.check_output('dpkg --print-architecture')}"
    assert fields["Suites"] == "/"
    assert fields["Signed-By"] == "/etc/apt/keyrings/nvidia-container-toolkit.asc"


def test_driver_is_branch_580_although_590_is_in_the_repository(host):
    assert host.package("nvidia-driver-pinning-580").is_installed
    for name in DRIVER_PACKAGES:
        assert host.package(name).version == "580.95.05-1", name
    policy = host.check_output("apt-cache policy nvidia-open")
    assert "590.44.01-1" in policy
    assert cuda_repo_url(host) in policy


def test_toolkit_is_the_pinned_version_although_a_newer_one_is_in_the_repository(host):
    for name in TOOLKIT_PACKAGES:
        assert host.package(name).version == "1.19.1-1", name
    policy = host.check_output("apt-cache policy nvidia-container-toolkit")
    # A newer release the pin keeps out, and the vulnerable one the refused run asked for (converge.yml).
    assert "1.19.2-1" in policy
    assert "1.19.0-1" in policy
    assert host.check_output("nvidia-ctk --version").splitlines()[0].endswith("version 1.19.1")


def test_driver_and_toolkit_packages_are_held(host):
    selections = dict(line.split() for line in host.check_output("dpkg --get-selections").splitlines())
    for name in DRIVER_PACKAGES + ("nvidia-driver-pinning-580",) + TOOLKIT_PACKAGES:
        assert selections.get(name) == "hold", name
    # An upgrade would now leave them alone even though newer versions are there.
    simulated = host.check_output("apt-get --simulate upgrade")
    assert "Inst nvidia-open" not in simulated
    assert "Inst nvidia-container-toolkit" not in simulated


def test_daemon_json_kept_the_users_key_and_gained_the_nvidia_runtime(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["labels"] == ["gpufleet.test=kept"]
    assert config["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    # docker_engine's keys are there too: nobody replaced the file.
    assert config["log-opts"]["max-file"] == "3"
    assert "default-runtime" not in config


def test_running_engine_lists_the_nvidia_runtime_and_the_users_label(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert "nvidia" in info["Runtimes"]
    assert "gpufleet.test=kept" in info["Labels"]


def test_cdi_refresh_units_are_enabled_and_no_spec_without_a_gpu(host):
    assert host.service("nvidia-cdi-refresh.path").is_enabled
    assert host.service("nvidia-cdi-refresh.path").is_running
    assert host.service("nvidia-cdi-refresh.service").is_enabled
    assert not host.file("/var/run/cdi/nvidia.yaml").exists
    assert not host.file("/etc/cdi/nvidia.yaml").exists


def test_driver_facts_report_installed_not_loaded_and_a_pending_reboot(host):
    found = facts(host)
    assert found["nvidia_driver_installed_version"] == "580.95.05"
    assert found["nvidia_driver_loaded_version"] is None
    assert found["nvidia_driver_drift"] is False
    assert found["nvidia_driver_reboot_required"] is True
    marker = host.file("/run/gpufleet/nvidia-driver-reboot-required")
    assert marker.content_string.strip() == "580.95.05"


def test_gpu_facts_said_no_gpu_and_why_and_the_gpu_container_was_skipped(host):
    found = facts(host)
    assert found["gpufleet_gpu"]["vendor"] == "none"
    assert "nvidia-smi failed" in found["gpufleet_gpu"]["reason"]
    assert found["nvidia_container_toolkit_version_found"] == "1.19.1"
    assert found["nvidia_container_toolkit_gpu_check"]["ran"] is False
    assert "vendor none" in found["nvidia_container_toolkit_gpu_check"]["reason"]


def test_pynvml_is_the_pinned_nvidia_ml_py_in_the_python_ansible_runs(host):
    requirement = yaml.safe_load(DRIVER_DEFAULTS.read_text(encoding="utf-8"))["nvidia_driver_nvml_python_requirement"]
    version, path = python(host, "import importlib.metadata, pynvml\n"
                                 "print(importlib.metadata.version('nvidia-ml-py'))\n"
                                 "print(pynvml.__file__)").splitlines()
    assert f"nvidia-ml-py=={version}" == requirement
    # pip's place for the system Python, which apt does not manage; not a virtualenv the modules would not see.
    assert path.startswith("/usr/local/lib/python3")
    # The wheel came from the controller: the test host reaches no package index.
    assert host.file(f"/opt/gpufleet/wheels/nvidia-ml-py/nvidia_ml_py-{version}-py3-none-any.whl").is_file


def test_gpu_facts_asked_nvml_which_says_its_library_is_missing(host):
    gpu = facts(host)["gpufleet_gpu"]
    assert gpu["vendor"] == "none" and gpu["source"] == "none"
    assert gpu["devices"] == [] and gpu["memory_budget_bytes"] is None
    # What nvmlInit raises on a host without libnvidia-ml.so.1 (the stand-in driver ships no library) ...
    raised = python(host, "import pynvml\n"
                          "try:\n"
                          "    pynvml.nvmlInit()\n"
                          "except pynvml.NVMLError as exc:\n"
                          "    print(type(exc).__name__ + ': ' + str(exc))")
    assert raised == "NVMLError_LibraryNotFound: NVML Shared Library Not Found"
    # ... is in gpu_facts' reason: the module imported pynvml and asked NVML before trying nvidia-smi.
    assert "NVML: NVML Shared Library Not Found; nvidia-smi failed (rc=9)" in gpu["reason"]
    assert "nvidia-ml-py (pynvml) is not installed" not in gpu["reason"]


def test_key_with_wrong_fingerprint_left_no_trace_apt_would_use(host):
    assert not host.file("/etc/apt/keyrings/cuda-wrong-key.asc").exists
    assert not host.file("/etc/apt/keyrings/cuda-wrong-key.gpg").exists
    assert not host.file("/etc/apt/sources.list.d/cuda-wrong-key.sources").exists

"""gpufleet.inference.rocm on a Debian 12 test host without a GPU: what a user relies on, checked in the host."""

import json
import math
import pathlib
import re

import pytest
import yaml

REPO = "http://127.0.0.1:18082"
DEFAULTS = yaml.safe_load(
    (pathlib.Path(__file__).resolve().parents[3] / "roles" / "rocm" / "defaults" / "main.yml").read_text()
)
DROPIN = DEFAULTS["rocm_grub_dropin_path"]


@pytest.fixture(scope="module")
def facts(host):
    return json.loads(host.file("/var/lib/gpufleet-test/rocm-facts.json").content_string)


@pytest.fixture(scope="module")
def pages_limit(host):
    """ttm.pages_limit computed here from /proc/meminfo: floor(RAM bytes * fraction / 4096)."""
    meminfo = host.file("/proc/meminfo").content_string
    kib = int(re.search(r"^MemTotal:\s+(\d+) kB$", meminfo, re.M).group(1))
    return math.floor(kib * 1024 * DEFAULTS["rocm_gtt_fraction"] / 4096)


def deb822(host, path):
    text = host.file(path).content_string
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def fingerprints(host, path):
    listing = host.check_output(f"gpg --show-keys --with-colons {path}")
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]


@pytest.mark.parametrize("name", ["rocm", "amdgpu"])
def test_key_is_a_signed_by_keyring_with_the_expected_fingerprint(host, name):
    expected = host.file("/srv/rocm-repo/fingerprint").content_string.strip()
    keyring = host.file(f"/etc/apt/keyrings/{name}.asc")
    assert keyring.is_file
    assert keyring.mode == 0o644
    assert fingerprints(host, keyring.path)[0] == expected


def test_rocm_source_is_deb822_with_amds_layout(host):
    fields = deb822(host, "/etc/apt/sources.list.d/rocm.sources")
    version = DEFAULTS["rocm_version"]
    assert fields["URIs"].split() == [f"{REPO}/rocm/apt/{version}", f"{REPO}/graphics/{version}/ubuntu"]
    assert fields["Suites"] == "noble"
    assert fields["Components"] == "main"
    assert fields["Architectures"] == "amd64"
    assert fields["Signed-By"] == "/etc/apt/keyrings/rocm.asc"


def test_amdgpu_source_is_deb822_with_amds_layout(host):
    fields = deb822(host, "/etc/apt/sources.list.d/amdgpu.sources")
    assert fields["URIs"] == f"{REPO}/amdgpu/{DEFAULTS['rocm_amdgpu_version']}/ubuntu"
    assert fields["Suites"] == "noble"
    assert fields["Signed-By"] == "/etc/apt/keyrings/amdgpu.asc"


def test_amds_pin_is_in_place_and_applies_to_the_repository(host):
    pin = deb822(host, "/etc/apt/preferences.d/rocm-pin-600")
    assert pin["Package"] == "*"
    assert pin["Pin"] == "release o=repo.radeon.com"
    assert pin["Pin-Priority"] == "600"
    # apt matched the pin against the repository's Release (Origin: repo.radeon.com).
    policy = host.check_output("apt-cache policy rocminfo")
    assert re.search(rf"^\s+600 {re.escape(REPO)}/rocm/apt/\S+ noble/main amd64 Packages$", policy, re.M), policy


@pytest.mark.parametrize("name", ["rocm-hip-runtime", "rocminfo", "rocm-core", "amdgpu-dkms"])
def test_packages_come_from_amds_repositories(host, name):
    package = host.package(name)
    assert package.is_installed
    policy = host.check_output(f"apt-cache policy {name}")
    assert f"{REPO}/" in policy
    if name != "amdgpu-dkms":
        digits = "".join(f"{int(part):02d}" for part in DEFAULTS["rocm_version"].split("."))[1:]
        assert re.search(rf"\.{digits}-\d+~24\.04$", package.version), package.version


def test_rocm_is_installed_where_the_role_looks(host):
    assert host.file("/opt/rocm").is_symlink
    assert host.file("/opt/rocm/bin/rocminfo").is_file


def test_grub_dropin_carries_the_pages_limit_for_this_hosts_memory(host, pages_limit, facts):
    dropin = host.file(DROPIN)
    assert dropin.is_file
    assert dropin.mode == 0o644
    assert f"ttm.pages_limit={pages_limit}" in dropin.content_string
    assert "page_pool_size" not in dropin.content_string
    assert "gttsize" not in dropin.content_string
    assert int(facts["rocm_ttm_pages_limit"]) == pages_limit


def test_generated_grub_config_appends_to_the_users_parameters(host, pages_limit):
    linux = [line.split() for line in host.file("/boot/grub/grub.cfg").content_string.splitlines()
             if line.strip().startswith("linux ")]
    assert len(linux) == 1
    assert "quiet" in linux[0] and "splash" in linux[0]
    assert f"ttm.pages_limit={pages_limit}" in linux[0]


def test_users_grub_defaults_are_untouched(host):
    assert host.file("/etc/default/grub").content_string == host.file("/srv/grub-defaults.orig").content_string


def test_update_grub_ran_once(host):
    calls = host.file("/var/log/update-grub.calls").content_string.splitlines()
    assert len(calls) == 1, calls


def test_deprecated_gttsize_in_grub_defaults_is_reported(facts):
    assert any("amdgpu.gttsize" in w and "/etc/default/grub" in w for w in facts["rocm_warnings"]), facts["rocm_warnings"]


@pytest.mark.parametrize("group", ["render", "video"])
def test_user_is_in_the_gpu_groups_and_the_gid_is_recorded(host, facts, group):
    assert group in host.user("ops").groups
    assert int(facts[f"rocm_{group}_gid"]) == host.group(group).gid


def test_no_hsa_override_anywhere(host, facts):
    assert facts["rocm_container_env"] == {}
    found = host.run("grep -rIl HSA_OVERRIDE_GFX_VERSION /etc /opt /run /var/lib/gpufleet-test /root /home")
    assert found.rc == 1, found.stdout


def test_reboot_is_required_while_the_kernel_lacks_the_parameter(host, facts, pages_limit):
    # The test host runs the CI machine's kernel, which was not booted with the parameter.
    assert f"ttm.pages_limit={pages_limit}" not in host.file("/proc/cmdline").content_string.split()
    assert facts["rocm_reboot_required"] is True
    assert host.file("/run/reboot-required").is_file


def test_role_reports_that_no_gpu_answers(host, facts):
    found = facts["rocm_gpu_found"]
    assert not host.file("/dev/kfd").exists
    assert found["kfd"] is False
    assert found["rocminfo_rc"] != 0
    assert "ROCk module is NOT loaded" in found["rocminfo_error"]
    assert found["vendor"] == "none"
    assert found["reason"]

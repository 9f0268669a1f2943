"""docker_engine from Docker's apt repository: what a user relies on, checked in the test host."""

import json

import pytest

REPO = "http://127.0.0.1:18081/linux/debian"


def fingerprints(host, path):
    listing = host.check_output(f"gpg --show-keys --with-colons {path}")
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]


def test_key_is_installed_as_signed_by_keyring_with_the_expected_fingerprint(host):
    expected = host.file("/srv/docker-repo/fingerprint").content_string.strip()
    keyring = host.file("/etc/apt/keyrings/docker.asc")
    assert keyring.is_file
    assert keyring.mode == 0o644
    assert fingerprints(host, keyring.path)[0] == expected


def test_source_is_deb822_and_names_the_keyring(host):
    source = host.file("/etc/apt/sources.list.d/docker.sources").content_string
    fields = dict(line.split(": ", 1) for line in source.splitlines() if ": " in line)
    assert fields["URIs"] == REPO
    assert fields["Suites"] == "bookworm"
    assert fields["Components"] == "stable"
    assert fields["Signed-By"] == "/etc/apt/keyrings/docker.asc"
    assert fields["Architectures"] == host.check_output("dpkg --print-architecture")


def test_engine_packages_come_from_the_repository(host):
    for name in ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"):
        assert host.package(name).is_installed, name
    policy = host.check_output("apt-cache policy docker-ce")
    assert REPO in policy
    assert "Installed: 5:28.5.1" in policy


def test_compose_comes_from_the_package_not_a_downloaded_binary(host):
    assert host.check_output("docker compose version --short").lstrip("v").startswith("2.")
    assert host.file("/usr/libexec/docker/cli-plugins/docker-compose").exists
    assert not host.file("/usr/local/lib/docker/cli-plugins/docker-compose").exists


def test_engine_runs_with_the_roles_log_rotation(host):
    assert host.service("docker").is_running
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == "json-file"
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-opts"] == {"max-size": "100m", "max-file": "3"}


@pytest.mark.parametrize("name", ["docker-wrong-key", "docker-extra-key"])
def test_refused_key_file_left_no_trace_apt_would_use(host, name):
    # docker-wrong-key: not the expected key; docker-extra-key: the expected key and another one.
    assert not host.file(f"/etc/apt/keyrings/{name}.asc").exists
    assert not host.file(f"/etc/apt/keyrings/{name}.gpg").exists
    assert not host.file(f"/etc/apt/sources.list.d/{name}.sources").exists

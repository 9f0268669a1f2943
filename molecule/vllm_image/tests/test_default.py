"""What vllm_image left on the test host: the NGC-style image at the digest the registry serves, the login
the pull used, and facts that agree with both."""

from __future__ import annotations

import json

import pytest

REGISTRY = "127.0.0.1:5000"
REPO = "nvidia/vllm"
TAG = "26.10-py3"
USER, PASSWORD = "gpufleet", "registry-test-password"


@pytest.fixture(scope="module")
def facts(host):
    return json.loads(host.file("/root/vllm-image-facts.json").content_string)


def registry_digest(host, tag):
    """The manifest digest the registry serves for a tag (what a pull by tag resolves to)."""
    accept = ",".join([
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ])
    headers = host.check_output(
        f"curl -sf -I -u {USER}:{PASSWORD} -H 'Accept: {accept}' http://{REGISTRY}/v2/{REPO}/manifests/{tag}")
    for line in headers.splitlines():
        name, _sep, value = line.partition(":")
        if name.strip().lower() == "docker-content-digest":
            return value.strip()
    raise AssertionError(f"no digest in the registry's answer: {headers}")


def test_registry_refuses_anonymous_pulls(host):
    status = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://{REGISTRY}/v2/{REPO}/tags/list")
    assert status == "401"


def test_recorded_digest_is_the_registrys(host, facts):
    assert facts["digest"] == registry_digest(host, TAG)


def test_ref_names_the_image_by_tag_and_digest(facts):
    assert facts["ref"] == f"{REGISTRY}/{REPO}:{TAG}@{facts['digest']}"


def test_image_is_on_the_host_at_that_digest(host, facts):
    digests = json.loads(host.check_output(f"docker image inspect --format '{{{{json .RepoDigests}}}}' {facts['ref']}"))
    assert f"{REGISTRY}/{REPO}@{facts['digest']}" in digests


def test_version_and_backend_read_from_the_image(facts):
    assert facts["version"] == "0.31.0"
    assert facts["backend"] == "cuda"


def test_login_is_stored_for_the_registry(host):
    config = json.loads(host.file("/root/.docker/config.json").content_string)
    assert REGISTRY in config["auths"]


def test_no_version_probe_container_left(host):
    assert "gpufleet-vllm-version" not in host.check_output("docker ps -a --format '{{.Names}}'")


def test_image_below_the_floor_was_pulled_but_not_accepted(host, facts):
    # 27.01-py3 (vLLM 0.10.0) was pulled and refused from its content: it is on the host, and the facts
    # still describe the accepted image.
    assert host.run(f"docker image inspect {REGISTRY}/{REPO}:27.01-py3").rc == 0
    assert facts["version"] == "0.31.0"


def test_tag_refused_before_pulling_is_absent(host):
    assert host.run(f"docker image inspect {REGISTRY}/{REPO}:25.09-py3").rc != 0

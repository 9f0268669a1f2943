"""The deployed stack as its users meet it: two llama-server endpoints on the test host."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

SERVICES = {"chat": (8080, "gemma-3-270m"), "chat-long": (8081, "gemma-3-270m-long")}
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
STACK = "/opt/gpufleet/stack"
ENGINE_UID = 65532


def key(host, service):
    return host.check_output(f"cat {STACK}/secrets/{service}.key")


def curl(host, path, port, api_key=None, data=None):
    """(status, body) of a request from inside the host."""
    headers = f"-H 'Authorization: Bearer {api_key}'" if api_key else ""
    body = f"-H 'Content-Type: application/json' -d '{json.dumps(data)}'" if data is not None else ""
    out = host.check_output(f"curl -s -o /tmp/body -w '%{{http_code}}' {headers} {body} http://127.0.0.1:{port}{path}")
    return int(out), host.file("/tmp/body").content_string


@pytest.mark.parametrize("service", SERVICES)
def test_api_key_file_is_the_engine_users_alone(host, service):
    f = host.file(f"{STACK}/secrets/{service}.key")
    assert f.mode == 0o400
    assert (f.uid, f.gid) == (ENGINE_UID, ENGINE_UID)
    assert len(f.content_string.strip()) >= 32


@pytest.mark.parametrize("service", SERVICES)
def test_engine_runs_as_the_unprivileged_user(host, service):
    assert host.check_output(f"docker exec gpufleet-{service}-1 id -u") == str(ENGINE_UID)
    # Every process of the container, not only the one docker exec starts.
    top = host.check_output(f"docker top gpufleet-{service}-1 -o pid,uid,comm")
    assert {line.split()[1] for line in top.splitlines()[1:]} == {str(ENGINE_UID)}


def test_services_have_different_keys(host):
    assert key(host, "chat") != key(host, "chat-long")


@pytest.mark.parametrize("service", SERVICES)
def test_port_is_published_on_loopback_only(host, service):
    port = SERVICES[service][0]
    listening = host.check_output(f"ss -Htln 'sport = :{port}'")
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()}
    assert addresses == {"127.0.0.1"}


def chat(host, service, api_key):
    port, served = SERVICES[service]
    return curl(host, "/v1/chat/completions", port, api_key,
                {"model": served, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]})


@pytest.mark.parametrize("service", SERVICES)
def test_request_without_key_is_refused(host, service):
    # llama-server leaves /health and /v1/models open; generation needs the key.
    status = chat(host, service, None)[0]
    assert status == 401


@pytest.mark.parametrize("service", SERVICES)
def test_served_model_answers_with_the_key(host, service):
    port, served = SERVICES[service]
    status, body = curl(host, "/v1/models", port, key(host, service))
    assert status == 200
    assert served in [m["id"] for m in json.loads(body)["data"]]
    status, body = chat(host, service, key(host, service))
    assert status == 200
    assert json.loads(body)["usage"]["completion_tokens"] > 0


def test_key_of_one_service_does_not_open_the_other(host):
    status = chat(host, "chat-long", key(host, "chat"))[0]
    assert status == 401


def test_containers_are_healthy_with_models_read_only(host):
    names = host.check_output("docker compose -p gpufleet ps -q").split()
    assert len(names) == 2
    for container in names:
        state = json.loads(host.check_output(f"docker inspect {container}"))[0]
        assert state["State"]["Health"]["Status"] == "healthy"
        mounts = [m for m in state["Mounts"] if m["Destination"].startswith("/models/")]
        assert mounts and all(m["RW"] is False for m in mounts)


@pytest.mark.parametrize("model", ["gemma-3-270m-hub", "gemma-3-270m-url"])
def test_model_files_are_verified_and_complete(host, model):
    f = host.file(f"/opt/gpufleet/models/{model}/gemma-3-270m-q4_k_m.gguf")
    assert f.sha256sum == MODEL_SHA256
    leftovers = host.check_output(f"find /opt/gpufleet/models/{model} -name '*.part*'")
    assert leftovers == ""


def test_one_image_built_with_the_recorded_inputs(host):
    images = host.check_output("docker images --filter label=org.gpufleet.llamacpp.backend --format '{{.Repository}}:{{.Tag}}'").split()
    # The idempotence run found the image by its inputs hash and did not build another.
    assert len(images) == 1
    labels = json.loads(host.check_output(f"docker image inspect --format '{{{{json .Config.Labels}}}}' {images[0]}"))
    assert labels["org.gpufleet.llamacpp.backend"] == "cpu"
    assert "-DGGML_NATIVE=OFF" in labels["org.gpufleet.llamacpp.cmake-flags"]
    assert images[0].endswith(labels["org.gpufleet.llamacpp.inputs-hash"][:12])
    assert "-DGGML_BACKEND_DL=ON" in labels["org.gpufleet.llamacpp.cmake-flags"]
    shipped = host.check_output(f"docker run --rm --entrypoint ls {images[0]} /app/bin").split()
    assert {"llama-server", "llama-cli", "llama-bench", "llama-quantize", "llama-gguf-split"} <= set(shipped)
    # The backends are libraries beside the programs, where ggml looks for them (the test bed builds the CPU code
    # once, tests/images/llamacpp-cpu.yml), and the build's flags are recorded on the image.
    assert "libggml-cpu.so" in shipped
    assert "-DGGML_CPU_ALL_VARIANTS=OFF" in labels["org.gpufleet.llamacpp.cmake-flags"]
    for tool in ("llama-server", "llama-cli"):
        host.run_expect([0], f"docker run --rm --entrypoint {tool} {images[0]} --version")


def test_report_on_the_controller():
    report = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / "gpufleet-inference_stack.json").read_text())
    by_name = {svc["name"]: svc for svc in report["services"]}
    assert set(by_name) == set(SERVICES)
    for name, (port, served) in SERVICES.items():
        svc = by_name[name]
        assert svc["base_url"] == f"http://127.0.0.1:{port}/v1"
        assert served in svc["models"]
        assert svc["api_key_file"] == f"{STACK}/secrets/{name}.key"
        assert svc["published"] is None  # bound to loopback: nothing to probe from the controller
        assert svc["health"]["status"] == 200
        assert svc["unauthorized_status"] == 401
        assert svc["ttft_ms"] > 0
        assert svc["tokens_per_second"] > 0
        # What the server itself says it runs on: the CPU backend, built from the source's real commit.
        assert svc["backend"] == "CPU"
        assert svc["devices"] == ["CPU"]
        assert svc["image"]["backend"] == "cpu"
        assert svc["build"] and not svc["build"].endswith("-unknown")
        assert svc["build"].endswith(svc["image"]["revision"])


def test_endpoints_for_other_plays_name_the_key_files_not_the_keys(host):
    """endpoints.json: what verify (and a user's play without inference_stack) reads of the stack."""
    f = host.file(f"{STACK}/endpoints.json")
    assert f.user == "root" and f.mode == 0o644
    endpoints = {entry["name"]: entry for entry in json.loads(f.content_string)}
    assert set(endpoints) == set(SERVICES)
    for name, (port, served) in SERVICES.items():
        assert endpoints[name]["url"] == f"http://127.0.0.1:{port}"
        assert endpoints[name]["models"] == [served]
        assert endpoints[name]["api_key_file"] == f"{STACK}/secrets/{name}.key"
        assert endpoints[name]["published"] is False
        assert key(host, name) not in f.content_string


def test_only_this_run_s_build_context_is_recorded(host):
    """llamacpp_image records the build contexts it keeps (this run's, from the archive source, and none before)."""
    contexts = json.loads(host.file("/var/lib/gpufleet/llamacpp/contexts.json").content_string)
    assert len(contexts) == 1 and re.fullmatch(r"archive-[0-9a-f]{16}", contexts[0]), contexts


def test_image_reports_its_commit(host):
    image = host.check_output("docker images --filter label=org.gpufleet.llamacpp.backend=cpu --format '{{.Repository}}:{{.Tag}}'")
    revision = host.check_output(f"docker image inspect --format '{{{{index .Config.Labels \"org.opencontainers.image.revision\"}}}}' {image}")
    out = host.check_output(f"docker run --rm -w / --entrypoint /bin/sh {image} -c 'llama-server --version 2>&1'")
    assert revision and f"commit {revision})" in out


@pytest.mark.parametrize("service", SERVICES)
def test_server_loaded_the_cpu_backend_from_app_bin(host, service):
    log = host.check_output(f"docker compose -p gpufleet logs --no-log-prefix {service} 2>&1")
    assert "loaded CPU backend from /app/bin/libggml-cpu.so" in log

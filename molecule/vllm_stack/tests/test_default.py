"""A vLLM service and two llama.cpp services in one stack, as their users meet them on the test host."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

STACK = "/opt/gpufleet/stack"
VLLM_PORT = 8000
# Every route a client could try: behind the proxy, none answers without the key.
ROUTES = ["/", "/v1/models", "/v1/chat/completions", "/v1/completions", "/health", "/metrics", "/version",
          "/docs", "/openapi.json", "/tokenize", "/ping", "/v1/embeddings", "/load", "/server_info"]


def key(host, service):
    return host.check_output(f"cat {STACK}/secrets/{service}.key")


def curl(host, path, port, api_key=None, data=None, address="127.0.0.1"):
    """(status, body) of a request from inside the host."""
    headers = f"-H 'Authorization: Bearer {api_key}'" if api_key else ""
    body = f"-H 'Content-Type: application/json' -d '{json.dumps(data)}'" if data is not None else ""
    out = host.check_output(f"curl -s -m 300 -o /tmp/body -w '%{{http_code}}' {headers} {body} http://{address}:{port}{path}")
    return int(out), host.file("/tmp/body").content_string


def host_address(host):
    """An address of the test host that is not loopback: what another machine would connect to."""
    return host.check_output("hostname -I").split()[0]


def report():
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / "gpufleet-vllm_stack.json"
    return {svc["name"]: svc for svc in json.loads(path.read_text())["services"]}


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_of_the_vllm_service_needs_the_key(host, route):
    status = curl(host, route, VLLM_PORT, address=host_address(host))[0]
    assert status == 401, route


def test_wrong_key_is_refused(host):
    status = curl(host, "/v1/models", VLLM_PORT, api_key="not-the-key-0123456789", address=host_address(host))[0]
    assert status == 401


def test_vllm_serves_the_model_with_the_key(host):
    api_key = key(host, "vllm-chat")
    status, body = curl(host, "/v1/models", VLLM_PORT, api_key, address=host_address(host))
    assert status == 200
    assert [m["id"] for m in json.loads(body)["data"]] == ["tiny-llama"]
    status, body = curl(host, "/v1/chat/completions", VLLM_PORT, api_key,
                        {"model": "tiny-llama", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]},
                        address=host_address(host))
    assert status == 200
    assert json.loads(body)["usage"]["completion_tokens"] > 0
    # The proxy forwards only what clients need: the rest is not found, even with the key.
    assert curl(host, "/docs", VLLM_PORT, api_key, address=host_address(host))[0] == 404
    assert curl(host, "/health", VLLM_PORT, api_key, address=host_address(host))[0] == 200


def test_vllm_engine_itself_publishes_no_port(host):
    ports = json.loads(host.check_output("docker inspect --format '{{json .NetworkSettings.Ports}}' gpufleet-vllm-chat-1"))
    assert all(not bindings for bindings in (ports or {}).values())


def test_vllm_container_settings(host):
    state = json.loads(host.check_output("docker inspect gpufleet-vllm-chat-1"))[0]
    config, hostconfig = state["Config"], state["HostConfig"]
    # The key is read from the secret at start: not in the command line, not in the environment given.
    api_key = key(host, "vllm-chat")
    assert api_key not in json.dumps(config["Cmd"]) + json.dumps(config.get("Entrypoint")) + json.dumps(config["Env"])
    assert "/run/secrets/vllm-chat_api_key" in json.dumps(config["Entrypoint"])
    # The scenario's memlock (the test machines cannot raise it); the role's 64 MiB stack, as seed 000.
    assert {u["Name"]: u["Hard"] for u in hostconfig["Ulimits"]} == {"memlock": 8388608, "stack": 67108864}
    assert hostconfig["ShmSize"] == 2**30
    mounts = {m["Destination"]: m for m in state["Mounts"]}
    assert mounts["/models/tiny-llama"]["RW"] is False
    assert "/root/.cache/huggingface" in mounts and "/root/.cache/vllm" in mounts
    assert state["State"]["Health"]["Status"] == "healthy"
    # The service's own setting wins over the planner's.
    cmd = config["Cmd"]
    assert cmd[cmd.index("--max-num-seqs") + 1] == "4"


def test_llamacpp_listens_on_its_container_port_behind_another_host_port(host):
    status, body = curl(host, "/v1/chat/completions", 11347, key(host, "q4"),
                        {"model": "gemma-3-270m", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
    assert status == 200
    ports = json.loads(host.check_output("docker inspect --format '{{json .NetworkSettings.Ports}}' gpufleet-q4-1"))
    assert ports["11346/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "11347"}]


def test_keyless_service_answers_without_a_key_on_loopback_only(host):
    status = curl(host, "/v1/chat/completions", 8082, None,
                  {"model": "gemma-3-270m", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})[0]
    assert status == 200
    assert not host.file(f"{STACK}/secrets/open.key").exists
    listening = host.check_output("ss -Htln 'sport = :8082'")
    assert {line.split()[3].rsplit(":", 1)[0] for line in listening.splitlines()} == {"127.0.0.1"}


@pytest.mark.parametrize("path, mode", [("vllm-chat.key", 0o400), ("vllm-chat-proxy.conf", 0o600), ("hf.env", 0o600)])
def test_secret_files_are_root_only(host, path, mode):
    # vLLM runs as root: its key file is root's, read-only.
    f = host.file(f"{STACK}/secrets/{path}")
    assert f.mode == mode and f.user == "root"


def test_hf_token_reaches_vllm_from_its_env_file_only(host):
    env = json.loads(host.check_output("docker inspect --format '{{json .Config.Env}}' gpufleet-vllm-chat-1"))
    assert "HF_TOKEN=not-a-real-token-for-tests" in env
    assert "not-a-real-token" not in host.file(f"{STACK}/compose.yaml").content_string
    # llama.cpp services do not get it.
    env = json.loads(host.check_output("docker inspect --format '{{json .Config.Env}}' gpufleet-q4-1"))
    assert not any(item.startswith("HF_TOKEN=") for item in env)


def test_report_says_how_each_service_is_reached():
    by_name = report()
    assert set(by_name) == {"vllm-chat", "q4", "open", "lanes", "gguf-lanes"}
    vllm = by_name["vllm-chat"]
    assert vllm["engine"] == "vllm" and vllm["proxy"] is True and vllm["auth"] == "api-key"
    assert vllm["models"] == ["tiny-llama"]
    assert vllm["tokens_per_second"] > 0
    # The image the vllm_image role gave, with the vLLM version it read from the image.
    assert vllm["image"]["version"].startswith("0.32.0") and vllm["image"]["backend"] == "cpu"
    assert vllm["image"]["ref"].startswith("gpufleet/vllm:cpu-")
    assert vllm["unauthorized_routes"] and set(vllm["unauthorized_routes"].values()) == {401}
    assert by_name["open"]["auth"] == "none" and by_name["open"]["api_key_file"] is None
    assert by_name["open"]["unauthorized_status"] is None
    assert by_name["q4"]["base_url"] == "http://127.0.0.1:11347/v1"
    assert by_name["q4"]["unauthorized_status"] == 401

"""The stack's endpoints as other roles read them, and where verify probes them from the controller."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.endpoints import (
    inference_endpoints,
    inference_published_problem,
    inference_published_targets,
)

SERVICES = [
    {"name": "chat", "model": "gemma", "served_name": "gemma-3-270m", "port": 8080, "api_key": "sk-never-in-it"},
    {"name": "lan", "engine": "llamacpp", "model": "gemma", "port": 8081, "bind_address": "0.0.0.0"},
    {"name": "big", "engine": "vllm", "model": "qwen", "port": 8000, "bind_address": "10.0.0.5"},
    {"name": "open", "model": "gemma", "port": 8082, "bind_address": "::", "api_key_required": False,
     "public_without_key": True},
    {"name": "lanes", "model": "gemma", "port": 8090, "bind_address": "::1",
     "lanes": [{"name": "small", "model": "gemma"}, {"name": "large", "model": "qwen"}]},
]


def by_name(items):
    return {item["name"]: item for item in items}


def test_endpoints_say_where_each_service_answers_and_where_its_key_is():
    endpoints = by_name(inference_endpoints(SERVICES, "/opt/gpufleet/stack/"))
    assert endpoints["chat"] == {
        "name": "chat", "engine": "llamacpp", "port": 8080, "bind_address": "127.0.0.1", "scheme": "http", "ca_path": "",
        "url": "http://127.0.0.1:8080", "published": False, "models": ["gemma-3-270m"], "api_key_required": True,
        "api_key_file": "/opt/gpufleet/stack/secrets/chat.key", "proxy": False,
    }
    assert endpoints["lan"]["url"] == "http://127.0.0.1:8081" and endpoints["lan"]["published"]
    assert endpoints["big"]["url"] == "http://10.0.0.5:8000" and endpoints["big"]["proxy"]
    assert endpoints["open"]["url"] == "http://127.0.0.1:8082"
    assert endpoints["open"]["api_key_file"] is None and not endpoints["open"]["api_key_required"]
    assert endpoints["lanes"]["url"] == "http://[::1]:8090" and not endpoints["lanes"]["published"]
    assert endpoints["lanes"]["models"] == ["small", "large"]


def test_endpoints_never_carry_a_key():
    assert "sk-never-in-it" not in repr(inference_endpoints(SERVICES, "/opt/gpufleet/stack"))


def test_published_targets_are_the_services_beyond_loopback_at_the_address_users_reach():
    targets = by_name(inference_published_targets(inference_endpoints(SERVICES, "/s"), "auto", "gpu-1.lan", "ssh"))
    assert sorted(targets) == ["big", "lan", "open"]
    assert targets["lan"] == {"name": "lan", "address": "gpu-1.lan", "url": "http://gpu-1.lan:8081", "probe": True,
                              "note": ""}
    # Bound to one address: that address, whatever the host is called.
    assert targets["big"]["url"] == "http://10.0.0.5:8000"
    v6 = by_name(inference_published_targets(inference_endpoints(SERVICES, "/s"), "true", "fd00::7", "ssh"))
    assert v6["open"]["url"] == "http://[fd00::7]:8082"


@pytest.mark.parametrize("connection", ["local", "community.docker.docker", "docker", "containers.podman.podman"])
def test_auto_skips_with_a_note_where_the_host_is_not_reached_over_the_network(connection):
    targets = inference_published_targets(inference_endpoints(SERVICES, "/s"), "auto", "fleet-1", connection)
    assert targets and not any(target["probe"] for target in targets)
    assert all("verify_published_address: true" in target["note"] for target in targets)


def test_true_probes_over_any_connection_and_false_never():
    endpoints = inference_endpoints(SERVICES, "/s")
    assert all(t["probe"] for t in inference_published_targets(endpoints, True, "172.17.0.3", "community.docker.docker"))
    assert all(t["probe"] for t in inference_published_targets(endpoints, "true", "127.0.0.1", "local"))
    off = inference_published_targets(endpoints, False, "h", "ssh")
    assert off and not any(t["probe"] for t in off)
    assert off[0]["note"] == "verify_published_address is false"


def test_an_unknown_mode_names_the_variable():
    with pytest.raises(AnsibleFilterError, match="verify_published_address must be one of auto, true, false"):
        inference_published_targets([], "sometimes", "h")


TARGET = {"name": "lan", "address": "gpu-1.lan", "url": "http://gpu-1.lan:8081"}


@pytest.mark.parametrize("result, wanted", [
    ({"failed": True, "step": "health", "status": None, "error": "connection refused ([Errno 111])", "msg": "m"},
     "check its bind_address (0.0.0.0) and the Compose port mapping, or a firewall"),
    ({"failed": True, "step": "health", "status": None, "error": "timed out (no answer)", "msg": "m"},
     "a firewall between the controller and gpu-1.lan drops the port"),
    ({"failed": True, "step": "health", "status": None, "error": "URLError: Name or service not known", "msg": "m"},
     "gpu-1.lan cannot be reached from the controller (URLError: Name or service not known): verify_public_host is "
     "not an address users reach the host at"),
    ({"failed": True, "step": "models", "status": 401, "msg": "m"}, "refuses the service's API key (HTTP 401)"),
    ({"failed": True, "step": "unauthorized", "status": 200, "msg": "m"}, "answers without the API key"),
    ({"failed": True, "step": "health", "status": 404, "msg": "m"}, "the port is mapped to another server"),
    ({"failed": True, "step": "models", "status": 200, "msg": "m"}, "the port is mapped to another server"),
])
def test_a_failed_probe_says_what_it_likely_means(result, wanted):
    message = inference_published_problem(result, TARGET)
    assert message.startswith("gpufleet_services (lan) at its published address http://gpu-1.lan:8081")
    assert wanted in message
    assert message.endswith("The probe said: m")


def test_a_failure_registered_with_failed_when_false_counts():
    result = {"failed": False, "failed_when_result": False, "step": "health", "status": None,
              "error": "connection refused", "msg": "m"}
    assert "check its bind_address (::)" in inference_published_problem(result, TARGET, "::")


def test_the_cause_names_where_the_address_came_from():
    timed_out = {"failed": True, "step": "health", "status": None, "error": "timed out", "msg": "m"}
    bound = {"name": "big", "address": "10.0.0.5", "url": "http://10.0.0.5:8000"}
    assert "10.0.0.5 (its bind_address 10.0.0.5) is not where users reach" in inference_published_problem(
        timed_out, bound, "10.0.0.5")
    assert "gpu-1.lan (verify_public_host) is not where users reach" in inference_published_problem(timed_out, TARGET)


def test_a_probe_that_passed_is_no_problem():
    assert inference_published_problem({"failed": False, "models": ["x"]}, TARGET) == ""
    assert inference_published_problem({"skipped": True}, TARGET) == ""


def test_a_tls_front_is_reached_over_https_with_its_ca():
    services = [{"name": "chat", "model": "m", "port": 8443, "bind_address": "0.0.0.0", "tls": {"self_signed": True}},
                {"name": "own", "model": "m", "port": 8444, "bind_address": "10.0.0.5",
                 "tls": {"cert": "/etc/ssl/llm.crt", "key": "/etc/ssl/llm.key"}},
                {"name": "plain", "model": "m", "port": 8080}]
    endpoints = by_name(inference_endpoints(services, "/opt/gpufleet/stack"))
    assert endpoints["chat"]["url"] == "https://127.0.0.1:8443"
    assert endpoints["chat"]["ca_path"] == "/opt/gpufleet/stack/tls/chat.crt"
    assert endpoints["chat"]["proxy"] is True
    assert (endpoints["own"]["url"], endpoints["own"]["ca_path"]) == ("https://10.0.0.5:8444", "")
    assert (endpoints["plain"]["url"], endpoints["plain"]["scheme"]) == ("http://127.0.0.1:8080", "http")
    targets = by_name(inference_published_targets(list(endpoints.values()), "true", "gpu-1.lan", "ssh"))
    assert targets["chat"]["url"] == "https://gpu-1.lan:8443"

"""Rollout filters: which images may go, what failed, how healthy the fleet is."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.rollout import (
    inference_compose_images,
    inference_container_problems,
    inference_failed_services,
    inference_failure,
    inference_fleet_health,
    inference_images_to_prune,
    inference_services_without_keys,
)

V1 = """
name: gpufleet
services:
  chat: {image: "gpufleet/llama.cpp:cpu-aaaa", ports: ["127.0.0.1:8080:8080"]}
  big-proxy: {image: "nginx:1.28-alpine"}
"""
V2 = {"name": "gpufleet", "services": {"chat": {"image": "gpufleet/llama.cpp:cpu-bbbb"},
                                       "big-proxy": {"image": "nginx:1.28-alpine"}}}
V3 = {"name": "gpufleet", "services": {"chat": {"image": "gpufleet/llama.cpp:cpu-cccc"}}}


def test_compose_images_from_yaml_text_and_dict():
    assert inference_compose_images(V1) == ["gpufleet/llama.cpp:cpu-aaaa", "nginx:1.28-alpine"]
    assert inference_compose_images(V2) == ["gpufleet/llama.cpp:cpu-bbbb", "nginx:1.28-alpine"]
    assert inference_compose_images("") == []
    assert inference_compose_images(None) == []


def test_compose_images_refuses_what_is_not_a_document():
    with pytest.raises(AnsibleFilterError, match="mapping"):
        inference_compose_images("- a list")


def test_third_version_prunes_the_first_and_keeps_the_previous():
    # v1 ran, then v2 (history: v1 and v2's images); v3 passes with v2 as the one before it.
    history = inference_compose_images(V1) + inference_compose_images(V2)
    assert inference_images_to_prune(history, V3, V2) == ["gpufleet/llama.cpp:cpu-aaaa"]


def test_nothing_is_pruned_when_the_stack_is_the_same():
    history = inference_compose_images(V2)
    assert inference_images_to_prune(history, V2, V2) == []


def test_images_the_stack_never_ran_are_never_named():
    # Another tag of the same repository on the host (a test image, one a user pulled) is not in the history.
    assert inference_images_to_prune([], V3, V2) == []
    assert inference_images_to_prune(["gpufleet/llama.cpp:cpu-bbbb"], V3, None) == ["gpufleet/llama.cpp:cpu-bbbb"]


def test_services_without_keys_keep_everything_else():
    services = [{"name": "chat", "port": 8080, "api_key": "s3cret-key-0123456789", "lanes": [{"name": "a"}]}]
    kept = inference_services_without_keys(services)
    assert kept == [{"name": "chat", "port": 8080, "lanes": [{"name": "a"}]}]
    assert "s3cret" not in repr(kept)
    assert services[0]["api_key"] == "s3cret-key-0123456789"


def test_failure_names_the_failed_loop_items():
    result = {"failed": True, "msg": "One or more items failed", "results": [
        {"item": "chat", "failed": False},
        {"item": "chat-long", "failed": True, "msg": "no answer within 120 s"},
        {"item": {"service": "lanes", "model": "qwen"}, "failed": True, "msg": "HTTP 503"},
    ]}
    text = inference_failure(result, {"name": "Probe each service"})
    assert text == "Probe each service: chat-long: no answer within 120 s; lanes/qwen: HTTP 503"


def test_failure_without_items_gives_the_message():
    result = {"failed": True, "msg": "Error while deploying: container gpufleet-chat-1 is unhealthy"}
    assert inference_failure(result, {"name": "Deploy | Start"}) == (
        "Deploy | Start: Error while deploying: container gpufleet-chat-1 is unhealthy")
    assert inference_failure({}, None) == "no message"
    assert len(inference_failure({"msg": "x" * 5000})) < 1600


def test_container_problems():
    containers = [
        {"Names": ["/gpufleet-chat-1"], "State": "running", "Status": "Up 2 minutes (healthy)"},
        {"Names": ["/gpufleet-long-1"], "State": "running", "Status": "Up 5 minutes (unhealthy)"},
        {"Names": ["/gpufleet-code-1"], "State": "exited", "Status": "Exited (1) 3 seconds ago"},
        {"Names": ["/gpufleet-new-1"], "Status": "Up 1 second (health: starting)"},
    ]
    assert inference_container_problems(containers) == [
        "gpufleet-code-1: Exited (1) 3 seconds ago", "gpufleet-long-1: Up 5 minutes (unhealthy)"]
    assert inference_container_problems([]) == []


def test_fleet_health_counts_deployed_hosts_only():
    hosts = [
        {"host": "a", "deployed": True, "unhealthy": []},
        {"host": "b", "deployed": True, "unhealthy": ["gpufleet-chat-1: Exited (137)"]},
        {"host": "c", "deployed": False, "unhealthy": []},
        {"host": "d", "deployed": True, "unhealthy": []},
    ]
    health = inference_fleet_health(hosts)
    assert health["deployed"] == 3 and health["hosts"] == 4
    assert health["unhealthy"] == ["b"]
    assert health["unhealthy_percentage"] == 33.3
    assert health["detail"] == {"b": ["gpufleet-chat-1: Exited (137)"]}


def test_fleet_health_of_a_new_fleet():
    assert inference_fleet_health([{"host": "a", "deployed": False}])["unhealthy_percentage"] == 0.0
    assert inference_fleet_health([])["deployed"] == 0


def test_failed_services_from_container_names():
    text = "General error: container gpufleet-chat-1 is unhealthy; container gpufleet-glm-q8-proxy-1 exited (1)"
    assert inference_failed_services(text, "gpufleet") == ["chat", "glm-q8-proxy"]
    assert inference_failed_services(text, "other") == []
    assert inference_failed_services(None) == []

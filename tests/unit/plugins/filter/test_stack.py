"""From gpufleet_services to the Compose document, and what is refused on the way."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.stack import (
    inference_compose,
    inference_services_errors,
    start_period,
)

MODELS = [{"name": "glm-q4"}, {"name": "glm-q8"}]
SETTINGS = {
    "project": "gpufleet",
    "images": {"llamacpp": "gpufleet/llama.cpp:cuda-0123456789ab"},
    "models": MODELS,
    "models_dir": "/opt/gpufleet/models",
    "secrets_dir": "/opt/gpufleet/stack/secrets",
    "model_sizes": {"q4": 18 * 2**30, "q8": 35 * 2**30},
}


def two_services():
    # The seed deployment: Q4 and Q8 on two ports, one models directory.
    return [
        {"name": "q4", "engine": "llamacpp", "model": "glm-q4", "model_file": "GLM-Q4_K_XL.gguf", "port": 11346,
         "context": 202752, "gpu_layers": 999},
        {"name": "q8", "model": "glm-q8", "model_file": "GLM-Q8_K_XL.gguf", "port": 11347, "bind_address": "0.0.0.0",
         "args": ["--jinja", "--flash-attn", "on"]},
    ]


def test_two_services_render():
    doc = inference_compose(two_services(), SETTINGS)
    assert doc["name"] == "gpufleet"
    q4, q8 = doc["services"]["q4"], doc["services"]["q8"]
    assert q4["image"] == SETTINGS["images"]["llamacpp"]
    assert q4["ports"] == ["127.0.0.1:11346:11346"]
    assert q8["ports"] == ["0.0.0.0:11347:11347"]
    assert q4["volumes"] == ["/opt/gpufleet/models/glm-q4:/models/glm-q4:ro"]
    cmd = q4["command"]
    assert cmd[cmd.index("--model") + 1] == "/models/glm-q4/GLM-Q4_K_XL.gguf"
    assert cmd[cmd.index("--ctx-size") + 1] == "202752"
    assert cmd[cmd.index("--n-gpu-layers") + 1] == "999"
    assert cmd[cmd.index("--api-key-file") + 1] == "/run/secrets/q4_api_key"
    assert q8["command"][-3:] == ["--jinja", "--flash-attn", "on"]
    assert doc["secrets"]["q8_api_key"] == {"file": "/opt/gpufleet/stack/secrets/q8.key"}
    assert q4["healthcheck"]["test"][-1] == "http://127.0.0.1:11346/health"
    assert q4["restart"] == "unless-stopped"


def test_start_period_covers_the_load_time_of_bigger_models():
    doc = inference_compose(two_services(), SETTINGS)
    q4 = int(doc["services"]["q4"]["healthcheck"]["start_period"].rstrip("s"))
    q8 = int(doc["services"]["q8"]["healthcheck"]["start_period"].rstrip("s"))
    assert q8 > q4 >= start_period(18 * 2**30)
    assert start_period(0) >= 30


def test_no_api_key_in_the_document():
    services = two_services()
    services[0]["api_key"] = "sk-very-secret-value"
    assert "sk-very-secret-value" not in repr(inference_compose(services, SETTINGS))


@pytest.mark.parametrize("change, message", [
    ({"model": "nope"}, "gpufleet_services[0] (q4).model 'nope' is not the name of an entry of gpufleet_models"),
    ({"port": 70000}, "gpufleet_services[0] (q4).port must be a number"),
    ({"port": "8080"}, ".port must be a number"),
    ({"engine": "sglang"}, ".engine must be one of"),
    ({"name": "Q4 service"}, "gpufleet_services[0].name must be"),
    ({"context": -1}, ".context must be"),
    ({"args": "--jinja"}, ".args must be a list"),
])
def test_bad_entries_are_named(change, message):
    services = two_services()
    services[0].update(change)
    errors = inference_services_errors(services, MODELS)
    assert any(message in e for e in errors), errors


def test_duplicate_names_and_ports():
    services = two_services()
    services[1].update(name="q4", port=11346, bind_address="127.0.0.1")
    errors = inference_services_errors(services, MODELS)
    assert any("name is already used by gpufleet_services[0]" in e for e in errors)
    assert any("port 11346 is already published" in e for e in errors)


def test_same_port_on_two_addresses_is_fine_unless_one_is_all_addresses():
    services = two_services()
    services[0]["bind_address"] = "10.0.0.5"
    services[1].update(port=11346, bind_address="127.0.0.1")
    assert inference_services_errors(services, MODELS) == []
    services[1]["bind_address"] = "0.0.0.0"
    assert inference_services_errors(services, MODELS)


def test_render_refuses_what_validation_refuses():
    services = two_services()
    services[0]["model"] = "nope"
    with pytest.raises(AnsibleFilterError, match="nope"):
        inference_compose(services, SETTINGS)


def test_missing_image_is_named():
    with pytest.raises(AnsibleFilterError, match="no image for engine 'llamacpp'"):
        inference_compose(two_services(), dict(SETTINGS, images={}))


def test_engines_run_without_capabilities_and_read_only():
    doc = inference_compose(two_services(), SETTINGS)
    for service in doc["services"].values():
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert "cap_add" not in service
        # llama-server writes only to stdout: a read-only root, /tmp in memory.
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]


def test_docker_run_lines_carry_the_same_hardening():
    from ansible_collections.gpufleet.inference.plugins.filter.stack import inference_docker_run

    script = inference_docker_run(two_services(), SETTINGS)
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges:true", "--read-only", "--tmpfs /tmp"):
        assert script.count(flag) == 2, flag

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lanes in gpufleet_services: validation, the memory plan, the router preset, the switcher's configuration."""

from __future__ import annotations

import configparser
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter import stack
from ansible_collections.gpufleet.inference.plugins.module_utils import _lanes

GB = 1000 ** 3
MODELS = [{"name": n} for n in ("r1-32b", "coder-32b", "llama-11b", "gemma")]


def settings(**extra):
    base = {"images": {"vllm": "vllm:x", "llamacpp": "llama:x"}, "models": MODELS, "models_dir": "/m",
            "secrets_dir": "/opt/gpufleet/stack/secrets"}
    base.update(extra)
    return base


def vllm_group(**extra):
    service = {"name": "cortex", "engine": "vllm", "port": 11434, "container_port": 8000, "bind_address": "0.0.0.0",
               "memory_budget_gb": 48,
               "lanes": [{"name": "orchestrator", "model": "r1-32b", "memory_gb": 40},
                         {"name": "coder", "model": "coder-32b", "memory_gb": 40},
                         {"name": "fast-rag", "model": "llama-11b", "memory_gb": 24}]}
    service.update(extra)
    return service


def gguf_group(**extra):
    service = {"name": "gg", "port": 8090, "memory_budget_gb": 1,
               "lanes": [{"name": "a", "model": "gemma", "model_file": "g.gguf", "context": 2048},
                         {"name": "b", "model": "gemma", "model_file": "g.gguf", "args": ["--temp", "0.2", "--jinja"]}]}
    service.update(extra)
    return service


# -- validation ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"lanes": []}, "gpufleet_services[0] (cortex).lanes must be a non-empty list"),
    ({"model": "r1-32b"}, "gpufleet_services[0] (cortex).model: a service with lanes names its models in each lane"),
    ({"memory_budget_gb": -1}, "gpufleet_services[0] (cortex).memory_budget_gb must be a positive number"),
    ({"max_loaded": 0}, "gpufleet_services[0] (cortex).max_loaded must be a whole number of at least 1"),
    ({"lanes": [{"name": "x", "model": "nope"}]}, "lanes[0] (x).model 'nope' is not the name of an entry"),
    ({"lanes": [{"name": "x", "model": "gemma"}, {"name": "x", "model": "gemma"}]},
     "lanes[1] (x): the name is already used by lanes[0]"),
    ({"lanes": [{"name": "bad name", "model": "gemma"}]}, "lanes[0].name must be the model name clients send"),
    ({"lanes": [{"name": "x", "model": "gemma", "gpu_layers": 99}]}, "lanes[0] (x).gpu_layers is not a setting of engine vllm"),
    ({"lanes": [{"name": "x", "model": "gemma", "bind": "0.0.0.0"}]}, "lanes[0] (x).bind is not a lane setting"),
    ({"lanes": [{"name": "x", "model": "gemma", "memory_gb": "lots"}]}, "lanes[0] (x).memory_gb must be a positive number"),
    ({"lanes": [{"name": "x", "model": "gemma", "memory_gb": 64}]},
     "lanes[0] (x).memory_gb 64 is more than the service's memory_budget_gb 48"),
    ({"lanes": [{"name": "x", "model": "gemma", "gpu_memory_utilization": 1.5}]},
     "lanes[0] (x).gpu_memory_utilization must be a fraction in (0, 1]"),
])
def test_bad_lanes_are_refused_naming_the_variable(change, message):
    errors = stack.inference_services_errors([vllm_group(**change)], MODELS)
    assert any(message in error for error in errors), errors


def test_lane_keys_on_a_service_without_lanes_are_refused():
    errors = stack.inference_services_errors([{"name": "s", "model": "gemma", "port": 1, "memory_budget_gb": 4}], MODELS)
    assert errors == ["gpufleet_services[0] (s).memory_budget_gb is a setting of a service with lanes; this one has none"]


def test_llamacpp_lane_args_must_be_options():
    errors = stack.inference_services_errors(
        [gguf_group(lanes=[{"name": "a", "model": "gemma", "args": ["value-without-option"]}])], MODELS)
    assert any("lanes[0] (a).args: 'value-without-option' is not an option" in e for e in errors), errors


def test_valid_groups_pass():
    assert stack.inference_services_errors([vllm_group(), gguf_group()], MODELS) == []


# -- the memory plan -------------------------------------------------------------------------------------------

def test_seed_003_three_lanes_in_48_gb_switch_one_at_a_time():
    plan = stack.inference_lanes_plan(vllm_group(), settings())
    assert plan["mode"] == "switching"
    assert plan["max_loaded"] == 1
    assert plan["budget_bytes"] == 48 * GB and plan["budget_source"] == "memory_budget_gb"
    assert [lane["preload"] for lane in plan["lanes"]] == [True, False, False]


def test_lanes_that_fit_together_run_side_by_side_and_all_start():
    plan = stack.inference_lanes_plan(vllm_group(memory_budget_gb=200), settings())
    assert plan["mode"] == "side_by_side" and plan["max_loaded"] == 3
    assert all(lane["preload"] for lane in plan["lanes"])


def test_max_loaded_counts_the_largest_lanes():
    # 40 + 40 = 80 fit in 90, 40 + 40 + 24 do not: any two lanes fit, so two at a time.
    plan = stack.inference_lanes_plan(vllm_group(memory_budget_gb=90), settings())
    assert plan["mode"] == "switching" and plan["max_loaded"] == 2


def test_a_lane_larger_than_the_budget_is_an_error_naming_it():
    plan = stack.inference_lanes_plan(vllm_group(memory_budget_gb=30), settings())
    assert any("lanes (orchestrator) needs 40.0 GB (memory_gb), more than the budget of 30.0 GB" in e
               for e in plan["errors"])
    with pytest.raises(AnsibleFilterError, match="orchestrator"):
        stack.inference_compose([vllm_group(memory_budget_gb=30)], settings())


def test_budget_from_gpu_facts_when_the_inventory_gives_none():
    budget = {"budget_bytes": 100 * GB, "total_bytes": 128 * GB}
    service = vllm_group()
    del service["memory_budget_gb"]
    plan = stack.inference_lanes_plan(service, settings(budget=budget))
    assert plan["budget_source"] == "gpu_facts" and plan["max_loaded"] == 2
    # vLLM takes its fraction of all memory: each of the two loaded lanes gets half the budget.
    assert {lane["gpu_memory_utilization"] for lane in plan["lanes"]} == {0.39}


def test_no_budget_known_means_one_lane_at_a_time():
    service = vllm_group()
    del service["memory_budget_gb"]
    plan = stack.inference_lanes_plan(service, settings())
    assert plan["max_loaded"] == 1 and plan["budget_bytes"] is None
    assert "no memory budget" in plan["notes"][0]


def test_estimate_from_the_model_size_when_no_memory_gb():
    plan = stack.inference_lanes_plan(gguf_group(), settings(model_sizes={"gg/a": 300 * 10**6, "gg/b": 300 * 10**6}))
    assert plan["lanes"][0]["bytes"] == int(300 * 10**6 * _lanes.ESTIMATE_FACTOR) + _lanes.RUNTIME_BYTES["llamacpp"]
    assert plan["lanes"][0]["bytes_source"] == "estimate"
    assert plan["mode"] == "switching" and plan["max_loaded"] == 1


# -- what runs ---------------------------------------------------------------------------------------------------

def test_llamacpp_lanes_run_the_router_with_a_preset_per_lane():
    doc = stack.inference_compose([gguf_group()], settings(model_sizes={"gg/a": 3 * 10**8, "gg/b": 3 * 10**8}))
    svc = doc["services"]["gg"]
    assert svc["command"][:4] == ["--models-preset", "/etc/gpufleet/lanes/gg.ini", "--models-max", "1"]
    assert "--api-key-file" in svc["command"] and "--model" not in svc["command"]
    assert "/opt/gpufleet/stack/lanes/gg.ini:/etc/gpufleet/lanes/gg.ini:ro" in svc["volumes"]
    assert svc["labels"]["org.gpufleet.lanes"] == "a,b"
    files = stack.inference_lane_files([gguf_group()], settings(model_sizes={"gg/a": 3 * 10**8, "gg/b": 3 * 10**8}))
    ini = configparser.ConfigParser()
    # llama.cpp's preset has a global "version" line before the sections.
    ini.read_string("[global]\n" + files[0]["content"])
    assert files[0]["name"] == "gg.ini"
    assert dict(ini["a"]) == {"model": "/models/gemma/g.gguf", "ctx-size": "2048", "load-on-startup": "true"}
    assert dict(ini["b"]) == {"model": "/models/gemma/g.gguf", "ctx-size": "4096", "temp": "0.2", "jinja": "true",
                              "load-on-startup": "false"}


def test_a_changed_lane_recreates_the_container():
    one = stack.inference_compose([gguf_group()], settings())["services"]["gg"]["labels"]["org.gpufleet.lanes-config"]
    changed = gguf_group()
    changed["lanes"][1]["context"] = 8192
    two = stack.inference_compose([changed], settings())["services"]["gg"]["labels"]["org.gpufleet.lanes-config"]
    assert one != two


def test_vllm_lanes_run_the_switcher_with_the_key_from_the_secret():
    doc = stack.inference_compose([vllm_group(enforce_eager=True)], settings())
    svc = doc["services"]["cortex"]
    assert "command" not in svc
    assert svc["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert 'VLLM_API_KEY="$(cat /run/secrets/cortex_api_key)"' in svc["entrypoint"][2]
    assert svc["entrypoint"][2].endswith("exec python3 /opt/gpufleet/gpufleet_lanes.py /etc/gpufleet/lanes/cortex.json")
    assert "/opt/gpufleet/stack/lanes/gpufleet_lanes.py:/opt/gpufleet/gpufleet_lanes.py:ro" in svc["volumes"]
    assert {"/m/r1-32b:/models/r1-32b:ro", "/m/coder-32b:/models/coder-32b:ro"} <= set(svc["volumes"])
    # Beyond loopback the proxy publishes 11434 and forwards to the switcher's 8000; the engine publishes nothing.
    assert "ports" not in svc
    assert doc["services"]["cortex-proxy"]["ports"] == ["0.0.0.0:11434:8080"]


def test_switcher_configuration_gives_each_lane_its_vllm_command_and_loopback_port():
    config = stack.inference_lanes_config(vllm_group(enforce_eager=True, context=32768), settings())
    assert json.loads(json.dumps(config)) == config
    assert (config["port"], config["mode"], config["max_loaded"]) == (8000, "switching", 1)
    assert config["api_key_env"] == "VLLM_API_KEY"
    ports = [lane["port"] for lane in config["lanes"]]
    assert len(set(ports)) == 3 and 8000 not in ports
    coder = config["lanes"][1]
    assert coder["command"][:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    words = coder["command"]
    assert words[words.index("--served-model-name") + 1] == "coder"
    assert words[words.index("--host") + 1] == "127.0.0.1"
    assert words[words.index("--max-model-len") + 1] == "32768"
    assert "--enforce-eager" in words


def test_keyless_vllm_lanes_need_no_secret():
    service = vllm_group(api_key_required=False, bind_address="127.0.0.1")
    config = stack.inference_lanes_config(service, settings())
    assert config["api_key_env"] is None
    svc = stack.inference_compose([service], settings())["services"]["cortex"]
    assert svc["entrypoint"] == ["python3", "/opt/gpufleet/gpufleet_lanes.py", "/etc/gpufleet/lanes/cortex.json"]


def test_model_uses_and_served_models_list_every_lane():
    uses = stack.inference_model_uses([gguf_group(), {"name": "solo", "model": "gemma", "port": 1}])
    assert [use["key"] for use in uses] == ["gg/a", "gg/b", "solo"]
    served = stack.inference_served_models([gguf_group(), {"name": "solo", "model": "gemma", "port": 1}])
    assert served == [{"service": "gg", "model": "a", "lane": True}, {"service": "gg", "model": "b", "lane": True},
                      {"service": "solo", "model": "gemma", "lane": False}]


# -- llama.cpp's router log ----------------------------------------------------------------------------------------

ROUTER_LOG = """\
0.00.012.463 I srv  llama_server: starting server in router mode. models will be automatically loaded on-demand
0.00.013.000 I srv    load_models: (startup) loading model lane-a
0.00.013.100 I srv          load: spawning server instance with name=lane-a on port 40001
[40001] 0.00.900.000 I srv  llama_server: model loaded
0.05.843.945 I srv          join: request for name=lane-b queued at position 1
0.05.845.032 I srv          tick: evicting idle LRU name=lane-a for a queued request
0.05.853.000 I srv          join: request for name=lane-b joined the queue, 3 waiting
0.05.919.078 I srv           run: instance name=lane-a exited with status 0
0.05.919.481 I srv          load: spawning server instance with name=lane-b on port 50881
[50881] 0.00.683.151 I srv  llama_server: model loaded
0.09.000.000 I srv           run: instance name=lane-b exited with status -9
"""


def test_router_log_gives_switches_and_the_last_switch_time():
    result = _lanes.router_switches(ROUTER_LOG.splitlines())
    assert result["switches"] == 1  # the start-up load is not a switch
    assert result["loads"] == {"lane-a": 1, "lane-b": 1}
    # From the first request that waited (5.843945 s) to the instance's "model loaded" (spawned at 5.919481 s + 0.683151 s).
    assert result["last_switch_seconds"] == pytest.approx(5.919481 - 5.843945 + 0.683151, abs=1e-3)
    assert result["last_switch"]["to"] == "lane-b"
    assert result["waiting_at_last_switch"] == 3
    assert result["exits"] == [{"name": "lane-b", "status": -9}]

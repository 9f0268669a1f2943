# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/ops.yml's decisions: which services an operation acts on, the docker compose command it runs, and the
messages a wrong request gets."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.ops import (
    inference_ops_errors,
    inference_ops_plan,
    inference_ops_status,
    inference_ops_tools,
)

COMPOSE = ["docker", "compose", "-p", "gpufleet", "-f", "/opt/gpufleet/stack/compose.yaml"]
SERVICES = {
    "chat": {"image": "gpufleet/llama.cpp:cuda-1", "command": ["--model", "/models/gemma/gemma.gguf", "--port", "8080"],
             "labels": {"org.gpufleet.service": "chat"}},
    "chat-proxy": {"image": "nginx", "labels": {"org.gpufleet.service": "chat-proxy", "org.gpufleet.proxy-for": "chat"}},
    "lanes": {"image": "gpufleet/llama.cpp:cuda-1", "command": ["--models-preset", "/lanes/lanes.ini"],
              "labels": {"org.gpufleet.service": "lanes"}},
}


def test_logs_of_one_service_or_all():
    assert inference_ops_plan(SERVICES, "logs", "chat", lines=50)["argv"] == COMPOSE + [
        "logs", "--no-color", "--timestamps", "--tail", "50", "chat"]
    assert inference_ops_plan(SERVICES, "logs")["argv"][-1] == "100"


def test_a_tool_runs_in_a_one_off_container_of_the_service_with_its_model():
    plan = inference_ops_plan(SERVICES, "tool", "chat", "llama-bench", ["-m", "{model}", "-p", "64"])
    assert plan["argv"] == COMPOSE + ["run", "--rm", "--no-deps", "-T", "--entrypoint", "llama-bench", "chat",
                                      "-m", "/models/gemma/gemma.gguf", "-p", "64"]
    assert plan["services"] == ["chat"]


def test_a_tools_arguments_as_one_string_and_a_directory_for_its_output():
    plan = inference_ops_plan(SERVICES, "tool", "chat", "llama-quantize", "{model} '/work/out q8.gguf' Q8_0",
                              workdir="/srv/quantized")
    assert plan["argv"][len(COMPOSE):] == ["run", "--rm", "--no-deps", "-T", "-v", "/srv/quantized:/work", "-w", "/work",
                                           "--entrypoint", "llama-quantize", "chat",
                                           "/models/gemma/gemma.gguf", "/work/out q8.gguf", "Q8_0"]


def test_model_placeholder_needs_a_service_that_serves_one_file():
    with pytest.raises(AnsibleFilterError, match="serves none of its own"):
        inference_ops_plan(SERVICES, "tool", "lanes", "llama-bench", ["-m", "{model}"])


def test_restart_stop_start_act_on_the_service_or_all():
    assert inference_ops_plan(SERVICES, "restart", "chat") == {"services": ["chat"], "argv": []}
    assert inference_ops_plan(SERVICES, "stop") == {"services": [], "argv": []}


@pytest.mark.parametrize("request_, message", [
    (("reboot",), "gpufleet_ops must be one of status, logs, restart, stop, start, tool, tools (got 'reboot')"),
    (("logz",), "(did you mean 'logs'?)"),
    (("logs", "chta"), "gpufleet_ops_service: no service 'chta' in the stack deployed here "
                       "(its services: chat, chat-proxy, lanes) (did you mean 'chat'?)"),
    (("tool", "", "llama-bench"), "gpufleet_ops_service must name the service whose image runs the tool "
                                  "(services here: chat, lanes)"),
    (("tool", "chat", "../bin/sh"), "gpufleet_ops_tool must be the name of a program in the image"),
    (("tool", "chat", ""), "gpufleet_ops_tool must be the name of a program in the image"),
    (("logs", "chat", "", None, "ten"), "gpufleet_ops_lines must be a number of lines, 1 or more (got 'ten')"),
    (("tool", "chat", "llama-bench", {"m": 1}), "gpufleet_ops_args: gpufleet_ops_args must be a list or a string"),
])
def test_wrong_requests_are_named(request_, message):
    errors = inference_ops_errors(SERVICES, *request_)
    assert len(errors) == 1 and message in errors[0], errors


def test_the_only_engine_service_is_the_default_for_tools():
    one = {"chat": SERVICES["chat"], "chat-proxy": SERVICES["chat-proxy"]}
    assert inference_ops_errors(one, "tools") == []
    assert inference_ops_plan(one, "tools")["argv"][len(COMPOSE):len(COMPOSE) + 7] == [
        "run", "--rm", "--no-deps", "-T", "--entrypoint", "sh", "chat"]


def test_status_lines_and_tools_listing():
    containers = [{"Names": ["/gpufleet-chat-1"], "State": "running", "Status": "Up 2 hours (healthy)",
                   "Image": "gpufleet/llama.cpp:cuda-1", "Labels": {"com.docker.compose.service": "chat"}},
                  {"Names": ["/gpufleet-lanes-1"], "State": "exited", "Status": "Exited (1) 3 minutes ago",
                   "Image": "gpufleet/llama.cpp:cuda-1", "Labels": {"com.docker.compose.service": "lanes"}}]
    assert inference_ops_status(containers) == [
        "chat: running - Up 2 hours (healthy) (image gpufleet/llama.cpp:cuda-1)",
        "lanes: exited - Exited (1) 3 minutes ago (image gpufleet/llama.cpp:cuda-1)"]
    assert inference_ops_status(containers, ["lanes"])[0].startswith("lanes: exited")
    assert inference_ops_status([]) == ["no containers of this stack"]
    assert inference_ops_tools(["libllama.so", "llama-bench", "sh", "llama-cli", "llama-bench", "vllm"]) == [
        "llama-bench", "llama-cli", "vllm"]

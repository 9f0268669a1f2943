# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/bench.yml's decisions: the settings (gpufleet_bench) and their messages, the command each engine's
benchmark runs, reading llama-bench's JSON and vllm bench serve's result, and the host report's bench section.

The fixtures are real output: llama-bench -o json of the CPU image on gemma-3-270m, and what the vllm bench serve
command of inference_bench_plan printed in the vllm_stack scenario (vLLM 0.32 CPU image, 4 prompts of 16 tokens, 8
tokens out, against the deployed vllm-chat service)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.bench import (
    DEFAULTS,
    inference_bench_errors,
    inference_bench_plan,
    inference_bench_report,
    inference_bench_results,
    inference_bench_settings,
    llama_bench_results,
    llama_bench_test_name as bench_test_name,
    vllm_bench_results,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bench"
LLAMA_BENCH = (FIXTURES / "llama-bench-cpu.json").read_text()
VLLM_BENCH = (FIXTURES / "vllm-bench-serve.json").read_text()
COMPOSE = ["docker", "compose", "-p", "gpufleet", "-f", "/opt/gpufleet/stack/compose.yaml"]
RUN = COMPOSE + ["run", "--rm", "--no-deps", "-T"]
SERVICES = {
    "chat": {"image": "gpufleet/llama.cpp:cpu-1", "command": ["--model", "/models/gemma/gemma.gguf", "--port", "8080"],
             "labels": {"org.gpufleet.service": "chat", "org.gpufleet.engine": "llamacpp"}},
    "big": {"image": "gpufleet/vllm:cuda-1",
            "command": ["--model", "/models/qwen", "--served-model-name", "qwen", "--host", "0.0.0.0", "--port", "8000"],
            "labels": {"org.gpufleet.service": "big", "org.gpufleet.engine": "vllm"}},
    "big-proxy": {"image": "nginx", "labels": {"org.gpufleet.service": "big-proxy", "org.gpufleet.proxy-for": "big"}},
    "lanes": {"image": "gpufleet/llama.cpp:cpu-1", "command": ["--models-preset", "/lanes/lanes.ini"],
              "labels": {"org.gpufleet.service": "lanes", "org.gpufleet.engine": "llamacpp"}},
}
SMALL = {"llama_bench": {"prompt": 32, "gen": [16, 64], "repetitions": 1}, "vllm_bench": {"num_prompts": 8}}


def test_nothing_set_means_the_defaults():
    assert inference_bench_errors({}) == [] and inference_bench_errors(None) == []
    settings = inference_bench_settings({})
    assert settings == DEFAULTS
    assert settings["load"]["clients"] == 4 and settings["llama_bench"]["prompt"] == [512]


def test_a_setting_given_replaces_only_its_key():
    settings = inference_bench_settings({"llama_bench": {"prompt": 32, "args": "-fa 1 -ub 2048"},
                                         "load": {"clients": 8}, "vllm_bench": {"request_rate": 4}})
    assert settings["llama_bench"] == {"enabled": True, "prompt": [32], "gen": [128], "repetitions": 3,
                                       "args": ["-fa", "1", "-ub", "2048"]}
    assert settings["load"]["clients"] == 8 and settings["load"]["requests_per_client"] == 4
    assert settings["load"]["warmup_requests"] == 1
    assert settings["vllm_bench"]["request_rate"] == "4"


@pytest.mark.parametrize("settings, message", [
    ("fast", "gpufleet_bench must be a dict of settings (got a string)"),
    ({"load": {"client": 4}}, "gpufleet_bench.load: unknown key 'client' (did you mean 'clients'?)"),
    ({"lama_bench": {}}, "gpufleet_bench: unknown key 'lama_bench' (did you mean 'llama_bench'?)"),
    ({"load": {"clients": 0}}, "gpufleet_bench.load.clients must be a whole number from 1 to 256 (got 0)"),
    ({"load": {"clients": "4"}}, "gpufleet_bench.load.clients must be a whole number from 1 to 256 (got '4')"),
    ({"llama_bench": {"repetitions": True}}, "gpufleet_bench.llama_bench.repetitions must be a whole number"),
    ({"llama_bench": {"prompt": [512, 0]}}, "gpufleet_bench.llama_bench.prompt must be a number of tokens, 1 or more"),
    ({"llama_bench": {"prompt": [], "gen": []}}, "gpufleet_bench.llama_bench: prompt and gen are both empty"),
    ({"llama_bench": {"args": ["-o", "md"]}}, "gpufleet_bench.llama_bench.args: -o is set by the playbook itself"),
    ({"llama_bench": {"enabled": "yes"}}, "gpufleet_bench.llama_bench.enabled must be true or false (got 'yes')"),
    ({"vllm_bench": {"args": "--base-url=http://x"}}, "gpufleet_bench.vllm_bench.args: --base-url=http://x is set"),
    ({"vllm_bench": {"request_rate": 0}}, "gpufleet_bench.vllm_bench.request_rate must be requests per second"),
    ({"load": {"prompt": " "}}, "gpufleet_bench.load.prompt must be some text"),
    ({"load": {"warmup_requests": -1}}, "gpufleet_bench.load.warmup_requests must be a whole number from 0 to 100"),
    ({"services": "chat"}, "gpufleet_bench.services must be a list of service names (got 'chat')"),
    ({"timeout": 5}, "gpufleet_bench.timeout must be a whole number from 10 to 86400 (got 5)"),
    ({"load": []}, "gpufleet_bench.load must be a dict (got a list)"),
])
def test_a_wrong_setting_is_named_with_what_it_got(settings, message):
    errors = inference_bench_errors(settings)
    assert any(message in error for error in errors), errors
    with pytest.raises(AnsibleFilterError, match="gpufleet_bench"):
        inference_bench_settings(settings)


def test_llama_bench_runs_on_the_served_file_in_a_one_off_container_and_writes_json():
    plan = {entry["service"]: entry for entry in inference_bench_plan(SERVICES, SMALL)}
    assert plan["chat"]["argv"] == RUN + ["--entrypoint", "llama-bench", "chat", "-m", "/models/gemma/gemma.gguf",
                                          "-p", "32", "-n", "16,64", "-r", "1", "-o", "json"]
    assert plan["chat"]["tool"] == "llama-bench" and plan["chat"]["skipped"] is None
    # A proxy is no engine; lanes have no model of their own.
    assert "big-proxy" not in plan
    assert plan["lanes"]["tool"] is None and "serves lanes" in plan["lanes"]["skipped"]


def test_no_prompt_test_is_llama_benchs_p_0_and_extra_args_come_last():
    settings = {"llama_bench": {"prompt": [], "gen": 16, "args": ["-fa", "1"]}, "services": ["chat"]}
    [entry] = inference_bench_plan(SERVICES, settings, project="p", compose_file="/srv/c.yaml")
    assert entry["argv"][:7] == ["docker", "compose", "-p", "p", "-f", "/srv/c.yaml", "run"]
    assert entry["argv"][-10:] == ["-p", "0", "-n", "16", "-r", "3", "-o", "json", "-fa", "1"]


def test_vllm_bench_serve_reaches_the_server_by_its_name_with_the_key_of_its_secret():
    [entry] = inference_bench_plan(SERVICES, dict(SMALL, services=["big"]))
    argv = entry["argv"]
    assert entry["tool"] == "vllm bench serve"
    assert argv[:len(RUN) + 4] == RUN + ["--entrypoint", "sh", "big", "-c"]
    script, bench = argv[len(RUN) + 4], argv[len(RUN) + 6:]
    assert argv[len(RUN) + 5] == "vllm-bench"  # $0 of the script
    assert 'OPENAI_API_KEY="$(cat /run/secrets/big_api_key)"' in script
    assert 'vllm bench serve "$@" --save-result --result-dir /tmp --result-filename gpufleet-bench.json >&2' in script
    # The script is one word for sh -c: it parses, and only the JSON figures reach stdout.
    assert shlex.split(script)[0] == "if" and script.endswith('"')
    options = dict(zip(bench[::2], bench[1::2]))
    assert options["--base-url"] == "http://big:8000" and options["--model"] == "/models/qwen"
    assert options["--served-model-name"] == "qwen" and options["--dataset-name"] == "random"
    assert (options["--num-prompts"], options["--random-input-len"], options["--max-concurrency"]) == ("8", "512", "4")
    assert options["--request-rate"] == "inf" and "--ignore-eos" in bench


def test_a_disabled_benchmark_says_so():
    plan = inference_bench_plan(SERVICES, {"llama_bench": {"enabled": False}, "vllm_bench": {"enabled": False}})
    assert {entry["service"]: entry["skipped"] for entry in plan} == {
        "chat": "gpufleet_bench.llama_bench.enabled is false", "big": "gpufleet_bench.vllm_bench.enabled is false",
        "lanes": "gpufleet_bench.llama_bench.enabled is false"}
    assert not any(entry["argv"] for entry in plan)


def test_a_service_not_deployed_is_refused_naming_the_setting():
    with pytest.raises(AnsibleFilterError, match=r"gpufleet_bench.services: no service 'caht' in the stack deployed "
                                                 r"here \(its services: big, chat, lanes\) \(did you mean 'chat'\?\)"):
        inference_bench_plan(SERVICES, {"services": ["caht"]})


def test_llama_bench_json_gives_each_test_by_its_name():
    result = llama_bench_results(LLAMA_BENCH)
    assert (result["backends"], result["build_commit"], result["model_type"]) == (
        "CPU", "0c1e57098", "gemma3 270M Q4_K - Medium")
    assert [(test["test"], test["metric"], test["tokens_per_second"], test["repetitions"])
            for test in result["tests"]] == [("pp32", "pp", 849.81, 1), ("tg16", "tg", 91.19, 1)]
    # Anything printed before the JSON (a warning on stdout) is passed over.
    assert llama_bench_results("warning: x\n" + LLAMA_BENCH)["tests"] == result["tests"]


def test_llama_bench_test_names_follow_llama_bench():
    assert [bench_test_name(512, 0), bench_test_name(0, 128), bench_test_name(512, 128),
            bench_test_name(0, 32, 4096)] == ["pp512", "tg128", "pp512+tg128", "tg32 @ d4096"]


@pytest.mark.parametrize("stdout", ["", "error: failed to load model", "[]", "{}"])
def test_output_that_is_not_llama_benchs_json_fails_saying_so(stdout):
    with pytest.raises(AnsibleFilterError, match="llama-bench"):
        llama_bench_results(stdout)


def test_vllm_result_keeps_the_throughputs_and_latencies():
    result = vllm_bench_results(VLLM_BENCH)
    assert (result["output_throughput"], result["median_ttft_ms"], result["p95_ttft_ms"]) == pytest.approx(
        (47.768, 174.118, 340.899), abs=1e-3)
    # --ignore-eos: every request generates all of --random-output-len.
    assert (result["total_input_tokens"], result["total_output_tokens"]) == (4 * 16, 4 * 8)
    assert result["completed"] == 4 and result["failed"] == 0 and result["request_rate"] == "inf"
    assert "model_id" not in result
    with pytest.raises(AnsibleFilterError, match="vllm bench serve"):
        vllm_bench_results("Traceback (most recent call last)")


def test_results_per_planned_service_with_a_summary():
    plan = inference_bench_plan(SERVICES, SMALL)
    runs = [{"item": entry, "stdout": LLAMA_BENCH if entry["tool"] == "llama-bench" else VLLM_BENCH, "rc": 0}
            for entry in plan if entry["tool"]]
    results = {result["service"]: result for result in inference_bench_results(plan, runs)}
    assert results["chat"]["llama_bench"]["tests"][1]["tokens_per_second"] == 91.19
    assert results["chat"]["summary"] == "chat: llama-bench pp32 849.81 tokens/s, tg16 91.19 tokens/s"
    assert results["big"]["vllm_bench"]["total_output_tokens"] == 32
    assert results["big"]["summary"] == ("big: vllm bench serve 47.77 output tokens/s at concurrency 2, "
                                         "TTFT median 174.1 ms")
    assert results["lanes"]["summary"].startswith("lanes: no engine benchmark (serves lanes")


def test_the_host_report_gets_a_bench_section_and_keeps_the_rest():
    plan = inference_bench_plan(SERVICES, SMALL)
    engine = inference_bench_results(plan, [{"item": plan[0], "stdout": LLAMA_BENCH}])
    load = [{"item": "chat", "aggregate_tokens_per_second": 70.5, "clients": 2, "ttft_ms": {"p50": 80.0, "p95": 95.0},
             "warmup_requests": 1, "warmup_s": 2.5, "msg": "x", "invocation": {}},
            {"item": "big", "skipped": True}]
    endpoints = [{"name": "chat", "models": ["gemma-3-270m"], "api_key_file": "/k"}]
    previous = {"host": "h1", "platform": "cpu", "services": [{"name": "chat"}], "bench": {"old": True}}
    report = inference_bench_report(previous, engine, load, endpoints, SMALL, "h1", "2026-12-01T05:00:00Z")
    assert report["services"] == [{"name": "chat"}] and report["platform"] == "cpu"
    bench = report["bench"]
    assert bench["measured_at"] == "2026-12-01T05:00:00Z" and bench["settings"]["llama_bench"]["gen"] == [16, 64]
    chat = bench["services"][0]
    assert (chat["name"], chat["model"], chat["engine"]) == ("chat", "gemma-3-270m", "llamacpp")
    assert chat["llama_bench"]["tests"][0]["test"] == "pp32"
    assert chat["load"]["aggregate_tokens_per_second"] == 70.5 and "msg" not in chat["load"]
    assert (chat["load"]["warmup_requests"], chat["load"]["warmup_s"]) == (1, 2.5)
    assert [service["load"] for service in bench["services"] if service["name"] == "big"] == [None]
    # A host without a report yet gets one with this section only.
    fresh = inference_bench_report({}, engine, [], endpoints, {}, "h2", "2026-12-01T05:00:00Z")
    assert (fresh["host"], fresh["services"]) == ("h2", [])
    assert json.loads(json.dumps(fresh)) == fresh

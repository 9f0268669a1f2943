"""playbooks/bench.yml on the deployed stack, as an operator runs it from the controller, with tiny settings:
llama-bench beside each server, a load test of several clients, the figures in the host report and in the fleet
report; a wrong setting is refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
REPORTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "reports"
HOST = "gpufleet-inference_stack"
TINY = {"llama_bench": {"prompt": 16, "gen": 4, "repetitions": 1},
        "load": {"clients": 3, "requests_per_client": 2, "max_tokens": 8}}


def bench(settings):
    """(rc, output) of bench.yml against the scenario's host."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"), ANSIBLE_FORCE_COLOR="false")
    extra = json.dumps({"gpufleet_bench": settings, "verify_reports_dir": str(REPORTS)})
    cmd = ["ansible-playbook", "-i", inventory, str(PROJECT / "playbooks" / "bench.yml"), "-e", extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def started_at(host, container):
    return host.check_output("docker inspect -f '{{.State.StartedAt}}' %s" % container)


def test_bench_measures_each_service_beside_the_running_server_into_both_reports(host):
    before = {name: started_at(host, "gpufleet-%s-1" % name) for name in ("chat", "chat-long")}
    rc, out = bench(TINY)
    assert rc == 0, out[-3000:]
    report = json.loads((REPORTS / ("%s.json" % HOST)).read_text())
    # verify's part of the report is still there.
    assert {service["name"] for service in report["services"]} == {"chat", "chat-long"}
    measured = {service["name"]: service for service in report["bench"]["services"]}
    assert set(measured) == {"chat", "chat-long"}
    for name, model in (("chat", "gemma-3-270m"), ("chat-long", "gemma-3-270m-long")):
        service = measured[name]
        assert service["model"] == model
        tests = {test["test"]: test for test in service["llama_bench"]["tests"]}
        assert set(tests) == {"pp16", "tg4"}, service["llama_bench"]
        assert all(test["tokens_per_second"] > 0 for test in tests.values())
        assert service["llama_bench"]["model_type"].startswith("gemma3 270M")
        load = service["load"]
        assert (load["clients"], load["requests"], load["completed"], load["errors"]) == (3, 6, 6, 0), load
        assert load["aggregate_tokens_per_second"] > 0
        assert 0 < load["ttft_ms"]["p50"] <= load["ttft_ms"]["p95"]
    # The servers kept running: the benchmarks had containers of their own, gone again.
    assert {name: started_at(host, "gpufleet-%s-1" % name) for name in before} == before
    assert "-run-" not in host.check_output("docker ps -a --format '{{.Names}}'")
    fleet = (REPORTS / "fleet.md").read_text()
    tg4 = next(test for test in measured["chat"]["llama_bench"]["tests"] if test["test"] == "tg4")
    assert "| chat | gemma-3-270m | tg4 | %.2f |" % tg4["tokens_per_second"] in fleet, fleet
    chat_load = measured["chat"]["load"]
    assert "| chat | gemma-3-270m | 3 | 6 | 0 | %.1f |" % chat_load["aggregate_tokens_per_second"] in fleet, fleet
    assert (REPORTS / "fleet-tokens.png").read_bytes().startswith(b"\x89PNG")


def test_a_wrong_setting_is_refused_naming_it_before_anything_runs():
    report = (REPORTS / ("%s.json" % HOST)).read_text()
    rc, out = bench({"load": {"clients": 0}, "llama_bench": {"prompt": 16, "gen": 4, "repetitions": 1}})
    assert rc != 0
    assert "gpufleet_bench.load.clients must be a whole number from 1 to 256 (got 0)" in " ".join(out.split())
    assert "Run the engine's benchmark" not in out
    assert (REPORTS / ("%s.json" % HOST)).read_text() == report

"""playbooks/bench.yml on the deployed vLLM service, as an operator runs it from the controller, with tiny settings:
vllm bench serve from the service's image against the running server, a load test of several clients, the figures
in the host report and in the fleet report, the servers left as they were."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]
REPORTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "reports"
HOST = "gpufleet-vllm_stack"
SERVICE, MODEL = "vllm-chat", "tiny-llama"
# vLLM on 2 CPU cores: a few short requests still give every figure (throughputs, TTFT, TPOT, ITL).
TINY = {"services": [SERVICE],
        "vllm_bench": {"num_prompts": 4, "input_len": 16, "output_len": 8, "max_concurrency": 2},
        "load": {"clients": 2, "requests_per_client": 2, "max_tokens": 8}}


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


def test_vllm_bench_serve_measures_the_running_server_into_both_reports(host):
    containers = [name for name in host.check_output("docker ps --format '{{.Names}}'").split()
                  if name.startswith("gpufleet-")]
    before = {name: started_at(host, name) for name in containers}
    rc, out = bench(TINY)
    assert rc == 0, out[-3000:]
    report = json.loads((REPORTS / ("%s.json" % HOST)).read_text())
    # verify's part of the report is still there.
    assert SERVICE in {service["name"] for service in report["services"]}
    [service] = report["bench"]["services"]
    assert (service["name"], service["engine"], service["model"], service["skipped"]) == (
        SERVICE, "vllm", MODEL, None)
    vllm = service["vllm_bench"]
    assert (vllm["completed"], vllm["failed"], vllm["max_concurrency"]) == (4, 0, 2), vllm
    assert vllm["total_input_tokens"] == 4 * 16, vllm
    assert vllm["output_throughput"] > 0 and vllm["total_token_throughput"] > vllm["output_throughput"]
    assert 0 < vllm["median_ttft_ms"] <= vllm["p95_ttft_ms"] <= vllm["p99_ttft_ms"], vllm
    assert vllm["median_tpot_ms"] > 0 and vllm["median_e2el_ms"] > vllm["median_ttft_ms"]
    load = service["load"]
    assert (load["clients"], load["requests"], load["completed"], load["errors"]) == (2, 4, 4, 0), load
    assert load["warmup_requests"] == 1  # sent first, not measured
    assert load["aggregate_tokens_per_second"] > 0
    assert 0 < load["ttft_ms"]["p50"] <= load["ttft_ms"]["p95"]
    # The servers kept running: the benchmark had a container of its own, gone again.
    assert {name: started_at(host, name) for name in before} == before
    assert "-run-" not in host.check_output("docker ps -a --format '{{.Names}}'")
    fleet = (REPORTS / "fleet.md").read_text()
    assert "| %s | %s | 2 | 4 | %.1f |" % (SERVICE, MODEL, vllm["output_throughput"]) in fleet, fleet
    assert "| %s | %s | 2 | 4 | 0 | %.1f |" % (SERVICE, MODEL, load["aggregate_tokens_per_second"]) in fleet, fleet

"""playbooks/ops.yml on the deployed stack, as an operator runs it from the controller: status, logs, the image's
programs, llama-bench on the served model, a restart of one service, and a wrong service name refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]


def ops(*extra):
    """(rc, output) of ops.yml against the scenario's host."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"), ANSIBLE_FORCE_COLOR="false")
    cmd = ["ansible-playbook", "-i", inventory, str(PROJECT / "playbooks" / "ops.yml"), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def started_at(host, container):
    return host.check_output("docker inspect -f '{{.State.StartedAt}}' %s" % container)


def test_status_names_every_service_healthy():
    rc, out = ops()
    assert rc == 0, out[-3000:]
    flat = " ".join(out.split())
    assert re.search(r"'chat: running - Up [^']*\(healthy\)", flat), out[-3000:]
    assert re.search(r"'chat-long: running - Up [^']*\(healthy\)", flat), out[-3000:]


def test_logs_of_one_service():
    rc, out = ops("-e", "gpufleet_ops=logs", "-e", "gpufleet_ops_service=chat-long", "-e", "gpufleet_ops_lines=20")
    assert rc == 0, out[-3000:]
    assert "chat-long-1  |" in out
    assert "chat-1  |" not in out


def test_tools_lists_the_images_programs():
    rc, out = ops("-e", "gpufleet_ops=tools", "-e", "gpufleet_ops_service=chat")
    assert rc == 0, out[-3000:]
    for program in ("llama-bench", "llama-cli", "llama-quantize", "llama-server"):
        assert f"- {program}" in out
    assert ".so" not in out.split("What it printed")[-1]


def test_llama_bench_runs_on_the_served_model_beside_the_server(host):
    before = started_at(host, "gpufleet-chat-1")
    args = json.dumps({"gpufleet_ops_args": ["-m", "{model}", "-p", "16", "-n", "4", "-r", "1"]})
    rc, out = ops("-e", "gpufleet_ops=tool", "-e", "gpufleet_ops_service=chat", "-e", "gpufleet_ops_tool=llama-bench",
                  "-e", args)
    assert rc == 0, out[-3000:]
    # The callback folds long lines: compare with runs of white space made one.
    flat = " ".join(out.split())
    assert re.search(r"gemma3 270M Q4_K - Medium .*\| pp16 \|", flat), out[-3000:]
    assert re.search(r"\| tg4 \| [0-9.]+ ± [0-9.]+ \|", flat), out[-3000:]
    # The server kept running: the tool had a container of its own.
    assert started_at(host, "gpufleet-chat-1") == before
    assert "gpufleet-chat-run" not in host.check_output("docker ps -a --format '{{.Names}}'")


def test_restart_of_one_service_leaves_the_other(host):
    chat, chat_long = started_at(host, "gpufleet-chat-1"), started_at(host, "gpufleet-chat-long-1")
    rc, out = ops("-e", "gpufleet_ops=restart", "-e", "gpufleet_ops_service=chat")
    assert rc == 0, out[-3000:]
    assert started_at(host, "gpufleet-chat-1") != chat
    assert started_at(host, "gpufleet-chat-long-1") == chat_long
    assert host.check_output("docker inspect -f '{{.State.Health.Status}}' gpufleet-chat-1") == "healthy"


@pytest.mark.parametrize("extra, message", [
    (["-e", "gpufleet_ops=restart", "-e", "gpufleet_ops_service=chta"],
     "gpufleet_ops_service: no service 'chta' in the stack deployed here"),
    (["-e", "gpufleet_ops=reboot"], "gpufleet_ops must be one of status, logs, restart"),
])
def test_wrong_request_is_refused_naming_the_variable(extra, message):
    rc, out = ops(*extra)
    assert rc != 0
    assert message in " ".join(out.split()), out[-3000:]

"""A rollout across the fleet, as its operators meet it.

converge put version 1 of the stack on four hosts through site.yml. Here playbooks/rolling_update.yml
rolls version 2 out (rollout-v2.yml), one host per batch, with a fault on fleet-3 (an engine argument
llama-server refuses). Afterwards fleet-1 and fleet-2 serve version 2, fleet-3 serves version 1 again
(its previous stack put back), fleet-4 still serves version 1 and was never touched; every one answers.
Before that, a rollout onto a fleet with an unhealthy host is refused before any host changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import testinfra

HOSTS = ("fleet-1", "fleet-2", "fleet-3", "fleet-4")
STACK = "/opt/gpufleet/stack"
CONTAINER = "gpufleet-chat-1"
SCENARIO = Path(__file__).resolve().parent.parent
PROJECT = SCENARIO.parent.parent


def node(name):
    return testinfra.get_host(f"docker://{name}")


def served(name):
    """(HTTP status, model names) of /v1/models, and the status of a chat with the key, from inside the host."""
    host = node(name)
    key = host.check_output(f"cat {STACK}/secrets/chat.key")
    models = json.loads(host.check_output("curl -s -H 'Authorization: Bearer %s' http://127.0.0.1:8080/v1/models" % key))
    names = sorted(m["id"] for m in models.get("data", []))
    body = json.dumps({"model": names[0] if names else "", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
    status = host.check_output(
        "curl -s -o /dev/null -w '%%{http_code}' -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' "
        "-d '%s' http://127.0.0.1:8080/v1/chat/completions" % (key, body))
    return names, int(status)


def fingerprint(name):
    """What changes when a host is touched: the engine container's id and start time, the Compose file's mtime."""
    host = node(name)
    container = host.check_output("docker inspect -f '{{.Id}} {{.State.StartedAt}}' %s" % CONTAINER)
    compose = host.check_output(f"stat -c %Y {STACK}/compose.yaml")
    return container, compose


def rollout(name, *extra):
    """Run rolling_update.yml with version 2; its log is kept as .cache/results/fleet-<name>.log."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"), ANSIBLE_FORCE_COLOR="false",
               GPUFLEET_CACHE=str(PROJECT / ".cache"))
    cmd = ["ansible-playbook", "-i", inventory, "-i", str(SCENARIO / "inventory" / "rollout-v2.yml"),
           str(PROJECT / "playbooks" / "rolling_update.yml"), "-e", json.dumps({"gpufleet_rollout_serial": [1]}), *extra]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500, check=False)
    print(f"rolling_update.yml: rc {proc.returncode} in {time.monotonic() - started:.0f} s")
    results = PROJECT / ".cache" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"fleet-{name}.log").write_text(proc.stdout + proc.stderr)
    return proc.returncode, proc.stdout + proc.stderr


def wait_healthy(name, timeout=120):
    host = node(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = host.run("docker inspect -f '{{.State.Health.Status}}' %s" % CONTAINER).stdout.strip()
        if status == "healthy":
            return
        time.sleep(2)
    raise AssertionError(f"{name}: {CONTAINER} not healthy within {timeout} s")


def play_output(log, play):
    """The part of an ansible-playbook log from the header of `play` to the recap (which lists every host)."""
    start = log.find(f"PLAY [{play}]")
    assert start >= 0, log[-3000:]
    end = log.find("PLAY RECAP", start)
    return log[start:end if end >= 0 else None]


def address(name):
    """The host's address on the Docker bridge, where the controller reaches its published services: the source
    address of its default route, as Ansible's default_ipv4 fact reads it."""
    route = node(name).check_output("ip -4 route get 8.8.8.8").split()
    return route[route.index("src") + 1]


def verify_only(name, tmp_path, **extra):
    """The verify role alone on one host (no inference_stack in the play: the endpoints come from endpoints.json)."""
    playbook = tmp_path / "verify-only.yml"
    playbook.write_text(f"- name: Verify only\n  hosts: {name}\n  gather_facts: false\n"
                        "  roles: [gpufleet.inference.verify]\n")
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"), ANSIBLE_FORCE_COLOR="false",
               GPUFLEET_CACHE=str(PROJECT / ".cache"))
    extra = dict({"verify_reports_dir": str(tmp_path / "reports")}, **extra)
    proc = subprocess.run(["ansible-playbook", "-i", inventory, str(playbook), "-e", json.dumps(extra)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr, tmp_path / "reports" / f"{name}.json"


@pytest.mark.parametrize("name", HOSTS)
def test_converge_probed_each_service_at_its_published_address(name):
    """site.yml's verify asked each host's service again from the controller, at the host's bridge address."""
    report = json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / f"{name}.json").read_text())
    published = {service["name"]: service["published"] for service in report["services"]}
    ip = address(name)
    assert published["chat"] == {"name": "chat", "address": ip, "url": f"http://{ip}:8080", "probe": True, "note": ""}


def test_verify_alone_reads_the_stack_s_endpoints_from_the_host(tmp_path):
    rc, log, report = verify_only("fleet-1", tmp_path, verify_public_host=address("fleet-1"))
    assert rc == 0, log[-4000:]
    service = json.loads(report.read_text())["services"][0]
    assert service["api_key_file"] == f"{STACK}/secrets/chat.key"
    assert service["models"] == ["fleet-v1"] and service["unauthorized_status"] == 401
    assert service["published"]["probe"] is True


def test_an_unreachable_published_address_fails_naming_service_address_and_cause(tmp_path):
    """The service answers on the host, but not where users are told to reach it: 127.0.0.2 on the controller,
    where nothing listens on the port (a wrong verify_public_host, as a wrong bind address or a firewall would)."""
    rc, log, _report = verify_only("fleet-1", tmp_path, verify_public_host="127.0.0.2", verify_published_timeout=3)
    assert rc != 0
    assert "gpufleet_services (chat) at its published address http://127.0.0.2:8080 (from the controller): " in log
    assert "nothing accepts connections there" in log, log[-3000:]
    assert served("fleet-1") == (["fleet-v1"], 200)


@pytest.fixture(scope="module")
def refused():
    """A rollout while fleet-2's engine container is stopped: refused before any host changes."""
    before = {name: fingerprint(name) for name in HOSTS}
    node("fleet-2").check_output(f"docker stop {CONTAINER}")
    try:
        rc, log = rollout("refused")
    finally:
        node("fleet-2").check_output(f"docker start {CONTAINER}")
        wait_healthy("fleet-2")
    return rc, log, before


def test_rollout_onto_unhealthy_fleet_is_refused(refused):
    rc, log = refused[:2]
    assert rc != 0
    assert "1 of the 4 deployed hosts are unhealthy" in log, log[-3000:]
    assert "fleet-2" in log and CONTAINER in log
    assert "PLAY [Roll out]" not in log


def test_refused_rollout_changed_no_host(refused):
    before = refused[2]
    for name in ("fleet-1", "fleet-3", "fleet-4"):
        assert fingerprint(name) == before[name], name
        assert served(name) == (["fleet-v1"], 200), name


@pytest.fixture(scope="module")
def rolled(refused):
    before = {name: fingerprint(name) for name in HOSTS}
    rc, log = rollout("rollout")
    return rc, log, before


def test_rollout_fails_and_names_the_host_and_service(rolled):
    rc, log = rolled[:2]
    assert rc != 0
    failure = re.search(r"gpufleet_services on fleet-3: the new stack failed \((.*?)\)\. The stack that passed last", log, re.S)
    assert failure, play_output(log, "Roll out")[-4000:]
    assert "chat" in failure.group(1) or CONTAINER in failure.group(1)
    assert "put back and passed verify again" in log
    # Why: llama-server's own words, from the failed container's last log lines.
    why = re.search(r"Service chat, its last log lines: (.*)", log)
    assert why and "no-such-option" in why.group(1), failure.group(0)


@pytest.mark.parametrize("name", ["fleet-1", "fleet-2"])
def test_hosts_before_the_fault_serve_version_2(rolled, name):
    assert served(name) == (["fleet-v2"], 200)


def test_failed_host_serves_version_1_again(rolled):
    before = rolled[2]
    assert served("fleet-3") == (["fleet-v1"], 200)
    # Its stack was replaced twice (version 2, then version 1 again), not left alone.
    assert fingerprint("fleet-3")[0] != before["fleet-3"][0]
    assert node("fleet-3").check_output(f"grep -c 'fleet-v1' {STACK}/compose.yaml") != "0"


def test_host_after_the_fault_was_never_touched(rolled):
    log, before = rolled[1:]
    assert served("fleet-4") == (["fleet-v1"], 200)
    assert fingerprint("fleet-4") == before["fleet-4"]
    assert "fleet-4" not in play_output(log, "Roll out")


def test_rollout_went_one_host_at_a_time(rolled):
    log = rolled[1]
    roll = play_output(log, "Roll out")
    # One play header per batch: fleet-1 (the canary), fleet-2, fleet-3; none for fleet-4.
    assert roll.count("PLAY [Roll out]") == 3
    assert "NO MORE HOSTS LEFT" in roll


def test_killed_engine_is_restarted(rolled):
    """llama-server killed inside its container (as the OOM killer would): Docker restarts it, it answers again."""
    host = node("fleet-4")
    started = host.check_output("docker inspect -f '{{.State.StartedAt}}' %s" % CONTAINER)
    pid = host.check_output("docker inspect -f '{{.State.Pid}}' %s" % CONTAINER)
    host.check_output(f"kill -KILL {pid}")
    time.sleep(3)
    wait_healthy("fleet-4")
    assert host.check_output("docker inspect -f '{{.State.StartedAt}}' %s" % CONTAINER) != started
    assert served("fleet-4") == (["fleet-v1"], 200)


def test_engine_restart_leaves_the_stack_serving(rolled):
    """systemctl restart docker: the stack answers again by itself within 60 s (live-restore keeps it running)."""
    host = node("fleet-2")
    host.check_output("systemctl restart docker")
    deadline = time.monotonic() + 60
    while True:
        try:
            if served("fleet-2") == (["fleet-v2"], 200):
                break
        except (AssertionError, RuntimeError, ValueError):
            pass
        assert time.monotonic() < deadline, "fleet-2 did not serve within 60 s of an engine restart"
        time.sleep(2)


# Secrets the last run sets (an API key, a Hugging Face token, the password of a model URL with basic
# auth): none may appear in its -vvv log.
SECRETS = {
    "api_key": "fleet4-api-key-5f0c1d9e7a3b",
    "hf_token": "hf_fleet4TokenQ8w2e4r6t8y0",
    "url_password": "fleet4-url-pass-73kq",
}
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def site_run(extra_vars=None, verbosity=None, kill_at=None, limit="fleet-4"):
    """site.yml on fleet-4 (or `limit`) with version 2; killed when a line containing kill_at shows, if given."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"), ANSIBLE_FORCE_COLOR="false",
               GPUFLEET_CACHE=str(PROJECT / ".cache"), PYTHONUNBUFFERED="1")
    cmd = ["ansible-playbook", "-i", inventory, "-i", str(SCENARIO / "inventory" / "rollout-v2.yml"),
           str(PROJECT / "playbooks" / "site.yml"), "--limit", limit]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if verbosity:
        cmd.append(verbosity)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if kill_at and kill_at in line:
            time.sleep(1)
            proc.kill()
            break
    proc.wait(timeout=900)
    return proc.returncode, "".join(lines)


@pytest.fixture(scope="module")
def interrupted_then_rerun(rolled):
    """site.yml killed half-way through fleet-4's stack change, then run again at -vvv with secrets set."""
    killed_rc, killed_log = site_run(kill_at="Deploy | Compose file")
    # A plain file server on the host's loopback for the model behind a URL with credentials in it.
    node("fleet-4").check_output("systemd-run --unit=fleet-files python3 -m http.server 18099 --bind 127.0.0.1 "
                                 "--directory /srv/gpufleet-models")
    # Published: the key also goes to the probe from the controller.
    services = [{"name": "chat", "engine": "llamacpp", "model": "gemma-3-270m", "served_name": "fleet-v2",
                 "port": 8080, "bind_address": "0.0.0.0", "context": 2048, "api_key": SECRETS["api_key"]}]
    models = [{"name": "gemma-3-270m", "path": "/srv/gpufleet-models/gemma-3-270m-q4_k_m.gguf", "sha256": MODEL_SHA256},
              {"name": "gemma-3-270m-url", "sha256": MODEL_SHA256,
               "url": f"http://ops:{SECRETS['url_password']}@127.0.0.1:18099/gemma-3-270m-q4_k_m.gguf"}]
    extra = {"gpufleet_services": services, "gpufleet_models": models, "gpufleet_hf_token": SECRETS["hf_token"]}
    rc, log = site_run(extra, verbosity="-vvv")
    (PROJECT / ".cache" / "results" / "fleet-vvv.log").write_text(log)
    return killed_rc, killed_log, rc, log


def test_interrupted_run_converges_on_the_next(interrupted_then_rerun):
    killed_rc, killed_log, rc, log = interrupted_then_rerun
    assert killed_rc != 0, killed_log[-2000:]
    assert "Deploy | Compose file" in killed_log
    assert rc == 0, log[-4000:]
    assert served("fleet-4") == (["fleet-v2"], 200)
    assert node("fleet-4").check_output(f"cat {STACK}/secrets/chat.key") == SECRETS["api_key"]
    assert node("fleet-4").file("/opt/gpufleet/models/gemma-3-270m-url/gemma-3-270m-q4_k_m.gguf").exists


@pytest.mark.parametrize("secret", SECRETS)
def test_no_secret_in_a_vvv_log(interrupted_then_rerun, secret):
    log = interrupted_then_rerun[3]
    assert len(log) > 100_000  # -vvv: every module's arguments and results
    assert SECRETS[secret] not in log


@pytest.fixture(scope="module")
def unchanged_then_drifted(interrupted_then_rerun):
    """site.yml on fleet-1 (version 2 since the rollout) with the early end on: once as the rollout left it, once
    after its engine container was stopped behind the collection's back."""
    wait_healthy("fleet-1")
    before = fingerprint("fleet-1")
    skip = {"gpufleet_skip_unchanged": True}
    started = time.monotonic()
    first = site_run(skip, limit="fleet-1")
    seconds = time.monotonic() - started
    after = fingerprint("fleet-1")
    node("fleet-1").check_output(f"docker stop {CONTAINER}")
    second = site_run(skip, limit="fleet-1")
    return before, first, seconds, after, second


def test_unchanged_host_ends_early(unchanged_then_drifted):
    before, (rc, log), seconds, after, _second = unchanged_then_drifted
    assert rc == 0, log[-4000:]
    assert "Nothing changed since the run that passed" in log, log[-4000:]
    assert re.search(r"fleet-1\s+: ok=\d+\s+changed=0 ", log), log[-1500:]
    # No role ran: the host ended after its check.
    assert "gpufleet.inference.preflight" not in log and "Verify the endpoints" not in log
    assert after == before
    print(f"site.yml on an unchanged host: {seconds:.1f} s")


def test_drifted_host_runs_every_step_and_is_repaired(unchanged_then_drifted):
    rc, log = unchanged_then_drifted[4]
    assert rc == 0, log[-4000:]
    assert f"Every step runs: container {CONTAINER} is exited" in log, log[-4000:]
    assert "Verify the endpoints" in log
    assert served("fleet-1") == (["fleet-v2"], 200)


@pytest.fixture(scope="module")
def removed(unchanged_then_drifted):
    """site.yml on fleet-4 with no services left, then with gpufleet_stack_state: absent."""
    emptied = site_run({"gpufleet_services": []})
    host = node("fleet-4")
    after_empty = {
        "containers": host.check_output("docker ps -a --format '{{.Names}}'"),
        "compose": host.file(f"{STACK}/compose.yaml").exists,
        "key": host.file(f"{STACK}/secrets/chat.key").exists,
    }
    absent = site_run({"gpufleet_stack_state": "absent"})
    return emptied, after_empty, absent


def test_no_services_left_takes_the_stack_down_and_keeps_keys_and_models(removed):
    (rc, log), after, _absent = removed
    assert rc == 0, log[-4000:]
    assert CONTAINER not in after["containers"]
    assert not after["compose"]
    assert after["key"]
    assert node("fleet-4").file("/opt/gpufleet/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf").exists


def test_stack_state_absent_removes_the_stack_directory_but_not_the_models(removed):
    rc, log = removed[2]
    assert rc == 0, log[-4000:]
    host = node("fleet-4")
    assert not host.file(STACK).exists
    assert CONTAINER not in host.check_output("docker ps -a --format '{{.Names}}'")
    assert host.file("/opt/gpufleet/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf").exists

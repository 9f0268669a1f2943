# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""converge_record's main() against tests/support/fake_docker_api.py and real files: a host whose last run passed
ends early only while nothing that run left behind has changed."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.gpufleet.inference.plugins.modules import converge_record
from ansible_collections.gpufleet.inference.tests.support.fake_docker_api import FakeDockerApi
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

INPUTS = "a" * 64


def labels(service, project="gpufleet"):
    return {"org.gpufleet.service": service, "com.docker.compose.project": project,
            "com.docker.compose.project.config_files": "/opt/gpufleet/stack/compose.yaml"}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host: a Docker engine with one healthy engine container mounting a model and a key read-only and a cache
    read-write, a package database and an engine configuration."""
    monkeypatch.setattr(converge_record, "_boot_id", lambda: "boot-1")
    files = {name: tmp_path / name for name in ("model.gguf", "chat.key", "dpkg-status", "daemon.json")}
    for path in files.values():
        path.write_text(path.name)
    (tmp_path / "sources").mkdir()
    (tmp_path / "cache").mkdir()
    with FakeDockerApi(tmp_path / "docker.sock") as api:
        api.add("c1", "gpufleet-chat-1", "sha256:img1", labels("chat"), [],
                mounts=[(str(files["model.gguf"]), "/models/model.gguf", False),
                        (str(files["chat.key"]), "/run/secrets/chat.key", False),
                        (str(tmp_path / "cache"), "/root/.cache", True)])
        yield {"api": api, "tmp": tmp_path, "files": files,
               "args": {"docker_host": "unix://" + api.path, "path": str(tmp_path / "state" / "converged.json"),
                        "inputs": INPUTS, "watch": [str(files["dpkg-status"]), str(files["daemon.json"]),
                                                    str(tmp_path / "sources")]}}


def run(host, check_mode=False, **args):
    module_args = dict(host["args"], **args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    with set_module_args(module_args), pytest.raises((AnsibleExitJson, AnsibleFailJson)) as caught:
        converge_record.main()
    return caught.value.args[0], isinstance(caught.value, AnsibleFailJson)


def recorded(host):
    result, failed = run(host, state="record")
    assert not failed, result["msg"]
    return result


def reasons(host, **args):
    result, failed = run(host, **args)
    assert not failed, result["msg"]
    assert result["converged"] is (not result["reasons"])
    return result["reasons"]


def bump(path):
    """What an edit does to a file: a new modification time (and here the same size)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_no_record_means_every_step_runs(host):
    assert reasons(host) == ["no record of a run that passed on this host"]


def test_a_recorded_host_is_converged_until_something_changes(host):
    result = recorded(host)
    assert result["changed"] is True
    record = host["tmp"] / "state" / "converged.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert INPUTS in record.read_text()
    assert reasons(host) == []
    # Recording the same state again renews the time only.
    assert recorded(host)["changed"] is False


def test_a_stopped_container(host):
    recorded(host)
    host["api"].containers["c1"]["State"]["Status"] = "exited"
    assert reasons(host) == ["container gpufleet-chat-1 is exited"]


@pytest.mark.parametrize("status, health", [("Up 3 seconds (health: starting)", "starting"),
                                            ("Up 2 hours (unhealthy)", "unhealthy")])
def test_a_container_that_is_not_healthy(host, status, health):
    recorded(host)
    host["api"].containers["c1"]["Status"] = status
    assert reasons(host) == [f"container gpufleet-chat-1 is {health}"]


def test_a_recreated_or_missing_or_new_container(host):
    recorded(host)
    container = host["api"].containers.pop("c1")
    assert reasons(host) == ["container gpufleet-chat-1 is gone", "changed since: "
                             + ", ".join(sorted([str(host["files"]["chat.key"]), str(host["files"]["model.gguf"]),
                                                 "/opt/gpufleet/stack/compose.yaml"]))]
    host["api"].containers["c2"] = dict(container, Id="c2")
    assert reasons(host) == ["container gpufleet-chat-1 was recreated"]
    host["api"].add("c3", "gpufleet-embed-1", "sha256:img1", labels("embed"), [])
    assert "container gpufleet-embed-1 is new" in reasons(host)


def test_another_projects_containers_do_not_count(host):
    recorded(host)
    host["api"].add("b1", "bench-chat-1", "sha256:img9", labels("chat", project="bench"), [], state="exited")
    assert reasons(host) == []


def test_a_tool_run_beside_the_stack_does_not_count(host):
    """``docker compose run`` (the ops playbook's tools, bench.yml's llama-bench) makes a one-off container of the
    project, created or running while the tool runs: it is not one of the stack's servers."""
    recorded(host)
    host["api"].add("t1", "gpufleet-chat-run-0123abcd", "sha256:img1",
                    dict(labels("chat"), **{"com.docker.compose.oneoff": "True"}), [], state="created")
    assert reasons(host) == []
    result = recorded(host)
    assert list(result["containers"]) == ["gpufleet-chat-1"]


def test_a_changed_model_or_key_the_stack_mounts(host):
    recorded(host)
    bump(host["files"]["model.gguf"])
    assert reasons(host) == [f"changed since: {host['files']['model.gguf']}"]


def test_writes_to_a_read_write_mount_do_not_count(host):
    recorded(host)
    (host["tmp"] / "cache" / "compiled.bin").write_text("x")
    assert reasons(host) == []


def test_watched_files_and_directory_trees(host):
    recorded(host)
    (host["tmp"] / "sources" / "cuda.sources").write_text("Types: deb\n")
    bump(host["files"]["dpkg-status"])
    changed = sorted([str(host["files"]["dpkg-status"]), str(host["tmp"] / "sources")])
    assert reasons(host) == ["changed since: " + ", ".join(changed)]


def test_other_inputs(host):
    recorded(host)
    assert reasons(host, inputs="b" * 64) == ["the inventory's variables or the collection changed"]


def test_a_restarted_host(host, monkeypatch):
    recorded(host)
    monkeypatch.setattr(converge_record, "_boot_id", lambda: "boot-2")
    assert reasons(host) == ["the host was restarted"]


def test_an_old_record(host):
    recorded(host)
    record_path = host["tmp"] / "state" / "converged.json"
    record = json.loads(record_path.read_text())
    record["recorded_at"] -= 2 * 86400
    record_path.write_text(json.dumps(record))
    assert reasons(host) == ["the last full run was 48.0 h ago (more than 24 h)"]
    assert reasons(host, max_age=0) == []


def test_an_engine_that_does_not_answer(host):
    recorded(host)
    result, failed = run(host, docker_host="unix://" + str(host["tmp"] / "nothing.sock"))
    assert not failed
    assert "container gpufleet-chat-1 is gone" in result["reasons"]
    assert any(reason.startswith("the Docker engine does not answer") for reason in result["reasons"])


def test_a_stack_that_is_not_running_is_not_recorded(host):
    host["api"].containers["c1"]["State"]["Status"] = "restarting"
    result, failed = run(host, state="record")
    assert failed
    assert result["msg"] == ("converge_record: not recording a host whose stack is not running: "
                             "container gpufleet-chat-1 is restarting")
    assert not (host["tmp"] / "state" / "converged.json").exists()


def test_check_mode_writes_nothing(host):
    result, failed = run(host, check_mode=True, state="record")
    assert not failed
    assert result["changed"] is True
    assert not (host["tmp"] / "state" / "converged.json").exists()


def test_an_unreadable_record(host):
    (host["tmp"] / "state").mkdir()
    (host["tmp"] / "state" / "converged.json").write_text("{not json")
    assert reasons(host) == ["no record of a run that passed on this host"]

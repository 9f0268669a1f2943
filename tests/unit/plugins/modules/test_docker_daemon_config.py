# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.gpufleet.inference.plugins.modules import docker_daemon_config
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)
from ansible_collections.gpufleet.inference.tests.unit.utils.module_process import run_module

# What `nvidia-ctk runtime configure --runtime=docker` leaves in daemon.json.
NVIDIA_RUNTIME = {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}
PAST = 1_600_000_000  # a fixed mtime in the past, so a rewrite cannot go unnoticed


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


def run(args, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with set_module_args(args), pytest.raises(AnsibleExitJson) as exc:
        docker_daemon_config.main()
    return exc.value.args[0]


def run_fail(args):
    with set_module_args(args), pytest.raises(AnsibleFailJson) as exc:
        docker_daemon_config.main()
    return exc.value.args[0]


def write(path, content, mode=0o644):
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=4) + "\n", encoding="utf-8")
    os.chmod(path, mode)
    os.utime(path, (PAST, PAST))
    return path


def snapshot(path):
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_ino, stat.S_IMODE(st.st_mode)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".daemon.json."))


@pytest.fixture
def daemon_json(tmp_path):
    return tmp_path / "daemon.json"


def test_keys_not_in_settings_survive(daemon_json):
    write(daemon_json, {"runtimes": NVIDIA_RUNTIME, "default-runtime": "nvidia", "features": {"cdi": True}})

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert result["changed"] is True
    on_disk = json.loads(daemon_json.read_text())
    assert on_disk == {
        "runtimes": NVIDIA_RUNTIME,
        "default-runtime": "nvidia",
        "features": {"cdi": True},
        "log-driver": "json-file",
    }
    assert result["config"] == on_disk
    assert result["changed_keys"] == ["log-driver"]
    assert leftovers(daemon_json.parent) == []


def test_nested_log_opts_merge(daemon_json):
    write(daemon_json, {"log-driver": "json-file", "log-opts": {"max-size": "10m", "labels": "team"}})

    result = run({"path": str(daemon_json), "settings": {"log-opts": {"max-size": "100m", "max-file": "3"}}})

    assert result["changed"] is True
    assert json.loads(daemon_json.read_text())["log-opts"] == {"max-size": "100m", "max-file": "3", "labels": "team"}
    assert sorted(result["changed_keys"]) == ["log-opts.max-file", "log-opts.max-size"]


def test_null_removes_a_key(daemon_json):
    write(daemon_json, {"graph": "/var/lib/docker", "runtimes": NVIDIA_RUNTIME, "log-opts": {"max-size": "10m", "mode": "non-blocking"}})

    result = run({"path": str(daemon_json), "settings": {"graph": None, "data-root": "/srv/docker", "log-opts": {"mode": None}}})

    assert result["changed"] is True
    assert json.loads(daemon_json.read_text()) == {
        "runtimes": NVIDIA_RUNTIME,
        "log-opts": {"max-size": "10m"},
        "data-root": "/srv/docker",
    }
    assert sorted(result["changed_keys"]) == ["data-root", "graph", "log-opts.mode"]


def test_null_for_an_absent_key_changes_nothing(daemon_json):
    write(daemon_json, {"runtimes": NVIDIA_RUNTIME})
    before = snapshot(daemon_json)

    result = run({"path": str(daemon_json), "settings": {"graph": None}})

    assert result["changed"] is False
    assert result["changed_keys"] == []
    assert snapshot(daemon_json) == before


def test_second_run_is_idempotent_and_does_not_touch_the_file(daemon_json):
    write(daemon_json, {"runtimes": NVIDIA_RUNTIME})
    settings = {"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}, "graph": None}

    first = run({"path": str(daemon_json), "settings": settings})
    assert first["changed"] is True
    os.utime(daemon_json, (PAST, PAST))
    before = snapshot(daemon_json)

    second = run({"path": str(daemon_json), "settings": settings})

    assert second["changed"] is False
    assert second["changed_keys"] == []
    assert second["config"] == first["config"]
    assert snapshot(daemon_json) == before  # same bytes, mtime and inode: not rewritten


def test_hand_formatted_file_with_the_settings_is_not_rewritten(daemon_json):
    hand_made = (
        "{\n"
        '    "runtimes": { "nvidia": { "path": "nvidia-container-runtime", "args": [] } },\n'
        '\t"log-opts":   {"max-file":"3",   "max-size" : "100m"},\n'
        '  "log-driver": "json-file"\n'
        "}"
    )
    write(daemon_json, hand_made, mode=0o640)
    before = snapshot(daemon_json)

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file", "log-opts": {"max-size": "100m"}}})

    assert result["changed"] is False
    assert snapshot(daemon_json) == before
    assert daemon_json.read_text() == hand_made


def test_check_mode_reports_the_change_and_leaves_the_file(daemon_json):
    write(daemon_json, {"runtimes": NVIDIA_RUNTIME, "log-opts": {"max-size": "10m"}})
    before = snapshot(daemon_json)

    result = run(
        {"path": str(daemon_json), "settings": {"log-opts": {"max-size": "100m"}, "live-restore": True}, "backup": True},
        check_mode=True,
    )

    assert result["changed"] is True
    assert sorted(result["changed_keys"]) == ["live-restore", "log-opts.max-size"]
    assert result["config"] == {"runtimes": NVIDIA_RUNTIME, "log-opts": {"max-size": "100m"}, "live-restore": True}
    assert "backup_file" not in result
    assert snapshot(daemon_json) == before
    assert sorted(p.name for p in daemon_json.parent.iterdir()) == ["daemon.json"]


def test_check_mode_on_a_missing_file_creates_nothing(tmp_path):
    path = tmp_path / "etc" / "docker" / "daemon.json"

    result = run({"path": str(path), "settings": {"log-driver": "json-file"}}, check_mode=True)

    assert result["changed"] is True
    assert result["changed_keys"] == ["log-driver"]
    assert not (tmp_path / "etc").exists()


def test_diff_mode_returns_before_and_after(daemon_json):
    original = {"runtimes": NVIDIA_RUNTIME, "log-opts": {"max-size": "10m"}}
    write(daemon_json, original)

    result = run({"path": str(daemon_json), "settings": {"log-opts": {"max-size": "100m"}}}, diff=True)

    diff = result["diff"]
    assert json.loads(diff["before"]) == original
    assert json.loads(diff["after"]) == {"runtimes": NVIDIA_RUNTIME, "log-opts": {"max-size": "100m"}}
    assert diff["after"] == daemon_json.read_text()
    assert diff["before_header"] == diff["after_header"] == str(daemon_json)


def test_diff_mode_for_a_new_file_has_empty_before(daemon_json):
    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}}, diff=True, check_mode=True)

    assert result["diff"]["before"] == ""
    assert json.loads(result["diff"]["after"]) == {"log-driver": "json-file"}
    assert not daemon_json.exists()


def test_no_diff_when_nothing_changes(daemon_json):
    write(daemon_json, {"log-driver": "json-file"})

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}}, diff=True)

    assert result["changed"] is False
    assert "diff" not in result


def test_missing_file_is_created_with_mode_0644(daemon_json, umask):
    umask(0o022)

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert result["changed"] is True
    assert json.loads(daemon_json.read_text()) == {"log-driver": "json-file"}
    assert daemon_json.read_text().endswith("}\n")
    assert stat.S_IMODE(daemon_json.stat().st_mode) == 0o644
    assert leftovers(daemon_json.parent) == []


def test_missing_file_gets_the_mode_option(daemon_json, umask):
    umask(0o022)

    run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}, "mode": "0600"})

    assert stat.S_IMODE(daemon_json.stat().st_mode) == 0o600


def test_missing_file_gets_default_mode_0644_whatever_the_umask(daemon_json, umask):
    umask(0o027)

    run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert stat.S_IMODE(daemon_json.stat().st_mode) == 0o644


def test_missing_file_with_empty_settings_is_still_created(daemon_json):
    result = run({"path": str(daemon_json), "settings": {}})

    assert result["changed"] is True
    assert result["changed_keys"] == []
    assert json.loads(daemon_json.read_text()) == {}


def test_missing_directory_is_created(tmp_path):
    path = tmp_path / "etc" / "docker" / "daemon.json"

    result = run({"path": str(path), "settings": {"runtimes": NVIDIA_RUNTIME}})

    assert result["changed"] is True
    assert json.loads(path.read_text()) == {"runtimes": NVIDIA_RUNTIME}


def test_existing_file_keeps_its_mode(daemon_json):
    write(daemon_json, {"runtimes": NVIDIA_RUNTIME}, mode=0o600)

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}, "mode": "0644"})

    assert result["changed"] is True
    assert json.loads(daemon_json.read_text())["log-driver"] == "json-file"
    assert stat.S_IMODE(daemon_json.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["", "\n", "  \n\t\n"])
def test_empty_file_is_treated_as_empty_object(daemon_json, content):
    write(daemon_json, content)

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert result["changed"] is True
    assert result["changed_keys"] == ["log-driver"]
    assert json.loads(daemon_json.read_text()) == {"log-driver": "json-file"}


def test_empty_file_with_empty_settings_is_left_alone(daemon_json):
    write(daemon_json, "")
    before = snapshot(daemon_json)

    result = run({"path": str(daemon_json), "settings": {}})

    assert result["changed"] is False
    assert result["config"] == {}
    assert snapshot(daemon_json) == before


@pytest.mark.parametrize(
    "content",
    [
        '{"log-driver": "json-file",}\n',  # trailing comma
        '{"log-driver": "json-file"\n',  # truncated
        "# comment\n{}\n",
    ],
)
def test_invalid_json_fails_and_leaves_the_file(daemon_json, content):
    write(daemon_json, content, mode=0o600)
    before = snapshot(daemon_json)

    result = run_fail({"path": str(daemon_json), "settings": {"log-driver": "json-file"}, "backup": True})

    assert result["failed"] is True
    assert str(daemon_json) in result["msg"]
    assert "not valid JSON" in result["msg"]
    assert snapshot(daemon_json) == before
    assert sorted(p.name for p in daemon_json.parent.iterdir()) == ["daemon.json"]


@pytest.mark.parametrize("content, kind", [('["log-driver"]\n', "list"), ('"json-file"\n', "str"), ("42\n", "int")])
def test_json_that_is_not_an_object_fails(daemon_json, content, kind):
    write(daemon_json, content)
    before = snapshot(daemon_json)

    result = run_fail({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert str(daemon_json) in result["msg"]
    assert f"JSON {kind}" in result["msg"]
    assert "not an object" in result["msg"]
    assert snapshot(daemon_json) == before


def test_backup_keeps_the_old_content(daemon_json):
    old = write(daemon_json, '{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}, "graph": "/x"}').read_bytes()

    result = run({"path": str(daemon_json), "settings": {"graph": None}, "backup": True})

    assert result["changed"] is True
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(daemon_json.parent)
    assert os.path.basename(backup).startswith("daemon.json.")
    with open(backup, "rb") as handle:
        assert handle.read() == old
    assert json.loads(daemon_json.read_text()) == {"runtimes": NVIDIA_RUNTIME}


def test_backup_is_not_made_when_nothing_changes(daemon_json):
    write(daemon_json, {"log-driver": "json-file"})

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}, "backup": True})

    assert result["changed"] is False
    assert "backup_file" not in result
    assert sorted(p.name for p in daemon_json.parent.iterdir()) == ["daemon.json"]


def test_backup_is_not_made_for_a_new_file(daemon_json):
    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}, "backup": True})

    assert result["changed"] is True
    assert "backup_file" not in result
    assert sorted(p.name for p in daemon_json.parent.iterdir()) == ["daemon.json"]


def test_no_backup_unless_asked(daemon_json):
    write(daemon_json, {"log-driver": "syslog"})

    result = run({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert "backup_file" not in result
    assert sorted(p.name for p in daemon_json.parent.iterdir()) == ["daemon.json"]


def test_changed_keys_lists_added_changed_and_removed_paths(daemon_json):
    write(
        daemon_json,
        {
            "runtimes": NVIDIA_RUNTIME,
            "log-driver": "json-file",
            "log-opts": {"max-size": "10m", "compress": "true"},
            "graph": "/var/lib/docker",
            "live-restore": 1,
        },
    )

    result = run(
        {
            "path": str(daemon_json),
            "settings": {
                "log-driver": "json-file",  # same value: not listed
                "log-opts": {"max-size": "100m", "compress": None, "max-file": "3"},
                "graph": None,
                "data-root": "/srv/docker",
                "live-restore": True,  # 1 -> true is a change as JSON
            },
        }
    )

    assert sorted(result["changed_keys"]) == sorted(
        ["log-opts.max-size", "log-opts.compress", "log-opts.max-file", "graph", "data-root", "live-restore"]
    )
    assert json.loads(daemon_json.read_text())["live-restore"] is True


def test_settings_is_required(daemon_json):
    result = run_fail({"path": str(daemon_json)})

    assert "settings" in result["msg"]
    assert not daemon_json.exists()


def test_1_to_true_alone_is_a_change(daemon_json):
    write(daemon_json, {"live-restore": 1})

    result = run({"path": str(daemon_json), "settings": {"live-restore": True}})

    assert result["changed"] is True
    assert result["changed_keys"] == ["live-restore"]
    assert json.loads(daemon_json.read_text()) == {"live-restore": True}


def test_failed_write_leaves_no_temp_file_and_the_old_file(daemon_json, monkeypatch):
    write(daemon_json, {"runtimes": NVIDIA_RUNTIME})
    before = snapshot(daemon_json)

    def failing_atomic_move(self, src, dest, *args, **kwargs):
        self.fail_json(msg=f"Could not replace file: {src} to {dest}")

    monkeypatch.setattr(docker_daemon_config.AnsibleModule, "atomic_move", failing_atomic_move)

    result = run_fail({"path": str(daemon_json), "settings": {"log-driver": "json-file"}})

    assert "Could not replace file" in result["msg"]
    assert snapshot(daemon_json) == before
    assert leftovers(daemon_json.parent) == []


PROXY_PASSWORD = "pr0xy-pa55-never-shown"
MIRROR_TOKEN = "mirror-t0ken-never-shown"


def test_credentials_are_masked_in_the_result_and_the_diff_but_written_to_the_file(daemon_json):
    write(daemon_json, {"registry-mirrors": ["https://%s@mirror.example.internal" % MIRROR_TOKEN],
                        "runtimes": NVIDIA_RUNTIME})
    settings = {"proxies": {"http-proxy": "http://fleet:%s@proxy.example.internal:3128" % PROXY_PASSWORD,
                            "no-proxy": "127.0.0.1,localhost"}}

    result = run({"path": str(daemon_json), "settings": settings}, diff=True)

    assert result["config"]["proxies"] == {"http-proxy": "http://fleet:********@proxy.example.internal:3128",
                                           "no-proxy": "127.0.0.1,localhost"}
    assert result["config"]["registry-mirrors"] == ["https://********@mirror.example.internal"]
    assert result["config"]["runtimes"] == NVIDIA_RUNTIME
    assert result["changed_keys"] == ["proxies"]
    assert "proxy.example.internal:3128" in result["diff"]["after"]
    for secret in (PROXY_PASSWORD, MIRROR_TOKEN):
        assert secret not in json.dumps(result)
    written = json.loads(daemon_json.read_text(encoding="utf-8"))
    assert written["proxies"]["http-proxy"] == settings["proxies"]["http-proxy"]
    assert written["registry-mirrors"] == ["https://%s@mirror.example.internal" % MIRROR_TOKEN]


def test_a_key_named_like_a_secret_is_masked_whole(daemon_json):
    result = run({"path": str(daemon_json), "settings": {"x-registry": {"password": "hunter2-never-shown", "user": "fleet"}}})

    assert result["config"]["x-registry"] == {"password": "********", "user": "fleet"}


def test_no_credential_reaches_the_output_of_the_module(daemon_json):
    write(daemon_json, {"registry-mirrors": ["https://%s@mirror.example.internal" % MIRROR_TOKEN]})
    settings = {"proxies": {"https-proxy": "http://fleet:%s@proxy.example.internal:3128" % PROXY_PASSWORD}}

    result, printed = run_module("docker_daemon_config", {"path": str(daemon_json), "settings": settings,
                                                          "_ansible_diff": True})

    assert result["changed"] is True, printed
    assert "diff" in result
    assert PROXY_PASSWORD not in printed
    assert MIRROR_TOKEN not in printed
    assert json.loads(daemon_json.read_text(encoding="utf-8"))["proxies"] == settings["proxies"]

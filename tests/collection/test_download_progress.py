# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The models role shows each download's progress while it runs, per host and model, at default verbosity.

``ansible-playbook`` runs the role's download tasks for two inventory hosts at once (local connections, a models
directory each) against tests/support/fake_hub.py, throttled so that every file takes a few seconds: one model
from the hub and one from a plain URL per host. The lines a user reads are taken from the captured output of the
default callback.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from fake_hub import FakeHub  # noqa: E402 pylint: disable=wrong-import-position

BIN = Path(sys.executable).parent
REPO = "org/tiny-gguf"
SIZE = 4 * 1000 * 1000
RATE = 500 * 1000  # bytes per second per response: eight seconds per file, for several lines even on a busy machine
HOSTS = ("gpu-a", "gpu-b")
# "[gpu-a] hub-model: 43% 1.7/4.0 MB at 1.0 MB/s, ETA 2 s"
PROGRESS = re.compile(r"^\[(?P<host>[\w-]+)\] (?P<model>[\w-]+): (?P<percent>\d+)% (?P<done>[\d.]+)/(?P<total>[\d.]+) MB"
                      r" at (?P<rate>[\d.]+) (?P<rate_unit>[kM]B)/s, ETA (?P<eta>\d+) s$", re.M)
DONE = re.compile(r"^\[(?P<host>[\w-]+)\] (?P<model>[\w-]+): done, 4\.0 MB in \d+ s \([\d.]+ [kM]B/s\)$", re.M)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the models role makes its directories owned by root")


@pytest.fixture
def content():
    return random.Random(7).randbytes(SIZE)


@pytest.fixture
def hub(tmp_path, content):
    path = tmp_path / "hub" / REPO / "tiny.gguf"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with FakeHub(tmp_path / "hub") as server:
        server.rate = RATE
        yield server


def inventory(tmp_path, hub, content, models=None):
    models = models or [
        {"name": "hub-model", "hf": {"repo": REPO, "files": ["tiny.gguf"]}},
        {"name": "url-model", "url": "%s/files/%s/tiny.gguf" % (hub.url, REPO),
         "sha256": hashlib.sha256(content).hexdigest()},
    ]
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {
        "hosts": dict((host, {"gpufleet_models_dir": str(tmp_path / host / "models")}) for host in HOSTS),
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "gpufleet_models": models, "models_hf_endpoint": hub.url, "models_hf_venv": sys.prefix,
                 "models_hf_token": "", "models_progress_interval": 1},
    }}))
    return path


def play(inventory_path, *args, rc=0):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost")
    env.pop("ANSIBLE_VERBOSITY", None)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory_path),
                           "tests/collection/playbooks/download_progress.yml", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    return proc.stdout


def recap(stdout, host):
    return re.search(r"^%s\s+: (.*)$" % re.escape(host), stdout, re.M).group(1)


def test_downloads_show_percent_bytes_rate_and_eta_per_host_and_model(tmp_path, hub, content):
    inventory_path = inventory(tmp_path, hub, content)

    checked = play(inventory_path, "--check")
    assert not any((tmp_path / host).exists() for host in HOSTS), checked
    # The directory and the models would change.
    assert all("changed=2" in recap(checked, host) for host in HOSTS), checked
    assert not PROGRESS.search(checked), checked

    stdout = play(inventory_path)

    lines = [m.groupdict() for m in PROGRESS.finditer(stdout)]
    assert {(line["host"], line["model"]) for line in lines} == {
        (host, model) for host in HOSTS for model in ("hub-model", "url-model")}, stdout
    for line in lines:
        assert line["total"] == "4.0"
        assert float(line["done"]) <= 4.0
        assert int(line["percent"]) == int(float(line["done"]) * 100 / 4.0) or abs(
            int(line["percent"]) - float(line["done"]) * 25) <= 3  # the MB are rounded, the percent is not
        rate = float(line["rate"]) * (1000 if line["rate_unit"] == "kB" else 1000 * 1000)
        assert 0.2 * RATE < rate < 3 * RATE, line
        assert int(line["eta"]) <= 20
    # Some line shows a download half-way, with time still to go.
    assert any(10 <= int(line["percent"]) <= 90 and int(line["eta"]) >= 1 for line in lines), stdout
    assert {(m["host"], m["model"]) for m in DONE.finditer(stdout)} == {
        (host, model) for host in HOSTS for model in ("hub-model", "url-model")}, stdout
    for host in HOSTS:
        models = tmp_path / host / "models"
        assert (models / "hub-model" / "tiny.gguf").read_bytes() == content
        assert (models / "url-model" / "tiny.gguf").read_bytes() == content
        assert sorted(p.name for p in models.iterdir()) == ["hub-model", "url-model"]  # no progress file left
        assert "changed=2" in recap(stdout, host) and "failed=0" in recap(stdout, host), stdout  # the directory too
    assert hub.served("tiny.gguf") == 4 * SIZE

    again = play(inventory_path)

    assert not PROGRESS.search(again) and not DONE.search(again), again
    assert all("changed=0" in recap(again, host) for host in HOSTS), again
    assert hub.served("tiny.gguf") == 4 * SIZE


def test_failed_downloads_are_named_with_their_reason_after_the_others_ended(tmp_path, hub, content):
    models = [
        {"name": "good", "hf": {"repo": REPO, "files": ["tiny.gguf"]}},
        {"name": "missing", "hf": {"repo": REPO, "files": ["absent.gguf"]}},
        {"name": "bad-hash", "url": "%s/files/%s/tiny.gguf" % (hub.url, REPO), "sha256": "0" * 64},
    ]

    stdout = play(inventory(tmp_path, hub, content, models), "--limit", HOSTS[0], rc=2)

    message = re.search(r"^    msg:\n((?:        .*\n)+)", stdout, re.M) or re.search(r"^    msg: (.*)$", stdout, re.M)
    assert message, stdout
    text = " ".join(message.group(1).split())
    assert "missing: " in text and "absent.gguf" in text, stdout
    assert "bad-hash: " in text and "sha256 mismatch" in text, stdout
    assert "good:" not in text
    assert re.search(r"^\[gpu-a\] good: done, 4\.0 MB in \d+ s", stdout, re.M), stdout
    assert (tmp_path / HOSTS[0] / "models" / "good" / "tiny.gguf").read_bytes() == content
    assert not (tmp_path / HOSTS[0] / "models" / "bad-hash" / "tiny.gguf").exists()

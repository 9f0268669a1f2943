# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image build in the background shows its step and time while it runs, at default verbosity.

A real ``docker build`` of a three-step Dockerfile (a few seconds of ``sleep``) on the local base image, through
tests/collection/playbooks/build_progress.yml; the image gets a name of this test's own and is removed after.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASE = "gpufleet/debian:bookworm"
# "[localhost] gpufleet-progress-test:ab12: step 2/5: RUN sleep 2 && echo two (3 s)" (BuildKit: "[2/4]"; the classic
# builder has a step more, for the labels)
STEP = re.compile(r"^\[localhost\] (?P<tag>\S+): step (?P<n>\d)/\d: (?P<instruction>.+) \((?P<seconds>\d+) s\)$", re.M)


def docker_ok():
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "image", "inspect", BASE], capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not docker_ok(), reason="needs a Docker engine with %s" % BASE)


@pytest.fixture
def tag():
    """An image name of this test's own; the image, and the container a failed step leaves, go after the test."""
    name = "gpufleet-progress-test:%s" % uuid.uuid4().hex[:12]
    yield name
    subprocess.run(["docker", "image", "rm", "--force", name], capture_output=True, check=False)
    listed = subprocess.run(["docker", "ps", "--all", "--no-trunc", "--format", "{{.ID}} {{.Command}}"],
                            capture_output=True, text=True, check=False).stdout
    for line in listed.splitlines():
        if name.split(":")[1] in line:
            subprocess.run(["docker", "rm", "--force", line.split()[0]], capture_output=True, check=False)


def play(tmp_path, tag, dockerfile):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    env.pop("ANSIBLE_VERBOSITY", None)
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "build_progress_dir=%s build_progress_tag=%s" % (tmp_path, tag),
                           "tests/collection/playbooks/build_progress.yml"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_build_shows_its_step_and_time(tmp_path, tag):
    proc = play(tmp_path, tag, "FROM %s\nRUN sleep 3 && echo one\nRUN sleep 3 && echo two\nRUN sleep 3 && echo three\n"
                % BASE)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [m.groupdict() for m in STEP.finditer(proc.stdout)]
    assert {s["tag"] for s in steps} == {tag}, proc.stdout
    assert {s["instruction"] for s in steps} >= {"RUN sleep 3 && echo two", "RUN sleep 3 && echo three"}, proc.stdout
    assert [int(s["n"]) for s in steps] == sorted(int(s["n"]) for s in steps)
    assert [int(s["seconds"]) for s in steps] == sorted(int(s["seconds"]) for s in steps)
    assert re.search(r"^\[localhost\] %s: done after \d+ s$" % re.escape(tag), proc.stdout, re.M), proc.stdout
    labels = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
                            capture_output=True, text=True, check=True).stdout
    assert json.loads(labels)["org.example.title"] == "a test (cpu)"


def test_failed_build_says_so_with_the_end_of_its_output(tmp_path, tag):
    proc = play(tmp_path, tag, "FROM %s\nRUN sleep 2 && echo about to fail %s && false\n" % (BASE, tag.split(":")[1]))

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "1 of 1 jobs failed: %s" % tag in proc.stdout
    assert re.search(r"^\[localhost\] %s: failed after \d+ s$" % re.escape(tag), proc.stdout, re.M), proc.stdout
    tail = proc.stdout.split("build_log_tail:", 1)[1]
    assert "about to fail" in tail.split("changed:", 1)[0], proc.stdout

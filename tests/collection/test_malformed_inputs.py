"""Malformed inventories are refused by site.yml's first play, each with a message that names the variable.

Every case goes through ``ansible-playbook playbooks/check_inventory.yml`` as a user's run would. To keep it
fast, the cases refused by the same task share one run: one inventory, one host per case. The first play stops
every host once one is bad (any_errors_fatal), but only after the failing task ran on all of them, so each host's
own message is in that run's results (the json callback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEX64 = "0123456789abcdef" * 4
MODEL = {"name": "m", "hf": {"repo": "o/r"}}
SERVICE = {"name": "chat", "model": "m", "port": 8000}
VLLM = {"name": "chat", "engine": "vllm", "model": "m", "port": 8000}


def models(**change):
    return {"gpufleet_models": [dict(MODEL, **change)]}


def hub(**change):
    return {"gpufleet_models": [dict(MODEL, hf=dict(MODEL["hf"], **change))]}


def services(*entries, **change):
    return {"gpufleet_services": list(entries) or [dict(SERVICE, **change)]}


def lane(**change):
    return services({"name": "l", "port": 8000, "lanes": [dict({"name": "x", "model": "m"}, **change)]})


# The first task of the play: the inventory's data model and the values of the roles' variables.
DATA = [
    ({"gpufleet_models": {"name": "m"}}, "gpufleet_models must be a list of models"),
    ({"gpufleet_services": "chat"}, "gpufleet_services must be a list of services"),
    ({"gpufleet_models": ["m"]}, "gpufleet_models[0] must be a dict"),
    (models(name="-m"), "gpufleet_models[0].name must be letters, digits"),
    (models(url="https://example.com/m.gguf", sha256=HEX64), "gpufleet_models[0] (m) needs exactly one source"),
    ({"gpufleet_models": [{"name": "m"}]}, "gpufleet_models[0] (m) needs exactly one source"),
    ({"gpufleet_models": [{"name": "m", "url": "ftp://example.com/m.gguf", "sha256": HEX64}]},
     "gpufleet_models[0] (m).url must be a URL with a host"),
    ({"gpufleet_models": [{"name": "m", "url": "https:///m.gguf", "sha256": HEX64}]},
     "gpufleet_models[0] (m).url must be a URL with a host"),
    ({"gpufleet_models": [{"name": "m", "url": "https://example.com/m.gguf"}]},
     "gpufleet_models[0] (m).sha256 is required with url"),
    ({"gpufleet_models": [{"name": "m", "url": "https://example.com/m.gguf", "sha256": "z" * 64}]},
     "gpufleet_models[0] (m).sha256 must be a sha256 of exactly 64 hex digits"),
    ({"gpufleet_models": [{"name": "m", "path": "/srv/m.gguf", "sha256": HEX64[:63]}]},
     "gpufleet_models[0] (m).sha256 must be a sha256 of exactly 64 hex digits"),
    ({"gpufleet_models": [{"name": "m", "path": "models/m.gguf"}]}, "gpufleet_models[0] (m).path must be an absolute path"),
    (models(hf="o/r"), "gpufleet_models[0] (m).hf must be a dict with repo"),
    (models(hf={"files": ["m.gguf"]}), "gpufleet_models[0] (m).hf.repo is required"),
    (hub(repo="owner/na me"), "gpufleet_models[0] (m).hf.repo must be a hub repository id"),
    (hub(repo="a/b/c"), "gpufleet_models[0] (m).hf.repo must be a hub repository id"),
    (hub(repo="owner/--name"), "gpufleet_models[0] (m).hf.repo must be a hub repository id"),
    (hub(revision="main branch"), "gpufleet_models[0] (m).hf.revision must be a branch or tag"),
    (hub(revision="abc1234"), "gpufleet_models[0] (m).hf.revision must be a full 40-hex-digit commit"),
    (hub(revison="main"), "gpufleet_models[0] (m).hf: unknown key 'revison' (did you mean 'revision'?)"),
    (hub(files="m.gguf"), "gpufleet_models[0] (m).hf.files must be a list"),
    (models(sze_gb=4), "gpufleet_models[0] (m): unknown key 'sze_gb' (did you mean 'size_gb'?)"),
    (models(size_gb=-1), "gpufleet_models[0] (m).size_gb must be a positive number"),
    ({"gpufleet_models": [MODEL, MODEL]}, "gpufleet_models[1] (m): the name is already used by gpufleet_models[0]"),
    (services(bind="0.0.0.0"), "gpufleet_services[0] (chat): unknown key 'bind' (did you mean 'bind_address'?)"),
    (services(bind_address="lan"), "gpufleet_services[0] (chat).bind_address must be an IP address"),
    (services(bind_address="localhost"), "gpufleet_services[0] (chat).bind_address must be an IP address"),
    (services(bind_address="999.1.1.1"), "gpufleet_services[0] (chat).bind_address must be an IP address"),
    (services(context=10_000_000), "gpufleet_services[0] (chat).context must be a number of tokens from 128 to 1,048,576"),
    (services(context=64), "gpufleet_services[0] (chat).context must be a number of tokens from 128"),
    (services(api_key="k"), "gpufleet_services[0] (chat).api_key must be 16 to 512 characters"),
    (services(api_key="a key with spaces in it"), "gpufleet_services[0] (chat).api_key must be 16 to 512 characters"),
    (services(port=70000), "gpufleet_services[0] (chat).port must be a number from 1 to 65535"),
    (services(SERVICE, dict(SERVICE, name="chat2")), "gpufleet_services[1] (chat2).port 8000 is already published"),
    (services(model_file="../../etc/shadow"), "gpufleet_services[0] (chat).model_file must be the path of a file inside"),
    (lane(model_file="/srv/x.gguf"), "gpufleet_services[0] (l).lanes[0] (x).model_file must be the path of a file inside"),
    (services(engine="tgi"), "gpufleet_services[0] (chat).engine must be one of llamacpp, vllm"),
    (services(user="llama"), "gpufleet_services[0] (chat).user must be a numeric uid:gid such as 65532:65532"),
    (services(tls={"cert": "certs/llm.crt", "key": "/etc/ssl/private/llm.key"}),
     "gpufleet_services[0] (chat).tls.cert must be an absolute path"),
    (services(tls={"self_signed": True, "ca": "/etc/ssl/ca.pem"}),
     "gpufleet_services[0] (chat).tls.ca is set with self_signed: true"),
    (services(tls={"self_signed": True, "name": ["llm.lan"]}),
     "gpufleet_services[0] (chat).tls: unknown key 'name' (did you mean 'names'?)"),
    ({"gpufleet_services": ["chat"]}, "gpufleet_services[0] must be a dict"),
    (lane(contxt=4096), "gpufleet_services[0] (l).lanes[0] (x).contxt is not a lane setting (did you mean 'context'?)"),
    (lane(context=10_000_000), "gpufleet_services[0] (l).lanes[0] (x).context must be a number of tokens from 128"),
    ({"gpufleet_platform": "dgx-spark"}, "gpufleet_platform must be dgx_spark, strix_halo, nvidia, amd or cpu"),
    ({"gpufleet_models_dir": "models"}, "gpufleet_models_dir must be an absolute path"),
    ({"gpufleet_unchanged_max_age": "1d"}, "gpufleet_unchanged_max_age must be a whole number of seconds"),
    ({"inference_stack_dir": "stack"}, "inference_stack_dir must be an absolute path"),
    ({"models_dir": "./models"}, "models_dir must be an absolute path"),
    ({"llamacpp_image_build_dir": "build"}, "llamacpp_image_build_dir must be an absolute path"),
    ({"llamacpp_image_cuda_architectures": "sm_90"}, "llamacpp_image_cuda_architectures must be CUDA architectures"),
    ({"llamacpp_image_cuda_architectures": "12.1"}, "llamacpp_image_cuda_architectures must be CUDA architectures"),
    ({"llamacpp_image_hip_targets": "rdna3"}, "llamacpp_image_hip_targets must be AMD gfx targets"),
    ({"vllm_image_rocm_build_targets": "gfx11511"}, "vllm_image_rocm_build_targets must be AMD gfx targets"),
    ({"rocm_gfx_target": "gfx1151;gfx1100"}, "rocm_gfx_target must be an AMD gfx target"),
    ({"rocm_hsa_override_gfx_version": "gfx1151"}, "rocm_hsa_override_gfx_version must be a gfx version"),
    ({"llamacpp_image_git_ref": "feature..x"}, "llamacpp_image_git_ref must be a git branch, tag or commit"),
    ({"llamacpp_image_git_ref": "-b9246"}, "llamacpp_image_git_ref must be a git branch, tag or commit"),
    ({"llamacpp_image_commit": "xyz"}, "llamacpp_image_commit must be a git commit"),
    ({"llamacpp_image_git_url": "github.com/ggml-org/llama.cpp"}, "llamacpp_image_git_url must be a git URL"),
    ({"models_hf_endpoint": "huggingface.co"}, "models_hf_endpoint must be a URL with a host"),
    ({"docker_engine_repo_url": "ftp://download.docker.com/linux/ubuntu"}, "docker_engine_repo_url must be a URL"),
    ({"vllm_image_digest_pin": "sha256:zz"}, "vllm_image_digest_pin must be sha256: and 64 hex digits"),
    ({"docker_engine_compose_checksum": "md5:abc"}, "docker_engine_compose_checksum must be sha256:"),
    ({"llamacpp_image_cuda_arch": "121"},
     "llamacpp_image_cuda_arch is not a variable of the llamacpp_image role (did you mean 'llamacpp_image_cuda_architectures'?)"),
    ({"inference_stack_wait_timout": 60},
     "inference_stack_wait_timout is not a variable of the inference_stack role (did you mean 'inference_stack_wait_timeout'?)"),
    (dict(services(VLLM), vllm_image_min_version="latest"), "vllm_image_min_version must be a version such as 0.22.0"),
    ({"nvidia_container_toolkit_version": "one.two"}, "nvidia_container_toolkit_version must be a version"),
]
# The second task: each role's variables against its argument spec (types and choices).
SPEC = [
    ({"llamacpp_image_backend": "cudaa"}, "value of llamacpp_image_backend must be one of: auto, cpu, cuda, rocm, vulkan"),
    ({"inference_stack_wait_timeout": "soon"}, "inference_stack_wait_timeout"),
    ({"docker_engine_source": "snap"}, "value of docker_engine_source must be one of: distribution, docker, preinstalled"),
    ({"nvidia_driver_source": "runfile"}, "value of nvidia_driver_source must be one of: auto, cuda_repo, preinstalled"),
    ({"preflight_require_gpu": "yes-please"}, "value of preflight_require_gpu must be one of: none, nvidia, amd, any"),
    ({"models_hf_offline": "maybe"}, "models_hf_offline"),
    ({"inference_stack_nvidia_devices": "all"}, "value of inference_stack_nvidia_devices must be one of: reservation, cdi"),
    (dict(services(VLLM), vllm_image_source="dockerhub"),
     "value of vllm_image_source must be one of: ngc, upstream, rocm, rocm_build, cpu, got: dockerhub"),
]
# The last task: the NVIDIA container toolkit's version against its CVE floor.
TOOLKIT = [
    ({"nvidia_container_toolkit_version": "1.16.0"}, "nvidia_container_toolkit_version 1.16.0 is older than 1.19.1"),
    ({"nvidia_container_toolkit_version": "1.19.0-1"}, "nvidia_container_toolkit_version 1.19.0-1 is older than 1.19.1"),
]
STAGES = {"data": DATA, "spec": SPEC, "toolkit": TOOLKIT}
BASE = {"gpufleet_models": [MODEL], "gpufleet_services": [SERVICE]}


def ansible_playbook(inventory):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/check_inventory.yml"],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def failures(report):
    """Each host's failure messages in a json-callback report: a task's msg, its loop items' and their errors."""
    found = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                for one in [result] + list(result.get("results") or []):
                    if one.get("failed"):
                        found.setdefault(host, []).append(
                            str(one.get("msg", "")) + "\n" + "\n".join(one.get("argument_errors") or []))
    return found


def refused_in_one_run(tmp_path, cases):
    """Runs one host per case; returns the cases refused with their message, and what the others got."""
    hosts = {f"case-{index:02d}": dict(BASE, **case[0]) for index, case in enumerate(cases)}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    proc = ansible_playbook(inventory)
    assert proc.returncode != 0, proc.stdout[-3000:]
    found = failures(json.loads(proc.stdout))
    refused, missing = 0, {}
    for host, (unused, message) in zip(hosts, cases):
        if any(message in m for m in found.get(host, [])):
            refused += 1
        else:
            missing[host] = (message, found.get(host))
    return refused, missing


def test_malformed_inputs_are_refused_naming_the_variable(tmp_path):
    refused, missing = 0, {}
    for stage, cases in STAGES.items():
        (tmp_path / stage).mkdir()
        count, not_refused = refused_in_one_run(tmp_path / stage, cases)
        print(f"malformed inputs refused ({stage}): {count}/{len(cases)}")
        refused += count
        missing.update({f"{stage}/{host}": what for host, what in not_refused.items()})
    total = sum(len(cases) for cases in STAGES.values())
    print(f"malformed inputs refused: {refused}/{total}")
    assert not missing, missing
    assert total >= 40

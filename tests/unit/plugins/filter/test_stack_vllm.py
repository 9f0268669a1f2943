"""vLLM services, host and container ports, keyless services and the reverse proxy, as Compose and docker run."""

from __future__ import annotations

import shlex

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.stack import (
    inference_compose,
    inference_device_wiring,
    inference_declared_models,
    inference_docker_run,
    inference_proxy_config,
    inference_services_errors,
    inference_services_with,
    inference_tensor_parallel_errors,
)

MODELS = [
    {"name": "glm-air-awq", "hf": {"repo": "cpatonn/GLM-4.5-Air-AWQ-4bit", "revision": "main"}},
    {"name": "glm-q4"},
]


def settings(**more):
    base = {
        "project": "gpufleet",
        "images": {"vllm": "nvcr.io/nvidia/vllm:25.09-py3", "llamacpp": "gpufleet/llama.cpp:cuda-0123456789ab"},
        "models": MODELS,
        "models_dir": "/opt/gpufleet/models",
        "secrets_dir": "/opt/gpufleet/stack/secrets",
        "device_by_engine": {"vllm": inference_device_wiring("cuda", {"unified_memory": True}, engine="vllm")},
    }
    base.update(more)
    return base


def terrarium(**more):
    # Seed 000: NGC vLLM on a DGX Spark, port 8000, 8192 tokens, 0.9 of the memory.
    service = {"name": "glm", "engine": "vllm", "model": "glm-air-awq", "port": 8000, "context": 8192,
               "gpu_memory_utilization": 0.9}
    service.update(more)
    return service


def flag(command, name):
    return command[command.index(name) + 1]


def test_vllm_service_carries_the_seed_settings():
    svc = inference_compose([terrarium()], settings())["services"]["glm"]
    assert svc["image"] == "nvcr.io/nvidia/vllm:25.09-py3"
    assert flag(svc["command"], "--max-model-len") == "8192"
    assert flag(svc["command"], "--gpu-memory-utilization") == "0.9"
    assert flag(svc["command"], "--model") == "/models/glm-air-awq"
    assert flag(svc["command"], "--served-model-name") == "glm-air-awq"
    assert svc["ipc"] == "host"
    assert svc["ulimits"] == {"memlock": -1, "stack": 67108864}
    assert svc["ports"] == ["127.0.0.1:8000:8000"]
    assert "/opt/gpufleet/models/glm-air-awq:/models/glm-air-awq:ro" in svc["volumes"]
    assert any(v.endswith(":/root/.cache/huggingface") for v in svc["volumes"])
    # The GPU reservation, without llama.cpp's unified-memory switch.
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert "GGML_CUDA_ENABLE_UNIFIED_MEMORY" not in svc.get("environment", {})
    # vLLM compiles and profiles before it answers: minutes, not llama.cpp's seconds.
    assert int(svc["healthcheck"]["start_period"].rstrip("s")) >= 600


def test_the_key_is_read_from_the_secret_not_written_anywhere():
    service = terrarium(api_key="sk-terrarium-0123456789")
    doc = inference_compose([service], settings())
    assert "sk-terrarium-0123456789" not in repr(doc)
    svc = doc["services"]["glm"]
    assert svc["secrets"] == ["glm_api_key"]
    assert "/run/secrets/glm_api_key" in svc["entrypoint"][2] and "VLLM_API_KEY" in svc["entrypoint"][2]
    assert "--api-key" not in svc["command"]


def test_planner_figures_fill_what_the_service_leaves_unset():
    plans = {"glm": {"context": 32768, "gpu_memory_utilization": 0.8, "max_num_seqs": 6, "tensor_parallel_size": 1}}
    service = terrarium()
    del service["context"]
    svc = inference_compose([service], settings(plans=plans))["services"]["glm"]
    assert flag(svc["command"], "--max-model-len") == "32768"
    assert flag(svc["command"], "--gpu-memory-utilization") == "0.9"  # the service's own wins
    assert flag(svc["command"], "--max-num-seqs") == "6"


def test_gpu_reservation_count_follows_tensor_parallel_size():
    svc = inference_compose([terrarium(tensor_parallel_size=2)], settings())["services"]["glm"]
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2
    assert flag(svc["command"], "--tensor-parallel-size") == "2"


def test_rocm_vllm_gets_kfd_dri_and_numeric_groups():
    wiring = inference_device_wiring("rocm", group_ids=["44", "992"], engine="vllm")
    svc = inference_compose([terrarium()], settings(device_by_engine={"vllm": wiring}))["services"]["glm"]
    assert svc["devices"] == ["/dev/kfd", "/dev/dri"]
    assert svc["group_add"] == ["44", "992"]


def test_hub_cache_serves_the_repo_through_the_cache():
    svc = inference_compose([terrarium(hub_cache=True)], settings())["services"]["glm"]
    assert flag(svc["command"], "--model") == "cpatonn/GLM-4.5-Air-AWQ-4bit"
    assert flag(svc["command"], "--revision") == "main"
    assert not any(v.startswith("/opt/gpufleet/models") for v in svc["volumes"])
    assert "HF_HUB_OFFLINE" not in svc["environment"]


def test_container_port_differs_from_the_host_port():
    # Seed 001: the Q8 service on host port 11347, llama-server listening on 11346 inside.
    service = {"name": "q8", "model": "glm-q4", "model_file": "q8.gguf", "port": 11347, "container_port": 11346}
    svc = inference_compose([service], settings())["services"]["q8"]
    assert svc["ports"] == ["127.0.0.1:11347:11346"]
    assert flag(svc["command"], "--port") == "11346"
    assert svc["healthcheck"]["test"][-1] == "http://127.0.0.1:11346/health"


def test_proxy_publishes_a_vllm_service_bound_beyond_loopback():
    doc = inference_compose([terrarium(bind_address="0.0.0.0")], settings(proxy_image="nginx:1.28-alpine"))
    engine, proxy = doc["services"]["glm"], doc["services"]["glm-proxy"]
    assert "ports" not in engine
    assert proxy["ports"] == ["0.0.0.0:8000:8080"]
    assert proxy["depends_on"] == {"glm": {"condition": "service_healthy"}}
    assert proxy["volumes"] == ["/opt/gpufleet/stack/secrets/glm-proxy.conf:/etc/gpufleet/nginx.conf:ro"]
    # nginx keeps only what its master needs; vLLM none, and neither gains any.
    assert proxy["cap_drop"] == ["ALL"]
    assert set(proxy["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID", "NET_BIND_SERVICE"}
    assert engine["cap_drop"] == ["ALL"] and "cap_add" not in engine and "read_only" not in engine
    assert proxy["security_opt"] == engine["security_opt"] == ["no-new-privileges:true"]
    assert [s["name"] for s in inference_services_with([terrarium(bind_address="0.0.0.0"), terrarium(name="b")],
                                                       "proxy")] == ["glm"]


def test_proxy_config_checks_the_key_on_every_route():
    conf = inference_proxy_config(terrarium(bind_address="0.0.0.0"), "k" * 32)
    assert f'"Bearer {"k" * 32}" 1;' in conf
    blocks = conf.split("location ")[1:]
    assert len(blocks) == 6  # /, /v1/, /health, /metrics, /version, /lanes
    assert all("return 401" in block for block in blocks)
    assert "set $gpufleet_upstream http://glm:8000;" in conf
    assert "proxy_buffering off;" in conf
    with pytest.raises(AnsibleFilterError, match="characters the proxy cannot match"):
        inference_proxy_config(terrarium(), 'bad" key; }')


def test_keyless_service_on_loopback_is_allowed_and_labelled():
    doc = inference_compose([terrarium(api_key_required=False)], settings())
    svc = doc["services"]["glm"]
    assert "secrets" not in doc and "secrets" not in svc
    assert svc["entrypoint"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert svc["labels"]["org.gpufleet.auth"] == "none"


@pytest.mark.parametrize("change, message", [
    ({"api_key_required": False, "bind_address": "0.0.0.0"}, "set public_without_key: true"),
    ({"gpu_memory_utilization": 0}, ".gpu_memory_utilization must be a fraction in (0, 1]"),
    ({"gpu_memory_utilization": 1.2}, ".gpu_memory_utilization must be a fraction in (0, 1]"),
    ({"tensor_parallel_size": 0}, ".tensor_parallel_size must be a whole number"),
    ({"max_num_seqs": "many"}, ".max_num_seqs must be a whole number"),
    ({"container_port": 0}, ".container_port must be a number"),
    ({"ulimits": "memlock=-1"}, ".ulimits must be a dict"),
    ({"api_key": "short"}, ".api_key must be 16 to 512 characters"),
    ({"ipc": "container"}, ".ipc must be host"),
])
def test_bad_vllm_input_is_refused_naming_the_variable(change, message):
    errors = inference_services_errors([terrarium(**change)], MODELS)
    assert any(message in e and e.startswith("gpufleet_services[0] (glm)") for e in errors), errors


def test_tensor_parallel_larger_than_the_gpus_found():
    errors = inference_services_errors([terrarium(tensor_parallel_size=2)], MODELS, gpu_count=1)
    assert errors == ["gpufleet_services[0] (glm).tensor_parallel_size 2 is more than the 1 GPU(s) found on the host"]
    assert inference_services_errors([terrarium(tensor_parallel_size=2)], MODELS, gpu_count=2) == []


def test_a_host_port_used_twice_is_refused():
    errors = inference_services_errors([terrarium(), terrarium(name="other", bind_address="0.0.0.0")], MODELS)
    assert any("gpufleet_services[1] (other).port 8000 is already published" in e for e in errors)


def test_vllm_settings_on_a_llamacpp_service_are_refused():
    errors = inference_services_errors([{"name": "q4", "model": "glm-q4", "port": 1, "max_num_seqs": 4}], MODELS)
    assert errors == ["gpufleet_services[0] (q4).max_num_seqs is a vLLM setting; this service's engine is llamacpp"]


def test_docker_run_lines_match_the_compose_project():
    services = [terrarium(bind_address="0.0.0.0", tensor_parallel_size=2),
                {"name": "q8", "model": "glm-q4", "model_file": "q8.gguf", "port": 11347, "container_port": 11346}]
    script = inference_docker_run(services, settings())
    commands = [shlex.split(block.replace("\\\n", " ")) for block in script.split("\n\n")[1:]]
    by_name = {c[c.index("--name") + 1]: c for c in commands}
    assert set(by_name) == {"gpufleet-glm-1", "gpufleet-q8-1", "gpufleet-glm-proxy-1"}
    glm = by_name["gpufleet-glm-1"]
    assert flag(glm, "--gpus") == "2" and flag(glm, "--ipc") == "host"
    assert "memlock=-1" in glm and "stack=67108864" in glm
    assert flag(glm, "--entrypoint") == "/bin/sh"
    assert glm[glm.index("nvcr.io/nvidia/vllm:25.09-py3") + 1] == "-c"
    assert flag(glm, "--max-model-len") == "8192"
    assert "/opt/gpufleet/stack/secrets/glm.key:/run/secrets/glm_api_key:ro" in glm
    assert flag(by_name["gpufleet-q8-1"], "--publish") == "127.0.0.1:11347:11346"
    # The proxy starts after the engine it guards.
    assert list(by_name)[-1] == "gpufleet-glm-proxy-1"


@pytest.mark.parametrize("length", [16, 48, 200, 512])
def test_proxy_config_makes_room_for_the_key_in_its_map(length):
    # nginx refuses to start ("could not build map_hash") when "Bearer <key>" outgrows a map bucket.
    conf = inference_proxy_config(terrarium(bind_address="0.0.0.0"), "k" * length)
    bucket = int(conf.split("map_hash_bucket_size ")[1].split(";")[0])
    assert bucket >= len("Bearer ") + length + 32 and bucket & (bucket - 1) == 0


def test_tensor_parallel_errors_name_each_service_that_wants_more_gpus():
    services = [terrarium(tensor_parallel_size=4), terrarium(name="small", tensor_parallel_size=2), terrarium(name="one")]
    assert inference_tensor_parallel_errors(services, 2) == [
        "gpufleet_services[0] (glm).tensor_parallel_size 4 is more than the 2 GPU(s) found on the host"]
    assert inference_tensor_parallel_errors(services, 4) == []


def test_declared_models_give_the_only_file_and_the_size():
    models = [{"name": "q4", "hf": {"repo": "o/r", "files": ["a-Q4.gguf"]}, "size_gb": 18},
              {"name": "both", "hf": {"repo": "o/r", "files": ["a.gguf", "b.gguf"]}},
              {"name": "local", "path": "/srv/models/c.gguf"}]
    services = [{"name": "s1", "model": "q4"}, {"name": "s2", "model": "both"}, {"name": "s3", "model": "local"}]
    got = inference_declared_models(services, models)
    assert got["model_files"] == {"s1": "a-Q4.gguf", "s3": "c.gguf"}
    assert got["model_sizes"] == {"s1": 18 * 1000**3, "s2": 0, "s3": 0}


def test_remote_code_runs_only_when_the_service_says_so():
    assert "--trust-remote-code" not in inference_compose([terrarium()], settings())["services"]["glm"]["command"]
    svc = inference_compose([terrarium(trust_remote_code=True)], settings())["services"]["glm"]
    assert "--trust-remote-code" in svc["command"]


@pytest.mark.parametrize("service, message", [
    (terrarium(args=["--trust-remote-code"]), "gpufleet_services[0] (glm).args: --trust-remote-code runs the model "
                                              "repository's own Python code; set trust_remote_code: true"),
    (terrarium(trust_remote_code="yes"), "gpufleet_services[0] (glm).trust_remote_code must be true or false"),
    ({"name": "chat", "model": "glm-q4", "port": 8080, "trust_remote_code": True},
     "gpufleet_services[0] (chat).trust_remote_code is a vLLM setting; this service's engine is llamacpp"),
])
def test_remote_code_asked_another_way_is_refused(service, message):
    errors = inference_services_errors([service], MODELS)
    assert any(message in error for error in errors), errors

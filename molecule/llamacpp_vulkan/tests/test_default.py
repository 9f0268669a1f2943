"""A Vulkan llama.cpp service on lavapipe, as its users meet it, and what it really runs on."""

from __future__ import annotations

import json
import os
from pathlib import Path

PORT = 8080
SERVED = "gemma-3-270m"
STACK = "/opt/gpufleet/stack"


def report():
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / "gpufleet-llamacpp_vulkan.json"
    return {svc["name"]: svc for svc in json.loads(path.read_text())["services"]}["chat-vulkan"]


def curl(host, path, api_key=None, data=None, timeout=600):
    headers = f"-H 'Authorization: Bearer {api_key}'" if api_key else ""
    body = f"-H 'Content-Type: application/json' -d '{json.dumps(data)}'" if data is not None else ""
    out = host.check_output(f"curl -s -m {timeout} -o /tmp/body -w '%{{http_code}}' {headers} {body} http://127.0.0.1:{PORT}{path}")
    return int(out), host.file("/tmp/body").content_string


def image(host):
    images = host.check_output("docker images --filter label=org.gpufleet.llamacpp.backend=vulkan --format '{{.Repository}}:{{.Tag}}'").split()
    assert len(images) == 1, images
    return images[0]


def test_report_names_the_vulkan_device_and_every_layer_on_it():
    svc = report()
    assert svc["backend"] == "Vulkan"
    assert svc["devices"] == ["Vulkan0"]
    assert svc["layers_total"] and svc["layers_offloaded"] == svc["layers_total"]
    assert svc["health"]["status"] == 200
    assert svc["unauthorized_status"] == 401
    assert svc["tokens_per_second"] > 0
    # The streamed chat came through: text chunks, then the end of the stream.
    assert svc["stream"]["content_chunks"] > 0
    assert svc["stream"]["done"] is True


def test_report_says_which_build_and_image_serves():
    svc = report()
    assert svc["image"]["backend"] == "vulkan"
    assert svc["image"]["ref"].startswith("gpufleet/llama.cpp:vulkan-")
    # The commit the source came with, not llama.cpp's "unknown" of an archive build.
    assert svc["build"] and not svc["build"].endswith("-unknown")
    assert svc["image"]["revision"] and svc["build"].endswith(svc["image"]["revision"])


def test_chat_without_key_is_refused_and_with_key_answers(host):
    api_key = host.check_output(f"cat {STACK}/secrets/chat-vulkan.key")
    request = {"model": SERVED, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]}
    assert curl(host, "/v1/chat/completions", None, request)[0] == 401
    status, body = curl(host, "/v1/chat/completions", api_key, request)
    assert status == 200
    answer = json.loads(body)
    assert answer["usage"]["completion_tokens"] > 0
    assert answer["system_fingerprint"] == report()["build"]


def test_server_log_shows_the_model_on_the_vulkan_device(host):
    log = host.check_output("docker compose -p gpufleet logs --no-log-prefix chat-vulkan 2>&1")
    assert "using device Vulkan0 (llvmpipe" in log
    assert "offloaded 19/19 layers to GPU" in log


def test_compose_file_wires_the_gpu_device_nodes(host):
    service = json.loads(host.check_output(f"docker compose -f {STACK}/compose.yaml config --format json"))["services"]["chat-vulkan"]
    assert [d["source"] for d in service["devices"]] == ["/dev/dri"]
    render_gid = host.check_output("getent group render | cut -d: -f3")
    video_gid = host.check_output("getent group video | cut -d: -f3")
    assert set(service["group_add"]) == {render_gid, video_gid}
    assert "--n-gpu-layers" in service["command"] and service["command"][service["command"].index("--n-gpu-layers") + 1] == "99"


def test_image_lists_its_device_from_another_directory(host):
    out = host.check_output(f"docker run --rm -e GGML_VK_VISIBLE_DEVICES=0 -w / {image(host)} --list-devices 2>&1")
    assert "Vulkan0: llvmpipe" in out


def test_without_the_device_setting_the_image_sees_no_vulkan_device(host):
    # What the image check and verify guard against: ggml skips lavapipe and would compute on the CPU.
    out = host.check_output(f"docker run --rm -w / {image(host)} --list-devices 2>&1")
    assert "Vulkan0" not in out
    assert "(none)" in out


def test_one_vulkan_image_with_its_inputs_recorded(host):
    ref = image(host)
    labels = json.loads(host.check_output(f"docker image inspect --format '{{{{json .Config.Labels}}}}' {ref}"))
    assert "-DGGML_VULKAN=ON" in labels["org.gpufleet.llamacpp.cmake-flags"]
    assert "-DGGML_BACKEND_DL=ON" in labels["org.gpufleet.llamacpp.cmake-flags"]
    assert ref.endswith(labels["org.gpufleet.llamacpp.inputs-hash"][:12])
    assert labels["org.gpufleet.llamacpp.base-runtime"].startswith("sha256:")

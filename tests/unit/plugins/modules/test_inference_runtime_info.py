# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inference_runtime_info's main() against tests/support/fake_docker_api.py, serving real llama-server logs.

The logs in tests/unit/fixtures/llamacpp/ were captured from the images this collection builds: the CPU image, the
Vulkan image on Mesa's lavapipe with every layer offloaded, the same image without the device setting (ggml skips
lavapipe and computes on the CPU) and an image whose backend libraries are not where ggml looks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.gpufleet.inference.plugins.modules import inference_runtime_info
from ansible_collections.gpufleet.inference.tests.support.fake_docker_api import FakeDockerApi
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "llamacpp"


def log(name):
    return (FIXTURES / name).read_text().splitlines()


def labels(service):
    return {"org.gpufleet.service": service, "com.docker.compose.project": "gpufleet", "org.gpufleet.engine": "llamacpp"}


def image_labels(backend):
    return {"org.gpufleet.llamacpp.backend": backend, "org.opencontainers.image.version": "b9246",
            "org.opencontainers.image.revision": "0c1e570", "org.opencontainers.image.base.name": "ubuntu:24.04@sha256:" + "a" * 64,
            "org.opencontainers.image.base.digest": "sha256:" + "a" * 64}


@pytest.fixture
def docker(tmp_path):
    with FakeDockerApi(tmp_path / "docker.sock") as api:
        yield api


def run(docker, **args):
    with set_module_args(dict({"docker_host": "unix://" + docker.path}, **args)), \
            pytest.raises((AnsibleExitJson, AnsibleFailJson)) as caught:
        inference_runtime_info.main()
    return caught.value.args[0], isinstance(caught.value, AnsibleFailJson)


def test_a_vulkan_service_with_every_layer_on_the_device(docker):
    docker.add("c1", "gpufleet-chat-1", "sha256:img1", labels("chat"), log("server-vulkan.log"), image_labels("vulkan"))
    result, failed = run(docker, service="chat", gpu_layers=99)
    assert not failed, result["msg"]
    assert result["changed"] is False
    assert result["backend"] == "Vulkan"
    assert result["devices"] == ["Vulkan0"]
    assert result["device_details"][0]["description"].startswith("llvmpipe")
    assert result["layers_offloaded"] == result["layers_total"] == 19
    assert result["devices_available"] == ["Vulkan0", "CPU"]
    assert result["image"]["backend"] == "vulkan"
    assert result["image"]["base_digest"] == "sha256:" + "a" * 64
    assert result["build"] and not result["build"].endswith("unknown")


def test_a_cpu_service(docker):
    docker.add("c2", "gpufleet-chat-1", "sha256:img2", labels("chat"), log("server-cpu.log"), image_labels("cpu"))
    result, failed = run(docker, service="chat")
    assert not failed, result["msg"]
    assert result["backend"] == "CPU"
    assert result["devices"] == ["CPU"]
    assert result["devices_available"] == ["CPU"]


def test_a_gpu_image_that_runs_on_the_cpu_fails_naming_the_service(docker):
    # The Vulkan image without GGML_VK_VISIBLE_DEVICES on a host whose only Vulkan device is lavapipe.
    docker.add("c3", "gpufleet-chat-1", "sha256:img3", labels("chat"), log("server-vulkan-no-device.log"), image_labels("vulkan"))
    result, failed = run(docker, service="chat", gpu_layers=99)
    assert failed
    assert result["msg"] == ("service chat: its image is built for vulkan but the server runs on CPU (devices found: CPU; "
                             "the server found no usable GPU (its --gpu-layers is ignored)); "
                             "gpu_layers is 99 but the server did not report offloaded layers")
    assert result["backend"] == "CPU"


def test_the_same_only_reported_when_asked(docker):
    docker.add("c3", "gpufleet-chat-1", "sha256:img3", labels("chat"), log("server-vulkan-no-device.log"), image_labels("vulkan"))
    result, failed = run(docker, service="chat", require_gpu=False)
    assert not failed
    assert result["backend"] == "CPU"


def test_fewer_layers_on_the_gpu_than_asked_fails(docker):
    lines = [line.replace("offloaded 19/19 layers", "offloaded 7/19 layers") for line in log("server-vulkan.log")]
    docker.add("c4", "gpufleet-chat-1", "sha256:img4", labels("chat"), lines, image_labels("vulkan"))
    result, failed = run(docker, service="chat", gpu_layers=99)
    assert failed
    assert "gpu_layers is 99 but only 7 of 19 layers are on the GPU" in result["msg"]
    # Asking for 7 is what it got.
    result, failed = run(docker, service="chat", gpu_layers=7)
    assert not failed


def test_only_the_head_of_a_long_log_is_read(docker):
    chatter = ["srv  log_server_r: request: POST /v1/chat/completions 127.0.0.1 200"] * 20000
    docker.add("c5", "gpufleet-chat-1", "sha256:img5", labels("chat"), log("server-cpu.log") + chatter, image_labels("cpu"))
    result, failed = run(docker, service="chat", max_lines=500)
    assert not failed
    assert result["backend"] == "CPU"
    assert docker.frames_sent < 5000


def test_no_running_container_is_named(docker):
    docker.add("c6", "gpufleet-chat-1", "sha256:img6", labels("chat"), [], image_labels("cpu"), state="exited")
    result, failed = run(docker, service="chat")
    assert failed
    assert result["msg"] == "service chat: no running container in Compose project gpufleet (found gpufleet-chat-1 (exited))"


def test_an_unreachable_engine_is_a_clear_failure(tmp_path):
    with set_module_args({"service": "chat", "docker_host": f"unix://{tmp_path}/nothing.sock"}), \
            pytest.raises(AnsibleFailJson) as caught:
        inference_runtime_info.main()
    assert "service chat: cannot reach the Docker engine" in caught.value.args[0]["msg"]

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: inference_runtime_info
short_description: What a running llama.cpp service really runs on - backend, devices, offloaded layers, build
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Finds the container of an inference service (by the labels the inference_stack role gives it) and reads, from
    the server's own start-up log, the ggml backends it loaded, the devices the model uses, how many layers went to
    them and the llama.cpp build; and, from the image's labels, the backend the image was built for and its base image.
  - Only the first O(max_lines) lines of the current run's log are read, through the Docker Engine API, so a server
    that has run for weeks is read as fast as a new one.
  - Fails, naming the service, when an image built for a GPU backend runs with no GPU device (a silent CPU
    fallback), or when O(gpu_layers) asks for layers on the GPU and fewer went there.
  - Reads only; changes nothing.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  service:
    description: The service's name (the C(org.gpufleet.service) label of its container).
    type: str
    required: true
  project:
    description: The Compose project the service belongs to.
    type: str
    default: gpufleet
  gpu_layers:
    description:
      - The layers the service asks to put on the GPU (its C(gpu_layers)); V(-1) or unset for llama.cpp's default.
      - When positive, the server must report at least that many layers (or all of them) offloaded.
    type: int
  require_gpu:
    description:
      - Fail when the image was built for a GPU backend (C(cuda), C(rocm), C(vulkan)) and the server uses no GPU
        device. V(false) only reports it.
    type: bool
    default: true
  max_lines:
    description: How many lines of the log to read at most, from the container's last start.
    type: int
    default: 3000
  docker_host:
    description: The Docker engine's socket.
    type: str
    default: unix:///var/run/docker.sock
notes:
  - llama.cpp services only; for other engines the module returns the image's labels and no devices.
seealso:
  - module: gpufleet.inference.inference_probe
"""

EXAMPLES = r"""
- name: What the chat service runs on
  gpufleet.inference.inference_runtime_info:
    service: chat
    gpu_layers: 999
  register: runtime

- name: Say it
  ansible.builtin.debug:
    msg: "{{ runtime.backend }} on {{ runtime.devices | join(', ') }}, {{ runtime.layers_offloaded }}/{{ runtime.layers_total }} layers"
"""

RETURN = r"""
container:
  description: The container's name.
  returned: success
  type: str
  sample: gpufleet-chat-1
image:
  description: The image the container runs, its backend label, version, revision and base image digest.
  returned: success
  type: dict
  sample: {ref: "gpufleet/llama.cpp:vulkan-0123456789ab", backend: vulkan, version: b9246, revision: 0c1e570,
           base: "ubuntu:24.04@sha256:...", base_digest: "sha256:..."}
backend:
  description: The backend the model runs on - the GPU backend of the devices it uses (C(CUDA), C(ROCm), C(Vulkan)), or C(CPU).
  returned: success
  type: str
  sample: Vulkan
devices:
  description: The devices the model uses, as llama.cpp names them (C(CUDA0), C(Vulkan0)); C([CPU]) when none.
  returned: success
  type: list
  elements: str
  sample: [Vulkan0]
device_details:
  description: The devices with llama.cpp's description and free memory at load time.
  returned: success
  type: list
  elements: dict
devices_available:
  description: The devices the server found at start-up (its C(device_info)), the CPU included.
  returned: success
  type: list
  elements: str
  sample: [Vulkan0, CPU]
layers_offloaded:
  description: Layers the server put on the GPU, as it reports them; null when it did not say.
  returned: success
  type: int
  sample: 19
layers_total:
  description: Layers the model has that can be offloaded; null when the server did not say.
  returned: success
  type: int
  sample: 19
backends_loaded:
  description: The ggml backend libraries the server loaded (C(CPU) with the variant's library, C(Vulkan), ...).
  returned: success
  type: list
  elements: dict
build:
  description: The llama.cpp build the server reports (C(b<number>-<commit>)); null when it did not say.
  returned: success
  type: str
  sample: b9246-0c1e570
errors:
  description: Failures the server logged about its backends or model.
  returned: success
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils import _docker_api
from ansible_collections.gpufleet.inference.plugins.module_utils import _llamacpp_log

GPU_BACKENDS = {"cuda": "CUDA", "rocm": "ROCm", "vulkan": "Vulkan"}


class RuntimeInfo:
    def __init__(self, module, api):
        self.module = module
        self.api = api
        self.params = module.params

    def container(self):
        found = self.api.containers({"org.gpufleet.service": self.params["service"],
                                     "com.docker.compose.project": self.params["project"]})
        running = [c for c in found if c.get("State") == "running"]
        if not running:
            self.module.fail_json(msg="service %s: no running container in Compose project %s (found %s)" % (
                self.params["service"], self.params["project"],
                ", ".join("%s (%s)" % ((c.get("Names") or ["?"])[0].lstrip("/"), c.get("State")) for c in found) or "none"))
        return self.api.inspect_container(running[0]["Id"])

    def run(self):
        inspect = self.container()
        name = inspect.get("Name", "").lstrip("/")
        image_ref = inspect.get("Config", {}).get("Image")
        labels = (self.api.inspect_image(inspect.get("Image")).get("Config") or {}).get("Labels") or {}
        image = {
            "ref": image_ref,
            "id": inspect.get("Image"),
            "backend": labels.get("org.gpufleet.llamacpp.backend"),
            "version": labels.get("org.opencontainers.image.version"),
            "revision": labels.get("org.opencontainers.image.revision"),
            "base": labels.get("org.opencontainers.image.base.name"),
            "base_digest": labels.get("org.opencontainers.image.base.digest") or None,
        }
        since = _docker_api.unix_time(inspect.get("State", {}).get("StartedAt"))
        lines = self.api.log_head(inspect["Id"], self.params["max_lines"], since=int(since),
                                  tty=bool(inspect.get("Config", {}).get("Tty")))
        parsed = _llamacpp_log.parse("\n".join(lines))
        summary = _llamacpp_log.summary(parsed)
        build = None
        if parsed["build_number"] is not None:
            build = "b%s-%s" % (parsed["build_number"], parsed["build_commit"])
        result = dict(
            changed=False,
            container=name,
            image=image,
            backend=summary["backend"],
            devices=summary["devices"],
            device_details=parsed["devices_used"],
            devices_available=[d["name"] for d in parsed["devices_listed"]],
            layers_offloaded=parsed["layers_offloaded"],
            layers_total=parsed["layers_total"],
            backends_loaded=parsed["backends_loaded"],
            build=build,
            errors=parsed["errors"],
        )
        problems = self.problems(image["backend"], summary, parsed)
        if problems:
            self.module.fail_json(msg="service %s: %s" % (self.params["service"], "; ".join(problems)), **result)
        self.module.exit_json(**result)

    def problems(self, image_backend, summary, parsed):
        out = []
        expected = GPU_BACKENDS.get(image_backend or "")
        if expected and self.params["require_gpu"] and summary["backend"] != expected:
            out.append("its image is built for %s but the server runs on %s (devices found: %s%s)" % (
                image_backend, summary["backend"],
                ", ".join(d["name"] for d in parsed["devices_listed"]) or "none",
                "; " + "; ".join(parsed["errors"]) if parsed["errors"] else ""))
        wanted = self.params["gpu_layers"]
        if expected and wanted is not None and wanted > 0:
            done, total = parsed["layers_offloaded"], parsed["layers_total"]
            if done is None:
                out.append("gpu_layers is %d but the server did not report offloaded layers" % wanted)
            elif done < min(wanted, total if total is not None else wanted):
                out.append("gpu_layers is %d but only %d of %s layers are on the GPU" % (wanted, done, total))
        return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            project=dict(type="str", default="gpufleet"),
            gpu_layers=dict(type="int"),
            require_gpu=dict(type="bool", default=True),
            max_lines=dict(type="int", default=3000),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    try:
        RuntimeInfo(module, _docker_api.DockerApi(module.params["docker_host"])).run()
    except _docker_api.DockerApiError as exc:
        module.fail_json(msg="service %s: %s" % (module.params["service"], to_native(exc)), exception=traceback.format_exc())


if __name__ == "__main__":
    main()

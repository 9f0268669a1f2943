# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
name: inference_compose
short_description: The Compose project for a list of inference services
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Turns the services of the inventory (C(gpufleet_services)) into a Compose document, one Compose service each.
  - Each service gets its model directory mounted read-only, its API key as a Compose secret (a 0600 file on the host),
    a published port bound to its bind address (default C(127.0.0.1)), a healthcheck on the engine's C(/health) whose
    start period covers the model's load time, and a restart policy.
  - The companion filter C(inference_services_errors) lists what is wrong with the services before anything is rendered.
  - The companion filter C(inference_device_wiring) gives the GPU wiring for the image's backend, as the vendors' guides
    use it. NVIDIA (C(cuda)) - a Compose GPU reservation (C(driver=nvidia), C(count=all), C(capabilities=[gpu])) or
    the CDI device C(nvidia.com/gpu=all), and C(GGML_CUDA_ENABLE_UNIFIED_MEMORY=1) on unified-memory hosts (GB10).
    AMD (C(rocm)) - the devices C(/dev/kfd) and C(/dev/dri) and the host's C(video) and C(render) group ids as
    numbers (the image has no such groups). Vulkan - C(/dev/dri) and the same groups. CPU - nothing.
options:
  _input:
    description: The services (see the inference_stack role's argument spec for their keys).
    type: list
    elements: dict
    required: true
  settings:
    description:
      - C(images) (engine name to image reference), C(models_dir), C(secrets_dir), C(model_sizes)
        (service name to model file size in bytes), C(project), and C(device) - the Compose keys that give each
        service the host's GPU, from the companion filter C(inference_device_wiring).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Render the compose file
  ansible.builtin.copy:
    content: "{{ services | gpufleet.inference.inference_compose(settings) | to_nice_yaml(indent=2) }}"
    dest: /opt/gpufleet/stack/compose.yaml
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The Compose document.
  type: dict
"""

import re

from ansible.errors import AnsibleFilterError


ENGINES = ("llamacpp",)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Seconds of health-check grace before the model is expected to answer: a base, plus time per GiB to read
# and load the weights (a slow disk reads ~200 MB/s; llama.cpp maps the file and loads it in one pass).
START_PERIOD_BASE_S = 30
START_PERIOD_PER_GIB_S = 20
LOG_VERBOSITY = 4


def inference_services_errors(services, models):
    """Every problem with ``services`` (given ``models``), as messages that name the variable and the entry."""
    errors = []
    if not isinstance(services, list):
        return ["gpufleet_services must be a list of services"]
    model_names = {m.get("name") for m in models or [] if isinstance(m, dict)}
    seen_names, seen_ports = {}, {}
    for index, service in enumerate(services):
        where = f"gpufleet_services[{index}]"
        if not isinstance(service, dict):
            errors.append(f"{where} must be a dict")
            continue
        name = service.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(f"{where}.name must be lower-case letters, digits, '-' or '_' (got {name!r})")
        else:
            where = f"gpufleet_services[{index}] ({name})"
            if name in seen_names:
                errors.append(f"{where}: the name is already used by gpufleet_services[{seen_names[name]}]")
            seen_names[name] = index
        engine = service.get("engine", "llamacpp")
        if engine not in ENGINES:
            errors.append(f"{where}.engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        model = service.get("model")
        if model not in model_names:
            errors.append(f"{where}.model {model!r} is not the name of an entry of gpufleet_models "
                          f"({', '.join(sorted(n for n in model_names if n)) or 'none defined'})")
        port = service.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            errors.append(f"{where}.port must be a number from 1 to 65535 (got {port!r})")
        else:
            bind = service.get("bind_address", "127.0.0.1")
            key = (bind, port)
            clash = seen_ports.get(port)
            if clash is not None and (clash[0] == bind or "0.0.0.0" in (clash[0], bind)):
                errors.append(f"{where}.port {port} is already published by gpufleet_services[{clash[1]}]")
            seen_ports.setdefault(port, (key[0], index))
        context = service.get("context", 4096)
        if not isinstance(context, int) or isinstance(context, bool) or context < 0:
            errors.append(f"{where}.context must be a whole number of tokens, 0 for the model's own (got {context!r})")
        verbosity = service.get("log_verbosity", LOG_VERBOSITY)
        if not isinstance(verbosity, int) or isinstance(verbosity, bool) or not 0 <= verbosity <= 5:
            errors.append(f"{where}.log_verbosity must be a number from 0 to 5 (got {verbosity!r})")
        args = service.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            errors.append(f"{where}.args must be a list of command-line arguments")
    return errors


NVIDIA_DEVICE_MODES = ("reservation", "cdi")


def inference_device_wiring(backend, gpu=None, nvidia_devices="reservation", group_ids=None, environment=None,
                            dri_present=True):
    """The Compose keys that give a service the host's GPU for an image built for ``backend``.

    ``gpu`` is the ``gpufleet_gpu`` fact (for unified memory), ``group_ids`` the host's numeric ids of the groups
    that own the GPU device nodes (video, render), ``environment`` more variables for the engine (for example
    ``HSA_OVERRIDE_GFX_VERSION`` when the inventory sets one). ``dri_present`` says whether the host has
    ``/dev/dri``: ROCm needs it, Vulkan uses it when it is there and otherwise only has CPU Vulkan devices
    (Mesa's lavapipe).
    """
    gpu = gpu or {}
    wiring = {}
    env = {}
    if backend == "cuda":
        if nvidia_devices not in NVIDIA_DEVICE_MODES:
            raise AnsibleFilterError(f"inference_stack_nvidia_devices must be one of {', '.join(NVIDIA_DEVICE_MODES)} "
                                     f"(got {nvidia_devices!r})")
        if nvidia_devices == "cdi":
            wiring["devices"] = ["nvidia.com/gpu=all"]
        else:
            wiring["deploy"] = {"resources": {"reservations": {"devices": [
                {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}}
        if gpu.get("unified_memory"):
            # GB10: CUDA allocations may use all of the shared system memory, not only what the driver calls VRAM.
            env["GGML_CUDA_ENABLE_UNIFIED_MEMORY"] = "1"
    elif backend in ("rocm", "vulkan"):
        wiring["devices"] = (["/dev/kfd"] if backend == "rocm" else []) + (
            ["/dev/dri"] if backend == "rocm" or dri_present else [])
        if not wiring["devices"]:
            del wiring["devices"]
        gids = []
        for gid in group_ids or []:
            if isinstance(gid, bool) or not str(gid).isdigit():
                raise AnsibleFilterError(f"inference_device_wiring: group ids must be numbers (got {gid!r})")
            if str(int(gid)) not in gids:
                gids.append(str(int(gid)))
        if gids:
            wiring["group_add"] = gids
    elif backend != "cpu":
        raise AnsibleFilterError(f"inference_device_wiring: unknown backend {backend!r}")
    env.update({str(k): str(v) for k, v in (environment or {}).items() if v not in (None, "")})
    if env:
        wiring["environment"] = env
    return wiring


def start_period(size_bytes):
    """Health-check start period, in seconds, for a model file of ``size_bytes``."""
    gib = max(0, int(size_bytes or 0)) / 2**30
    return int(START_PERIOD_BASE_S + START_PERIOD_PER_GIB_S * gib + 0.999)


def _llamacpp(service, settings):
    name = service["name"]
    port = service["port"]
    model = service["model"]
    model_file = service.get("model_file") or settings.get("model_files", {}).get(name)
    if not model_file:
        raise AnsibleFilterError(f"gpufleet_services ({name}): model_file is not set and model {model!r} has no single file to serve")
    command = [
        "--model", f"/models/{model}/{model_file}",
        "--alias", service.get("served_name", model),
        "--host", "0.0.0.0",
        "--port", str(port),
        "--ctx-size", str(service.get("context", 4096)),
        "--api-key-file", f"/run/secrets/{name}_api_key",
    ]
    if service.get("parallel"):
        command += ["--parallel", str(service["parallel"])]
    if service.get("gpu_layers") is not None:
        command += ["--n-gpu-layers", str(service["gpu_layers"])]
    # 4 (trace) logs, at start-up, the backends loaded, the devices the model uses and the layers offloaded: the
    # verify role reads what the server really runs on from there. 3 is llama-server's default.
    command += ["--log-verbosity", str(service.get("log_verbosity", LOG_VERBOSITY))]
    command += [str(arg) for arg in service.get("args", [])]
    size = settings.get("model_sizes", {}).get(name, 0)
    device = settings.get("device") or {}
    return {
        "image": settings["images"]["llamacpp"],
        "command": command,
        "ports": [f"{service.get('bind_address', '127.0.0.1')}:{port}:{port}"],
        "volumes": [f"{settings['models_dir']}/{model}:/models/{model}:ro"],
        "secrets": [f"{name}_api_key"],
        "environment": dict(device.get("environment", {}), **service.get("environment", {})),
        **{key: device[key] for key in ("devices", "group_add", "deploy") if key in device},
        "healthcheck": {
            "test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{port}/health"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{service.get('health_start_period', start_period(size))}s",
        },
        "restart": service.get("restart", "unless-stopped"),
        "labels": {
            "org.gpufleet.service": name,
            "org.gpufleet.engine": "llamacpp",
            "org.gpufleet.model": model,
        },
    }


def inference_compose(services, settings):
    errors = inference_services_errors(services, settings.get("models", [{"name": s.get("model")} for s in services]))
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    document = {"name": settings.get("project", "gpufleet"), "services": {}, "secrets": {}}
    for service in services:
        engine = service.get("engine", "llamacpp")
        if not settings.get("images", {}).get(engine):
            raise AnsibleFilterError(f"gpufleet_services ({service['name']}): no image for engine {engine!r}")
        document["services"][service["name"]] = _llamacpp(service, settings)
        document["secrets"][f"{service['name']}_api_key"] = {"file": f"{settings['secrets_dir']}/{service['name']}.key"}
    return document


class FilterModule:
    def filters(self):
        return {
            "inference_compose": inference_compose,
            "inference_services_errors": inference_services_errors,
            "inference_device_wiring": inference_device_wiring,
        }

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import copy
import hashlib
import ipaddress
import json
import re
import shlex

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.module_utils import _chat_template, _lanes, _tls, _validate


ENGINES = ("llamacpp", "vllm")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Seconds of health-check grace before the model is expected to answer: a base, plus time per GiB to read
# and load the weights (a slow disk reads ~200 MB/s; llama.cpp maps the file and loads it in one pass).
NO_NEW_PRIVILEGES = ("no-new-privileges:true",)
LLAMACPP_READ_ONLY = {"read_only": True, "tmpfs": ["/tmp"]}
# The uid:gid llama.cpp services run as unless they set ``user``: an id outside the ranges Debian and Ubuntu give
# to accounts (100-999 system, 1000-59999 people), so that no account of the host owns the engine's key file.
ENGINE_USER = "65532:65532"
USER_RE = re.compile(r"^[0-9]{1,10}:[0-9]{1,10}$")
PROXY_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID", "NET_BIND_SERVICE")
START_PERIOD_BASE_S = 30
START_PERIOD_PER_GIB_S = 20
# vLLM also profiles memory, captures CUDA graphs and compiles with torch.compile before it answers: minutes
# even for a small model, and Compose's wait gives up at the first unhealthy report.
VLLM_START_PERIOD_BASE_S = 600
VLLM_START_PERIOD_PER_GIB_S = 30
LOG_VERBOSITY = 4
# Seed 000 (NVIDIA's NGC container guide): unlimited locked memory, a 64 MiB stack.
VLLM_ULIMITS = {"memlock": -1, "stack": 67108864}
VLLM_MODULE = ["python3", "-m", "vllm.entrypoints.openai.api_server"]
# The healthcheck: GET /health on the port given as argument, with the Python every vLLM image has (not curl).
VLLM_HEALTH_PY = ('import sys, http.client as h; c = h.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=4); '
                  'c.request("GET", "/health"); sys.exit(c.getresponse().status != 200)')
# Routes the proxy forwards (with the key); everything else answers 404 with the key and 401 without.
PROXY_PREFIXES = ("/v1/",)
PROXY_EXACT = ("/health", "/metrics", "/version", "/lanes")
PROXY_PORT = 8080
LOOPBACK_NAMES = ("localhost",)
# Every key a service may have (the inference_stack role's argument spec describes each); any other is a typo.
SERVICE_KEYS = (
    "name", "engine", "model", "model_file", "served_name", "port", "container_port", "bind_address", "context",
    "parallel", "gpu_layers", "args", "environment", "api_key", "api_key_required", "public_without_key", "proxy",
    "health_start_period", "restart", "log_verbosity", "user", "tls", "chat_template", "stop",
    # vLLM
    "gpu_memory_utilization", "max_num_seqs", "tensor_parallel_size", "dtype", "quantization", "kv_cache_dtype",
    "enforce_eager", "hub_cache", "ipc", "shm_size", "ulimits", "trust_remote_code",
    # lanes
    "lanes", "memory_budget_gb", "max_loaded", "switch_timeout",
)


def is_loopback(address):
    """Whether a bind address only accepts connections from the host itself."""
    if address in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(address).strip("[]")).is_loopback
    except ValueError:
        return False


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(service, key, errors, where, minimum=1):
    if key in service and service[key] is not None:
        value = service[key]
        if not _int(value) or value < minimum:
            errors.append(f"{where}.{key} must be a whole number of at least {minimum} (got {value!r})")


def uses_proxy(service):
    """Whether a reverse proxy publishes the service (default: vLLM bound beyond loopback; always with tls)."""
    if service.get("tls") is not None:
        return True
    if service.get("proxy") is not None:
        return bool(service["proxy"])
    return service.get("engine", "llamacpp") == "vllm" and not is_loopback(service.get("bind_address", "127.0.0.1"))


def keyed(service):
    return service.get("api_key_required", True) is not False


def engine_user(service, default=ENGINE_USER):
    """The ``uid:gid`` a service's engine runs as: llama.cpp's ``user`` or ``default``; None for vLLM (root)."""
    if service.get("engine", "llamacpp") == "vllm":
        return None
    return str(service.get("user", default))


def inference_services_errors(services, models, gpu_count=None):
    """Every problem with ``services`` (given ``models``), as messages that name the variable and the entry.

    ``gpu_count``, when known (from gpu_facts), bounds each service's ``tensor_parallel_size``.
    """
    errors = []
    if not isinstance(services, list):
        return [f"gpufleet_services must be a list of services, each a dict with name, model and port "
                f"(got {_validate.type_name(services)})"]
    model_names = {m.get("name") for m in models or [] if isinstance(m, dict)}
    model_by_name = {m.get("name"): m for m in models or [] if isinstance(m, dict)}
    seen_names, seen_ports = {}, {}
    for index, service in enumerate(services):
        where = f"gpufleet_services[{index}]"
        if not isinstance(service, dict):
            errors.append(f"{where} must be a dict")
            continue
        name = service.get("name")
        where, name_errors = _validate.named_entry("gpufleet_services", index, name, NAME_RE,
                                                   "lower-case letters, digits, '-' or '_'", seen_names)
        errors += name_errors
        if not name_errors and name.endswith("-proxy") and name[:-6] in seen_names:
            errors.append(f"{where}.name is the name of the proxy of gpufleet_services[{seen_names[name[:-6]]}]")
        errors += _validate.unknown_keys(service, SERVICE_KEYS, where)
        engine = service.get("engine", "llamacpp")
        if engine not in ENGINES:
            errors.append(f"{where}.engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        model = service.get("model")
        if "lanes" in service:
            errors += _lanes.lane_errors(service, where, model_names, engine)
        elif model not in model_names:
            errors.append(f"{where}.model {model!r} is not the name of an entry of gpufleet_models "
                          f"({', '.join(sorted(n for n in model_names if n)) or 'none defined'})")
        if service.get("model_file") is not None and _validate.file_in_directory_error(service["model_file"]):
            errors.append(f"{where}.model_file {_validate.file_in_directory_error(service['model_file'])}")
        bind = service.get("bind_address", "127.0.0.1")
        if _validate.ip_address_error(bind):
            errors.append(f"{where}.bind_address {_validate.ip_address_error(bind)}")
            bind = "127.0.0.1"
        port = service.get("port")
        if not _int(port) or not 1 <= port <= 65535:
            errors.append(f"{where}.port must be a number from 1 to 65535 (got {port!r})")
        else:
            clash = seen_ports.get(port)
            if clash is not None and (clash[0] == bind or "0.0.0.0" in (clash[0], bind) or "::" in (clash[0], bind)):
                errors.append(f"{where}.port {port} is already published by gpufleet_services[{clash[1]}]")
            seen_ports.setdefault(port, (bind, index))
        container_port = service.get("container_port", port)
        if not _int(container_port) or not 1 <= container_port <= 65535:
            errors.append(f"{where}.container_port must be a number from 1 to 65535 (got {container_port!r})")
        context = service.get("context", 4096 if engine == "llamacpp" else None)
        if context is not None and _validate.context_error(context):
            errors.append(f"{where}.context {_validate.context_error(context)}")
        verbosity = service.get("log_verbosity", LOG_VERBOSITY)
        if not _int(verbosity) or not 0 <= verbosity <= 5:
            errors.append(f"{where}.log_verbosity must be a number from 0 to 5 (got {verbosity!r})")
        args = service.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            errors.append(f"{where}.args must be a list of command-line arguments")
        elif any(str(a).split("=", maxsplit=1)[0] == "--trust-remote-code" for a in args):
            # Code from a model repository runs only when the inventory says so in so many words.
            errors.append(f"{where}.args: --trust-remote-code runs the model repository's own Python code; "
                          f"set trust_remote_code: true on the service instead, where a review can see it")
        environment = service.get("environment", {})
        if not isinstance(environment, dict):
            errors.append(f"{where}.environment must be a dict of variable names to values")
        for key in ("api_key_required", "public_without_key", "proxy", "hub_cache", "enforce_eager", "trust_remote_code"):
            if key in service and service[key] is not None and not isinstance(service[key], bool):
                errors.append(f"{where}.{key} must be true or false (got {service[key]!r})")
        user = service.get("user")
        if user is not None and (not isinstance(user, str) or not USER_RE.match(user)):
            errors.append(f"{where}.user must be a numeric uid:gid such as {ENGINE_USER} {_validate.got(user)}")
        if user is not None and engine == "vllm":
            errors.append(f"{where}.user is a llama.cpp setting: vLLM services run as root (docs/security.md)")
        errors += _tls.tls_errors(service, where)
        if "lanes" in service:
            errors += [f"{where}.{key} is a setting of a service with one model; give a lane's template in its args"
                       for key in ("chat_template", "stop") if key in service]
        else:
            errors += _chat_template.errors(service, where, engine, read=_read_text)
        if "api_key" in service and _validate.api_key_error(service["api_key"]):
            errors.append(f"{where}.api_key {_validate.api_key_error(service['api_key'])}")
        if not keyed(service):
            if "api_key" in service:
                errors.append(f"{where}: api_key is set but api_key_required is false")
            if not is_loopback(bind) and service.get("public_without_key") is not True:
                errors.append(f"{where}: api_key_required is false and bind_address {bind} is beyond loopback: anyone "
                              f"who reaches the host can use the model; set public_without_key: true to allow it")
        _positive_int(service, "parallel", errors, where)
        _positive_int(service, "max_num_seqs", errors, where)
        _positive_int(service, "tensor_parallel_size", errors, where)
        if gpu_count is not None:
            errors += inference_tensor_parallel_errors([service], gpu_count, where=where)
        gmu = service.get("gpu_memory_utilization")
        if gmu is not None and (isinstance(gmu, bool) or not isinstance(gmu, (int, float)) or not 0 < gmu <= 1):
            errors.append(f"{where}.gpu_memory_utilization must be a fraction in (0, 1] (got {gmu!r})")
        ulimits = service.get("ulimits", {})
        if not isinstance(ulimits, dict):
            errors.append(f"{where}.ulimits must be a dict such as {{memlock: -1, stack: 67108864}}")
        ipc = service.get("ipc")
        if ipc is not None and ipc not in ("host", "private", "shareable"):
            errors.append(f"{where}.ipc must be host, private or shareable (got {ipc!r})")
        if "lanes" not in service:
            for key in ("memory_budget_gb", "max_loaded", "switch_timeout"):
                if key in service:
                    errors.append(f"{where}.{key} is a setting of a service with lanes; this one has none")
        if service.get("hub_cache") and not (model_by_name.get(model) or {}).get("hf"):
            errors.append(f"{where}.hub_cache needs model {model!r} to have an hf source (hf.repo) for vLLM to fetch")
        if engine != "vllm":
            for key in ("gpu_memory_utilization", "max_num_seqs", "tensor_parallel_size", "hub_cache", "quantization",
                        "kv_cache_dtype", "enforce_eager", "dtype", "trust_remote_code"):
                if key in service:
                    errors.append(f"{where}.{key} is a vLLM setting; this service's engine is {engine}")
    return errors


def _read_text(path):
    """A file's text on the controller, or None when there is no such file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read(_chat_template.MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError):
        return None


def inference_chat_template_files(services):
    """The template files the services' ``chat_template`` asks for: ``[{service, name, content}]``."""
    files = []
    for service in services or []:
        if isinstance(service, dict) and "lanes" not in service and _chat_template.needs_file(service):
            value = service["chat_template"]
            content = value if _chat_template.kind(value) == "inline" else _read_text(value)
            if content is None:
                raise AnsibleFilterError(f"gpufleet_services ({service['name']}).chat_template: there is no file "
                                         f"{value} on the controller")
            files.append({"service": service["name"], "name": _chat_template.file_name(service), "content": content})
    return files


def inference_chat_templates(services, gguf=None, model_files=None):
    """Where each service's chat template comes from, and the warnings to give.

    ``gguf`` is gguf_metadata's ``files`` (path -> metadata) for the served files, ``model_files`` the file each
    service serves (service name -> path on the host). Returns ``{"services": {name: {source, name, file}},
    "warnings": [...], "unset_by_file": {path: [names]}}`` (the files served by services that set no template, for
    gguf_metadata's warn_if_no_template); services with lanes are left out.
    """
    gguf, model_files = gguf or {}, model_files or {}
    result = {"services": {}, "warnings": [], "unset_by_file": {}}
    for service in services or []:
        if not isinstance(service, dict) or "lanes" in service or service.get("engine", "llamacpp") != "llamacpp":
            continue
        path = model_files.get(service["name"])
        meta = gguf.get(path) if path else None
        if meta is not None:
            meta = dict(meta, file=path.rsplit("/", 1)[-1])
        described = _chat_template.describe(service, meta)
        warning = described.pop("warning")
        if warning:
            result["warnings"].append(warning)
        result["services"][service["name"]] = dict(described, file=path)
        if path and service.get("chat_template") is None:
            result["unset_by_file"].setdefault(path, []).append(service["name"])
    return result


def _chat_template_mount(service, doc, settings):
    """Mount a service's template file, and label the container with its digest (a new template recreates it)."""
    if not _chat_template.needs_file(service):
        return
    name = _chat_template.file_name(service)
    directory = settings.get("chat_templates_dir") or settings["secrets_dir"].rsplit("/", 1)[0] + "/chat-templates"
    doc["volumes"].append(f"{directory}/{name}:{_chat_template.CONTAINER_DIR}/{name}:ro")
    content = next(f["content"] for f in inference_chat_template_files([service]))
    doc["labels"]["org.gpufleet.chat-template"] = _chat_template.digest(content)[:16]


def inference_tensor_parallel_errors(services, gpu_count, where=None):
    """The services whose ``tensor_parallel_size`` asks for more GPUs than ``gpu_count`` (what gpu_facts found)."""
    errors = []
    for index, service in enumerate(services or []):
        tp = service.get("tensor_parallel_size") if isinstance(service, dict) else None
        if _int(tp) and tp > max(int(gpu_count or 0), 1):
            name = where or f"gpufleet_services[{index}] ({service.get('name', '?')})"
            errors.append(f"{name}.tensor_parallel_size {tp} is more than the {gpu_count} GPU(s) found on the host")
    return errors


def inference_declared_models(services, models):
    """What the inventory says of each service's model without reading the host (render-only plans): the file a
    llama.cpp service serves when it names none (the model's only declared file) and the size (``size_gb``)."""
    by_name = {m.get("name"): m for m in models or [] if isinstance(m, dict)}
    files, sizes = {}, {}
    for use in inference_model_uses(services):
        model = by_name.get(use["model"]) or {}
        if model.get("hf") is not None:
            declared = list((model.get("hf") or {}).get("files") or [])
        else:
            declared = [model["path"].rstrip("/").rsplit("/", 1)[-1]] if model.get("path") else []
        if len(declared) == 1:
            files[use["key"]] = declared[0]
        sizes[use["key"]] = int(float(model.get("size_gb") or 0) * 1000**3)
    return {"model_files": files, "model_sizes": sizes}


NVIDIA_DEVICE_MODES = ("reservation", "cdi")


def inference_device_wiring(backend, gpu=None, nvidia_devices="reservation", group_ids=None, environment=None,
                            dri_present=True, engine="llamacpp"):
    """The Compose keys that give a service the host's GPU for an image built for ``backend``.

    ``gpu`` is the ``gpufleet_gpu`` fact (for unified memory), ``group_ids`` the host's numeric ids of the groups
    that own the GPU device nodes (video, render), ``environment`` more variables for the engine (for example
    ``HSA_OVERRIDE_GFX_VERSION`` when the inventory sets one). ``dri_present`` says whether the host has
    ``/dev/dri``: ROCm needs it, Vulkan uses it when it is there and otherwise only has CPU Vulkan devices
    (Mesa's lavapipe). ``engine`` is the engine the wiring is for (ggml's unified-memory switch is llama.cpp's).
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
        if gpu.get("unified_memory") and engine == "llamacpp":
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


def start_period(size_bytes, engine="llamacpp"):
    """Health-check start period, in seconds, for a model of ``size_bytes``."""
    gib = max(0, int(size_bytes or 0)) / 2**30
    if engine == "vllm":
        return int(VLLM_START_PERIOD_BASE_S + VLLM_START_PERIOD_PER_GIB_S * gib + 0.999)
    return int(START_PERIOD_BASE_S + START_PERIOD_PER_GIB_S * gib + 0.999)


def _device(service, settings):
    engine = service.get("engine", "llamacpp")
    by_engine = settings.get("device_by_engine") or {}
    device = copy.deepcopy(by_engine.get(engine, settings.get("device") or {}))
    tp = service.get("tensor_parallel_size")
    reservation = device.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    if engine == "vllm" and tp and reservation:
        # Seed 002: as many GPUs as tensor-parallel ranks, not all of them.
        device["deploy"] = {"resources": {"reservations": {"devices": [
            dict(reservation[0], count=int(tp))]}}}
    return device


def _published(service):
    port = service["port"]
    return [f"{service.get('bind_address', '127.0.0.1')}:{port}:{service.get('container_port', port)}"]


def _common(service, settings, engine):
    name = service["name"]
    device = _device(service, settings)
    size = settings.get("model_sizes", {}).get(name, 0)
    environment = dict(device.get("environment", {}))
    doc = {
        "image": settings["images"][engine],
        "environment": environment,
        **{key: device[key] for key in ("devices", "group_add", "deploy") if key in device},
        "restart": service.get("restart", "unless-stopped"),
        # The engine needs no capability and never gains one (setuid binaries included).
        "security_opt": list(NO_NEW_PRIVILEGES),
        "cap_drop": ["ALL"],
        "labels": {
            "org.gpufleet.service": name,
            "org.gpufleet.engine": engine,
            "org.gpufleet.model": service["model"] if "lanes" not in service else ",".join(
                sorted({lane["model"] for lane in service["lanes"]})),
            "org.gpufleet.auth": "api-key" if keyed(service) else "none",
        },
    }
    if not uses_proxy(service):
        doc["ports"] = _published(service)
    if keyed(service):
        doc["secrets"] = [f"{name}_api_key"]
    user = engine_user(service, settings.get("engine_user") or ENGINE_USER)
    if user:
        # The key file is this user's (inference_key_owners), the models are world-readable.
        doc["user"] = user
    health_start = service.get("health_start_period", start_period(size, engine))
    return doc, f"{health_start}s"


def _llamacpp(service, settings):
    name = service["name"]
    port = service.get("container_port", service["port"])
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
    ]
    if keyed(service):
        command += ["--api-key-file", f"/run/secrets/{name}_api_key"]
    if service.get("parallel"):
        command += ["--parallel", str(service["parallel"])]
    if service.get("gpu_layers") is not None:
        command += ["--n-gpu-layers", str(service["gpu_layers"])]
    command += _chat_template.llamacpp_flags(service)
    # 4 (trace) logs, at start-up, the backends loaded, the devices the model uses and the layers offloaded: the
    # verify role reads what the server really runs on from there. 3 is llama-server's default.
    command += ["--log-verbosity", str(service.get("log_verbosity", LOG_VERBOSITY))]
    command += [str(arg) for arg in service.get("args", [])]
    doc, health_start = _common(service, settings, "llamacpp")
    doc["environment"].update({str(k): str(v) for k, v in service.get("environment", {}).items()})
    doc.update({
        "command": command,
        "volumes": [f"{settings['models_dir']}/{model}:/models/{model}:ro"],
        # llama-server writes nothing but its log (to stdout): its root filesystem is read-only.
        **LLAMACPP_READ_ONLY,
        "healthcheck": {
            "test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{port}/health"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": health_start,
        },
    })
    _chat_template_mount(service, doc, settings)
    return _ordered(doc)


def vllm_setting(service, plan, key, plan_key=None):
    """A vLLM flag's value: the service's own, else the planner's."""
    if service.get(key) is not None:
        return service[key]
    return (plan or {}).get(plan_key or key)


def _vllm(service, settings):
    name = service["name"]
    port = service.get("container_port", service["port"])
    model = service["model"]
    plan = (settings.get("plans") or {}).get(name) or {}
    source = next((m for m in settings.get("models", []) if m.get("name") == model), {}) or {}
    command = []
    if service.get("hub_cache"):
        hf = source.get("hf") or {}
        command += ["--model", hf.get("repo", model)]
        if hf.get("revision"):
            command += ["--revision", str(hf["revision"])]
    else:
        command += ["--model", f"/models/{model}"]
    command += ["--served-model-name", service.get("served_name", model), "--host", "0.0.0.0", "--port", str(port)]
    context = vllm_setting(service, plan, "context")
    if context:
        command += ["--max-model-len", str(context)]
    for key, flag in (("gpu_memory_utilization", "--gpu-memory-utilization"), ("max_num_seqs", "--max-num-seqs"),
                      ("tensor_parallel_size", "--tensor-parallel-size")):
        value = vllm_setting(service, plan, key)
        if value is not None:
            command += [flag, str(value)]
    for key, flag in (("dtype", "--dtype"), ("quantization", "--quantization"), ("kv_cache_dtype", "--kv-cache-dtype")):
        if service.get(key):
            command += [flag, str(service[key])]
    if service.get("enforce_eager"):
        command.append("--enforce-eager")
    if service.get("trust_remote_code") is True:
        command.append("--trust-remote-code")
    command += _chat_template.vllm_flags(service)
    command += [str(arg) for arg in service.get("args", [])]
    doc, health_start = _common(service, settings, "vllm")
    environment = doc["environment"]
    environment["VLLM_NO_USAGE_STATS"] = "1"
    if not service.get("hub_cache"):
        # The weights are on the host already: no hub requests at start-up.
        environment["HF_HUB_OFFLINE"] = "1"
    environment.update({str(k): str(v) for k, v in service.get("environment", {}).items()})
    if keyed(service):
        # The key reaches vLLM as VLLM_API_KEY, read from the secret when the container starts: not in the
        # command line (ps, docker inspect) and not in compose.yaml.
        doc["entrypoint"] = ["/bin/sh", "-c",
                             f'VLLM_API_KEY="$(cat /run/secrets/{name}_api_key)" && export VLLM_API_KEY && '
                             f'exec {" ".join(VLLM_MODULE)} "$@"', "vllm"]
    else:
        doc["entrypoint"] = list(VLLM_MODULE)
    volumes = [] if service.get("hub_cache") else [f"{settings['models_dir']}/{model}:/models/{model}:ro"]
    volumes += [f"{settings.get('hf_cache_dir', '/opt/gpufleet/hf-cache')}:/root/.cache/huggingface",
                f"{settings.get('vllm_cache_dir', '/opt/gpufleet/vllm-cache')}:/root/.cache/vllm"]
    doc.update({"command": command, "volumes": volumes})
    _chat_template_mount(service, doc, settings)
    if settings.get("hf_token_file"):
        doc["env_file"] = [settings["hf_token_file"]]
    ipc = service.get("ipc", None if service.get("shm_size") else "host")
    if ipc:
        doc["ipc"] = ipc
    if service.get("shm_size"):
        doc["shm_size"] = str(service["shm_size"])
    doc["ulimits"] = dict(VLLM_ULIMITS, **service.get("ulimits", {}))
    doc["healthcheck"] = {
        # Python is in every vLLM image; curl is not.
        "test": ["CMD", "python3", "-c", VLLM_HEALTH_PY, str(port)],
        "interval": "15s",
        "timeout": "5s",
        "retries": 3,
        "start_period": health_start,
    }
    return _ordered(doc)


# -- Lanes: several models behind one port (see docs/lanes.md) ------------------------------------------------
LANES_DIR = "/etc/gpufleet/lanes"
LANES_SWITCHER = "/opt/gpufleet/gpufleet_lanes.py"
# Seconds a request may wait for its vLLM lane (a 32B model loads in 30-60 s on Strix Halo; first starts compile).
LANES_SWITCH_TIMEOUT = 900


def inference_lanes_plan(service, settings=None):
    """How a service's lanes run: side by side or switching, how many loaded at once, each lane's memory."""
    settings = settings or {}
    return _lanes.plan_lanes(service, settings.get("model_sizes"), settings.get("budget"))


def _lanes_plan_checked(service, settings):
    plan = inference_lanes_plan(service, settings)
    if plan["errors"]:
        raise AnsibleFilterError("; ".join(plan["errors"]))
    return plan


def _lane_model_file(service, lane, settings):
    settings_file = (settings.get("model_files") or {}).get(_lanes.lane_key(service, lane))
    model_file = lane.get("model_file") or settings_file
    if not model_file:
        raise AnsibleFilterError(f"gpufleet_services ({service['name']}).lanes ({lane['name']}): model_file is not "
                                 f"set and model {lane['model']!r} has no single file to serve")
    return model_file


def inference_lanes_preset(service, settings):
    """The llama.cpp router's preset (INI) for a llama.cpp service with lanes: one section per lane."""
    plan = _lanes_plan_checked(service, settings)
    preload = {entry["name"]: entry["preload"] for entry in plan["lanes"]}
    lines = [f"; Written by gpufleet.inference.inference_stack for the service {service['name']}: "
             f"{plan['mode']}, at most {plan['max_loaded']} of {len(plan['lanes'])} lanes loaded.", "version = 1", ""]
    for lane in service["lanes"]:
        merged = _lanes.lane_settings(service, lane)
        section = {"model": f"/models/{lane['model']}/{_lane_model_file(service, lane, settings)}",
                   "ctx-size": str(merged.get("context", 4096))}
        if merged.get("gpu_layers") is not None:
            section["n-gpu-layers"] = str(merged["gpu_layers"])
        if merged.get("parallel"):
            section["parallel"] = str(merged["parallel"])
        section.update(_lanes.args_to_preset(merged.get("args", [])))
        section["load-on-startup"] = "true" if preload[lane["name"]] else "false"
        lines.append(f"[{lane['name']}]")
        lines += [f"{key} = {value}" for key, value in section.items()]
        lines.append("")
    return "\n".join(lines)


def inference_lanes_config(service, settings):
    """The lane switcher's configuration (a dict, written as JSON) for a vLLM service with lanes."""
    plan = _lanes_plan_checked(service, settings)
    name = service["name"]
    port = service.get("container_port", service["port"])
    by_name = {entry["name"]: entry for entry in plan["lanes"]}
    lanes = []
    next_port = _lanes.VLLM_LANE_PORT_BASE
    for lane in service["lanes"]:
        if next_port == port:
            next_port += 1
        merged = _lanes.lane_settings(service, lane)
        entry = by_name[lane["name"]]
        command = list(VLLM_MODULE) + ["--model", f"/models/{lane['model']}", "--served-model-name", lane["name"],
                                       "--host", "127.0.0.1", "--port", str(next_port)]
        if merged.get("context"):
            command += ["--max-model-len", str(merged["context"])]
        for key, flag in (("gpu_memory_utilization", "--gpu-memory-utilization"), ("max_num_seqs", "--max-num-seqs"),
                          ("tensor_parallel_size", "--tensor-parallel-size"), ("dtype", "--dtype"),
                          ("quantization", "--quantization"), ("kv_cache_dtype", "--kv-cache-dtype")):
            value = merged.get(key, entry.get(key))
            if value is not None:
                command += [flag, str(value)]
        if merged.get("enforce_eager"):
            command.append("--enforce-eager")
        if service.get("trust_remote_code") is True:
            command.append("--trust-remote-code")
        command += [str(arg) for arg in merged.get("args", [])]
        lanes.append({"name": lane["name"], "port": next_port, "bytes": entry["bytes"], "preload": entry["preload"],
                      "command": command,
                      "environment": {str(k): str(v) for k, v in (lane.get("environment") or {}).items()}})
        next_port += 1
    return {
        "service": name,
        "host": "0.0.0.0",
        "port": port,
        "mode": plan["mode"],
        "max_loaded": plan["max_loaded"],
        "budget_bytes": plan["budget_bytes"],
        "switch_timeout": service.get("switch_timeout", LANES_SWITCH_TIMEOUT),
        "api_key_env": "VLLM_API_KEY" if keyed(service) else None,
        "lanes": lanes,
    }


def _lane_file_text(service, settings):
    if service.get("engine", "llamacpp") == "vllm":
        return f"{service['name']}.json", json.dumps(inference_lanes_config(service, settings), indent=2) + "\n"
    return f"{service['name']}.ini", inference_lanes_preset(service, settings)


def inference_lane_files(services, settings):
    """The files the services with lanes read (their router preset or switcher configuration): name and content."""
    return [dict(zip(("name", "content"), _lane_file_text(service, settings)))
            for service in services or [] if isinstance(service, dict) and "lanes" in service]


def _beside_secrets(settings, key, name):
    """A directory of the stack on the host: ``settings[key]``, else ``name`` beside the secrets directory."""
    return settings.get(key) or settings["secrets_dir"].rstrip("/").rsplit("/", 1)[0] + "/" + name


def _lanes_dir(settings):
    """Where the lane files are on the host."""
    return _beside_secrets(settings, "lanes_dir", "lanes")


def _lanes_volumes(service, settings):
    models = sorted({lane["model"] for lane in service["lanes"]})
    return [f"{settings['models_dir']}/{model}:/models/{model}:ro" for model in models]


def _lanes_label(doc, service, settings):
    # A changed lane file recreates the container (Compose compares the service, not the files it mounts).
    name, content = _lane_file_text(service, settings)
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    if service.get("engine") == "vllm" and settings.get("lanes_switcher_checksum"):
        digest += "-" + str(settings["lanes_switcher_checksum"])[:16]
    doc["labels"]["org.gpufleet.lanes"] = ",".join(lane["name"] for lane in service["lanes"])
    doc["labels"]["org.gpufleet.lanes-config"] = digest
    return f"{_lanes_dir(settings)}/{name}"


def _lanes_llamacpp(service, settings):
    """llama.cpp's router mode: one llama-server that starts a llama-server per lane and routes by model."""
    name = service["name"]
    port = service.get("container_port", service["port"])
    plan = _lanes_plan_checked(service, settings)
    doc, _start = _common(service, settings, "llamacpp")
    config = _lanes_label(doc, service, settings)
    command = ["--models-preset", f"{LANES_DIR}/{name}.ini", "--models-max", str(plan["max_loaded"]),
               "--host", "0.0.0.0", "--port", str(port)]
    if keyed(service):
        command += ["--api-key-file", f"/run/secrets/{name}_api_key"]
    command += ["--log-verbosity", str(service.get("log_verbosity", LOG_VERBOSITY))]
    doc["environment"].update({str(k): str(v) for k, v in service.get("environment", {}).items()})
    doc.update({
        "command": command,
        "volumes": _lanes_volumes(service, settings) + [f"{config}:{LANES_DIR}/{name}.ini:ro"],
        "healthcheck": {
            # The router answers /health as soon as it listens; the lanes load on demand.
            "test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{port}/health"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{service.get('health_start_period', START_PERIOD_BASE_S)}s",
        },
    })
    return _ordered(doc)


def _lanes_vllm(service, settings):
    """vLLM lanes: the lane switcher (gpufleet_lanes.py, in the vLLM image's Python) starts a vLLM server per lane."""
    name = service["name"]
    port = service.get("container_port", service["port"])
    doc = _vllm(dict(service, model=service["lanes"][0]["model"], lanes=service["lanes"]), settings)
    config = _lanes_label(doc, service, settings)
    switcher = ["python3", LANES_SWITCHER, f"{LANES_DIR}/{name}.json"]
    if keyed(service):
        doc["entrypoint"] = ["/bin/sh", "-c",
                             f'VLLM_API_KEY="$(cat /run/secrets/{name}_api_key)" && export VLLM_API_KEY && '
                             f'exec {" ".join(switcher)}']
    else:
        doc["entrypoint"] = switcher
    doc.pop("command", None)
    volumes = [v for v in doc["volumes"] if not v.startswith(f"{settings['models_dir']}/")]
    doc["volumes"] = _lanes_volumes(service, settings) + volumes + [
        f"{config}:{LANES_DIR}/{name}.json:ro",
        f"{_lanes_dir(settings)}/gpufleet_lanes.py:{LANES_SWITCHER}:ro"]
    # The switcher answers /health at once; a lane loads on demand (the first one at start).
    doc["healthcheck"]["start_period"] = f"{service.get('health_start_period', START_PERIOD_BASE_S)}s"
    return _ordered(doc)


def inference_model_uses(services):
    """Each model a service serves, one entry per service or lane: ``key`` (the service's name, or
    ``<service>/<lane>``), ``service``, ``engine``, ``model``, ``model_file``, ``hub_cache``."""
    uses = []
    for service in services or []:
        if not isinstance(service, dict):
            continue
        engine = service.get("engine", "llamacpp")
        if "lanes" in service:
            for lane in service.get("lanes") or []:
                uses.append({"key": _lanes.lane_key(service, lane), "service": service["name"], "engine": engine,
                             "model": lane.get("model"), "model_file": lane.get("model_file"), "hub_cache": False})
        else:
            uses.append({"key": service.get("name"), "service": service.get("name"), "engine": engine,
                         "model": service.get("model"), "model_file": service.get("model_file"),
                         "hub_cache": bool(service.get("hub_cache"))})
    return uses


def inference_served_models(services):
    """What clients send as ``model``, per service: ``[{service, model}]`` (every lane of a service with lanes)."""
    served = []
    for service in services or []:
        if "lanes" in service:
            served += [{"service": service["name"], "model": lane["name"], "lane": True} for lane in service["lanes"]]
        else:
            served.append({"service": service["name"], "model": service.get("served_name", service.get("model")),
                           "lane": False})
    return served


ORDER = ("image", "user", "entrypoint", "command", "ports", "volumes", "tmpfs", "env_file", "environment", "secrets",
         "devices", "group_add", "deploy", "ipc", "shm_size", "ulimits", "read_only", "security_opt", "cap_drop", "cap_add",
         "healthcheck", "depends_on", "restart", "labels")


def _ordered(doc):
    return {key: doc[key] for key in ORDER if key in doc and doc[key] not in ({}, [])}


def _bucket_size(length):
    size = 64
    while size < length + 32:
        size *= 2
    return size


def inference_proxy_config(service, api_key=None):
    """The nginx configuration of a service's proxy: every request without the key answers 401."""
    name = service["name"]
    upstream = f"http://{name}:{service.get('container_port', service['port'])}"
    if api_key is not None and not _validate.API_KEY_RE.match(str(api_key)):
        raise AnsibleFilterError(f"gpufleet_services ({name}): the API key holds characters the proxy cannot match")
    unauthorized = ('{"error":{"message":"Missing or invalid API key","type":"invalid_request_error",'
                    '"code":"invalid_api_key"}}')
    check = "            if ($gpufleet_authorized = 0) { return 401 '%s'; }\n" % unauthorized if keyed(service) else ""
    forward = (
        # Through a variable and Docker's DNS: resolved per request, so the proxy starts (and restarts after a
        # reboot) even while the engine's container is not up yet, and answers 502 until it is.
        f"            set $gpufleet_upstream {upstream};\n"
        "            proxy_pass $gpufleet_upstream;\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_set_header Host $host;\n"
        "            proxy_set_header Connection \"\";\n"
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        # Streamed completions: pass each server-sent event on as it comes; long generations take minutes.
        "            proxy_buffering off;\n"
        "            proxy_request_buffering off;\n"
        "            proxy_read_timeout 3600s;\n"
        "            proxy_send_timeout 3600s;\n"
        "            client_max_body_size 64m;\n"
    )
    lines = [
        f"# Written by gpufleet.inference.inference_stack for the service {name}: the only way in from outside.",
        "worker_processes 2;",
        "error_log stderr warn;",
        "pid /tmp/nginx.pid;",
        "events { worker_connections 1024; }",
        "http {",
        "    access_log /dev/stdout;",
        "    default_type application/json;",
        "    server_tokens off;",
        "    client_body_temp_path /tmp/nginx-client-body;",
        "    proxy_temp_path /tmp/nginx-proxy;",
        "    fastcgi_temp_path /tmp/nginx-fastcgi;",
        "    uwsgi_temp_path /tmp/nginx-uwsgi;",
        "    scgi_temp_path /tmp/nginx-scgi;",
        "    resolver 127.0.0.11 valid=10s ipv6=off;",
        # A map bucket must hold the longest key ("Bearer " and the key, plus nginx's own bytes).
        f"    map_hash_bucket_size {_bucket_size(len(api_key or '') + 7)};",
        "    map $http_authorization $gpufleet_authorized {",
        "        default 0;",
    ]
    if api_key is not None:
        lines.append(f'        "Bearer {api_key}" 1;')
    lines += ["    }", "    server {"]
    if service.get("tls") is not None:
        # The TLS front: the published port speaks HTTPS only.
        lines += [f"        listen {PROXY_PORT} ssl;"] + _tls.nginx_lines()
    else:
        lines.append(f"        listen {PROXY_PORT};")
    lines += [
        "        location / {",
        check.rstrip("\n") if check else "",
        "            return 404 '{\"error\":{\"message\":\"Not found\",\"type\":\"not_found\"}}';",
        "        }",
    ]
    for prefix in PROXY_PREFIXES:
        lines += [f"        location {prefix} {{", check.rstrip("\n"), forward.rstrip("\n"), "        }"]
    for path in PROXY_EXACT:
        lines += [f"        location = {path} {{", check.rstrip("\n"), forward.rstrip("\n"), "        }"]
    lines += ["    }", "}"]
    return "\n".join(line for line in lines if line) + "\n"


def _proxy(service, settings):
    name = service["name"]
    config = f"{settings.get('proxy_config_dir', settings['secrets_dir'])}/{name}-proxy.conf"
    doc = {
        "image": settings.get("proxy_image", "nginx:1.28-alpine"),
        "command": ["nginx", "-c", "/etc/gpufleet/nginx.conf", "-g", "daemon off;"],
        "ports": [f"{service.get('bind_address', '127.0.0.1')}:{service['port']}:{PROXY_PORT}"],
        "volumes": [f"{config}:/etc/gpufleet/nginx.conf:ro"],
        "depends_on": {name: {"condition": "service_healthy"}},
        # A configuration nginx refuses makes it exit and restart over and over: Compose's wait then fails
        # instead of reporting a restarting proxy as up.
        "healthcheck": {
            "test": ["CMD", "nginx", "-t", "-q", "-c", "/etc/gpufleet/nginx.conf"],
            "interval": "30s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "5s",
        },
        "restart": service.get("restart", "unless-stopped"),
        # nginx's master starts as root, owns its temporary directories and switches its workers to an
        # unprivileged user: those capabilities only.
        "security_opt": list(NO_NEW_PRIVILEGES),
        "cap_drop": ["ALL"],
        "cap_add": list(PROXY_CAPABILITIES),
        "labels": {"org.gpufleet.service": f"{name}-proxy", "org.gpufleet.proxy-for": name},
    }
    files = _tls.tls_files(service, _beside_secrets(settings, "tls_dir", "tls"))
    if files:
        doc["volumes"] += [f"{files['cert']}:{_tls.CERT_IN_PROXY}:ro", f"{files['key']}:{_tls.KEY_IN_PROXY}:ro"]
        doc["labels"]["org.gpufleet.tls"] = "self-signed" if files["self_signed"] else "certificate"
        # A renewed certificate recreates the proxy (Compose compares the service, not the files it mounts).
        checksum = (settings.get("tls_checksums") or {}).get(name)
        if checksum:
            doc["labels"]["org.gpufleet.tls-checksum"] = str(checksum)[:16]
    return doc


def inference_compose(services, settings):
    errors = inference_services_errors(services, settings.get("models", [{"name": s.get("model")} for s in services]))
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    document = {"name": settings.get("project", "gpufleet"), "services": {}, "secrets": {}}
    for service in services:
        engine = service.get("engine", "llamacpp")
        if not settings.get("images", {}).get(engine):
            raise AnsibleFilterError(f"gpufleet_services ({service['name']}): no image for engine {engine!r}")
        if "lanes" in service:
            render = _lanes_vllm if engine == "vllm" else _lanes_llamacpp
        else:
            render = _vllm if engine == "vllm" else _llamacpp
        document["services"][service["name"]] = render(service, settings)
        if uses_proxy(service):
            document["services"][f"{service['name']}-proxy"] = _proxy(service, settings)
        if keyed(service):
            document["secrets"][f"{service['name']}_api_key"] = {"file": f"{settings['secrets_dir']}/{service['name']}.key"}
    if not document["secrets"]:
        del document["secrets"]
    return document


def _run_groups(project, name, svc, secrets):
    """One service of a Compose document as a docker run command: a list of word groups (an option and its value)."""
    groups = [["docker", "run", "--detach"], ["--name", f"{project}-{name}-1"], ["--network", project],
              ["--network-alias", name], ["--restart", svc.get("restart", "no")]]
    if svc.get("user"):
        groups.append(["--user", svc["user"]])
    groups += [["--publish", port] for port in svc.get("ports", [])]
    groups += [["--volume", volume] for volume in svc.get("volumes", [])]
    groups += [["--volume", f"{secrets[secret]['file']}:/run/secrets/{secret}:ro"] for secret in svc.get("secrets", [])]
    groups += [["--env-file", env_file] for env_file in svc.get("env_file", [])]
    groups += [["--env", f"{key}={value}"] for key, value in svc.get("environment", {}).items()]
    groups += [["--device", device] for device in svc.get("devices", [])]
    groups += [["--group-add", str(group)] for group in svc.get("group_add", [])]
    for request in svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", []):
        count = request.get("count", "all")
        groups.append(["--gpus", "all" if count == "all" else str(count)])
    groups += [["--tmpfs", path] for path in svc.get("tmpfs", [])]
    if svc.get("read_only"):
        groups.append(["--read-only"])
    groups += [["--security-opt", option] for option in svc.get("security_opt", [])]
    groups += [["--cap-drop", cap] for cap in svc.get("cap_drop", [])]
    groups += [["--cap-add", cap] for cap in svc.get("cap_add", [])]
    if svc.get("ipc"):
        groups.append(["--ipc", svc["ipc"]])
    if svc.get("shm_size"):
        groups.append(["--shm-size", svc["shm_size"]])
    for key, value in svc.get("ulimits", {}).items():
        groups.append(["--ulimit", f"{key}={value['soft']}:{value['hard']}" if isinstance(value, dict) else f"{key}={value}"])
    health = svc.get("healthcheck")
    if health:
        test = health["test"]
        groups += [["--health-cmd", shlex.join(test[1:]) if test[0] == "CMD" else test[1]],
                   ["--health-interval", health["interval"]], ["--health-timeout", health["timeout"]],
                   ["--health-retries", str(health["retries"])], ["--health-start-period", health["start_period"]]]
    groups += [["--label", f"{key}={value}"] for key, value in svc.get("labels", {}).items()]
    entrypoint = svc.get("entrypoint") or []
    if entrypoint:
        groups.append(["--entrypoint", entrypoint[0]])
    groups.append([svc["image"]])
    rest = [str(w) for w in entrypoint[1:]] + [str(w) for w in svc.get("command", [])]
    while rest:
        # An option with its value on one line, as a reader expects.
        take = 2 if rest[0].startswith("-") and len(rest) > 1 and not rest[1].startswith("--") else 1
        groups.append(rest[:take])
        rest = rest[take:]
    return groups


def _sh_quote(word):
    """shlex.quote, but a word that holds single quotes and nothing the shell expands goes in double quotes."""
    quoted = shlex.quote(word)
    if quoted != word and "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return quoted


def inference_docker_run(services, settings):
    """The Compose project of ``services`` as a shell script of docker run lines, in start order."""
    document = inference_compose(services, settings)
    project = document["name"]
    lines = [
        "#!/bin/sh",
        "# The same containers as compose.yaml, with docker run (written by gpufleet.inference).",
        "# Compose also waits for each engine's healthcheck before it starts its proxy; here the",
        "# proxies start at once and answer 502 until their engine is up.",
        "set -eu",
        f"docker network inspect {shlex.quote(project)} >/dev/null 2>&1 || docker network create {shlex.quote(project)}",
    ]
    ordered = sorted(document["services"].items(), key=lambda item: bool(item[1].get("depends_on")))
    for name, svc in ordered:
        groups = _run_groups(project, name, svc, document.get("secrets", {}))
        lines.append("")
        lines.append(" \\\n  ".join(" ".join(_sh_quote(w) for w in group) for group in groups))
    return "\n".join(lines) + "\n"


def inference_key_owners(services, default_user=ENGINE_USER):
    """Owner, group and mode of each keyed service's key file on the host, by service name: the uid:gid its
    engine runs as (llama.cpp, ``user`` or ``default_user``) or root (vLLM), read-only for that owner alone."""
    owners = {}
    for service in inference_services_with(services, "api_key"):
        user = engine_user(service, default_user or ENGINE_USER) or "0:0"
        uid, gid = user.split(":")
        owners[service["name"]] = {"owner": uid, "group": gid, "mode": "0400"}
    return owners


def inference_tls_files(service, tls_dir):
    """The host's files of a service's TLS front (``cert``, ``key``, ``ca``, ``self_signed``); empty without tls."""
    return _tls.tls_files(service, tls_dir)


def inference_tls_names(service, host_names=None):
    """The subjectAltName entries of a service's self-signed certificate (``DNS:name``, ``IP:address``)."""
    return _tls.subject_names(service, host_names or [])


def inference_services_with(services, feature):
    """The services that keep an API key (``api_key``) or that a reverse proxy publishes (``proxy``)."""
    tests = {"api_key": keyed, "proxy": uses_proxy}
    if feature not in tests:
        raise AnsibleFilterError(f"inference_services_with: feature must be one of {', '.join(tests)} (got {feature!r})")
    return [service for service in services or [] if isinstance(service, dict) and tests[feature](service)]


class FilterModule:
    def filters(self):
        return {
            "inference_compose": inference_compose,
            "inference_services_errors": inference_services_errors,
            "inference_device_wiring": inference_device_wiring,
            "inference_docker_run": inference_docker_run,
            "inference_proxy_config": inference_proxy_config,
            "inference_services_with": inference_services_with,
            "inference_key_owners": inference_key_owners,
            "inference_tls_files": inference_tls_files,
            "inference_tls_names": inference_tls_names,
            "inference_tensor_parallel_errors": inference_tensor_parallel_errors,
            "inference_declared_models": inference_declared_models,
            "inference_lanes_plan": inference_lanes_plan,
            "inference_lanes_preset": inference_lanes_preset,
            "inference_lanes_config": inference_lanes_config,
            "inference_lane_files": inference_lane_files,
            "inference_model_uses": inference_model_uses,
            "inference_served_models": inference_served_models,
            "inference_chat_templates": inference_chat_templates,
            "inference_chat_template_files": inference_chat_template_files,
        }

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lanes: several models behind one service's port, loaded side by side or switched on demand within a budget.

Pure logic (no Ansible, no I/O), shared by the ``inference_compose`` filter family and the
``inference_lanes_status`` module: what a lane group's entry may hold, how much memory each lane needs, how many
lanes may be loaded at once, and what llama.cpp's router says in its log about the switches it made.
"""

from __future__ import annotations

import re

from ansible_collections.gpufleet.inference.plugins.module_utils import _validate

GB = 1000 ** 3
GIB = 1024 ** 3
# A lane's name is the model name clients send: an OpenAI model id, as the seeds use them
# ("DeepSeek-R1-Distill-Qwen-32B", "qwen2.5-coder:32b").
LANE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
# Keys of a lane; the service's own values of the engine keys are every lane's defaults.
LANE_COMMON_KEYS = ("name", "model", "context", "memory_gb", "args", "environment", "preload")
LANE_ENGINE_KEYS = {
    "llamacpp": ("model_file", "gpu_layers", "parallel"),
    "vllm": ("gpu_memory_utilization", "max_num_seqs", "tensor_parallel_size", "dtype", "quantization",
             "kv_cache_dtype", "enforce_eager"),
}
INHERITED_KEYS = ("context", "args", "environment", "gpu_layers", "parallel", "gpu_memory_utilization",
                  "max_num_seqs", "tensor_parallel_size", "dtype", "quantization", "kv_cache_dtype", "enforce_eager")
# Keys a lane group cannot have: each lane names its own model.
GROUP_FORBIDDEN = ("model", "model_file", "served_name", "hub_cache")
# Without a measured size: the weights plus a fifth for the KV cache and buffers, plus the runtime.
ESTIMATE_FACTOR = 1.2
RUNTIME_BYTES = {"llamacpp": GIB // 2, "vllm": 2 * GIB}
VLLM_MAX_FRACTION = 0.9
# Loopback ports of a vLLM group's lanes inside its container.
VLLM_LANE_PORT_BASE = 20000


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lane_errors(service, where, model_names, engine):
    """What is wrong with a lane group's ``lanes`` (and the keys that go with them)."""
    errors = []
    lanes = service.get("lanes")
    if not isinstance(lanes, list) or not lanes:
        return [f"{where}.lanes must be a non-empty list of lanes (name, model, ...)"]
    for key in GROUP_FORBIDDEN:
        if key in service:
            errors.append(f"{where}.{key}: a service with lanes names its models in each lane (lanes[].model)")
    budget = service.get("memory_budget_gb")
    if budget is not None and (not _number(budget) or budget <= 0):
        errors.append(f"{where}.memory_budget_gb must be a positive number of GB (got {budget!r})")
    max_loaded = service.get("max_loaded")
    if max_loaded is not None and (not _int(max_loaded) or max_loaded < 1):
        errors.append(f"{where}.max_loaded must be a whole number of at least 1 (got {max_loaded!r})")
    timeout = service.get("switch_timeout")
    if timeout is not None and engine != "vllm":
        errors.append(f"{where}.switch_timeout is a setting of vLLM lanes (llama.cpp's router waits until the lane "
                      "is loaded or has failed)")
    elif timeout is not None and (not _int(timeout) or timeout < 1):
        errors.append(f"{where}.switch_timeout must be a whole number of seconds (got {timeout!r})")
    allowed = LANE_COMMON_KEYS + LANE_ENGINE_KEYS.get(engine, ())
    other_engine = {key for keys in LANE_ENGINE_KEYS.values() for key in keys} - set(allowed)
    seen = {}
    for index, lane in enumerate(lanes):
        at = f"{where}.lanes[{index}]"
        if not isinstance(lane, dict):
            errors.append(f"{at} must be a dict with name and model")
            continue
        at, name_errors = _validate.named_entry(f"{where}.lanes", index, lane.get("name"), LANE_NAME_RE,
                                                "the model name clients send: letters, digits and . _ : / @ + -", seen)
        errors += name_errors
        if lane.get("model") not in model_names:
            errors.append(f"{at}.model {lane.get('model')!r} is not the name of an entry of gpufleet_models "
                          f"({', '.join(sorted(n for n in model_names if n)) or 'none defined'})")
        for key in sorted(lane):
            if key in other_engine:
                errors.append(f"{at}.{key} is not a setting of engine {engine}")
            elif key not in allowed:
                errors.append(f"{at}.{key} is not a lane setting{_validate.did_you_mean(key, allowed)} "
                              f"(lanes take {', '.join(allowed)})")
        memory = lane.get("memory_gb")
        if memory is not None and (not _number(memory) or memory <= 0):
            errors.append(f"{at}.memory_gb must be a positive number of GB (got {memory!r})")
        elif memory is not None and _number(budget) and budget > 0 and memory > budget:
            errors.append(f"{at}.memory_gb {memory} is more than the service's memory_budget_gb {budget}: "
                          "the lane could never be loaded")
        if lane.get("model_file") is not None and _validate.file_in_directory_error(lane["model_file"]):
            errors.append(f"{at}.model_file {_validate.file_in_directory_error(lane['model_file'])}")
        context = lane.get("context")
        if context is not None and _validate.context_error(context):
            errors.append(f"{at}.context {_validate.context_error(context)}")
        for key in ("parallel", "max_num_seqs", "tensor_parallel_size"):
            if key in lane and (not _int(lane[key]) or lane[key] < 1):
                errors.append(f"{at}.{key} must be a whole number of at least 1 (got {lane[key]!r})")
        gmu = lane.get("gpu_memory_utilization")
        if gmu is not None and (not _number(gmu) or not 0 < gmu <= 1):
            errors.append(f"{at}.gpu_memory_utilization must be a fraction in (0, 1] (got {gmu!r})")
        args = lane.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            errors.append(f"{at}.args must be a list of command-line arguments")
        elif engine == "llamacpp":
            try:
                args_to_preset(args)
            except ValueError as exc:
                errors.append(f"{at}.args: {exc}")
        if not isinstance(lane.get("environment", {}), dict):
            errors.append(f"{at}.environment must be a dict of variable names to values")
        elif engine == "llamacpp" and lane.get("environment"):
            errors.append(f"{at}.environment: llama.cpp lanes share the router's environment; set it on the service")
        if "preload" in lane and not isinstance(lane["preload"], bool):
            errors.append(f"{at}.preload must be true or false (got {lane['preload']!r})")
    return errors


def lane_settings(service, lane):
    """A lane's settings: the service's engine keys as defaults, the lane's own on top."""
    merged = {key: service[key] for key in INHERITED_KEYS if key in service}
    for key, value in lane.items():
        if key == "environment":
            merged["environment"] = dict(service.get("environment") or {}, **value)
        elif key == "args":
            merged["args"] = list(service.get("args") or []) + list(value)
        else:
            merged[key] = value
    return merged


def lane_key(service, lane):
    """The key of a lane in per-model dicts (model files, sizes): ``<service>/<lane>``."""
    return f"{service['name']}/{lane['name']}"


def plan_lanes(service, model_sizes=None, budget=None):
    """How a lane group runs.

    ``model_sizes`` maps ``lane_key`` to the model's bytes on disk (a GGUF file, or vLLM's weights);
    ``budget`` is the serving planner's budget (``serving_budget``: ``budget_bytes``, ``total_bytes``) from
    gpu_facts, used when the service sets no ``memory_budget_gb``.

    Returns ``mode`` (``side_by_side`` or ``switching``), ``max_loaded``, ``budget_bytes``, ``budget_source``,
    per lane ``name``, ``bytes`` (what it needs loaded), ``bytes_source``, ``preload`` and, for vLLM lanes,
    ``gpu_memory_utilization``; ``notes`` say why; ``errors`` name the variable.
    """
    engine = service.get("engine", "llamacpp")
    model_sizes = model_sizes or {}
    budget = budget or {}
    notes, errors = [], []
    where = f"gpufleet_services ({service.get('name')})"
    total = budget.get("total_bytes")
    if service.get("memory_budget_gb") is not None:
        budget_bytes = int(float(service["memory_budget_gb"]) * GB)
        source = "memory_budget_gb"
    elif budget.get("budget_bytes"):
        budget_bytes = int(budget["budget_bytes"])
        source = "gpu_facts"
    else:
        budget_bytes, source = None, None
    lanes = []
    merged = [lane_settings(service, lane) for lane in service.get("lanes") or []]
    for lane, settings in zip(service.get("lanes") or [], merged):
        entry = {"name": lane["name"], "model": lane.get("model")}
        if settings.get("memory_gb") is not None:
            entry["bytes"], entry["bytes_source"] = int(float(settings["memory_gb"]) * GB), "memory_gb"
        elif engine == "vllm" and settings.get("gpu_memory_utilization") and total:
            entry["bytes"] = int(settings["gpu_memory_utilization"] * total)
            entry["bytes_source"] = "gpu_memory_utilization"
        else:
            size = int(model_sizes.get(lane_key(service, lane)) or 0)
            entry["bytes"] = int(size * ESTIMATE_FACTOR) + RUNTIME_BYTES.get(engine, 0)
            entry["bytes_source"] = "estimate" if size else "runtime only (model size unknown)"
        lanes.append(entry)
    if budget_bytes is None:
        max_loaded = 1
        notes.append("no memory budget (memory_budget_gb, or gpu_facts' budget): one lane loaded at a time")
    else:
        for entry in lanes:
            if entry["bytes"] > budget_bytes:
                errors.append(f"{where}.lanes ({entry['name']}) needs {entry['bytes'] / GB:.1f} GB "
                              f"({entry['bytes_source']}), more than the budget of {budget_bytes / GB:.1f} GB "
                              f"({source}): it could never be loaded")
        by_size = sorted((entry["bytes"] for entry in lanes), reverse=True)
        max_loaded, used = 0, 0
        for size in by_size:
            if used + size > budget_bytes:
                break
            used += size
            max_loaded += 1
        max_loaded = max(max_loaded, 1)
        notes.append(f"budget {budget_bytes / GB:.1f} GB ({source}); any {max_loaded} of the {len(lanes)} lanes fit "
                     "together")
    if service.get("max_loaded"):
        if budget_bytes is None or service["max_loaded"] <= max_loaded:
            notes.append(f"max_loaded {service['max_loaded']} (set on the service)")
            max_loaded = service["max_loaded"]
        else:
            notes.append(f"max_loaded {service['max_loaded']} is above what the budget holds; {max_loaded} kept")
    max_loaded = min(max_loaded, len(lanes)) if lanes else 1
    mode = "side_by_side" if max_loaded >= len(lanes) else "switching"
    explicit = [lane for lane in service.get("lanes") or [] if isinstance(lane.get("preload"), bool)]
    for index, entry in enumerate(lanes):
        lane = (service.get("lanes") or [])[index]
        if explicit:
            entry["preload"] = bool(lane.get("preload"))
        else:
            # Side by side every lane starts with the service; switching, the first one does.
            entry["preload"] = mode == "side_by_side" or index == 0
    preloaded = [entry for entry in lanes if entry["preload"]]
    if len(preloaded) > max_loaded:
        errors.append(f"{where}.lanes: {len(preloaded)} lanes have preload true, but only {max_loaded} may be "
                      "loaded at once")
    if engine == "vllm":
        for entry, settings in zip(lanes, merged):
            if settings.get("gpu_memory_utilization") is not None:
                entry["gpu_memory_utilization"] = settings["gpu_memory_utilization"]
            elif budget_bytes and total:
                # vLLM takes its fraction of all the GPU's memory: give each loaded lane its share of the budget.
                share = budget_bytes / max_loaded / total
                entry["gpu_memory_utilization"] = max(0.01, min(VLLM_MAX_FRACTION, int(share * 100) / 100))
                if int(entry["gpu_memory_utilization"] * total) > entry["bytes"]:
                    entry["bytes"] = int(entry["gpu_memory_utilization"] * total)
                    entry["bytes_source"] = "gpu_memory_utilization"
        fractions = sorted({entry["gpu_memory_utilization"] for entry in lanes if "gpu_memory_utilization" in entry})
        if budget_bytes and total and fractions:
            notes.append("vLLM takes its gpu_memory_utilization of all %.1f GB: %s for each loaded lane, its share of "
                         "the budget" % (total / GB, ", ".join(str(f) for f in fractions)))
    return {"mode": mode, "max_loaded": max_loaded, "budget_bytes": budget_bytes, "budget_source": source,
            "engine": engine, "lanes": lanes, "notes": notes, "errors": errors}


def args_to_preset(args):
    """llama-server arguments (``["--flag", "value", "--switch"]``) as preset keys (``{"flag": "value"}``)."""
    words = [str(arg) for arg in args]
    preset = {}
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("-"):
            raise ValueError(f"{word!r} is not an option (llama.cpp lanes take --option value pairs)")
        key = word.lstrip("-")
        if "=" in key:
            key, value = key.split("=", 1)
            index += 1
        elif index + 1 < len(words) and not words[index + 1].startswith("--"):
            value = words[index + 1]
            index += 2
        else:
            value = "true"
            index += 1
        preset[key] = value
    return preset


# llama.cpp's router mode writes its own log lines with a time since start (minutes.seconds.ms.us); its model
# instances' lines carry their port in brackets.
_STAMP = r"(\d+)\.(\d{2})\.(\d{3})\.(\d{3})"
_SPAWN_RE = re.compile(r"^" + _STAMP + r" . srv +load: spawning server instance with name=(\S+) on port (\d+)")
_LOADED_RE = re.compile(r"^\[(\d+)\] " + _STAMP + r" . srv +llama_server: model loaded")
_STARTUP_RE = re.compile(r"^" + _STAMP + r" . srv .*\(startup\) loading model (\S+)")
_WAIT_RE = re.compile(r"^" + _STAMP + r" . srv +join: request for name=(\S+) "
                      r"(?:queued at position (\d+)|joined the queue, (\d+) waiting)")
_EXIT_RE = re.compile(r"^" + _STAMP + r" . srv +run: instance name=(\S+) exited with status (-?\d+)")


def _seconds(groups):
    minutes, seconds, millis, micros = (int(g) for g in groups)
    return minutes * 60 + seconds + millis / 1000 + micros / 1e6


def router_switches(lines):
    """Switches llama.cpp's router made, from its log: ``switches`` (loads asked for by requests),
    ``last_switch_seconds`` (from the first request that waited for the lane to the lane's "model loaded"),
    ``last_switch`` (lane, seconds), ``waiting_at_last_switch`` (requests queued for it), ``loads`` per lane,
    ``exits`` (instances that ended with a non-zero status, e.g. killed)."""
    result = {"switches": 0, "last_switch_seconds": None, "last_switch": None, "waiting_at_last_switch": 0,
              "loads": {}, "exits": []}
    startup = set()
    first_wait = None
    waiting = 0
    pending = {}
    for line in lines:
        match = _WAIT_RE.match(line)
        if match:
            stamp = _seconds(match.groups()[:4])
            first_wait = stamp if first_wait is None else first_wait
            waiting = max(waiting, int(match.group(6) or match.group(7) or 1))
            continue
        match = _STARTUP_RE.match(line)
        if match:
            startup.add(match.group(5))
            continue
        match = _SPAWN_RE.match(line)
        if match:
            name, port, stamp = match.group(5), match.group(6), _seconds(match.groups()[:4])
            from_startup = name in startup and first_wait is None
            startup.discard(name)
            pending[port] = {"name": name, "spawned": stamp, "asked": stamp if first_wait is None else first_wait,
                             "waiting": waiting, "startup": from_startup}
            first_wait, waiting = None, 0
            continue
        match = _LOADED_RE.match(line)
        if match and match.group(1) in pending:
            entry = pending.pop(match.group(1))
            seconds = round(entry["spawned"] - entry["asked"] + _seconds(match.groups()[1:5]), 3)
            result["loads"][entry["name"]] = result["loads"].get(entry["name"], 0) + 1
            if not entry["startup"]:
                result["switches"] += 1
                result["last_switch_seconds"] = seconds
                result["last_switch"] = {"to": entry["name"], "seconds": seconds}
                result["waiting_at_last_switch"] = entry["waiting"]
            continue
        match = _EXIT_RE.match(line)
        if match and int(match.group(6)) != 0:
            result["exits"].append({"name": match.group(5), "status": int(match.group(6))})
    return result

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import copy
import json
import math
import shlex

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.ops import inference_ops_plan
from ansible_collections.gpufleet.inference.plugins.module_utils import _validate

VAR = "gpufleet_bench"
# What playbooks/bench.yml does when the inventory says nothing: a benchmark short enough for every run of it.
DEFAULTS = {
    # The services to benchmark (names of gpufleet_services); empty: every engine service deployed.
    "services": [],
    # Seconds one engine benchmark (llama-bench, vllm bench serve) may run.
    "timeout": 1800,
    "llama_bench": {"enabled": True, "prompt": [512], "gen": [128], "repetitions": 3, "args": []},
    "vllm_bench": {"enabled": True, "num_prompts": 32, "input_len": 512, "output_len": 128, "max_concurrency": 4,
                   "request_rate": "inf", "args": []},
    # warmup_requests: sent before the clients, unmeasured (a lane loaded on demand, first compiling requests).
    "load": {"enabled": True, "clients": 4, "requests_per_client": 4, "max_tokens": 128,
             "prompt": "Write a short story about a lighthouse keeper.", "request_timeout": 300,
             "warmup_requests": 1},
}
# Integers: (section, key, lowest, highest).
NUMBERS = (
    (None, "timeout", 10, 86400),
    ("llama_bench", "repetitions", 1, 100),
    ("vllm_bench", "num_prompts", 1, 100000),
    ("vllm_bench", "input_len", 1, 1048576),
    ("vllm_bench", "output_len", 1, 1048576),
    ("vllm_bench", "max_concurrency", 1, 4096),
    ("load", "clients", 1, 256),
    ("load", "requests_per_client", 1, 1000),
    ("load", "max_tokens", 1, 1048576),
    ("load", "request_timeout", 1, 86400),
    ("load", "warmup_requests", 0, 100),
)
# Arguments the playbook sets itself, so that it can read the output and reach the server.
OWN_ARGS = {
    "llama_bench": ("-o", "--output", "-oe", "--output-err", "-m", "--model"),
    "vllm_bench": ("--base-url", "--host", "--port", "--save-result", "--result-dir", "--result-filename",
                   "--model", "--served-model-name", "--dataset-name", "--backend", "--endpoint"),
}
VLLM_RESULT = "/tmp/gpufleet-bench.json"
# The figures of vllm bench serve's result file that the report keeps.
VLLM_FIGURES = ("completed", "failed", "duration", "max_concurrency", "request_rate", "total_input_tokens",
                "total_output_tokens", "request_throughput", "output_throughput", "total_token_throughput",
                "mean_ttft_ms", "median_ttft_ms", "p95_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
                "p95_tpot_ms", "mean_itl_ms", "median_itl_ms", "mean_e2el_ms", "median_e2el_ms", "p95_e2el_ms")


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _args(value, where):
    """A list of arguments from a list or one string split as a shell would; raises ValueError naming ``where``."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, (list, tuple)) and all(isinstance(word, (str, int, float)) and not isinstance(word, bool)
                                                for word in value):
        return [str(word) for word in value]
    raise ValueError(f"{where} must be a list of arguments or one string (got {_validate.type_name(value)})")


def _sizes(value):
    """``prompt`` / ``gen``: a number or a list of numbers, 1 or more each; ``[]`` for none."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if all(_integer(item) and item >= 1 for item in values):
        return [int(item) for item in values]
    return None


def inference_bench_errors(settings):
    """Every problem of ``gpufleet_bench``, one message each naming the key, what it got and what is accepted."""
    if settings is None or settings == "":
        return []
    if not isinstance(settings, dict):
        return [f"{VAR} must be a dict of settings (got {_validate.type_name(settings)})"]
    errors = _validate.unknown_keys(settings, DEFAULTS, VAR)
    for section in ("llama_bench", "vllm_bench", "load"):
        value = settings.get(section, {})
        if not isinstance(value, dict):
            errors.append(f"{VAR}.{section} must be a dict (got {_validate.type_name(value)})")
            continue
        errors += _validate.unknown_keys(value, DEFAULTS[section], f"{VAR}.{section}")
        if not isinstance(value.get("enabled", True), bool):
            errors.append(f"{VAR}.{section}.enabled must be true or false {_validate.got(value['enabled'])}")
        if "args" in value:
            try:
                words = _args(value["args"], f"{VAR}.{section}.args")
            except ValueError as exc:
                errors.append(str(exc))
                continue
            own = [word for word in words if word.split("=", 1)[0] in OWN_ARGS[section]]
            if own:
                errors.append(f"{VAR}.{section}.args: {', '.join(own)} is set by the playbook itself (it reads the "
                              f"output and reaches the server); leave it out")
    services = settings.get("services", [])
    if not isinstance(services, list) or not all(isinstance(name, str) and name for name in services):
        errors.append(f"{VAR}.services must be a list of service names (got {services!r})")
    for section, key, low, high in NUMBERS:
        holder = settings if section is None else settings.get(section)
        if not isinstance(holder, dict) or key not in holder:
            continue
        value = holder[key]
        if not _integer(value) or not low <= value <= high:
            name = f"{VAR}.{key}" if section is None else f"{VAR}.{section}.{key}"
            errors.append(f"{name} must be a whole number from {low} to {high} {_validate.got(value)}")
    llama = settings.get("llama_bench") if isinstance(settings.get("llama_bench"), dict) else {}
    for key in ("prompt", "gen"):
        if key in llama and llama[key] != [] and _sizes(llama[key]) is None:
            errors.append(f"{VAR}.llama_bench.{key} must be a number of tokens, 1 or more, or a list of them "
                          f"([] for no {'prompt processing' if key == 'prompt' else 'generation'} test) "
                          f"{_validate.got(llama[key])}")
    if llama.get("prompt", [512]) == [] and llama.get("gen", [128]) == []:
        errors.append(f"{VAR}.llama_bench: prompt and gen are both empty, so llama-bench has no test to run "
                      f"(set enabled: false to skip it)")
    vllm = settings.get("vllm_bench") if isinstance(settings.get("vllm_bench"), dict) else {}
    if "request_rate" in vllm and not _request_rate(vllm["request_rate"]):
        errors.append(f"{VAR}.vllm_bench.request_rate must be requests per second, more than 0, or inf (every "
                      f"request at once, up to max_concurrency) {_validate.got(vllm['request_rate'])}")
    load = settings.get("load") if isinstance(settings.get("load"), dict) else {}
    if "prompt" in load and (not isinstance(load["prompt"], str) or not load["prompt"].strip()):
        errors.append(f"{VAR}.load.prompt must be some text {_validate.got(load['prompt'])}")
    return errors


def _request_rate(value):
    if isinstance(value, str) and value.strip().lower() == "inf":
        return "inf"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value):
        return str(value)
    return None


def inference_bench_settings(settings):
    """``gpufleet_bench`` with the defaults filled in (a wrong one is an error, with every message)."""
    errors = inference_bench_errors(settings)
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    merged = copy.deepcopy(DEFAULTS)
    for key, value in (settings or {}).items():
        if isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    llama = merged["llama_bench"]
    llama["prompt"] = _sizes(llama["prompt"]) or []
    llama["gen"] = _sizes(llama["gen"]) or []
    llama["args"] = _args(llama["args"], "")
    merged["vllm_bench"]["args"] = _args(merged["vllm_bench"]["args"], "")
    merged["vllm_bench"]["request_rate"] = _request_rate(merged["vllm_bench"]["request_rate"])
    return merged


def _option(command, flags):
    command = [str(part) for part in command or []]
    for flag in flags:
        if flag in command[:-1]:
            return command[command.index(flag) + 1]
    return None


def _engine(svc):
    return ((svc or {}).get("labels") or {}).get("org.gpufleet.engine", "llamacpp")


def _vllm_argv(name, svc, settings, project, compose_file):
    """``vllm bench serve`` in a one-off container of the service, against the server by its name on the project's
    network, with the service's key (its Compose secret) as OPENAI_API_KEY; stdout is the result's figures (JSON)."""
    command = svc.get("command") or []
    model = _option(command, ("--model",))
    if model is None:
        return None, "serves lanes (no model of its own); vllm bench serve runs against one model"
    served = _option(command, ("--served-model-name",)) or model
    port = _option(command, ("--port",)) or "8000"
    vllm = settings["vllm_bench"]
    bench = ["--backend", "openai", "--base-url", f"http://{name}:{port}", "--endpoint", "/v1/completions",
             "--model", model, "--served-model-name", served, "--dataset-name", "random",
             "--random-input-len", str(vllm["input_len"]), "--random-output-len", str(vllm["output_len"]),
             "--num-prompts", str(vllm["num_prompts"]), "--max-concurrency", str(vllm["max_concurrency"]),
             "--request-rate", vllm["request_rate"], "--ignore-eos", "--disable-tqdm", "--seed", "0",
             "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,95,99"] + vllm["args"]
    figures = ("import json; d = json.load(open('%s')); "
               "print(json.dumps({k: v for k, v in d.items() if not isinstance(v, (list, dict))}))" % VLLM_RESULT)
    script = (f'if [ -r /run/secrets/{name}_api_key ]; then OPENAI_API_KEY="$(cat /run/secrets/{name}_api_key)"; '
              f'export OPENAI_API_KEY; fi; '
              f'vllm bench serve "$@" --save-result --result-dir /tmp --result-filename {VLLM_RESULT.rsplit("/", 1)[1]} '
              f'>&2 || exit $?; exec python3 -c "{figures}"')
    run = ["docker", "compose", "-p", project, "-f", compose_file, "run", "--rm", "--no-deps", "-T"]
    return run + ["--entrypoint", "sh", name, "-c", script, "vllm-bench"] + bench, None


def inference_bench_plan(services, settings, project="gpufleet", compose_file="/opt/gpufleet/stack/compose.yaml"):
    """What playbooks/bench.yml runs on a host: per engine service of the deployed Compose file (``services``) that
    ``gpufleet_bench.services`` selects, its engine, the benchmark (``llama-bench``, ``vllm bench serve`` or none)
    and its command line, or why it is skipped."""
    settings = inference_bench_settings(settings)
    services = services or {}
    engines = [name for name, svc in services.items()
               if "org.gpufleet.proxy-for" not in ((svc or {}).get("labels") or {})]
    unknown = [name for name in settings["services"] if name not in engines]
    if unknown:
        raise AnsibleFilterError(
            f"{VAR}.services: no service {', '.join(repr(name) for name in unknown)} in the stack deployed here "
            f"(its services: {', '.join(sorted(engines)) or 'none'}){_validate.did_you_mean(unknown[0], engines)}")
    plan = []
    for name in settings["services"] or engines:
        svc = services[name] or {}
        entry = {"service": name, "engine": _engine(svc), "tool": None, "argv": [], "skipped": None}
        if entry["engine"] == "vllm":
            if settings["vllm_bench"]["enabled"]:
                argv, entry["skipped"] = _vllm_argv(name, svc, settings, project, compose_file)
                entry["argv"], entry["tool"] = argv or [], "vllm bench serve" if argv else None
            else:
                entry["skipped"] = f"{VAR}.vllm_bench.enabled is false"
        elif settings["llama_bench"]["enabled"]:
            llama = settings["llama_bench"]
            if _option(svc.get("command"), ("--model", "-m")) is None:
                entry["skipped"] = "serves lanes (no model of its own); llama-bench runs on one model file"
            else:
                args = ["-m", "{model}", "-p", ",".join(str(n) for n in llama["prompt"]) or "0",
                        "-n", ",".join(str(n) for n in llama["gen"]) or "0",
                        "-r", str(llama["repetitions"]), "-o", "json"] + llama["args"]
                entry["argv"] = inference_ops_plan(services, "tool", name, "llama-bench", args, project=project,
                                                   compose_file=compose_file)["argv"]
                entry["tool"] = "llama-bench"
        else:
            entry["skipped"] = f"{VAR}.llama_bench.enabled is false"
        plan.append(entry)
    return plan


def _json_from(stdout, opening):
    """The JSON document that starts at the first ``opening`` character of ``stdout``."""
    text = stdout if isinstance(stdout, str) else "\n".join(stdout or [])
    start = text.find(opening)
    if start < 0:
        raise ValueError("no JSON in the output")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def llama_bench_test_name(n_prompt, n_gen, n_depth=0):
    """llama-bench's name of a test: ``pp512``, ``tg128``, ``pp512+tg128``, with `` @ d4096`` for a depth."""
    parts = ([f"pp{n_prompt}"] if n_prompt else []) + ([f"tg{n_gen}"] if n_gen else [])
    return "+".join(parts) + (f" @ d{n_depth}" if n_depth else "")


def _number(value, digits=2):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return round(float(value), digits)
    return None


def llama_bench_results(stdout):
    """The figures of ``llama-bench -o json``'s output: what ran (build, backends, model) and per test its name,
    metric (pp, tg or pp+tg), sizes, mean tokens/s and standard deviation over the repetitions."""
    try:
        entries = _json_from(stdout, "[")
    except ValueError as exc:
        raise AnsibleFilterError(f"llama-bench's output is not its JSON (-o json): {exc}") from exc
    if not isinstance(entries, list) or not entries or not all(isinstance(entry, dict) for entry in entries):
        raise AnsibleFilterError("llama-bench's JSON output has no test in it")
    first = entries[0]
    tests = []
    for entry in entries:
        n_prompt, n_gen, n_depth = (int(entry.get(key) or 0) for key in ("n_prompt", "n_gen", "n_depth"))
        tests.append({
            "test": llama_bench_test_name(n_prompt, n_gen, n_depth),
            "metric": "+".join(([("pp")] if n_prompt else []) + (["tg"] if n_gen else [])),
            "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": n_depth,
            "tokens_per_second": _number(entry.get("avg_ts")),
            "stddev": _number(entry.get("stddev_ts")),
            "repetitions": len(entry.get("samples_ts") or []),
        })
    return {
        "build_commit": first.get("build_commit"),
        "backends": first.get("backends"),
        "gpu_info": first.get("gpu_info") or None,
        "cpu_info": first.get("cpu_info") or None,
        "model_type": first.get("model_type"),
        "model_size": first.get("model_size"),
        "n_gpu_layers": first.get("n_gpu_layers"),
        "n_threads": first.get("n_threads"),
        "flash_attn": first.get("flash_attn"),
        "tests": tests,
    }


def vllm_bench_results(stdout):
    """The figures of ``vllm bench serve``'s result (the scalars of its JSON file): throughputs, TTFT, TPOT, ITL."""
    try:
        result = _json_from(stdout, "{")
    except ValueError as exc:
        raise AnsibleFilterError(f"vllm bench serve's output is not its result JSON: {exc}") from exc
    if not isinstance(result, dict):
        raise AnsibleFilterError("vllm bench serve's result is not a JSON object")
    figures = {key: result.get(key) for key in VLLM_FIGURES if key in result}
    if isinstance(figures.get("request_rate"), float) and not math.isfinite(figures["request_rate"]):
        figures["request_rate"] = "inf"
    return figures


def engine_summary(result):
    """One line: the service and its engine benchmark's figures, or why it was skipped."""
    if result.get("llama_bench"):
        figures = ", ".join("%s %s tokens/s" % (test["test"], test["tokens_per_second"])
                            for test in result["llama_bench"]["tests"])
        return "%s: llama-bench %s" % (result["service"], figures)
    if result.get("vllm_bench"):
        vllm = result["vllm_bench"]
        return "%s: vllm bench serve %s output tokens/s at concurrency %s, TTFT median %s ms" % (
            result["service"], _number(vllm.get("output_throughput")), vllm.get("max_concurrency"),
            _number(vllm.get("median_ttft_ms"), 1))
    return "%s: no engine benchmark (%s)" % (result["service"], result.get("skipped") or "not run")


def inference_bench_results(plan, runs):
    """Per planned service, what its benchmark measured: ``runs`` are the registered results of the command tasks,
    one per entry of ``plan`` with a command, in order (a skipped entry has none)."""
    runs = list(runs or [])
    by_service = {run.get("item", {}).get("service"): run for run in runs if isinstance(run, dict)}
    results = []
    for entry in plan or []:
        result = {"service": entry["service"], "engine": entry["engine"], "tool": entry["tool"],
                  "skipped": entry["skipped"], "llama_bench": None, "vllm_bench": None}
        run = by_service.get(entry["service"])
        if entry["tool"] and run is not None and not run.get("skipped"):
            if entry["tool"] == "llama-bench":
                result["llama_bench"] = llama_bench_results(run.get("stdout", ""))
            else:
                result["vllm_bench"] = vllm_bench_results(run.get("stdout", ""))
        result["summary"] = engine_summary(result)
        results.append(result)
    return results


def inference_bench_report(report, engine_results, load_runs, endpoints, settings, host, measured_at):
    """The host report (``report``, the verify report as it is, or ``{}``) with its ``bench`` section replaced by
    this run's figures: per service its model, the engine benchmark's figures and the load test's."""
    settings = inference_bench_settings(settings)
    report = dict(report or {})
    report.setdefault("host", host)
    report.setdefault("services", [])
    models = {endpoint.get("name"): (endpoint.get("models") or [None])[0] for endpoint in endpoints or []
              if isinstance(endpoint, dict)}
    loads = {}
    for run in load_runs or []:
        if isinstance(run, dict) and not run.get("skipped") and "aggregate_tokens_per_second" in run:
            loads[run.get("item")] = {key: run.get(key) for key in (
                "clients", "requests_per_client", "requests", "completed", "errors", "error_messages", "duration_s",
                "completion_tokens", "aggregate_tokens_per_second", "requests_per_second", "ttft_ms",
                "stream_tokens_per_second", "warmup_requests", "warmup_s")}
    names = [result["service"] for result in engine_results or []]
    names += [name for name in loads if name not in names]
    by_service = {result["service"]: result for result in engine_results or []}
    services = []
    for name in names:
        engine = by_service.get(name) or {}
        services.append({
            "name": name,
            "engine": engine.get("engine"),
            "model": models.get(name),
            "llama_bench": engine.get("llama_bench"),
            "vllm_bench": engine.get("vllm_bench"),
            "skipped": engine.get("skipped"),
            "load": loads.get(name),
        })
    report["bench"] = {"measured_at": measured_at, "settings": settings, "services": services}
    return report


class FilterModule:
    def filters(self):
        return {
            "inference_bench_errors": inference_bench_errors,
            "inference_bench_settings": inference_bench_settings,
            "inference_bench_plan": inference_bench_plan,
            "inference_bench_results": inference_bench_results,
            "inference_bench_report": inference_bench_report,
        }

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import os
import re

import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.bench import inference_bench_errors
from ansible_collections.gpufleet.inference.plugins.filter.stack import inference_services_errors
from ansible_collections.gpufleet.inference.plugins.module_utils import _validate

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
PLATFORMS = ("dgx_spark", "strix_halo", "nvidia", "amd", "cpu")
PLATFORM_STACK = {"dgx_spark": "nvidia", "nvidia": "nvidia", "strix_halo": "amd", "amd": "amd", "cpu": "none"}
# The roles site.yml runs, in its order, and the prefix of each role's variables.
SITE_ROLES = ("preflight", "nvidia_driver", "rocm", "docker_engine", "nvidia_container_toolkit", "llamacpp_image",
              "vllm_image", "models", "inference_stack", "verify")
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MODEL_KEYS = ("name", "hf", "url", "path", "sha256", "size_gb", "plan")
MODEL_SOURCES = ("hf", "url", "path")
HF_KEYS = ("repo", "revision", "files", "allow_patterns", "ignore_patterns")
# Variables that the roles set themselves (facts and registered results), so a name with a role's prefix that is
# not in its argument spec may still be one of these.
ROLE_FACTS = (
    "docker_engine_compose_version_found", "docker_engine_server_version", "inference_stack_plan_result",
    "llamacpp_image_build", "llamacpp_image_check_result", "llamacpp_image_ref", "models_files",
    "nvidia_container_toolkit_gpu_check", "nvidia_container_toolkit_version_found", "nvidia_driver_drift",
    "nvidia_driver_installed_version", "nvidia_driver_loaded_version", "nvidia_driver_reboot_required",
    "preflight_report", "rocm_build", "rocm_container_env", "rocm_gpu_found", "rocm_kernel_params",
    "rocm_reboot_required", "rocm_render_gid", "rocm_ttm_pages_limit", "rocm_video_gid", "rocm_warnings",
    "vllm_image_backend", "vllm_image_digest", "vllm_image_ref", "vllm_image_render_backend", "vllm_image_render_key",
    "vllm_image_render_ref",
    "vllm_image_version",
)
# Paths of the argument specs that are on the controller, not the host: a relative one is relative to where
# ansible-playbook runs.
CONTROLLER_PATHS = ("verify_reports_dir",)
# What each variable's value must be, beyond the type its role's argument spec gives it. Every option of type
# path (but those of CONTROLLER_PATHS) must also be absolute.
VALUE_CHECKS = {
    "docker_engine_data_root": lambda v: _validate.absolute_path_error(v, empty_ok=True),
    "llamacpp_image_src_dir": lambda v: _validate.absolute_path_error(v, empty_ok=True),
    "docker_engine_repo_url": _validate.url_error,
    "docker_engine_repo_key_url": _validate.url_error,
    "docker_engine_compose_url": _validate.url_error,
    "docker_engine_compose_checksum": lambda v: _validate.checksum_error(v, urls_ok=True),
    "models_hf_endpoint": _validate.url_error,
    "nvidia_container_toolkit_repo_base_url": _validate.url_error,
    "nvidia_container_toolkit_repo_url": _validate.url_error,
    "nvidia_container_toolkit_repo_key_url": _validate.url_error,
    "nvidia_driver_repo_base_url": _validate.url_error,
    "nvidia_driver_repo_url": _validate.url_error,
    "nvidia_driver_repo_key_url": _validate.url_error,
    "rocm_repo_base_url": _validate.url_error,
    "rocm_repo_key_url": _validate.url_error,
    "vllm_image_pip_index_url": lambda v: _validate.url_error(v, empty_ok=True),
    "vllm_image_pip_extra_index_url": lambda v: _validate.url_error(v, empty_ok=True),
    "llamacpp_image_git_url": _validate.git_url_error,
    "vllm_image_rocm_build_git_url": _validate.git_url_error,
    "llamacpp_image_git_ref": _validate.git_ref_error,
    "llamacpp_image_commit": lambda v: _validate.commit_error(v, empty_ok=True),
    "llamacpp_image_cuda_architectures": _validate.cuda_architectures_error,
    "llamacpp_image_hip_targets": _validate.gfx_targets_error,
    "vllm_image_rocm_build_targets": lambda v: _validate.gfx_targets_error(v, empty_ok=False),
    "rocm_gfx_target": lambda v: _validate.gfx_targets_error(v, single=True),
    "rocm_hsa_override_gfx_version": _validate.gfx_version_error,
    "vllm_image_min_version": lambda v: _validate.version_error(v, "0.22.0"),
    "nvidia_container_toolkit_version": lambda v: _validate.version_error(v, '"1.18.2" (or the package version "1.18.2-1")'),
    "vllm_image_digest_pin": lambda v: None if v == "" else _validate.checksum_error(v),
}


def _spec(role, entry_point="main"):
    """The options of a role's entry point; with ``entry_point=None``, those of all its entry points together."""
    path = os.path.join(ROLES_DIR, role, "meta", "argument_specs.yml")
    try:
        with open(path, encoding="utf-8") as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        if entry_point is not None:
            return specs[entry_point].get("options") or {}
        return {name: option for spec in specs.values() for name, option in (spec.get("options") or {}).items()}
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise AnsibleFilterError(f"role_argument_spec: cannot read the argument spec of role {role!r}: {exc}")


def _without_defaults(options):
    """The options without their defaults (often templates of other variables, which the role's own start
    resolves): only what a user set is checked, by type, choices and elements."""
    plain = {}
    for name, option in options.items():
        option = {key: value for key, value in option.items() if key not in ("default", "description")}
        if isinstance(option.get("options"), dict):
            option["options"] = _without_defaults(option["options"])
        plain[name] = option
    return plain


def role_argument_spec(role, variables=None):
    """The options of ``role``'s ``meta/argument_specs.yml`` (entry point main), for validate_argument_spec.

    With the host's ``variables``, the options whose values cannot be resolved yet (templates of facts) are left
    out: validate_argument_spec would fail on them, and the role checks them once the host is reached.
    """
    if role not in SITE_ROLES:
        raise AnsibleFilterError(f"role_argument_spec: {role!r} is not a role site.yml runs ({', '.join(SITE_ROLES)})")
    options = _without_defaults(_spec(role))
    if variables is not None:
        options = {name: option for name, option in options.items()
                   if name not in variables or _read(variables, name)[0]}
    return options


def inventory_site_roles(platform=None, services=None, models=None):
    """The roles site.yml runs on a host, from its platform (when unknown, both GPU stacks' roles may run) and what
    it serves."""
    stack = PLATFORM_STACK.get(platform) if platform is not None else None
    services = services if isinstance(services, list) else []
    engines = {s.get("engine", "llamacpp") for s in services if isinstance(s, dict)}
    runs = {
        "preflight": True,
        "nvidia_driver": stack in (None, "nvidia"),
        "rocm": stack in (None, "amd"),
        "docker_engine": True,
        "nvidia_container_toolkit": stack in (None, "nvidia"),
        "llamacpp_image": "llamacpp" in engines,
        "vllm_image": "vllm" in engines,
        "models": bool(models),
        # Also without services: a stack left from an earlier run goes down (inference_stack remove.yml).
        "inference_stack": True,
        "verify": bool(services),
    }
    return [role for role in SITE_ROLES if runs[role]]


def _list_of_strings(value):
    return isinstance(value, list) and all(isinstance(item, str) and item for item in value)


def _model_errors(model, where):
    errors = _validate.unknown_keys(model, MODEL_KEYS, where)
    sources = [key for key in MODEL_SOURCES if key in model]
    if len(sources) != 1:
        errors.append(f"{where} needs exactly one source - hf (a hub repository), url (with sha256) or path "
                      f"(got {', '.join(sources) if sources else 'none'})")
    if "url" in model:
        error = _validate.url_error(model["url"])
        if error:
            errors.append(f"{where}.url {error}")
        if "sha256" not in model:
            errors.append(f"{where}.sha256 is required with url: the file is verified against it")
    if "path" in model and _validate.absolute_path_error(model["path"]):
        errors.append(f"{where}.path {_validate.absolute_path_error(model['path'])}")
    if "sha256" in model:
        if _validate.sha256_error(model["sha256"]):
            errors.append(f"{where}.sha256 {_validate.sha256_error(model['sha256'])}")
        elif "hf" in model:
            errors.append(f"{where}.sha256 is for url and path sources; the hub's files are verified against the "
                          "hashes the hub publishes")
    if "hf" in model:
        hub = model["hf"]
        if not isinstance(hub, dict):
            errors.append(f"{where}.hf must be a dict with repo (and revision, files, allow_patterns, "
                          f"ignore_patterns) (got {_validate.type_name(hub)})")
        else:
            errors += _validate.unknown_keys(hub, HF_KEYS, f"{where}.hf")
            if "repo" not in hub:
                errors.append(f"{where}.hf.repo is required: the hub repository, such as Qwen/Qwen3-0.6B")
            elif _validate.repo_id_error(hub["repo"]):
                errors.append(f"{where}.hf.repo {_validate.repo_id_error(hub['repo'])}")
            if "revision" in hub and _validate.hub_revision_error(hub["revision"]):
                errors.append(f"{where}.hf.revision {_validate.hub_revision_error(hub['revision'])}")
            for key in ("files", "allow_patterns", "ignore_patterns"):
                if key in hub and not _list_of_strings(hub[key]):
                    errors.append(f"{where}.hf.{key} must be a list of file names or glob patterns "
                                  f"(got {_validate.type_name(hub[key])})")
    size = model.get("size_gb")
    if "size_gb" in model and (isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0):
        errors.append(f"{where}.size_gb must be a positive number of decimal GB, such as 4.7 (got {size!r})")
    if "plan" in model and not isinstance(model["plan"], dict):
        errors.append(f"{where}.plan must be a dict of the model's shape (layers, heads, ...) "
                      f"(got {_validate.type_name(model['plan'])})")
    return errors


def inference_models_errors(models):
    """Every problem with ``gpufleet_models``, each naming the entry, what is wrong and what is accepted."""
    if not isinstance(models, list):
        return [f"gpufleet_models must be a list of models, each a dict with name and one source "
                f"(got {_validate.type_name(models)})"]
    errors, seen = [], {}
    for index, model in enumerate(models):
        where = f"gpufleet_models[{index}]"
        if not isinstance(model, dict):
            errors.append(f"{where} must be a dict with name and one source (got {_validate.type_name(model)})")
            continue
        where, name_errors = _validate.named_entry("gpufleet_models", index, model.get("name"), MODEL_NAME_RE,
                                                   "letters, digits, '.', '_' or '-', starting with a letter or digit",
                                                   seen)
        errors += name_errors + _model_errors(model, where)
    return errors


def _read(variables, name):
    """``(True, value)``, or ``(False, None)`` when the variable is not set or cannot be resolved yet (a template of
    facts that only exist once the host is reached: its role checks it then). Ansible hands an unresolved value
    over as a marker that raises when it is used, hence the repr()."""
    try:
        value = variables[name]
        repr(value)
        return True, value
    except Exception:  # pylint: disable=broad-except
        return False, None


def _role_variable_errors(variables, names, roles):
    errors = []
    for role in roles:
        options = _spec(role, entry_point=None)
        prefix = role + "_"
        for name in names:
            if (name.startswith(prefix) and name not in options and name not in ROLE_FACTS
                    and not any(name.startswith(other + "_") and len(other) > len(role) for other in SITE_ROLES)):
                hint = _validate.did_you_mean(name, options) or f" (see roles/{role}/meta/argument_specs.yml)"
                errors.append(f"{name} is not a variable of the {role} role{hint}")
        for name, option in options.items():
            if name not in names or (option.get("type") != "path" and name not in VALUE_CHECKS):
                continue
            known, value = _read(variables, name)
            if not known or value is None:
                continue
            check = VALUE_CHECKS.get(name)
            if check is None and name not in CONTROLLER_PATHS:
                check = _validate.absolute_path_error
            error = check(value) if check else None
            if error:
                errors.append(f"{name} {error}")
    return errors


def inventory_errors(variables):
    """Every problem with a host's variables (``hostvars[inventory_hostname]``), before anything changes."""
    names = set(variables.keys())
    errors = []
    models = variables["gpufleet_models"] if "gpufleet_models" in names else []
    services = variables["gpufleet_services"] if "gpufleet_services" in names else []
    errors += inference_models_errors(models)
    errors += inference_services_errors(services, models if isinstance(models, list) else [])
    platform = variables["gpufleet_platform"] if "gpufleet_platform" in names else None
    if platform is not None and platform not in PLATFORMS:
        errors.append(f"gpufleet_platform must be {', '.join(PLATFORMS[:-1])} or {PLATFORMS[-1]} (got {platform})"
                      f"{_validate.did_you_mean(platform, PLATFORMS)}")
        platform = None
    # gpufleet_bundle is a directory on the controller, gpufleet_bundle_host_dir one on the host (docs/offline.md).
    for name in ("gpufleet_models_dir", "gpufleet_bundle", "gpufleet_bundle_host_dir"):
        known, value = _read(variables, name) if name in names else (False, None)
        if known and _validate.absolute_path_error(value):
            errors.append(f"{name} {_validate.absolute_path_error(value)}")
    if "gpufleet_bundle_image_timeout" in names:
        known, value = _read(variables, "gpufleet_bundle_image_timeout")
        if known and not _whole_seconds(value):
            errors.append(f"gpufleet_bundle_image_timeout must be a whole number of seconds, at least 1, such as 3600 "
                          f"{_validate.got(value)}")
    if "gpufleet_bench" in names:
        known, value = _read(variables, "gpufleet_bench")
        errors += inference_bench_errors(value) if known else []
    errors += _rollout_errors(variables, names)
    errors += _role_variable_errors(variables, names, SITE_ROLES)
    return errors


def _whole_seconds(value):
    """A count of seconds given in YAML (an integer) or on the command line (-e NAME=600, a string)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _percentage_error(value):
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not 0 <= number <= 100:
        return f"must be a number from 0 to 100 (got {value!r})"
    return None


def _batch_error(value):
    """A batch size of serial: a positive count or a percentage such as '25%'."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    if isinstance(value, str) and re.fullmatch(r"(100|[1-9][0-9]?)(\.[0-9]+)?%", value):
        return None
    return f"batch sizes are positive counts or percentages such as '25%' (got {value!r})"


def _boolean_error(value):
    """A boolean, also as extra vars give it (-e name=false)."""
    if isinstance(value, bool) or str(value).lower() in ("true", "false", "yes", "no", "1", "0"):
        return None
    return f"must be true or false (got {value!r})"


def _seconds_error(value):
    """A number of seconds, 0 or more (extra vars give it as text)."""
    if not isinstance(value, bool) and re.fullmatch(r"[0-9]+", str(value)):
        return None
    return f"must be a whole number of seconds, 0 or more (got {value!r})"


def _rollout_errors(variables, names):
    """The fleet's own variables: the stack's state and the rollout's batches and thresholds."""
    errors = []
    checks = {
        "gpufleet_stack_state": lambda v: None if v in ("present", "absent") else f"must be present or absent (got {v!r})",
        "gpufleet_rollout_max_fail_percentage": _percentage_error,
        "gpufleet_rollout_max_unhealthy_percentage": _percentage_error,
        "gpufleet_max_fail_percentage": _percentage_error,
        "gpufleet_skip_unchanged": _boolean_error,
        "gpufleet_unchanged_max_age": _seconds_error,
    }
    for name, check in checks.items():
        if name in names:
            known, value = _read(variables, name)
            error = check(value) if known else None
            if error:
                errors.append(f"{name} {error}")
    for name in ("gpufleet_rollout_serial", "gpufleet_serial"):
        if name in names:
            known, value = _read(variables, name)
            if not known:
                continue
            batches = value if isinstance(value, list) else [value]
            problems = [_batch_error(batch) for batch in batches] if batches else ["is an empty list"]
            problems = [problem for problem in problems if problem]
            if problems:
                errors.append(f"{name} {problems[0]}")
    return errors


class FilterModule:
    def filters(self):
        return {
            "inventory_errors": inventory_errors,
            "inference_models_errors": inference_models_errors,
            "role_argument_spec": role_argument_spec,
            "inventory_site_roles": inventory_site_roles,
        }

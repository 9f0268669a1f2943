# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import re
import shlex

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.module_utils import _validate

ACTIONS = ("status", "logs", "restart", "stop", "start", "tool", "tools")
TOOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# The engines' own programs in a listing of the image's PATH.
ENGINE_PROGRAMS = re.compile(r"^(llama-[a-z0-9-]+|vllm|python3)$")


def _engine_services(services):
    """The services that run an engine (a proxy names the service it fronts in org.gpufleet.proxy-for)."""
    return [name for name, svc in services.items()
            if "org.gpufleet.proxy-for" not in ((svc or {}).get("labels") or {})]


def _args(args):
    if args is None or args == "":
        return []
    if isinstance(args, str):
        return shlex.split(args)
    if isinstance(args, (list, tuple)):
        return [str(arg) for arg in args]
    raise AnsibleFilterError(f"gpufleet_ops_args must be a list or a string (got {type(args).__name__})")


def inference_ops_errors(services, action, service="", tool="", args=None, lines=100):
    services = services or {}
    if action not in ACTIONS:
        return [f"gpufleet_ops must be one of {', '.join(ACTIONS)} (got {action!r}){_validate.did_you_mean(str(action), ACTIONS)}"]
    errors = []
    engines = _engine_services(services)
    if service and service not in services:
        errors.append(f"gpufleet_ops_service: no service {service!r} in the stack deployed here "
                      f"(its services: {', '.join(sorted(services)) or 'none'}){_validate.did_you_mean(service, services)}")
    if action in ("tool", "tools") and not service and len(engines) != 1:
        errors.append(f"gpufleet_ops_service must name the service whose image runs the tool "
                      f"(services here: {', '.join(sorted(engines)) or 'none'})")
    if action == "logs" and not re.fullmatch(r"[1-9][0-9]*", str(lines)):
        errors.append(f"gpufleet_ops_lines must be a number of lines, 1 or more (got {lines!r})")
    if action == "tool":
        if not tool or not TOOL_NAME.match(str(tool)):
            errors.append(f"gpufleet_ops_tool must be the name of a program in the image, such as llama-bench "
                          f"(got {tool!r}; gpufleet_ops=tools lists them)")
        try:
            _args(args)
        except (AnsibleFilterError, ValueError) as exc:
            errors.append(f"gpufleet_ops_args: {exc}")
    return errors


def _model_in_container(svc):
    command = [str(part) for part in (svc or {}).get("command") or []]
    for flag in ("--model", "-m"):
        if flag in command[:-1]:
            return command[command.index(flag) + 1]
    return None


def inference_ops_plan(services, action, service="", tool="", args=None, project="gpufleet",
                       compose_file="/opt/gpufleet/stack/compose.yaml", lines=100, workdir=""):
    errors = inference_ops_errors(services, action, service, tool, args, lines)
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    engines = _engine_services(services)
    target = service or (engines[0] if action in ("tool", "tools") else "")
    compose = ["docker", "compose", "-p", project, "-f", compose_file]
    run = compose + ["run", "--rm", "--no-deps", "-T"]
    if workdir:
        run += ["-v", f"{workdir}:/work", "-w", "/work"]
    plan = {"services": [target] if target else [], "argv": []}
    if action == "logs":
        plan["argv"] = compose + ["logs", "--no-color", "--timestamps", "--tail", str(int(lines))] + plan["services"]
    elif action == "tools":
        listing = 'for d in $(echo "$PATH" | tr ":" " "); do [ -d "$d" ] && ls -1 "$d"; done; true'
        plan["argv"] = run + ["--entrypoint", "sh", target, "-c", listing]
    elif action == "tool":
        model = _model_in_container(services.get(target))
        words = _args(args)
        if any("{model}" in word for word in words) and model is None:
            raise AnsibleFilterError(f"gpufleet_ops_args: {{model}} stands for the file service {target} serves, "
                                     f"and it serves none of its own (lanes: give the model's path under /models)")
        plan["argv"] = run + ["--entrypoint", str(tool), target] + [word.replace("{model}", model or "") for word in words]
    return plan


def inference_ops_status(containers, services=None):
    """One line per container (from community.docker.docker_host_info): service, state and health, image."""
    wanted = set(services or [])
    found = []
    for container in containers or []:
        labels = container.get("Labels") or {}
        name = labels.get("com.docker.compose.service") or (container.get("Names") or ["?"])[0].lstrip("/")
        if wanted and name not in wanted:
            continue
        found.append(f"{name}: {container.get('State', '?')} - {container.get('Status', '')} "
                     f"(image {container.get('Image', '?')})")
    return sorted(found) or ["no containers of this stack"]


def inference_ops_tools(listing):
    """The engine's programs in a listing of the directories on the image's PATH."""
    return sorted({line.strip() for line in listing or [] if ENGINE_PROGRAMS.match(line.strip())})


class FilterModule:
    def filters(self):
        return {
            "inference_ops_plan": inference_ops_plan,
            "inference_ops_errors": inference_ops_errors,
            "inference_ops_status": inference_ops_status,
            "inference_ops_tools": inference_ops_tools,
        }

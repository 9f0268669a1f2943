# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import re

import yaml

from ansible.errors import AnsibleFilterError


def _document(value):
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise AnsibleFilterError(f"inference_compose_images: not a Compose document ({exc})") from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnsibleFilterError("inference_compose_images: a Compose document is a mapping")
    return value


def inference_compose_images(document):
    """The image references of a Compose document's services, sorted, once each."""
    services = _document(document).get("services") or {}
    return sorted({svc["image"] for svc in services.values() if isinstance(svc, dict) and svc.get("image")})


def inference_images_to_prune(history, current, previous=None):
    keep = set(inference_compose_images(current)) | set(inference_compose_images(previous))
    return sorted({ref for ref in history or [] if isinstance(ref, str) and ref and ref not in keep})


def inference_services_without_keys(services):
    """The services as the inventory gave them, without api_key: safe to keep on disk and print."""
    result = []
    for service in services or []:
        if not isinstance(service, dict):
            continue
        result.append({key: value for key, value in service.items() if key != "api_key"})
    return result


def _item_name(item):
    if isinstance(item, dict):
        for key in ("service", "name", "key"):
            if item.get(key):
                lane = item.get("model") if key == "service" else None
                return f"{item[key]}/{lane}" if lane else str(item[key])
        return str(item)
    return str(item)


def inference_failed_services(text, project="gpufleet"):
    """The Compose services named in a failure message by their containers (``<project>-<service>-<n>``)."""
    pattern = re.compile(r"\b%s-([a-z0-9][a-z0-9_-]*?)-\d+\b" % re.escape(str(project)))
    return sorted(set(pattern.findall(str(text or ""))))


def inference_failure(result, task=None):
    """One line: the failed task, the items (services) that failed and their messages."""
    result = result if isinstance(result, dict) else {}
    task_name = (task or {}).get("name") if isinstance(task, dict) else None
    parts = []
    failed_items = [r for r in result.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    if failed_items:
        for item_result in failed_items:
            name = _item_name(item_result.get("item"))
            msg = str(item_result.get("msg") or "").strip()
            parts.append(f"{name}: {msg}" if msg else name)
    else:
        msg = str(result.get("msg") or result.get("stderr") or "").strip()
        if msg:
            parts.append(msg)
    text = "; ".join(parts) or "no message"
    if len(text) > 1500:
        text = text[:1500] + " ..."
    return f"{task_name}: {text}" if task_name else text


def inference_container_problems(containers):
    """The containers (docker_host_info's list) that are not running, or whose healthcheck fails, as 'name: status'."""
    problems = []
    for container in containers or []:
        if not isinstance(container, dict):
            continue
        names = container.get("Names") or [container.get("Id", "?")[:12]]
        name = str(names[0]).lstrip("/")
        status = str(container.get("Status") or "")
        state = str(container.get("State") or "")
        running = state == "running" if state else status.startswith("Up")
        if not running or "(unhealthy)" in status:
            problems.append(f"{name}: {status or state or 'unknown'}")
    return sorted(problems)


def inference_fleet_health(hosts):
    """Sum up per-host health records ({host, deployed, healthy, unhealthy: [names]}) before a rollout.

    Returns deployed (hosts with a stack), unhealthy (hosts whose stack has a container that is not running or
    not healthy) and the unhealthy percentage of the deployed hosts (0 when none is deployed)."""
    records = [h for h in hosts or [] if isinstance(h, dict)]
    deployed = [h for h in records if h.get("deployed")]
    unhealthy = [h for h in deployed if h.get("unhealthy")]
    percent = (100.0 * len(unhealthy) / len(deployed)) if deployed else 0.0
    return {
        "hosts": len(records),
        "deployed": len(deployed),
        "unhealthy": sorted(str(h.get("host")) for h in unhealthy),
        "unhealthy_percentage": round(percent, 1),
        "detail": {str(h.get("host")): sorted(h.get("unhealthy") or []) for h in unhealthy},
    }


class FilterModule:
    def filters(self):
        return {
            "inference_images_to_prune": inference_images_to_prune,
            "inference_compose_images": inference_compose_images,
            "inference_services_without_keys": inference_services_without_keys,
            "inference_failure": inference_failure,
            "inference_fleet_health": inference_fleet_health,
            "inference_container_problems": inference_container_problems,
            "inference_failed_services": inference_failed_services,
        }

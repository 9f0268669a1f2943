# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.stack import (
    inference_served_models,
    inference_tls_files,
    is_loopback,
    keyed,
    uses_proxy,
)

WILDCARD = ("0.0.0.0", "::", "[::]")
MODES = ("auto", "true", "false")
# Connections that reach the host through a container runtime or a chroot, not over the network: the host's
# name in the inventory (a container name) is not an address the controller can be expected to reach.
RUNTIME_CONNECTIONS = (
    "docker", "community.docker.docker", "community.docker.nsenter", "podman", "containers.podman.podman",
    "lxc", "community.general.lxc", "lxd", "community.general.lxd", "chroot", "community.general.chroot",
    "kubectl", "kubernetes.core.kubectl", "community.okd.oc",
)
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")


def url_host(host):
    """``host`` as it goes into a URL (IPv6 addresses in brackets)."""
    host = str(host).strip()
    if host.startswith("["):
        return host
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def inference_endpoints(services, stack_dir):
    served = inference_served_models(services)
    endpoints = []
    for service in services or []:
        bind = str(service.get("bind_address", "127.0.0.1"))
        local = "127.0.0.1" if bind in WILDCARD else bind
        tls = inference_tls_files(service, f"{str(stack_dir).rstrip('/')}/tls")
        scheme = "https" if tls else "http"
        endpoints.append({
            "name": service["name"],
            "engine": service.get("engine", "llamacpp"),
            "port": service["port"],
            "bind_address": bind,
            "scheme": scheme,
            "ca_path": tls.get("ca", ""),
            "url": f"{scheme}://{url_host(local)}:{service['port']}",
            "published": not is_loopback(bind),
            "models": [entry["model"] for entry in served if entry["service"] == service["name"]],
            "api_key_required": keyed(service),
            "api_key_file": f"{str(stack_dir).rstrip('/')}/secrets/{service['name']}.key" if keyed(service) else None,
            "proxy": uses_proxy(service),
        })
    return endpoints


def _mode(mode):
    text = str(mode).lower()
    return {"yes": "true", "on": "true", "no": "false", "off": "false"}.get(text, text)


def inference_published_targets(endpoints, mode, host, connection="ssh"):
    """Per endpoint bound beyond loopback: where users reach it and whether the controller probes it there.

    ``[{name, url, address, probe, note}]``. ``mode`` is ``verify_published_address``: ``true`` probes every
    published endpoint; ``false`` none; ``auto`` probes unless the controller is the host itself (a local
    connection) or reaches it through a container runtime, where the inventory's host name is not a network address.
    A service bound to one address is reached at that address, one bound to every address at ``host``.
    """
    mode = _mode(mode)
    if mode not in MODES:
        raise AnsibleFilterError(f"verify_published_address must be one of auto, true, false (got {mode!r})")
    connection = str(connection or "ssh")
    if mode == "false":
        skip = "verify_published_address is false"
    elif mode == "auto" and connection in LOCAL_CONNECTIONS:
        skip = ("the controller is the host (ansible_connection local): the probe on the host already reached it; "
                "set verify_published_address: true to probe verify_public_host from here as well")
    elif mode == "auto" and connection in RUNTIME_CONNECTIONS:
        skip = (f"ansible_connection {connection} reaches the host through its runtime, so {host} need not be an "
                "address this controller reaches; set verify_published_address: true, with verify_public_host an "
                "address users reach, to probe it")
    else:
        skip = None
    targets = []
    for endpoint in endpoints or []:
        if not endpoint.get("published"):
            continue
        bind = str(endpoint.get("bind_address"))
        address = str(host) if bind in WILDCARD else bind
        targets.append({
            "name": endpoint["name"],
            "address": address,
            "url": f"{endpoint.get('scheme', 'http')}://{url_host(address)}:{endpoint['port']}",
            "probe": skip is None,
            "note": skip or "",
        })
    return targets


def inference_published_problem(result, target, bind_address="0.0.0.0"):
    """What a failed probe of a published address likely means, as one message; ``""`` when it passed."""
    result = result if isinstance(result, dict) else {}
    # Registered with failed_when: false, a failed probe says so by the step it names (returned on failure only).
    if not result.get("failed") and not result.get("step"):
        return ""
    url = target["url"]
    where = f"gpufleet_services ({target['name']}) at its published address {url} (from the controller)"
    status = result.get("status")
    error = str(result.get("error") or "")
    step = result.get("step")
    # Where the address came from: the service's own bind address, or verify_public_host for every address.
    source = "verify_public_host" if str(bind_address) in WILDCARD else f"its bind_address {bind_address}"
    if status is None and "refused" in error:
        why = (f"nothing accepts connections there, while the service answers on the host: check its bind_address "
               f"({bind_address}) and the Compose port mapping, or a firewall on the host that rejects the port")
    elif status is None and "timed out" in error:
        why = (f"no answer, while the service answers on the host: a firewall between the controller and "
               f"{target['address']} drops the port, or {target['address']} ({source}) is not where users reach "
               "the host")
    elif status is None and step is not None:
        why = (f"{target['address']} cannot be reached from the controller ({error or 'no answer'}): "
               f"{source} is not an address users reach the host at")
    elif step == "unauthorized":
        why = ("it answers without the API key: whatever publishes this port (a proxy, a port mapping to another "
               "server) does not guard it")
    elif status in (401, 403):
        why = (f"it refuses the service's API key (HTTP {status}): another server holds this port, or a proxy "
               "in front of it expects another key")
    elif status == 404 or step == "models":
        why = ("a server answers there, but not this service (it does not serve its routes or models): the port "
               "is mapped to another server")
    else:
        why = "it does not answer as the service does on the host"
    return f"{where}: {why}. The probe said: {result.get('msg', '')}"


class FilterModule:
    def filters(self):
        return {
            "inference_endpoints": inference_endpoints,
            "inference_published_targets": inference_published_targets,
            "inference_published_problem": inference_published_problem,
        }

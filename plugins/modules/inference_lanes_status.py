#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: inference_lanes_status
short_description: How the lanes of a service switch - switches, the last switch's duration, the queue, each lane's state
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Reads the switching figures of a service with lanes (several models behind one port, see docs/lanes.md).
  - vLLM lanes run under the lane switcher, whose C(/lanes) route gives the switch count, the last switch's
    duration, the requests waiting now and each lane's state and loads.
  - llama.cpp lanes run in llama.cpp's router mode, which publishes each lane's state (C(/models)) but no switch
    figures; they are read from the router's own log (through the Docker Engine API, since the container's last
    start). The router does not publish its queue either, so RV(queue_depth) is null there and
    RV(waiting_at_last_switch) says how many requests waited for the last switch.
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
  base_url:
    description: Root URL of the service, without C(/v1), for example V(http://127.0.0.1:11434).
    type: str
    required: true
  api_key:
    description: The service's API key, when it has one.
    type: str
  engine:
    description: The service's engine.
    type: str
    choices: [llamacpp, vllm]
    required: true
  service:
    description: The service's name (the C(org.gpufleet.service) label of its container); for llama.cpp lanes.
    type: str
    required: true
  project:
    description: The Compose project the service belongs to; for llama.cpp lanes.
    type: str
    default: gpufleet
  max_lines:
    description: How many lines of the router's log to read at most, from the container's last start.
    type: int
    default: 200000
  docker_host:
    description: The Docker engine's socket; for llama.cpp lanes.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description: Seconds to wait for each request.
    type: int
    default: 30
  validate_certs:
    description: Verify the server's TLS certificate for C(https) URLs (a service behind a TLS front).
    type: bool
    default: true
  ca_path:
    description: A PEM file of the certificates that verify the server's, instead of the system's CA store.
    type: path
"""

EXAMPLES = r"""
- name: Switching figures of the lanes behind port 11434
  gpufleet.inference.inference_lanes_status:
    base_url: http://127.0.0.1:11434
    api_key: "{{ lookup('ansible.builtin.file', '/opt/gpufleet/stack/secrets/cortex.key') }}"
    engine: vllm
    service: cortex
  register: lanes
"""

RETURN = r"""
mechanism:
  description: What switches the lanes (V(gpufleet-lanes) for vLLM, V(llama.cpp-router) for llama.cpp).
  returned: success
  type: str
  sample: gpufleet-lanes
switches:
  description: Lane loads asked for by requests since the service started (loads at start-up do not count).
  returned: success
  type: int
  sample: 3
last_switch_seconds:
  description: Seconds the last switch took, from the request that asked for it to the lane being ready.
  returned: success
  type: float
  sample: 17.4
last_switch:
  description: The lane the last switch loaded, the lanes it stopped (vLLM) and its seconds.
  returned: success
  type: dict
queue_depth:
  description: Requests waiting for their lane now (vLLM); null for llama.cpp's router, which does not publish it.
  returned: success
  type: int
waiting_at_last_switch:
  description: Requests that waited for the last switch (llama.cpp's router, from its log).
  returned: success
  type: int
failed_requests:
  description: Requests the switcher answered with an error (vLLM), or lane instances that exited with an error
    (llama.cpp).
  returned: success
  type: int
lanes:
  description: Each lane - C(name), C(state) (V(loaded), V(loading), V(unloaded)...), C(loads).
  returned: success
  type: list
  elements: dict
"""

import json
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils import _docker_api
from ansible_collections.gpufleet.inference.plugins.module_utils import _http_probe
from ansible_collections.gpufleet.inference.plugins.module_utils import _lanes


def _get_json(probe, path):
    answer = probe.request("GET", path)
    if answer.error or answer.status != 200:
        raise _http_probe.ProbeError("lanes", "GET %s: %s" % (path, answer.error or "HTTP %s %s" % (
            answer.status, probe.body_excerpt(answer))))
    try:
        return json.loads(answer.body)
    except ValueError as exc:
        raise _http_probe.ProbeError("lanes", "GET %s: not JSON (%s)" % (path, exc)) from exc


def vllm_status(probe):
    data = _get_json(probe, "/lanes")
    return {
        "mechanism": "gpufleet-lanes",
        "mode": data.get("mode"),
        "max_loaded": data.get("max_loaded"),
        "switches": data.get("switches"),
        "last_switch_seconds": data.get("last_switch_seconds"),
        "last_switch": data.get("last_switch"),
        "queue_depth": data.get("queue_depth"),
        "waiting_at_last_switch": None,
        "failed_requests": data.get("failed_requests"),
        "lanes": [{"name": lane.get("name"), "state": lane.get("state"), "loads": lane.get("loads"),
                   "last_load_seconds": lane.get("last_load_seconds")} for lane in data.get("lanes") or []],
    }


def router_status(probe, api, params):
    models = _get_json(probe, "/models").get("data") or []
    found = api.containers({"org.gpufleet.service": params["service"], "com.docker.compose.project": params["project"]})
    running = [c for c in found if c.get("State") == "running"]
    if not running:
        raise _docker_api.DockerApiError("no running container in Compose project %s" % params["project"])
    inspect = api.inspect_container(running[0]["Id"])
    since = _docker_api.unix_time(inspect.get("State", {}).get("StartedAt"))
    lines = api.log_head(inspect["Id"], params["max_lines"], since=int(since),
                         tty=bool(inspect.get("Config", {}).get("Tty")))
    log = _lanes.router_switches(lines)
    return {
        "mechanism": "llama.cpp-router",
        "mode": None,
        "max_loaded": None,
        "switches": log["switches"],
        "last_switch_seconds": log["last_switch_seconds"],
        "last_switch": log["last_switch"],
        "queue_depth": None,
        "waiting_at_last_switch": log["waiting_at_last_switch"],
        "failed_requests": len(log["exits"]),
        "lanes": [{"name": model.get("id"), "state": (model.get("status") or {}).get("value"),
                   "loads": log["loads"].get(model.get("id"), 0), "last_load_seconds": None} for model in models],
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            engine=dict(type="str", required=True, choices=["llamacpp", "vllm"]),
            service=dict(type="str", required=True),
            project=dict(type="str", default="gpufleet"),
            max_lines=dict(type="int", default=200000),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
            timeout=dict(type="int", default=30),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    probe = _http_probe.InferenceProbe(params["base_url"], api_key=params["api_key"], request_timeout=params["timeout"],
                                       validate_certs=params["validate_certs"], ca_path=params["ca_path"])
    try:
        if params["engine"] == "vllm":
            result = vllm_status(probe)
        else:
            result = router_status(probe, _docker_api.DockerApi(params["docker_host"]), params)
    except (_http_probe.ProbeError, _docker_api.DockerApiError) as exc:
        module.fail_json(msg="service %s: %s" % (params["service"], to_native(exc)), exception=traceback.format_exc())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

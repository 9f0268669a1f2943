#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: converge_record
short_description: Record a host's converged state, or tell whether anything changed since
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - With O(state=record), after a run of the host path passed, writes what the host looks like at its end to O(path)
    (root only, replaced atomically) - the digest of the run's inputs, the boot id, the signatures (C(stat), never
    contents) of the files the roles manage, and for each container of the Compose project its id and image and
    the read-only files it mounts (the Compose file, keys, lane files, models).
  - With O(state=check), compares the host with that record and returns RV(converged=true) only when the inputs, the
    boot, every watched file and every container are as recorded, every container is running and none is unhealthy
    or still starting, and the record is not older than O(max_age). RV(reasons) says what differs.
  - C(playbooks/tasks/host.yml) uses it to end a host early when nothing changed since its last run that passed.
  - Reads only with O(state=check).
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: With O(state=record), the file's time stamp is renewed on every run; the task reports a change only when
      what it records changed.
options:
  path:
    description: The record file.
    type: path
    default: /var/lib/gpufleet/converged.json
  state:
    description: V(check) compares the host with the record; V(record) writes it.
    type: str
    choices: [check, record]
    default: check
  inputs:
    description:
      - The digest of what the run was asked to do (the C(gpufleet.inference.converge_inputs_digest) filter of the
        host's variables). Any difference means the host must run every step.
    type: str
    required: true
  project:
    description: The Compose project whose containers (those with the C(org.gpufleet.service) label) belong to the state.
    type: str
    default: gpufleet
  watch:
    description:
      - Files and directories whose signatures belong to the state, besides the containers' read-only mounts and
        Compose files. A directory counts with its whole tree.
      - The default is what the roles manage outside the stack - the package database, C(/etc/group), the Docker
        engine's C(daemon.json), apt sources and keyrings, module options, the NVIDIA runtime's and CDI
        configuration, and the boot loader's defaults.
    type: list
    elements: path
  max_age:
    description: Seconds after which a record no longer counts (a full run then checks everything); V(0) for never.
    type: int
    default: 86400
  docker_host:
    description: The Docker engine's socket.
    type: str
    default: unix:///var/run/docker.sock
notes:
  - A host whose Docker engine cannot be reached has no containers in its state.
seealso:
  - module: gpufleet.inference.inference_probe
"""

EXAMPLES = r"""
- name: Has anything changed since the last run that passed?
  gpufleet.inference.converge_record:
    inputs: "{{ hostvars[inventory_hostname] | gpufleet.inference.converge_inputs_digest }}"
  register: last_run

- name: Nothing to do
  ansible.builtin.meta: end_host
  when: last_run.converged

- name: After every step passed, record the host
  gpufleet.inference.converge_record:
    state: record
    inputs: "{{ hostvars[inventory_hostname] | gpufleet.inference.converge_inputs_digest }}"
"""

RETURN = r"""
converged:
  description: Whether the host is as its last run that passed left it (O(state=check)); always true after O(state=record).
  returned: always
  type: bool
  sample: false
reasons:
  description: What differs from the record (empty when nothing does).
  returned: always
  type: list
  elements: str
  sample: ["container gpufleet-chat-1 is exited", "changed since: /etc/docker/daemon.json"]
recorded_at:
  description: When the record was written (seconds since the epoch), or null without one.
  returned: always
  type: float
  sample: 1796000000.5
containers:
  description: The project's containers found now, with their state and health.
  returned: always
  type: dict
  sample: {"gpufleet-chat-1": {"state": "running", "health": "healthy"}}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.inference.plugins.module_utils import _converge
from ansible_collections.gpufleet.inference.plugins.module_utils._docker_api import DockerApi, DockerApiError


def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _containers(module):
    try:
        api = DockerApi(module.params["docker_host"], timeout=20)
        labels = {_converge.SERVICE_LABEL: None, "com.docker.compose.project": module.params["project"]}
        return _converge.containers_of(api.containers(labels)), None
    except DockerApiError as exc:
        return {}, str(exc)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/var/lib/gpufleet/converged.json"},
            "state": {"type": "str", "choices": ["check", "record"], "default": "check"},
            "inputs": {"type": "str", "required": True},
            "project": {"type": "str", "default": "gpufleet"},
            "watch": {"type": "list", "elements": "path"},
            "max_age": {"type": "int", "default": 86400},
            "docker_host": {"type": "str", "default": "unix:///var/run/docker.sock"},
        },
        supports_check_mode=True,
    )
    params = module.params
    containers, engine_error = _containers(module)
    watch = params["watch"] if params["watch"] is not None else _converge.DEFAULT_WATCH
    current = _converge.snapshot(params["inputs"], _boot_id(), containers, watch)
    record = _converge.read_record(params["path"])
    shown = {name: {"state": c["state"], "health": c["health"]} for name, c in containers.items()}
    result = {"changed": False, "containers": shown,
              "recorded_at": record.get("recorded_at") if record else None}

    if params["state"] == "check":
        reasons = _converge.changes(record, current, containers, time.time(), params["max_age"])
        if engine_error and record and record.get("containers"):
            reasons.append(f"the Docker engine does not answer ({engine_error})")
        module.exit_json(converged=not reasons, reasons=reasons, **result)

    problems = [f"container {name} is {c['state']}" for name, c in containers.items() if c["state"] != "running"]
    if problems:
        module.fail_json(msg="converge_record: not recording a host whose stack is not running: " + "; ".join(problems),
                         **result)
    result["changed"] = not (record and _converge.same_state(record, current))
    if not module.check_mode:
        current["recorded_at"] = time.time()
        current["project"] = params["project"]
        _converge.write_record(params["path"], current)
        result["recorded_at"] = current["recorded_at"]
    module.exit_json(converged=True, reasons=[], **result)


if __name__ == "__main__":
    main()

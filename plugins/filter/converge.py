# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
name: converge_inputs_digest
short_description: One digest of what a run asks of a host - its inventory variables and the collection's code
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - A SHA-256 over every variable the host gets from the inventory and extra vars (values resolved, secrets
    included - only the digest leaves the filter) and over the files of this collection that run (roles, plugins,
    playbooks). Two runs with the same digest ask the host for the same thing.
  - Left out, because they do not say what a host should look like - facts (gathered, cached or returned by
    modules), Ansible's magic variables, variables the roles set while they run, internal names starting with C(_),
    and how the run is driven (C(gpufleet_skip_unchanged), C(gpufleet_unchanged_max_age), C(gpufleet_target),
    C(gpufleet_serial), C(gpufleet_max_fail_percentage), C(gpufleet_rollout_*)).
  - A variable that cannot be resolved counts by its name only.
  - A file on the controller that the inventory names, a service's C(chat_template) given as a path, counts by its
    content.
options:
  _input:
    description: The host's variables, C(hostvars[inventory_hostname]).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Has anything changed since the last run that passed?
  gpufleet.inference.converge_record:
    inputs: "{{ hostvars[inventory_hostname] | gpufleet.inference.converge_inputs_digest }}"
"""

RETURN = r"""
_value:
  description: A hex SHA-256 digest.
  type: str
"""

import hashlib
import json
import os

from ansible_collections.gpufleet.inference.plugins.filter.inventory import ROLE_FACTS

# Ansible's own variables (magic variables and what a play adds), whatever the host.
MAGIC = frozenset((
    "group_names", "groups", "hostvars", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "omit", "play_hosts", "playbook_dir", "role_name", "role_names", "role_path",
    "role_uuid", "module_setup", "environment",
))
# ansible_* variables that do say how the host is reached (the rest are facts or Ansible's own).
CONNECTION = frozenset((
    "ansible_host", "ansible_port", "ansible_user", "ansible_connection", "ansible_python_interpreter",
    "ansible_become", "ansible_become_method", "ansible_become_user", "ansible_docker_extra_args",
))
# How a run is driven, not what it asks of the host; and facts the roles or the playbooks set while they run.
RUN_SETTINGS = frozenset((
    "gpufleet_skip_unchanged", "gpufleet_unchanged_max_age", "gpufleet_target", "gpufleet_serial",
    "gpufleet_max_fail_percentage", "gpufleet_gpu_stack", "inference_stack_health",
))
# The collection's code that runs (documentation and tests do not).
CODE = ("galaxy.yml", "playbooks", "plugins", "roles")
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_code_digest = {}


def _counts(name, facts):
    if name.startswith("_") or name in MAGIC or name in RUN_SETTINGS or name in ROLE_FACTS:
        return False
    if name.startswith("gpufleet_rollout_"):
        return False
    if name in facts or name.startswith("ansible_"):
        return name in CONNECTION
    return True


def _code_files(root):
    for top in CODE:
        start = os.path.join(root, top)
        if os.path.isfile(start):
            yield start
            continue
        for directory, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if not name.endswith((".pyc", ".pyo")):
                    yield os.path.join(directory, name)


def code_digest(root=COLLECTION_ROOT):
    """A digest of the collection's files that run (names and contents), once per process."""
    if root not in _code_digest:
        digest = hashlib.sha256()
        for path in _code_files(root):
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        _code_digest[root] = digest.hexdigest()
    return _code_digest[root]


def _resolved(variables, name):
    try:
        value = variables[name]
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    except Exception:  # pylint: disable=broad-except
        # A template of something not known yet (Ansible hands it over as a marker that raises when used).
        return "<unresolved>"


def converge_inputs_digest(variables, root=COLLECTION_ROOT):
    facts = variables["ansible_facts"] if "ansible_facts" in variables else {}
    try:
        facts = set(facts.keys())
    except Exception:  # pylint: disable=broad-except
        facts = set()
    facts |= {"ansible_" + name for name in facts}
    chosen = {name: _resolved(variables, name) for name in sorted(variables.keys()) if _counts(name, facts)}
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode())
    digest.update(code_digest(root).encode())
    for path in _controller_files(chosen.get("gpufleet_services")):
        # A file the inventory names on the controller (a chat template) counts by its content.
        digest.update(path.encode() + b"\0")
        try:
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


def _controller_files(services):
    """The controller files the services name: each ``chat_template`` given as an absolute path."""
    if not isinstance(services, list):
        return []
    return sorted({s["chat_template"] for s in services if isinstance(s, dict) and isinstance(s.get("chat_template"), str)
                   and os.path.isabs(s["chat_template"]) and "{" not in s["chat_template"]})


class FilterModule:
    def filters(self):
        return {"converge_inputs_digest": converge_inputs_digest}

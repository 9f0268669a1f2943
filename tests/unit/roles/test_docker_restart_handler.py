# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_engine and nvidia_container_toolkit restart the Docker engine through one handler.

Ansible keeps one handler per name in a play; the two roles define it the same way, so that each works alone
and, together, notifications from both before a flush restart the engine once. A second name, or a body that
differs, would bring back two restarts (or a restart that depends on which role was loaded last).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
HANDLER = "Restart the Docker engine"
RESTARTING_ROLES = ("docker_engine", "nvidia_container_toolkit")


class Loader(yaml.SafeLoader):
    """Reads Ansible's !unsafe strings as plain strings."""


Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path):
    return yaml.load(path.read_text(), Loader=Loader) or []  # noqa: S506 - a SafeLoader subclass


def tasks_of(role):
    for path in sorted((ROLES / role / "tasks").glob("*.yml")):
        yield from walk(load(path))


def walk(tasks):
    for task in tasks:
        yield task
        for key in ("block", "rescue", "always"):
            yield from walk(task.get(key, []))


def test_both_roles_define_the_same_single_restart_handler():
    handlers = {role: load(ROLES / role / "handlers" / "main.yml") for role in RESTARTING_ROLES}
    assert [h["name"] for h in handlers["docker_engine"]] == [HANDLER]
    assert handlers["nvidia_container_toolkit"] == handlers["docker_engine"]
    assert handlers["docker_engine"][0]["ansible.builtin.service"] == {"name": "docker", "state": "restarted"}


@pytest.mark.parametrize("role", RESTARTING_ROLES)
def test_every_notification_names_the_shared_handler(role):
    notified = {task["notify"] for task in tasks_of(role) if "notify" in task}
    assert notified == {HANDLER}


def test_no_other_role_restarts_docker_under_another_name():
    for handlers in ROLES.glob("*/handlers/main.yml"):
        if handlers.parent.parent.name in RESTARTING_ROLES:
            continue
        for handler in load(handlers):
            service = handler.get("ansible.builtin.service") or handler.get("ansible.builtin.systemd_service") or {}
            assert service.get("name") != "docker", f"{handlers}: {handler.get('name')}"

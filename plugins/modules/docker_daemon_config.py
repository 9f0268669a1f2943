#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: docker_daemon_config
short_description: Merge settings into the Docker daemon's C(daemon.json)
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Reads the Docker daemon configuration file, merges O(settings) into it and writes the result back atomically.
  - Keys that O(settings) does not name are kept as they are. The NVIDIA Container Toolkit (C(nvidia-ctk runtime configure)),
    other tools and users add their own keys to this file; a role that templated the whole file would delete them.
  - The merge follows JSON Merge Patch (RFC 7386) - objects are merged key by key, recursively; a value of V(null)
    deletes the key; any other value (string, number, boolean, list) replaces the one that was there.
  - The file is only written when the merged configuration differs from the current one as JSON, so a file formatted
    by hand is not rewritten for nothing.
  - A file that exists but is not a JSON object is never overwritten; the module fails and says so.
  - This module does not restart the daemon; notify a handler on RV(ignore:changed).
  - Credentials in the file or in O(settings) (a proxy's C(user:password@), for example) are masked in everything the
    module returns, its diff and the invocation Ansible adds included; see RV(config).
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  path:
    description:
      - Path of the daemon configuration file.
      - Created, with its directory, when it does not exist.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - The keys to merge into the file, as a JSON merge patch.
      - Use V(null) as a value to remove a key.
    type: dict
    required: true
  mode:
    description:
      - Permissions of the file when the module creates it. An existing file keeps its own.
    type: raw
    default: '0644'
  backup:
    description:
      - Keep a timestamped copy of the previous file next to it when the module changes it.
    type: bool
    default: false
seealso:
  - name: Docker daemon configuration file
    description: The keys C(dockerd) reads from C(daemon.json).
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
  - name: RFC 7386 JSON Merge Patch
    description: The merge semantics of O(settings).
    link: https://www.rfc-editor.org/rfc/rfc7386
"""

EXAMPLES = r"""
- name: Rotate container logs and keep every other key of daemon.json
  gpufleet.inference.docker_daemon_config:
    settings:
      log-driver: json-file
      log-opts:
        max-size: 100m
        max-file: "3"
  notify: Restart docker

- name: Move the data root and drop a key an old setup left behind
  gpufleet.inference.docker_daemon_config:
    settings:
      data-root: /srv/docker
      graph: null
    backup: true
"""

RETURN = r"""
config:
  description:
    - The configuration as it is (or, in check mode, would be) after the merge, with its credentials masked (C(********))
      - the password of a URL's C(user:password@) (proxies, registry mirrors), a URL's user part when it has no
      password, and the whole value of a key whose name contains C(password), C(passwd), C(secret), C(token) or
      C(credential). The diff is masked the same way; the file holds the real values.
  returned: success
  type: dict
  sample: {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
changed_keys:
  description: Dotted paths of the keys that were (or would be) added, changed or removed.
  returned: success
  type: list
  elements: str
  sample: ["log-opts.max-size", "data-root"]
backup_file:
  description: Path of the copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and O(backup=true)
  type: str
  sample: /etc/docker/daemon.json.12345.2026-11-22@10:00:00~
"""

import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils._json_merge import (
    changed_paths,
    merge_patch,
)


MASK = "********"
# A URL's user information: user:password@ (the password is masked) or token@ (all of it is).
USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/?#@\s:]*)(?P<password>:[^/?#@\s]*)?@")
# Keys whose whole value is a credential, whatever it looks like.
SECRET_KEY_RE = re.compile(r"password|passwd|secret|token|credential", re.IGNORECASE)


def _userinfo_secrets(text):
    """The credentials in the URLs inside ``text``: the passwords, or the user part when there is no password."""
    found = []
    for match in USERINFO_RE.finditer(text):
        secret = match.group("password")[1:] if match.group("password") else match.group("user")
        if secret:
            found.append(secret)
    return found


def _mask_userinfo(match):
    if match.group("password"):
        return "%s%s:%s@" % (match.group("scheme"), match.group("user"), MASK)
    return "%s%s@" % (match.group("scheme"), MASK)


def redact(value, secrets, key=""):
    """``value`` with its credentials masked; each credential found is added to the set ``secrets``.

    Proxy URLs (``proxies.http-proxy`` and the like) and registry mirrors may carry ``user:password@``;
    a key named like a password or token holds a credential as a whole. Docker reads the real values from
    the file; a task's output, ``register`` and logs get the masked ones.
    """
    if isinstance(value, dict):
        return dict((k, redact(v, secrets, str(k))) for k, v in value.items())
    if isinstance(value, list):
        return [redact(v, secrets, key) for v in value]
    if isinstance(value, str):
        if SECRET_KEY_RE.search(key):
            if value:
                secrets.add(value)
            return MASK if value else value
        secrets.update(_userinfo_secrets(value))
        return USERINFO_RE.sub(_mask_userinfo, value)
    return value


def render(config):
    """The file's text: two-space indent like Docker's own documentation, and a final newline."""
    return json.dumps(config, indent=2) + "\n"


class DaemonConfig:
    """Read, compare, then write daemon.json."""

    def __init__(self, module):
        self.module = module
        self.path = module.params["path"]
        self.settings = module.params["settings"]

    def read(self):
        """Return ``(config, text)``; ``({}, None)`` when the file does not exist."""
        if not os.path.exists(self.path):
            return {}, None
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            self.module.fail_json(msg=f"Cannot read {self.path}: {to_native(exc)}")
        if not text.strip():
            # dockerd accepts an empty file as "no settings"; so do we.
            return {}, text
        try:
            config = json.loads(text)
        except ValueError as exc:
            self.module.fail_json(msg=f"{self.path} is not valid JSON ({exc}); it was left untouched. Fix or remove it, then run again.")
        if not isinstance(config, dict):
            self.module.fail_json(msg=f"{self.path} holds a JSON {type(config).__name__}, not an object; it was left untouched.")
        return config, text

    def write(self, config, existed):
        directory = os.path.dirname(self.path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755)
        fd, tmp_path = tempfile.mkstemp(prefix=".daemon.json.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(render(config))
            self.module.atomic_move(tmp_path, self.path)
            if not existed:
                # atomic_move gives a new file 0666 & ~umask; the documented mode wins.
                self.module.set_mode_if_different(self.path, self.module.params["mode"], False)
        finally:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)

    def run(self):
        before, before_text = self.read()
        after = merge_patch(before, self.settings)
        keys = changed_paths(before, after)
        # A file that does not exist yet is created even when the patch adds nothing,
        # so that the daemon and the next run find one.
        changed = bool(keys) or before_text is None
        secrets = set()
        shown_before, shown_after = redact(before, secrets), redact(after, secrets)
        # The settings, in the invocation Ansible returns, carry the same credentials in clear.
        self.module.no_log_values.update(secrets)
        result = {"changed": changed, "config": shown_after, "changed_keys": keys}
        if changed and self.module._diff:
            result["diff"] = {
                "before": "" if before_text is None else render(shown_before),
                "after": render(shown_after),
                "before_header": self.path,
                "after_header": self.path,
            }
        if changed and not self.module.check_mode:
            if before_text is not None and self.module.params["backup"]:
                result["backup_file"] = self.module.backup_local(self.path)
            self.write(after, existed=before_text is not None)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            settings=dict(type="dict", required=True),
            mode=dict(type="raw", default="0644"),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**DaemonConfig(module).run())


if __name__ == "__main__":
    main()

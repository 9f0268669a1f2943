# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

import shlex

from ansible.errors import AnsibleFilterError


def docker_build_command(context, tag, labels=None, dockerfile="Dockerfile"):
    """The shell command that builds ``context`` into ``tag`` with ``labels``.

    Every word is quoted for the shell (a label's value may hold spaces, parentheses or ``$``): the task adds the
    redirection of the output to a log, for ``ansible.builtin.shell`` in the background while ``await_progress``
    reads the log.
    """
    if not context or not isinstance(context, str):
        raise AnsibleFilterError("docker_build_command: the input must be the build context directory, got %r" % (context,))
    if not tag or not isinstance(tag, str):
        raise AnsibleFilterError("docker_build_command: tag must be an image reference, got %r" % (tag,))
    if labels is None:
        labels = {}
    if not isinstance(labels, dict):
        raise AnsibleFilterError("docker_build_command: labels must be a dict, not %s" % type(labels).__name__)
    context = context.rstrip("/") or "/"
    argv = ["docker", "build", "--tag", tag, "--file", "%s/%s" % (context, dockerfile)]
    for key in sorted(labels):
        value = labels[key]
        argv.append("--label=%s=%s" % (key, "" if value is None else value))
    argv.append(context)
    return " ".join(shlex.quote(str(word)) for word in argv)


class FilterModule:
    def filters(self):
        return {"docker_build_command": docker_build_command}

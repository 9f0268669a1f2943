# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module of the collection in a process of its own, as Ansible runs it.

The module's real ``exit_json``/``fail_json`` print its result, after Ansible has masked every ``no_log``
value in it (the ``invocation`` included): what a playbook, a callback or ``register`` would get. A test
can also kill that process, as a user or the OOM killer would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COLLECTIONS = str(Path(__file__).resolve().parents[3] / "collections")

MODULE_RUN = r"""
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
from ansible.module_utils.testing import patch_module_args
module = importlib.import_module("ansible_collections.gpufleet.inference.plugins.modules." + sys.argv[2])
with patch_module_args(json.loads(sys.argv[3])):
    module.main()
"""


def start_module(name, args, env=None):
    """The module ``name`` running with ``args`` (a dict), as a ``subprocess.Popen`` with text pipes."""
    return subprocess.Popen([sys.executable, "-c", MODULE_RUN, COLLECTIONS, name, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def parse_result(stdout):
    """The module's result: the last line of its output that is a JSON object."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError("the module printed no result: %r" % stdout)
    return json.loads(lines[-1])


def run_module(name, args, env=None, timeout=120):
    """Run the module ``name`` to its end: ``(result, printed text)``; the text is everything it wrote."""
    proc = start_module(name, args, env)
    out, err = proc.communicate(timeout=timeout)
    return parse_result(out), out + err

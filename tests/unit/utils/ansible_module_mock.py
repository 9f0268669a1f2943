# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's ``main()`` inside pytest.

After kubernetes.core's ``tests/unit/utils/ansible_module_mock.py``, see
https://docs.ansible.com/ansible/latest/dev_guide/testing_units_modules.html#module-argument-processing

Usage::

    @pytest.fixture
    def module_mock():
        with patch_module_exits():
            yield

    def test_x(module_mock):
        with set_module_args({"path": ...}), pytest.raises(AnsibleExitJson) as exc:
            main()
        result = exc.value.args[0]
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

try:  # ansible-core >= 2.19
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # older ansible-core: set the serialized args by hand
    patch_module_args = None


@contextlib.contextmanager
def set_module_args(args: dict[str, Any] | None) -> Iterator[None]:
    """Make ``args`` the arguments of any AnsibleModule created inside the ``with`` block."""
    args = dict(args or {})
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
    else:
        serialized = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        with mock.patch.object(basic, "_ANSIBLE_ARGS", serialized):
            yield


class AnsibleExitJson(Exception):
    """Raised by the patched ``exit_json``; ``args[0]`` is the module's result."""


class AnsibleFailJson(Exception):
    """Raised by the patched ``fail_json``; ``args[0]`` is the module's result."""


def exit_json(*args, **kwargs):
    """Stand-in for AnsibleModule.exit_json: package the result into an exception."""
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def fail_json(*args, **kwargs):
    """Stand-in for AnsibleModule.fail_json: package the result into an exception."""
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


def patch_module_exits():
    """Patch AnsibleModule.exit_json/fail_json; use as a context manager (e.g. inside a fixture)."""
    return mock.patch.multiple(basic.AnsibleModule, exit_json=exit_json, fail_json=fail_json)

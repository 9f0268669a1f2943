"""Every module test runs main(): exit_json / fail_json become exceptions the test can catch."""

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import patch_module_exits


@pytest.fixture(autouse=True)
def module_exits():
    with patch_module_exits():
        yield

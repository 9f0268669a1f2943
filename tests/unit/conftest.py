# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.gpufleet.inference`` importable from this checkout.

``collections/ansible_collections/gpufleet/inference`` is a symlink back to the
repository root, so putting ``collections/`` first on ``sys.path`` is enough.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

COLLECTIONS = str(Path(__file__).resolve().parents[2] / "collections")

if sys.path[:1] != [COLLECTIONS]:
    if COLLECTIONS in sys.path:
        sys.path.remove(COLLECTIONS)
    sys.path.insert(0, COLLECTIONS)


@pytest.fixture
def no_proxy_env(monkeypatch):
    """A proxy from the environment must not stand between an HTTP client under test and 127.0.0.1."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-doc answers for every module and every filter of the collection, with a complete page:
short description, description, options that each say what they are, examples, return values, and for
modules the attributes check_mode, diff_mode and idempotent."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
FILTER_FILES = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.py") if not p.name.startswith("_"))


def exposed_filters() -> dict[str, str]:
    """Each filter the collection's FilterModules expose (the keys of the dict filters() returns), with its file."""
    exposed = {}
    for stem in FILTER_FILES:
        tree = ast.parse((ROOT / "plugins" / "filter" / f"{stem}.py").read_text(encoding="utf-8"))
        filters = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "filters")
        returned = next(node.value for node in ast.walk(filters) if isinstance(node, ast.Return))
        for key in returned.keys:
            exposed[key.value] = stem
    assert exposed
    return exposed


def ansible_doc(plugin_type: str, names) -> dict:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", plugin_type, "--json",
                           *(f"gpufleet.inference.{name}" for name in names)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def page_problems(name: str, page: dict) -> list[str]:
    doc = page.get("doc") or {}
    problems = [f"{name}: no {key}" for key in ("short_description", "description") if not doc.get(key)]
    for option, spec in (doc.get("options") or {}).items():
        if not spec.get("description"):
            problems.append(f"{name}: option {option} has no description")
    if not (page.get("examples") or "").strip():
        problems.append(f"{name}: no EXAMPLES")
    if not page.get("return"):
        problems.append(f"{name}: no RETURN")
    for key, spec in (page.get("return") or {}).items():
        if not spec.get("description"):
            problems.append(f"{name}: return value {key} has no description")
    return problems


@pytest.fixture(scope="module")
def module_pages():
    return ansible_doc("module", MODULES)


@pytest.fixture(scope="module")
def filter_pages():
    return ansible_doc("filter", exposed_filters())


def test_every_module_has_a_complete_page(module_pages):
    assert MODULES
    assert sorted(module_pages) == [f"gpufleet.inference.{name}" for name in MODULES]
    problems = []
    for name, page in module_pages.items():
        problems += page_problems(name, page)
        attributes = page["doc"].get("attributes") or {}
        for attribute in ("check_mode", "diff_mode", "idempotent"):
            if not (attributes.get(attribute) or {}).get("support"):
                problems.append(f"{name}: attribute {attribute} missing")
    assert not problems, "\n".join(problems)


def test_every_filter_has_a_complete_page(filter_pages):
    exposed = exposed_filters()
    assert sorted(filter_pages) == sorted(f"gpufleet.inference.{name}" for name in exposed)
    problems = []
    for name, page in filter_pages.items():
        problems += page_problems(name, page)
    assert not problems, "\n".join(problems)


def test_every_filter_shows_its_own_page(filter_pages):
    """ansible-doc reads plugins/filter/<name>.yml only when the Python file that exposes the filter has no
    DOCUMENTATION; otherwise every filter of that file shows the Python file's page, whatever its own file says."""
    wrong = {name: page["doc"]["name"] for name, page in filter_pages.items()
             if f"gpufleet.inference.{page['doc']['name']}" != name}
    assert not wrong, wrong
    for doc_file in (ROOT / "plugins" / "filter").glob("*.yml"):
        assert doc_file.stem in exposed_filters(), f"{doc_file.name} documents a filter no FilterModule exposes"

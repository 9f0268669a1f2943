# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/platforms/*.md: each page's inventory (its first two YAML blocks: hosts.yml, then the group's variables)
passes the inventory check and renders on the controller, and every variable a page names in a code span exists
in the collection (roles, playbooks, plugins, inventories)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PAGES = sorted((ROOT / "docs" / "platforms").glob("*.md"))
PAGE_IDS = [p.stem for p in PAGES]
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
PREFIXES = ("gpufleet_", "preflight_", "nvidia_driver_", "nvidia_container_toolkit_", "rocm_", "docker_engine_",
            "llamacpp_image_", "vllm_image_", "models_", "inference_stack_", "verify_")
VARIABLE = re.compile(r"\b(?:" + "|".join(PREFIXES) + r")[a-z0-9_]+\b")


def ansible_playbook(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)


def test_there_is_a_page_per_platform():
    assert PAGE_IDS == ["cpu", "dgx-spark", "nvidia", "strix-halo"]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_the_page_inventory_passes_the_check_and_renders(page, tmp_path):
    hosts, group_vars = YAML_BLOCK.findall(page.read_text(encoding="utf-8"))[:2]
    groups = list(yaml.safe_load(hosts)["all"]["children"])
    assert len(groups) == 1, "the page's hosts.yml has one group"
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(hosts, encoding="utf-8")
    (inventory / "group_vars" / f"{groups[0]}.yml").write_text(group_vars, encoding="utf-8")
    platform = yaml.safe_load(group_vars)["gpufleet_platform"]
    assert platform == {"dgx-spark": "dgx_spark", "strix-halo": "strix_halo"}.get(page.stem, page.stem)

    proc = ansible_playbook("-i", str(inventory), "playbooks/render.yml", "-e", f"gpufleet_render_dir={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed=0" in proc.stdout
    host = next(iter(yaml.safe_load(hosts)["all"]["children"][groups[0]]["hosts"]))
    assert (tmp_path / "r" / host / "compose.yaml").is_file()


def _corpus() -> str:
    files = [*ROOT.glob("roles/**/*.yml"), *ROOT.glob("playbooks/**/*.yml"), *ROOT.glob("plugins/**/*.py"),
             *ROOT.glob("plugins/**/*.yml"), *ROOT.glob("inventory/**/*.yml")]
    return "\n".join(p.read_text(encoding="utf-8") for p in files)


@pytest.mark.parametrize("page", [*PAGES, ROOT / "docs" / "troubleshooting.md"], ids=[*PAGE_IDS, "troubleshooting"])
def test_every_variable_named_exists(page):
    corpus = _corpus()
    named = set(VARIABLE.findall(page.read_text(encoding="utf-8")))
    missing = sorted(name for name in named if not re.search(rf"\b{name}\b", corpus))
    assert not missing, f"{page.name} names variables the collection does not have: {missing}"

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/changelog.sh: CHANGELOG.rst is what the fragments give for galaxy.yml's version, the fragments
stay in the repository, and `make docs-lint` fails when a fragment is added without writing it again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def changelog(root: Path, *args):
    env = dict(os.environ, GPUFLEET_ROOT=str(root), VENV=str(ROOT / ".venv"))
    return subprocess.run([str(root / "scripts" / "changelog.sh"), *args], cwd=root, env=env,
                          capture_output=True, text=True, check=False)


@pytest.fixture
def tree(tmp_path):
    """What the changelog reads, in a git checkout of its own."""
    for name in ("galaxy.yml", "CHANGELOG.rst"):
        shutil.copy(ROOT / name, tmp_path)
    for name in ("changelogs", "meta", "plugins", "roles"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".plugin-cache.yaml"))
    (tmp_path / "scripts").mkdir()
    for name in ("changelog.sh", "lib.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts")
    subprocess.run(["git", "init", "-q", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    return tmp_path


def test_changelog_is_current_and_lists_every_fragment():
    proc = changelog(ROOT, "--check")
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / "CHANGELOG.rst").read_text(encoding="utf-8")
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    assert f"\nv{version}\n" in text
    # Every module is listed as new in the release (none is dropped for a version_added later than it).
    for module in sorted((ROOT / "plugins" / "modules").glob("[!_]*.py")):
        assert f"- gpufleet.inference.{module.stem} - " in text, module.stem


def test_a_new_fragment_makes_the_changelog_stale_and_stays_after_it_is_written(tree):
    fragment = tree / "changelogs" / "fragments" / "99-new.yml"
    fragment.write_text("---\nbugfixes:\n  - verify - a newly recorded fix.\n", encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=tree, check=True)

    proc = changelog(tree, "--check")
    assert proc.returncode == 1
    assert "CHANGELOG.rst is stale" in proc.stderr
    assert "+- verify - a newly recorded fix." in proc.stderr

    proc = changelog(tree)
    assert proc.returncode == 0, proc.stderr
    assert "- verify - a newly recorded fix." in (tree / "CHANGELOG.rst").read_text(encoding="utf-8")
    # The release ran on a copy: the fragment and the changelog's record are as they were.
    assert fragment.exists()
    assert (tree / "changelogs" / "changelog.yaml").read_text(encoding="utf-8") == \
        (ROOT / "changelogs" / "changelog.yaml").read_text(encoding="utf-8")
    assert changelog(tree, "--check").returncode == 0

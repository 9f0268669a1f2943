# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/role-docs.py: each role's README shows the variables its argument specs declare, and
`make docs-lint` fails when a spec changed and the README was not written again."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "role-docs.py"


def role_docs(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, check=False)


def copy_role(tmp_path: Path, role: str) -> Path:
    """A collection tree holding one role's spec and README, as the repository has them."""
    target = tmp_path / "roles" / role
    (target / "meta").mkdir(parents=True)
    shutil.copy(ROOT / "roles" / role / "meta" / "argument_specs.yml", target / "meta")
    shutil.copy(ROOT / "roles" / role / "README.md", target)
    return target


def test_every_role_has_a_current_readme():
    roles = sorted(p.parents[1].name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
    assert roles and all((ROOT / "roles" / role / "README.md").exists() for role in roles)
    proc = role_docs("--check")
    assert proc.returncode == 0, proc.stderr


def test_a_readme_lists_every_variable_of_every_entry_point():
    for spec_file in ROOT.glob("roles/*/meta/argument_specs.yml"):
        specs = yaml.safe_load(spec_file.read_text(encoding="utf-8"))["argument_specs"]
        readme = (spec_file.parents[1] / "README.md").read_text(encoding="utf-8")
        for entry, spec in specs.items():
            assert f"### Entry point `{entry}`" in readme, (spec_file, entry)
            for name in (spec or {}).get("options") or {}:
                assert re.search(rf"^\| `{name}` \|", readme, re.M), (spec_file, entry, name)
        # Ansible's markup is turned into Markdown: no C(...) left for a reader to decode.
        assert not re.search(r"\b[CVOI]\([^)]*\)", readme), spec_file


def test_a_changed_spec_makes_the_readme_stale_until_it_is_written_again(tmp_path):
    role = copy_role(tmp_path, "docker_engine")
    readme = role / "README.md"
    before = readme.read_text(encoding="utf-8")
    spec_file = role / "meta" / "argument_specs.yml"
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    spec["argument_specs"]["main"]["options"]["docker_engine_log_max_size"]["default"] = "250m"
    spec["argument_specs"]["main"]["options"]["docker_engine_new_option"] = {
        "type": "str", "default": "{{ gpufleet_thing | default('a') }}", "description": "A new C(option)."}
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    proc = role_docs("--check", "--root", str(tmp_path))
    assert proc.returncode == 1
    assert "roles/docker_engine/README.md" in proc.stderr
    assert readme.read_text(encoding="utf-8") == before, "--check wrote the README"

    proc = role_docs("--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    after = readme.read_text(encoding="utf-8")
    assert "| `docker_engine_log_max_size` | str | `250m` |" in after
    # A templated default is shown as written, its pipe escaped for the table.
    assert "| `docker_engine_new_option` | str | `{{ gpufleet_thing \\| default('a') }}` | no |  | A new `option`. |" in after
    # The hand-written part (intro, example, links) is kept as it was.
    hand = before[:before.index("<!-- END hand-written -->")]
    assert after.startswith(hand)
    assert role_docs("--check", "--root", str(tmp_path)).returncode == 0


def test_a_readme_without_its_markers_is_refused_not_overwritten(tmp_path):
    role = copy_role(tmp_path, "apt_source")
    (role / "README.md").write_text("# apt_source\n\nWritten by hand.\n", encoding="utf-8")
    proc = role_docs("--root", str(tmp_path))
    assert proc.returncode == 1
    assert "roles/apt_source/README.md: no hand-written part" in proc.stderr
    assert (role / "README.md").read_text(encoding="utf-8") == "# apt_source\n\nWritten by hand.\n"


def test_a_new_role_gets_a_readme_with_an_example_naming_its_required_variables(tmp_path):
    role = copy_role(tmp_path, "apt_source")
    (role / "README.md").unlink()
    proc = role_docs("--check", "--root", str(tmp_path))
    assert proc.returncode == 1 and "roles/apt_source/README.md" in proc.stderr
    assert role_docs("--root", str(tmp_path)).returncode == 0
    text = (role / "README.md").read_text(encoding="utf-8")
    example = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert example[0]["roles"][0]["role"] == "gpufleet.inference.apt_source"
    assert set(example[0]["roles"][0]["vars"]) == {
        "apt_source_name", "apt_source_key_url", "apt_source_key_fingerprint", "apt_source_uris", "apt_source_suites"}

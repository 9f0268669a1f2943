# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet_report's main() on a directory of verify reports (tests/unit/fixtures/fleet): the three files, a missing
and a broken report, check mode, no chart without matplotlib, and a change only when the fleet changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _fleet_report as fleet
from ansible_collections.gpufleet.inference.plugins.modules import fleet_report
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fleet"
BASELINES = [{"platform": "dgx_spark", "model": "gpt-oss-20b", "metric": "tg", "test": "tg32", "value": 84.1,
              "engine": "llama.cpp", "source": "https://example.org/bench"}]


@pytest.fixture
def reports_dir(tmp_path):
    for path in FIXTURES.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def run(reports_dir, check_mode=False, **args):
    module_args = dict({"reports_dir": str(reports_dir), "hosts": ["spark-1", "strix-1", "cpu-1", "broken-1", "new-1"],
                        "platforms": {"cpu-1": "cpu"}, "baselines": BASELINES}, **args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    with set_module_args(module_args), pytest.raises((AnsibleExitJson, AnsibleFailJson)) as caught:
        fleet_report.main()
    assert isinstance(caught.value, AnsibleExitJson), caught.value.args[0]
    return caught.value.args[0]


@pytest.mark.skipif(not fleet.HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_writes_markdown_html_and_chart_beside_the_reports(reports_dir):
    result = run(reports_dir)
    assert result["changed"] and result["chart"]
    assert result["files"] == [str(reports_dir / name) for name in ("fleet.md", "fleet.html", "fleet-tokens.png")]
    assert result["hosts"] == ["spark-1", "strix-1", "cpu-1"]
    assert [entry["host"] for entry in result["missing"]] == ["broken-1", "new-1"]
    assert "cannot be read" in result["missing"][0]["reason"]
    assert "no report yet at %s" % (reports_dir / "new-1.json") in result["missing"][1]["reason"]
    markdown = (reports_dir / "fleet.md").read_text()
    assert "![Served tokens/s per host and model, beside the published figure](fleet-tokens.png)" in markdown
    assert "| gptoss | llamacpp | gpt-oss-20b | http://10.0.0.11:8080/v1 | ok | 61.3 | 78.4 | 84.1 (tg32) |" in markdown
    assert "| cpu-1 | cpu | unknown | gemma-3-270m |" in markdown
    assert 'src="data:image/png;base64,iVBORw0KGgo' in (reports_dir / "fleet.html").read_text()
    assert (reports_dir / "fleet-tokens.png").read_bytes().startswith(b"\x89PNG")
    # The hosts' reports are read, never written.
    assert json.loads((reports_dir / "spark-1.json").read_text())["host"] == "spark-1"


@pytest.mark.skipif(not fleet.HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_a_second_run_rewrites_the_files_but_changes_only_when_the_fleet_changed(reports_dir):
    assert run(reports_dir)["changed"]
    assert not run(reports_dir)["changed"]
    report = json.loads((reports_dir / "strix-1.json").read_text())
    report["services"][0]["tokens_per_second"] = 40.0
    (reports_dir / "strix-1.json").write_text(json.dumps(report))
    assert not run(reports_dir)["changed"]
    assert "| 40.0 |" in (reports_dir / "fleet.md").read_text()
    report["services"][0]["health"]["status"] = 503
    (reports_dir / "strix-1.json").write_text(json.dumps(report))
    assert run(reports_dir)["changed"]
    assert "failed (503)" in (reports_dir / "fleet.md").read_text()
    (reports_dir / "fleet-tokens.png").unlink()
    assert run(reports_dir)["changed"]


def test_check_mode_writes_nothing(reports_dir):
    result = run(reports_dir, check_mode=True)
    assert result["changed"]
    assert not (reports_dir / "fleet.md").exists() and not (reports_dir / "fleet.html").exists()


def test_without_matplotlib_the_pages_are_written_without_the_chart(reports_dir, monkeypatch):
    monkeypatch.setattr(fleet, "HAS_MATPLOTLIB", False)
    warnings = []
    monkeypatch.setattr(fleet_report.AnsibleModule, "warn", lambda module, message: warnings.append(message))
    result = run(reports_dir, dest=str(reports_dir / "out"), name="spark")
    assert not result["chart"]
    assert result["files"] == [str(reports_dir / "out" / "spark.md"), str(reports_dir / "out" / "spark.html")]
    assert len(warnings) == 1 and "spark-tokens.png: the chart is not drawn" in warnings[0]
    assert "matplotlib" in warnings[0]
    assert "tokens.png" not in (reports_dir / "out" / "spark.md").read_text()
    assert "<img" not in (reports_dir / "out" / "spark.html").read_text()


def test_a_run_with_no_report_at_all_still_writes_the_pages(tmp_path):
    result = run(tmp_path, hosts=["new-1"], chart=False)
    assert result["hosts"] == [] and [entry["host"] for entry in result["missing"]] == ["new-1"]
    markdown = (tmp_path / "fleet.md").read_text()
    assert "for 1 host, 1 of them without a report." in markdown and "- new-1: no report yet" in markdown

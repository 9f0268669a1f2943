# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report's data and pages from a sample fleet (tests/unit/fixtures/fleet: a DGX Spark serving gpt-oss-20b,
a Strix Halo, a CPU host whose report predates the report's platform and time fields, and a broken report), with
the published figures the verify role ships."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.gpufleet.inference.plugins.module_utils import _fleet_report as fleet

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "fleet"
BASELINES = yaml.safe_load((ROOT / "roles" / "verify" / "files" / "fleet_baselines.yml").read_text())
HOSTS = ["spark-1", "strix-1", "cpu-1", "new-1"]
# 2026-12-01 03:40:12 UTC: ten minutes after spark-1's report.
NOW = 1796096412.0
CPU_MTIME = NOW - 3 * 86400


def reports():
    entries = [{"host": name, "report": json.loads((FIXTURES / ("%s.json" % name)).read_text()), "mtime": NOW - 60}
               for name in ("spark-1", "strix-1")]
    entries.append({"host": "cpu-1", "report": json.loads((FIXTURES / "cpu-1.json").read_text()), "mtime": CPU_MTIME})
    return entries


@pytest.fixture
def data():
    return fleet.fleet_data(reports(), HOSTS, BASELINES, now=NOW, platforms={"cpu-1": "cpu"})


def test_the_shipped_baselines_are_the_llamacpp_dgx_spark_figures_with_their_source():
    figures = {(entry["model"], entry["test"]): entry["value"] for entry in BASELINES}
    assert figures == {("gpt-oss-20b", "tg32"): 84.10, ("gpt-oss-20b", "pp2048"): 3782.76,
                       ("gpt-oss-120b", "tg32"): 59.02, ("gpt-oss-120b", "pp2048"): 1937.54}
    for entry in BASELINES:
        assert entry["platform"] == "dgx_spark" and entry["gpu"] == "NVIDIA GB10" and entry["quant"] == "MXFP4"
        assert entry["source"].startswith("https://github.com/ggml-org/llama.cpp/blob/")
        assert entry["source"].endswith("/benches/dgx-spark.md")
        assert entry["metric"] in ("tg", "pp") and entry["date"] == "2025-11-02"


def test_hosts_in_order_with_platform_gpu_and_the_age_of_their_report(data):
    assert [view["host"] for view in data["hosts"]] == ["spark-1", "strix-1", "cpu-1"]
    spark, strix, cpu = data["hosts"]
    assert (spark["platform"], spark["gpu"]) == ("dgx_spark", "NVIDIA GB10")
    assert (strix["platform"], strix["gpu"]) == ("strix_halo", "AMD Radeon 8060S")
    # The report's own time, not the file's.
    assert spark["written_at"] == "2026-12-01 03:30:12 UTC" and spark["age"] == "10 min"
    # A report from before: the inventory's platform, the file's time.
    assert (cpu["platform"], cpu["gpu"], cpu["age"]) == ("cpu", "unknown", "3 d 0 h")


def test_per_service_figures_and_image_digests(data):
    row = data["hosts"][0]["services"][0]
    assert row["service"] == "gptoss" and row["engine"] == "llamacpp" and row["model"] == "gpt-oss-20b"
    assert row["endpoint"] == "http://10.0.0.11:8080/v1" and row["health"] == "ok"
    assert (row["ttft_ms"], row["tokens_per_second"]) == (61.3, 78.4)
    assert data["hosts"][2]["images"] == [{
        "service": "gemma", "ref": "gpufleet/llama.cpp:cpu-6214d8db7000", "base_digest": None,
        "digest": "sha256:4bd40f505f14e2d575d2052c76fe6a294fc0a3798010d3d576aa7ca8829006b2"}]


def test_the_published_figure_goes_beside_the_same_platform_and_model_only(data):
    keys = ("host", "model", "measured", "baseline", "baseline_label")
    assert [{key: group[key] for key in keys} for group in data["bars"]] == [
        {"host": "spark-1", "model": "gpt-oss-20b", "measured": 78.4, "baseline": 84.10,
         "baseline_label": "llama.cpp tg32, 2025-11-02"},
        {"host": "strix-1", "model": "qwen3-30b-a3b", "measured": 52.7, "baseline": None, "baseline_label": None},
        {"host": "cpu-1", "model": "gemma-3-270m", "measured": 18.23, "baseline": None, "baseline_label": None},
    ]
    # Both of gpt-oss-20b's published figures (generation, prompt processing) are listed; none of gpt-oss-120b's.
    assert [(entry["model"], entry["test"]) for entry in data["baselines"]] == [
        ("gpt-oss-20b", "tg32"), ("gpt-oss-20b", "pp2048")]


@pytest.mark.parametrize("name", ["gpt-oss-120b", "ggml-org/gpt-oss-120b-GGUF", "openai/gpt-oss-120b",
                                  "GPT-OSS-120B.gguf"])
def test_a_model_matches_its_published_figure_by_any_of_its_names(name):
    assert [entry["value"] for entry in fleet.match_baselines(BASELINES, "dgx_spark", name, "tg")] == [59.02]


@pytest.mark.parametrize("platform, name", [("strix_halo", "gpt-oss-20b"), (None, "gpt-oss-20b"),
                                            ("dgx_spark", "gpt-oss-20b-q8"), ("dgx_spark", "")])
def test_no_published_figure_for_another_platform_or_model(platform, name):
    assert fleet.match_baselines(BASELINES, platform, name) == []


def test_hosts_without_a_report_are_listed_with_the_reason(data):
    assert data["missing"] == [{"host": "new-1", "reason": "no report yet (verify has not passed on this host)"}]
    broken = fleet.fleet_data([{"host": "b", "report": None, "error": "report b.json cannot be read: bad"}], ["b"])
    assert broken["missing"] == [{"host": "b", "reason": "report b.json cannot be read: bad"}]
    assert broken["hosts"] == [] and broken["bars"] == []


def test_lanes_give_one_row_and_one_bar_each():
    report = json.loads((FIXTURES / "spark-1.json").read_text())
    service = report["services"][0]
    service["model"] = ["gpt-oss-120b", "gpt-oss-20b"]
    service["lanes"] = [
        {"name": "gpt-oss-120b", "health": {"status": 200}, "ttft_ms": 120.0, "tokens_per_second": 55.1},
        {"name": "gpt-oss-20b", "health": {"status": 503}, "ttft_ms": None, "tokens_per_second": None},
    ]
    data = fleet.fleet_data([{"host": "spark-1", "report": report}], ["spark-1"], BASELINES, now=NOW)
    rows = data["hosts"][0]["services"]
    assert [(row["model"], row["health"], row["tokens_per_second"]) for row in rows] == [
        ("gpt-oss-120b", "ok", 55.1), ("gpt-oss-20b", "failed (503)", None)]
    assert [(group["measured"], group["baseline"]) for group in data["bars"]] == [(55.1, 59.02), (None, 84.10)]
    assert data["hosts"][0]["healthy"] == 1


def test_markdown_names_every_host_and_its_figures(data):
    text = fleet.render_markdown(data, "fleet-tokens.png")
    assert "Written 2026-12-01 03:40:12 UTC for 4 hosts, 1 of them without a report." in text
    assert "![Served tokens/s per host and model, beside the published figure](fleet-tokens.png)" in text
    assert "| spark-1 | dgx_spark | NVIDIA GB10 | gpt-oss-20b | 1/1 | 2026-12-01 03:30:12 UTC | 10 min |" in text
    assert ("| gptoss | llamacpp | gpt-oss-20b | http://10.0.0.11:8080/v1 | ok | 61.3 | 78.4 | 84.1 (tg32) |"
            in text)
    assert "| qwen | llamacpp | qwen3-30b-a3b | http://10.0.0.12:8080/v1 | ok | 142.0 | 52.7 | - |" in text
    assert "- gemma: `gpufleet/llama.cpp:cpu-6214d8db7000` `sha256:4bd40f505f14e2d5" in text
    assert "## Hosts without a report" in text and "- new-1: no report yet" in text
    assert "| new-1 | - | - | - | - | no report | - |" in text
    assert "| dgx_spark | NVIDIA GB10 | llama.cpp | gpt-oss-20b | MXFP4 | tg32 | 84.10 | 2025-11-02 | https://" in text
    assert fleet.render_markdown(data).count("fleet-tokens.png") == 0


def test_html_is_one_page_with_the_tables_and_the_chart_inside(data):
    page = fleet.render_html(data, "iVBORw0KGgo=")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<link" not in page
    assert '<img alt="Served tokens/s per host and model, beside the published figure" ' \
           'src="data:image/png;base64,iVBORw0KGgo=">' in page
    assert "<th>time to first token (ms)</th>" in page
    assert '<td>gptoss</td><td>llamacpp</td><td>gpt-oss-20b</td><td>http://10.0.0.11:8080/v1</td>' \
           '<td class="ok">ok</td><td class="num">61.3</td><td class="num">78.4</td>' \
           '<td class="num">84.1 (tg32)</td>' in page
    assert '<td class="bad">no report</td>' in page
    assert '<a href="https://github.com/ggml-org/llama.cpp/blob/' in page


def test_html_escapes_what_the_reports_say():
    report = json.loads((FIXTURES / "spark-1.json").read_text())
    report["services"][0]["model"] = "<script>alert(1)</script>"
    page = fleet.render_html(fleet.fleet_data([{"host": "spark-1", "report": report}], ["spark-1"], now=NOW))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_digest_moves_with_what_the_report_says_not_with_measurements(data):
    later = copy.deepcopy(reports())
    later[0]["report"]["services"][0]["tokens_per_second"] = 70.0
    later[0]["report"]["generated_at"] = "2026-12-01T03:39:00Z"
    same = fleet.fleet_data(later, HOSTS, BASELINES, now=NOW + 3600, platforms={"cpu-1": "cpu"})
    assert same["digest"] == data["digest"]
    later[0]["report"]["services"][0]["health"]["status"] = 503
    unhealthy = fleet.fleet_data(later, HOSTS, BASELINES, now=NOW, platforms={"cpu-1": "cpu"})
    assert unhealthy["digest"] != data["digest"]
    assert fleet.fleet_data(reports(), HOSTS[:3], BASELINES, now=NOW,
                            platforms={"cpu-1": "cpu"})["digest"] != data["digest"]
    assert re.fullmatch("[0-9a-f]{64}", data["digest"])


@pytest.mark.parametrize("seconds, text", [(None, "unknown"), (-5, "0 s"), (42, "42 s"), (300, "5 min"),
                                           (11400, "3 h 10 min"), (187200, "2 d 4 h")])
def test_age_text(seconds, text):
    assert fleet.age_text(seconds) == text


@pytest.mark.skipif(not fleet.HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_the_chart_is_a_png_drawn_from_the_bars(data):
    png = fleet.chart_png(data)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 700 and height >= 500
    assert fleet.chart_png(fleet.fleet_data([], ["new-1"])) is None


def benched_spark():
    """spark-1's report with the bench section playbooks/bench.yml writes: llama-bench tg32, pp512 and pp2048 on
    gpt-oss-20b, and a load test of 8 clients."""
    report = json.loads((FIXTURES / "spark-1.json").read_text())
    tests = [{"test": "tg32", "metric": "tg", "tokens_per_second": 80.52, "stddev": 0.31},
             {"test": "pp512", "metric": "pp", "tokens_per_second": 3305.1, "stddev": 12.0},
             {"test": "pp2048", "metric": "pp", "tokens_per_second": 3650.44, "stddev": 9.5}]
    report["bench"] = {"measured_at": "2026-12-01T03:35:12Z", "services": [{
        "name": "gptoss", "engine": "llamacpp", "model": "gpt-oss-20b", "skipped": None,
        "llama_bench": {"backends": "CUDA", "build_commit": "0c1e57098", "tests": tests}, "vllm_bench": None,
        "load": {"clients": 8, "requests": 32, "completed": 32, "errors": 0, "aggregate_tokens_per_second": 301.4,
                 "ttft_ms": {"p50": 180.2, "p95": 402.7}, "warmup_requests": 1, "warmup_s": 49.8}}]}
    return fleet.fleet_data([{"host": "spark-1", "report": report}], ["spark-1"], BASELINES, now=NOW)


def test_bench_figures_go_beside_the_published_figure_of_the_same_test():
    data = benched_spark()
    bench = data["hosts"][0]["bench"]
    assert (bench["measured_at"], bench["age"]) == ("2026-12-01 03:35:12 UTC", "5 min")
    published = [(row["test"], row["tokens_per_second"], row["baseline"]["test"]) for row in bench["llama_bench"]]
    # pp512 has no published figure of its own: the platform's pp figure stands beside it, named by its test.
    assert published == [("tg32", 80.52, "tg32"), ("pp512", 3305.1, "pp2048"), ("pp2048", 3650.44, "pp2048")]
    [group] = data["bars"]
    assert (group["measured"], group["bench_tg"], group["bench_tg_test"], group["baseline"]) == (78.4, 80.52, "tg32", 84.10)
    # The chart's prompt processing group is the test the source published (pp2048), not the first one.
    assert (group["bench_pp"], group["bench_pp_test"], group["baseline_pp"]) == (3650.44, "pp2048", 3782.76)
    assert (group["load_tps"], group["load_clients"]) == (301.4, 8)
    # Measurements do not move the digest: bench leaves the report unchanged in substance.
    plain = fleet.fleet_data([{"host": "spark-1", "report": json.loads((FIXTURES / "spark-1.json").read_text())}],
                             ["spark-1"], BASELINES, now=NOW)
    assert plain["digest"] == data["digest"] and plain["hosts"][0]["bench"] is None


def test_both_pages_show_the_bench_tables():
    data = benched_spark()
    text = fleet.render_markdown(data, "fleet-tokens.png")
    assert "Benchmarks (playbooks/bench.yml) measured 2026-12-01 03:35:12 UTC (5 min ago)." in text
    assert "| gptoss | gpt-oss-20b | tg32 | 80.52 | 0.31 | CUDA | 84.1 (tg32) |" in text
    assert "| gptoss | gpt-oss-20b | pp512 | 3305.10 | 12.00 | CUDA | 3782.8 (pp2048) |" in text
    # The warm-up (on a service with lanes, the switch to the lane) is shown beside the figures it stays out of.
    assert "| gptoss | gpt-oss-20b | 8 | 32 | 0 | 301.4 | 180.2 | 402.7 | 1, 49.8 |" in text
    page = fleet.render_html(data)
    assert "<h3>llama-bench</h3>" in page and "<h3>Load test (clients at once, streamed chat completions)</h3>" in page
    assert '<td class="num">301.4</td><td class="num">180.2</td><td class="num">402.7</td><td class="num">1, 49.8</td>' in page


def test_a_host_benchmarked_before_verify_wrote_its_report_still_gets_bars():
    report = {"host": "new-1", "services": [], "bench": {"measured_at": "2026-12-01T03:35:12Z", "services": [
        {"name": "chat", "model": "gemma-3-270m", "skipped": None, "vllm_bench": None, "load": None,
         "llama_bench": {"tests": [{"test": "tg16", "metric": "tg", "tokens_per_second": 75.2}]}}]}}
    data = fleet.fleet_data([{"host": "new-1", "report": report}], ["new-1"], BASELINES, now=NOW)
    assert [(group["model"], group["measured"], group["bench_tg"]) for group in data["bars"]] == [("gemma-3-270m", None, 75.2)]


@pytest.mark.skipif(not fleet.HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_with_bench_figures_the_chart_has_a_prompt_processing_panel_too(data):
    height = int.from_bytes(fleet.chart_png(data)[20:24], "big")
    benched = fleet.chart_png(benched_spark())
    assert int.from_bytes(benched[20:24], "big") > 1.8 * height

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet report: what the verify reports of every host say, side by side, with the published figures.

Library-free except for the chart (matplotlib, optional): ``fleet_data`` turns the host reports into the report's
data, ``render_markdown`` and ``render_html`` write it out, ``chart_png`` draws tokens/s per host and model beside the
published figure for the same platform and model.
"""

from __future__ import annotations

import datetime
import hashlib
import html
import io
import json
import re

try:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None
except ImportError as exc:  # the report is written without its chart
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR = exc


# The published figure a served tokens/s compares with: single-stream generation (llama-bench's tg test).
CHART_METRIC = "tg"


def model_key(name):
    """A model's name as baselines and served names meet: no organisation, no GGUF suffix, lower case
    (``ggml-org/gpt-oss-20b-GGUF``, ``openai/gpt-oss-20b`` and ``gpt-oss-20b`` are one model)."""
    name = str(name or "").strip().lower().rsplit("/", 1)[-1]
    return re.sub(r"([-_.]gguf)$", "", name)


def _utc(stamp):
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)


def _iso(stamp):
    return _utc(stamp).strftime("%Y-%m-%d %H:%M:%S UTC") if stamp is not None else None


def _parse_time(value):
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def age_text(seconds):
    """``42 s``, ``5 min``, ``3 h 10 min``, ``2 d 4 h``."""
    if seconds is None:
        return "unknown"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds < 86400:
        return "%d h %d min" % (seconds // 3600, seconds % 3600 // 60)
    return "%d d %d h" % (seconds // 86400, seconds % 86400 // 3600)


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _health(service):
    health = service.get("health")
    status = health.get("status") if isinstance(health, dict) else health
    if status == 200:
        return "ok"
    return "failed (%s)" % status if status is not None else "unknown"


def _images(service):
    image = service.get("image") if isinstance(service.get("image"), dict) else {}
    return {
        "ref": image.get("ref"),
        # A built llama.cpp image has its id (the digest of its configuration); a pulled vLLM image its repo digest.
        "digest": image.get("digest") or image.get("id"),
        "base_digest": image.get("base_digest"),
    }


def match_baselines(baselines, platform, model, metric=None):
    """The published figures for this platform and model (and metric), in the data file's order."""
    key = model_key(model)
    found = []
    for baseline in baselines or []:
        if not isinstance(baseline, dict) or platform is None or baseline.get("platform") != platform:
            continue
        names = [baseline.get("model")] + list(baseline.get("aliases") or [])
        if key and key in {model_key(name) for name in names}:
            if metric is None or baseline.get("metric") == metric:
                found.append(baseline)
    return found


def _rows(service, platform, baselines):
    """One row per model the service serves: the service itself, or each of its lanes."""
    base = {
        "service": service.get("name"),
        "engine": service.get("engine") or "llamacpp",
        "endpoint": service.get("base_url"),
        "backend": service.get("backend"),
    }
    lanes = [lane for lane in service.get("lanes") or [] if isinstance(lane, dict)]
    if lanes:
        entries = [(lane.get("name") or lane.get("model"), lane.get("health"), lane.get("ttft_ms"),
                    lane.get("tokens_per_second")) for lane in lanes]
    else:
        model = service.get("model")
        if isinstance(model, list):
            model = ", ".join(str(name) for name in model)
        entries = [(model or ", ".join(service.get("models") or []), service.get("health"), service.get("ttft_ms"),
                    service.get("tokens_per_second"))]
    rows = []
    for model, health, ttft, tps in entries:
        published = match_baselines(baselines, platform, model, CHART_METRIC)
        rows.append(dict(base, model=model, health=_health({"health": health}), ttft_ms=_number(ttft),
                         tokens_per_second=_number(tps),
                         baseline=published[0] if published else None))
    return rows


def fleet_data(reports, hosts, baselines=None, now=None, platforms=None):
    """The report's data.

    ``reports``: one entry per host report read, ``{"host", "report" (the parsed JSON, or None), "mtime",
    "error"}``. ``hosts``: every host of the run, in order; one without a report is listed as missing.
    ``platforms``: the inventory's platform of each host, for reports written before they named it.
    """
    now = now if now is not None else datetime.datetime.now(tz=datetime.timezone.utc).timestamp()
    platforms = platforms or {}
    by_host = {entry.get("host"): entry for entry in reports or [] if isinstance(entry, dict)}
    data = {"generated_at": _iso(now), "hosts": [], "missing": [], "bars": [], "baselines": []}
    for host in hosts or []:
        entry = by_host.get(host) or {}
        report = entry.get("report")
        if not isinstance(report, dict):
            data["missing"].append({"host": host, "reason": entry.get("error") or "no report yet (verify has not "
                                    "passed on this host)"})
            continue
        written = _parse_time(report.get("generated_at")) or entry.get("mtime")
        platform = report.get("platform") or platforms.get(host)
        gpu = report.get("gpu") if isinstance(report.get("gpu"), dict) else {}
        services = [service for service in report.get("services") or [] if isinstance(service, dict)]
        rows = [row for service in services for row in _rows(service, platform, baselines)]
        view = {
            "host": host,
            "platform": platform or "unknown",
            "gpu": ", ".join(gpu.get("names") or []) or gpu.get("vendor") or "unknown",
            "written_at": _iso(written),
            "age": age_text(now - written if written is not None else None),
            "age_seconds": int(now - written) if written is not None else None,
            "services": rows,
            "images": [dict(_images(service), service=service.get("name")) for service in services],
            "healthy": sum(1 for row in rows if row["health"] == "ok"),
        }
        view["bench"] = bench_view(report.get("bench"), platform, baselines, now)
        data["hosts"].append(view)
        data["bars"].extend(_bars(view, baselines))
    # Every published figure for a platform and model of the fleet (generation and prompt processing).
    for view in data["hosts"]:
        models = [row["model"] for row in view["services"]]
        models += [row["model"] for row in (view["bench"] or {}).get("services", [])]
        for model in models:
            for baseline in match_baselines(baselines, view["platform"], model):
                if baseline not in data["baselines"]:
                    data["baselines"].append(baseline)
    data["digest"] = substance_digest(data)
    return data


def _published_for(baselines, platform, model, metric, test=None):
    """The published figure for this platform, model and metric; the one of the same test when there is one."""
    found = match_baselines(baselines, platform, model, metric)
    same = [baseline for baseline in found if test is not None and baseline.get("test") == test]
    return (same or found or [None])[0]


def _dict(value):
    return value if isinstance(value, dict) else {}


def bench_view(bench, platform, baselines, now):
    """The report's view of a host report's ``bench`` section (playbooks/bench.yml): per service the llama-bench
    tests with the published figure of the same metric (of the same test when there is one), vllm bench serve's
    figures and the load test's; ``None`` when bench has not run on the host."""
    if not isinstance(bench, dict):
        return None
    measured = _parse_time(bench.get("measured_at"))
    view = {"measured_at": _iso(measured), "age": age_text(now - measured if measured is not None else None),
            "services": [], "llama_bench": [], "vllm_bench": [], "load": []}
    for service in bench.get("services") or []:
        if not isinstance(service, dict):
            continue
        name, model = service.get("name"), service.get("model") or service.get("name")
        view["services"].append({"service": name, "model": model, "skipped": service.get("skipped")})
        llama = _dict(service.get("llama_bench"))
        for test in llama.get("tests") or []:
            if not isinstance(test, dict):
                continue
            published = _published_for(baselines, platform, model, test.get("metric"), test.get("test"))
            view["llama_bench"].append({
                "service": name, "model": model, "test": test.get("test"), "metric": test.get("metric"),
                "tokens_per_second": _number(test.get("tokens_per_second")), "stddev": _number(test.get("stddev")),
                "backends": llama.get("backends"), "build": llama.get("build_commit"), "baseline": published})
        vllm = _dict(service.get("vllm_bench"))
        if vllm:
            view["vllm_bench"].append(dict({key: _number(vllm.get(key)) for key in (
                "max_concurrency", "completed", "failed", "output_throughput", "total_token_throughput",
                "median_ttft_ms", "p95_ttft_ms", "median_tpot_ms")}, service=name, model=model))
        load = _dict(service.get("load"))
        if load:
            ttft = _dict(load.get("ttft_ms"))
            view["load"].append({
                "service": name, "model": model, "clients": _number(load.get("clients")),
                "requests": _number(load.get("requests")), "completed": _number(load.get("completed")),
                "errors": _number(load.get("errors")),
                "aggregate_tokens_per_second": _number(load.get("aggregate_tokens_per_second")),
                "ttft_p50_ms": _number(ttft.get("p50")), "ttft_p95_ms": _number(ttft.get("p95")),
                # The unmeasured requests sent first: on a service with lanes, mostly the switch to the lane.
                "warmup_requests": _number(load.get("warmup_requests")), "warmup_s": _number(load.get("warmup_s"))})
    return view


def _first_test(tests, metric):
    """The llama-bench test of ``metric`` to chart: the one a published figure has, else the first."""
    tests = [test for test in tests if test["metric"] == metric and test["tokens_per_second"] is not None]
    published = [test for test in tests if test["baseline"] and test["baseline"].get("test") == test["test"]]
    return (published or tests or [None])[0]


def _bars(view, baselines):
    """One group of bars per service and model of the host: served tokens/s (verify), llama-bench's generation and
    prompt processing, the load test's aggregate tokens/s, and the published figures for the same platform and
    model."""
    bench = view["bench"] or {"services": [], "llama_bench": [], "load": [], "vllm_bench": []}
    entries = [(row["service"], row["model"], row["tokens_per_second"]) for row in view["services"]]
    entries += [(row["service"], row["model"], None) for row in bench["services"]
                if (row["service"], row["model"]) not in {entry[:2] for entry in entries}]
    bars = []
    for service, model, served in entries:
        tests = [test for test in bench["llama_bench"] if (test["service"], test["model"]) == (service, model)]
        tg, pp = _first_test(tests, "tg"), _first_test(tests, "pp")
        load = next((row for row in bench["load"] if (row["service"], row["model"]) == (service, model)), None)
        published_tg = tg["baseline"] if tg else _published_for(baselines, view["platform"], model, CHART_METRIC)
        published_pp = pp["baseline"] if pp else _published_for(baselines, view["platform"], model, "pp")
        bars.append({
            "host": view["host"], "model": model, "measured": served,
            "baseline": published_tg["value"] if published_tg else None,
            "baseline_label": _baseline_label(published_tg),
            "baseline_test": published_tg.get("test") if published_tg else None,
            "bench_tg": tg["tokens_per_second"] if tg else None, "bench_tg_test": tg["test"] if tg else None,
            "bench_pp": pp["tokens_per_second"] if pp else None, "bench_pp_test": pp["test"] if pp else None,
            "baseline_pp": published_pp["value"] if published_pp else None,
            "baseline_pp_test": published_pp.get("test") if published_pp else None,
            "load_tps": load["aggregate_tokens_per_second"] if load else None,
            "load_clients": load["clients"] if load else None,
        })
    return bars


def _baseline_label(baseline):
    if not baseline:
        return None
    return "%s %s, %s" % (baseline.get("engine", ""), baseline.get("test", baseline.get("metric", "")),
                          baseline.get("date", ""))


def substance_digest(data):
    """A digest of what the report says about the fleet (hosts, platforms, GPUs, services, models, endpoints,
    health, images, which hosts have no report), not of measurements or ages: the report counts as changed when
    this changes, as the verify reports do."""
    substance = {
        "hosts": [{
            "host": view["host"], "platform": view["platform"], "gpu": view["gpu"],
            "services": [{key: row[key] for key in ("service", "engine", "model", "endpoint", "health")}
                         for row in view["services"]],
            "images": view["images"],
        } for view in data["hosts"]],
        "missing": [entry["host"] for entry in data["missing"]],
        "baselines": [baseline.get("value") for baseline in data["baselines"]],
    }
    return hashlib.sha256(json.dumps(substance, sort_keys=True, default=str).encode()).hexdigest()


def _fmt(value, digits=1):
    return "-" if value is None else ("%.*f" % (digits, value))


def _warmup(row):
    """``1, 49.8`` for a load test that sent one request first, unmeasured, which took 49.8 s; ``-`` without."""
    if not row.get("warmup_requests"):
        return "-"
    return "%s, %s" % (_fmt(row["warmup_requests"], 0), _fmt(row.get("warmup_s")))


def _published(row):
    baseline = row.get("baseline")
    return "-" if not baseline else "%s (%s)" % (_fmt(baseline.get("value")), baseline.get("test") or "")


DIGEST_MARK = "gpufleet-fleet-report-digest"


def _baseline_columns(baseline):
    return [baseline.get("platform"), baseline.get("gpu"), baseline.get("engine"), baseline.get("model"),
            baseline.get("quant"), baseline.get("test"), _fmt(baseline.get("value"), 2), baseline.get("date")]


def _md_cell(value):
    return str("-" if value is None or value == "" else value).replace("|", "\\|").replace("\n", " ")


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for column in header) + "|"]
    lines.extend("| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows)
    return lines


def _counted(data):
    hosts = len(data["hosts"]) + len(data["missing"])
    return "%d host%s, %d of them without a report" % (hosts, "" if hosts == 1 else "s", len(data["missing"]))


def bench_tables(view):
    """The host's benchmark tables (playbooks/bench.yml), for both pages: ``(title, header, rows, numeric columns)``
    for llama-bench, vllm bench serve and the load test, those with figures only."""
    bench = view.get("bench") or {}
    tables = []
    if bench.get("llama_bench"):
        tables.append(("llama-bench", ["service", "model", "test", "tokens/s", "±", "backends", "published tokens/s"],
                       [[row["service"], row["model"], row["test"], _fmt(row["tokens_per_second"], 2),
                         _fmt(row["stddev"], 2), row["backends"], _published(row)] for row in bench["llama_bench"]],
                       (3, 4, 6)))
    if bench.get("vllm_bench"):
        tables.append(("vllm bench serve (random dataset)",
                       ["service", "model", "concurrency", "completed", "output tokens/s", "total tokens/s",
                        "TTFT median (ms)", "TTFT p95 (ms)", "TPOT median (ms)"],
                       [[row["service"], row["model"], _fmt(row["max_concurrency"], 0), _fmt(row["completed"], 0),
                         _fmt(row["output_throughput"]), _fmt(row["total_token_throughput"]),
                         _fmt(row["median_ttft_ms"]), _fmt(row["p95_ttft_ms"]), _fmt(row["median_tpot_ms"])]
                        for row in bench["vllm_bench"]], (2, 3, 4, 5, 6, 7, 8)))
    if bench.get("load"):
        tables.append(("Load test (clients at once, streamed chat completions)",
                       ["service", "model", "clients", "requests", "errors", "tokens/s, all clients",
                        "TTFT p50 (ms)", "TTFT p95 (ms)", "warm-up (requests, s)"],
                       [[row["service"], row["model"], _fmt(row["clients"], 0), _fmt(row["requests"], 0),
                         _fmt(row["errors"], 0), _fmt(row["aggregate_tokens_per_second"]), _fmt(row["ttft_p50_ms"]),
                         _fmt(row["ttft_p95_ms"]), _warmup(row)] for row in bench["load"]], (2, 3, 4, 5, 6, 7, 8)))
    return tables


def _bench_intro(view):
    bench = view["bench"]
    skipped = ["%s: %s" % (row["service"], row["skipped"]) for row in bench["services"] if row["skipped"]]
    return "Benchmarks (playbooks/bench.yml) measured %s (%s ago).%s" % (
        bench["measured_at"], bench["age"], (" No engine benchmark for " + "; ".join(skipped) + ".") if skipped else "")


def render_markdown(data, chart=None):
    """The report as Markdown; ``chart`` is the PNG's file name, beside the report (None: not drawn)."""
    out = ["# Fleet report", "",
           "Written %s for %s. Each host's figures are from its last run that reached verify: a host with "
           "nothing to do ends early and keeps its earlier report (see its age)." % (
               data["generated_at"], _counted(data)), ""]
    if chart:
        out += ["![Served tokens/s per host and model, beside the published figure](%s)" % chart, ""]
    out += ["## Hosts", ""]
    out += _md_table(["host", "platform", "GPU", "models", "healthy", "report written", "age"],
                     [[view["host"], view["platform"], view["gpu"],
                       ", ".join(str(row["model"]) for row in view["services"]),
                       "%d/%d" % (view["healthy"], len(view["services"])), view["written_at"], view["age"]]
                      for view in data["hosts"]] +
                     [[entry["host"], "-", "-", "-", "-", "no report", "-"] for entry in data["missing"]])
    for view in data["hosts"]:
        out += ["", "## %s" % view["host"], "",
                "Platform %s, GPU %s; report written %s (%s ago)." % (
                    view["platform"], view["gpu"], view["written_at"], view["age"]), ""]
        out += _md_table(["service", "engine", "model", "endpoint", "health", "time to first token (ms)",
                          "tokens/s", "published tokens/s"],
                         [[row["service"], row["engine"], row["model"], row["endpoint"], row["health"],
                           _fmt(row["ttft_ms"]), _fmt(row["tokens_per_second"]), _published(row)]
                          for row in view["services"]])
        if view["images"]:
            out += ["", "Images:", ""]
            out += ["- %s: `%s` `%s`" % (image["service"], image["ref"] or "unknown", image["digest"] or "no digest")
                    for image in view["images"]]
        if view["bench"]:
            out += ["", _bench_intro(view)]
            for title, header, rows, numeric in bench_tables(view):
                out += ["", "%s:" % title, ""] + _md_table(header, rows)
    if data["missing"]:
        out += ["", "## Hosts without a report", ""]
        out += ["- %s: %s" % (entry["host"], entry["reason"]) for entry in data["missing"]]
    if data["baselines"]:
        out += ["", "## Published figures", "",
                "Single-stream figures published for the platform and model; llama-bench's tg is generation, pp "
                "prompt processing. The hosts' tokens/s are verify's streamed answer (a short prompt, "
                "generation only), so compare them with tg; llama-bench's figures (bench) compare test for test.", ""]
        out += _md_table(["platform", "GPU", "engine", "model", "quant", "test", "tokens/s", "date", "source"],
                         [_baseline_columns(baseline) + [baseline.get("source")] for baseline in data["baselines"]])
    out += ["", "<!-- %s: %s -->" % (DIGEST_MARK, data["digest"]), ""]
    return "\n".join(out)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; } .bad { color: #b42318; font-weight: bold; }
code { font-size: 0.9em; word-break: break-all; }
img { max-width: 100%; }
""".strip()


def _h(value):
    return html.escape("-" if value is None or value == "" else str(value))


def _html_table(header, rows, numeric=()):
    out = ["<table>", "<tr>" + "".join("<th>%s</th>" % _h(column) for column in header) + "</tr>"]
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            if isinstance(cell, tuple):  # (html, css class): already escaped
                cells.append('<td class="%s">%s</td>' % (cell[1], cell[0]))
            else:
                cells.append('<td class="num">%s</td>' % _h(cell) if index in numeric else "<td>%s</td>" % _h(cell))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _link(url):
    return ('<a href="%s">%s</a>' % (html.escape(url, quote=True), html.escape(url)), "") if url else ("-", "")


def render_html(data, chart_base64=None):
    """The report as one self-contained HTML page: inline CSS, the chart embedded as a base64 PNG."""
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', "<title>Fleet report</title>",
           "<style>", CSS, "</style>", "</head>", "<body>", "<h1>Fleet report</h1>",
           "<p>Written %s for %s. Each host's figures are from its last run that reached verify: a host with "
           "nothing to do ends early and keeps its earlier report (see its age).</p>" % (
               _h(data["generated_at"]), _h(_counted(data)))]
    if chart_base64:
        out.append('<p><img alt="Served tokens/s per host and model, beside the published figure" '
                   'src="data:image/png;base64,%s"></p>' % chart_base64)
    out.append("<h2>Hosts</h2>")
    out.append(_html_table(
        ["host", "platform", "GPU", "models", "healthy", "report written", "age"],
        [[view["host"], view["platform"], view["gpu"], ", ".join(str(row["model"]) for row in view["services"]),
          ("%d/%d" % (view["healthy"], len(view["services"])),
           "ok" if view["healthy"] == len(view["services"]) else "bad"), view["written_at"], view["age"]]
         for view in data["hosts"]] +
        [[entry["host"], None, None, None, None, ("no report", "bad"), None] for entry in data["missing"]]))
    for view in data["hosts"]:
        out.append('<h2 id="%s">%s</h2>' % (html.escape(view["host"], quote=True), _h(view["host"])))
        out.append("<p>Platform %s, GPU %s; report written %s (%s ago).</p>" % (
            _h(view["platform"]), _h(view["gpu"]), _h(view["written_at"]), _h(view["age"])))
        out.append(_html_table(
            ["service", "engine", "model", "endpoint", "health", "time to first token (ms)", "tokens/s",
             "published tokens/s"],
            [[row["service"], row["engine"], row["model"], row["endpoint"],
              (_h(row["health"]), "ok" if row["health"] == "ok" else "bad"),
              _fmt(row["ttft_ms"]), _fmt(row["tokens_per_second"]), _published(row)] for row in view["services"]],
            numeric=(5, 6, 7)))
        if view["images"]:
            out.append("<ul>" + "".join("<li>%s: <code>%s</code> <code>%s</code></li>" % (
                _h(image["service"]), _h(image["ref"] or "unknown"), _h(image["digest"] or "no digest"))
                for image in view["images"]) + "</ul>")
        if view["bench"]:
            out.append("<p>%s</p>" % _h(_bench_intro(view)))
            for title, header, rows, numeric in bench_tables(view):
                out += ["<h3>%s</h3>" % _h(title), _html_table(header, rows, numeric=numeric)]
    if data["missing"]:
        out.append("<h2>Hosts without a report</h2>")
        out.append("<ul>" + "".join("<li>%s: %s</li>" % (_h(entry["host"]), _h(entry["reason"]))
                                    for entry in data["missing"]) + "</ul>")
    if data["baselines"]:
        out.append("<h2>Published figures</h2>")
        out.append("<p>Single-stream figures published for the platform and model; llama-bench's tg is generation, pp "
                   "prompt processing. The hosts' tokens/s are verify's streamed answer (a short prompt, generation "
                   "only), so compare them with tg; llama-bench's figures (bench) compare test for test.</p>")
        out.append(_html_table(
            ["platform", "GPU", "engine", "model", "quant", "test", "tokens/s", "date", "source"],
            [_baseline_columns(baseline) + [_link(baseline.get("source"))] for baseline in data["baselines"]],
            numeric=(6,)))
    out += ["<!-- %s: %s -->" % (DIGEST_MARK, data["digest"]), "</body>", "</html>", ""]
    return "\n".join(out)


MEASURED_COLOUR = "#1f6fb4"
PUBLISHED_COLOUR = "#b8b8b8"
BENCH_COLOUR = "#e07b19"
LOAD_COLOUR = "#3a9d5d"

# The chart's panels: (title, y label, series); a series is (key in a group, legend, colour, hatch, what its value's
# label adds: another key of the group, and a format for it). The benchmark series appear where a host has figures.
GENERATION = ("Generation", "tokens/s (generation)", [
    ("measured", "served, measured by verify (one stream)", MEASURED_COLOUR, None, None),
    ("bench_tg", "llama-bench tg (bench)", BENCH_COLOUR, None, ("bench_tg_test", "%s")),
    ("load_tps", "load test, all clients together (bench)", LOAD_COLOUR, None, ("load_clients", "%.0f clients")),
    ("baseline", "published, same platform and model", PUBLISHED_COLOUR, "//", ("baseline_test", "%s")),
])
PROMPT = ("Prompt processing", "tokens/s (prompt processing)", [
    ("bench_pp", "llama-bench pp (bench)", BENCH_COLOUR, None, ("bench_pp_test", "%s")),
    ("baseline_pp", "published, same platform and model", PUBLISHED_COLOUR, "//", ("baseline_pp_test", "%s")),
])
OPTIONAL_SERIES = ("bench_tg", "load_tps")


def _panel(axes, bars, series, ylabel, title):
    positions = range(len(bars))
    bar_width = 0.8 / len(series)
    top = max([group[entry[0]] or 0 for group in bars for entry in series]) or 1.0
    for index, (key, label, colour, hatch, extra) in enumerate(series):
        offset = (index - (len(series) - 1) / 2.0) * bar_width
        rects = axes.bar([x + offset for x in positions], [group[key] or 0 for group in bars], bar_width, color=colour,
                         edgecolor="#707070" if hatch else None, hatch=hatch, label=label)
        for rect, group in zip(rects, bars):
            middle = rect.get_x() + rect.get_width() / 2
            if group[key] is None:
                if key == "measured":
                    text = "no figure"
                elif colour == PUBLISHED_COLOUR:
                    text = "none\npublished"
                else:
                    continue
                axes.annotate(text, (middle, 0), xytext=(0, 2), textcoords="offset points", ha="center",
                              va="bottom", fontsize=6 if len(series) > 2 else 7, color="#707070")
                continue
            text = _fmt(group[key])
            if extra and group.get(extra[0]) is not None:
                text += "\n" + extra[1] % group[extra[0]]
            axes.annotate(text, (middle, rect.get_height()), xytext=(0, 2), textcoords="offset points",
                          ha="center", va="bottom", fontsize=7 if len(series) > 2 else 8)
    axes.set_xticks(list(positions))
    axes.set_xticklabels(["%s\n%s" % (group["host"], group["model"]) for group in bars], fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, top * 1.2)
    # A few bars keep their width: the axis spans at least three groups.
    pad = max(0.0, (3 - len(bars)) / 2.0)
    axes.set_xlim(-0.5 - pad, len(bars) - 0.5 + pad)
    axes.set_title(title, fontsize=10)
    # Below the host names, clear of the bars.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(series), 2), fontsize=8, frameon=False)
    axes.spines["top"].set_visible(False)
    axes.spines["right"].set_visible(False)
    axes.grid(axis="y", color="#e6e6e6")
    axes.set_axisbelow(True)


def chart_png(data):
    """Grouped bars per host and model: served tokens/s beside the published figure for the same platform and model
    where one is known; where bench ran, llama-bench's generation and the load test's aggregate tokens/s beside
    them, and a second panel for llama-bench's prompt processing. PNG bytes, or None when there is nothing to draw."""
    generation = [entry[0] for entry in GENERATION[2]]
    bars = [group for group in data["bars"] if any(group.get(key) is not None for key in generation)]
    prompt = [group for group in data["bars"] if group.get("bench_pp") is not None]
    if not bars and not prompt:
        return None
    series = [entry for entry in GENERATION[2]
              if entry[0] not in OPTIONAL_SERIES or any(group.get(entry[0]) is not None for group in bars)]
    panels = ([(bars, series, GENERATION)] if bars else []) + ([(prompt, PROMPT[2], PROMPT)] if prompt else [])
    groups = max(len(panel[0]) for panel in panels)
    width = max(6.5, (0.9 + 0.35 * len(series)) * groups + 2.0)
    figure, axes_list = pyplot.subplots(len(panels), 1, figsize=(width, 4.8 * len(panels)), dpi=110, squeeze=False)
    # Without benchmark figures the chart is verify's: served tokens/s beside the published ones.
    benched = len(panels) > 1 or len(series) > 2
    try:
        for axes, (panel_bars, panel_series, spec) in zip(axes_list[:, 0], panels):
            title, ylabel = spec[0], spec[1]
            _panel(axes, panel_bars, panel_series, ylabel, "%s per host and model (report %s)" % (
                "%s, tokens/s" % title if benched else "Served tokens/s", data["generated_at"]))
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()
    finally:
        pyplot.close(figure)

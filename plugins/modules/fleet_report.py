#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: fleet_report
short_description: Write one Markdown and one HTML report, with a tokens/s chart, for the hosts of a run
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Reads the verify report of each host of O(hosts) (C(<reports_dir>/<host>.json), written by the
    C(gpufleet.inference.verify) role) and writes, in O(dest), C(<name>.md), C(<name>.html) and C(<name>-tokens.png).
  - Per host - platform, GPU, and per service (or lane) its engine, model, endpoint, health, time to first token,
    tokens/s, the published tokens/s for the same platform and model (O(baselines)) and the image with its digest;
    when each host's report was written and how old it is (a host with nothing to do ends its run early and keeps
    its earlier report).
  - A host without a report, or with one that cannot be read, is listed as such; it does not fail the task.
  - The chart (grouped bars of served tokens/s per host and model, the published figure beside it) needs matplotlib on
    the machine the module runs on, the controller. Without it the reports are written without the chart, with a
    warning.
  - Runs on the controller (C(delegate_to) V(localhost), or a play on V(localhost)) and changes nothing on hosts.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The files are written again on every run (new measurements, ages); the task reports a change only when
      what the report says about the fleet changed (hosts, platforms, GPUs, services, models, endpoints, health,
      images, hosts without a report), not when a measurement or an age moved.
options:
  reports_dir:
    description: The directory of the hosts' verify reports (the verify role's C(verify_reports_dir)).
    type: path
    required: true
  hosts:
    description: The hosts of the run, in the report's order.
    type: list
    elements: str
    required: true
  platforms:
    description: The platform of each host (C(gpufleet_platform)), for reports written before they named it.
    type: dict
    default: {}
  baselines:
    description:
      - Published figures - C(platform), C(model) (and C(aliases)), C(metric) (V(tg) generation or V(pp) prompt
        processing), C(value) in tokens/s, and C(gpu), C(engine), C(quant), C(test), C(context_depth), C(date),
        C(source). A V(tg) figure whose platform and model match a service's is drawn beside it.
      - The verify role passes C(verify_fleet_baselines) (C(roles/verify/files/fleet_baselines.yml)).
    type: list
    elements: dict
    default: []
  dest:
    description: Directory for the report's files. Default O(reports_dir).
    type: path
  name:
    description: The files' base name.
    type: str
    default: fleet
  chart:
    description: Draw the chart (matplotlib).
    type: bool
    default: true
requirements:
  - matplotlib on the controller, for the chart (optional)
"""

EXAMPLES = r"""
- name: The fleet report of the hosts of this play
  gpufleet.inference.fleet_report:
    reports_dir: "{{ verify_reports_dir }}"
    hosts: "{{ ansible_play_hosts_all }}"
    baselines: "{{ lookup('ansible.builtin.file', 'fleet_baselines.yml') | from_yaml }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
files:
  description: The files written (or, in check mode, that would be).
  returned: always
  type: list
  elements: path
  sample: [reports/fleet.md, reports/fleet.html, reports/fleet-tokens.png]
hosts:
  description: The hosts with a report.
  returned: always
  type: list
  elements: str
missing:
  description: The hosts without a readable report, each with the reason.
  returned: always
  type: list
  elements: dict
chart:
  description: Whether the chart was drawn.
  returned: always
  type: bool
"""

import base64
import json
import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils import _fleet_report as fleet


def read_reports(reports_dir, hosts):
    """``{"host", "report", "mtime", "error"}`` for each host: its parsed report, or why there is none."""
    entries = []
    for host in hosts:
        path = os.path.join(reports_dir, "%s.json" % host)
        entry = {"host": host, "report": None, "mtime": None, "error": None}
        try:
            entry["mtime"] = os.stat(path).st_mtime
            with open(path, "rb") as handle:
                report = json.loads(handle.read().decode("utf-8"))
            if not isinstance(report, dict):
                raise ValueError("not a JSON object")
            entry["report"] = report
        except FileNotFoundError:
            entry["error"] = "no report yet at %s (verify has not passed on this host)" % path
        except (OSError, ValueError) as exc:
            entry["error"] = "report %s cannot be read: %s" % (path, to_native(exc))
        entries.append(entry)
    return entries


def previous_digest(path):
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    mark = "<!-- %s: " % fleet.DIGEST_MARK
    start = text.rfind(mark)
    return text[start + len(mark):].split(" ", 1)[0] if start >= 0 else None


class FleetReport:
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def write(self, path, content):
        directory = os.path.dirname(path) or "."
        handle, tmp = tempfile.mkstemp(prefix=".fleet-report.", dir=directory)
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(tmp, 0o644)
        self.module.atomic_move(tmp, path)

    def run(self):
        params = self.params
        dest = params["dest"] or params["reports_dir"]
        data = fleet.fleet_data(read_reports(params["reports_dir"], params["hosts"]), params["hosts"],
                                params["baselines"], platforms=params["platforms"])
        md_path = os.path.join(dest, "%s.md" % params["name"])
        html_path = os.path.join(dest, "%s.html" % params["name"])
        png_path = os.path.join(dest, "%s-tokens.png" % params["name"])
        png = None
        if params["chart"]:
            if fleet.HAS_MATPLOTLIB:
                png = fleet.chart_png(data)
            else:
                self.module.warn("%s: the chart is not drawn. %s" % (
                    png_path, missing_required_lib("matplotlib (on the controller)")))
        markdown = fleet.render_markdown(data, os.path.basename(png_path) if png else None)
        page = fleet.render_html(data, base64.b64encode(png).decode("ascii") if png else None)
        files = [md_path, html_path] + ([png_path] if png else [])
        changed = previous_digest(md_path) != data["digest"] or not all(os.path.exists(path) for path in files)
        if not self.module.check_mode:
            if not os.path.isdir(dest):
                os.makedirs(dest, mode=0o755)
            self.write(md_path, markdown.encode("utf-8"))
            self.write(html_path, page.encode("utf-8"))
            if png:
                self.write(png_path, png)
        self.module.exit_json(changed=changed, files=files, hosts=[view["host"] for view in data["hosts"]],
                              missing=data["missing"], chart=png is not None)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            reports_dir=dict(type="path", required=True),
            hosts=dict(type="list", elements="str", required=True),
            platforms=dict(type="dict", default={}),
            baselines=dict(type="list", elements="dict", default=[]),
            dest=dict(type="path"),
            name=dict(type="str", default="fleet"),
            chart=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        FleetReport(module).run()
    except OSError as exc:
        module.fail_json(msg="fleet_report: %s" % to_native(exc), exception=traceback.format_exc())


if __name__ == "__main__":
    main()

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
name: inference_report_endpoints
short_description: What a verify report says about the endpoints, without the measurements
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - From the C(services) of a report written by the verify role, keeps per service what describes the endpoint
    (name, base URL, served models, API key file, health status, status without a key) and drops the measurements
    (latencies, tokens/s, generated text), which differ on every run.
  - Two reports of an unchanged deployment give equal results.
options:
  _input:
    description: The C(services) list of a report.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Did the endpoints change since the last report?
  ansible.builtin.debug:
    msg: "{{ (new.services | gpufleet.inference.inference_report_endpoints) != (old.services | gpufleet.inference.inference_report_endpoints) }}"
"""

RETURN = r"""
_value:
  description: One dict per service, sorted by name.
  type: list
  elements: dict
"""


def inference_report_endpoints(services):
    view = []
    for service in services or []:
        if not isinstance(service, dict):
            continue
        view.append({
            "name": service.get("name"),
            "base_url": service.get("base_url"),
            "models": sorted(service.get("models") or []),
            "api_key_file": service.get("api_key_file"),
            "health": (service.get("health") or {}).get("status"),
            "unauthorized_status": service.get("unauthorized_status"),
            "backend": service.get("backend"),
            "devices": service.get("devices"),
            "image": (service.get("image") or {}).get("ref"),
        })
    return sorted(view, key=lambda entry: str(entry["name"]))


class FilterModule:
    def filters(self):
        return {"inference_report_endpoints": inference_report_endpoints}

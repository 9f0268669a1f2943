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
  - The companion filter C(inference_lane_report) keeps what the report says of a lane's probe, or of a service's
    switching figures (M(gpufleet.inference.inference_lanes_status)).
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


LANE_PROBE_KEYS = ("health", "ttft_ms", "tokens_per_second", "stream")
LANE_STATUS_KEYS = ("mechanism", "mode", "max_loaded", "switches", "last_switch_seconds", "last_switch", "queue_depth",
                    "waiting_at_last_switch", "failed_requests", "lanes")


def inference_lane_report(result):
    """What the report keeps of a lane's probe (``inference_probe`` registered in a loop over lanes) or of a
    service's switching figures (``inference_lanes_status``)."""
    result = result if isinstance(result, dict) else {}
    if "mechanism" in result:
        return {key: result.get(key) for key in LANE_STATUS_KEYS}
    item = result.get("item") or {}
    chat = {key: value for key, value in (result.get("chat") or {}).items() if key != "content"}
    return dict({"name": item.get("model"), "model": chat.get("model"), "chat": chat},
                **{key: result.get(key) for key in LANE_PROBE_KEYS})


class FilterModule:
    def filters(self):
        return {"inference_report_endpoints": inference_report_endpoints, "inference_lane_report": inference_lane_report}

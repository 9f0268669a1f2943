# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.


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

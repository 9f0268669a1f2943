"""A report's endpoint view changes with the endpoints, not with the measurements."""

from __future__ import annotations

import copy

from ansible_collections.gpufleet.inference.plugins.filter.report import inference_report_endpoints

SERVICE = {
    "name": "gemma", "base_url": "http://127.0.0.1:8080/v1", "models": ["gemma-3-270m"],
    "api_key_file": "/opt/gpufleet/stack/secrets/gemma.key", "health": {"status": 200, "waited_seconds": 0.4},
    "unauthorized_status": 401, "ttft_ms": 43.1, "tokens_per_second": 61.8, "stream": {"content": "..."},
}


def test_new_measurements_are_not_a_change():
    rerun = copy.deepcopy(SERVICE)
    rerun.update(ttft_ms=51.0, tokens_per_second=58.2, health={"status": 200, "waited_seconds": 0.0})
    assert inference_report_endpoints([SERVICE]) == inference_report_endpoints([rerun])


def test_endpoint_changes_are():
    for change in ({"base_url": "http://127.0.0.1:8081/v1"}, {"models": ["other"]}, {"unauthorized_status": 200},
                   {"health": {"status": 503}}, {"api_key_file": "/elsewhere"}):
        changed = dict(copy.deepcopy(SERVICE), **change)
        assert inference_report_endpoints([SERVICE]) != inference_report_endpoints([changed]), change


def test_order_of_services_does_not_matter_and_a_missing_report_differs():
    other = dict(copy.deepcopy(SERVICE), name="chat-long")
    assert inference_report_endpoints([SERVICE, other]) == inference_report_endpoints([other, SERVICE])
    assert inference_report_endpoints([SERVICE]) != inference_report_endpoints([])

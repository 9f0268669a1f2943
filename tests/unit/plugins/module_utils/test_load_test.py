# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The load test's statistics (percentiles, aggregate tokens/s, errors) and its clients running at once against
tests/support/fake_openai.py."""

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _load_test as load
from ansible_collections.gpufleet.inference.tests.support.fake_openai import FakeLlamaServer, split_tokens

KEY = "sk-gpufleet-load-test-key-0123456789"
REPLY = "one two three four five six seven eight nine ten"


pytestmark = pytest.mark.usefixtures("no_proxy_env")


@pytest.mark.parametrize("values, fraction, expected", [
    ([5.0], 0.5, 5.0),
    ([1, 2, 3, 4], 0.5, 2.5),
    ([4, 1, 3, 2], 0.5, 2.5),  # order does not matter
    (list(range(1, 21)), 0.95, 19.05),  # numpy.percentile(range(1, 21), 95)
    ([10, 20], 0.0, 10), ([10, 20], 1.0, 20),
])
def test_percentile_interpolates_between_the_closest_ranks(values, fraction, expected):
    assert load.percentile(values, fraction) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_a_fraction_beyond_one_is_refused():
    assert load.percentile([], 0.5) is None
    with pytest.raises(ValueError, match="fraction must be from 0 to 1"):
        load.percentile([1, 2], 95)


def test_distribution_leaves_out_requests_without_a_figure():
    assert load.distribution([100.0, None, 300.0, 200.0]) == {
        "p50": 200.0, "p95": 290.0, "mean": 200.0, "min": 100.0, "max": 300.0}
    assert load.distribution([]) == {"p50": None, "p95": None, "mean": None, "min": None, "max": None}


def test_aggregate_tokens_per_second_is_every_completion_token_over_the_wall_time():
    samples = [{"completion_tokens": 30, "ttft_ms": 50.0, "tokens_per_second": 20.0},
               {"completion_tokens": 50, "ttft_ms": 150.0, "tokens_per_second": 10.0}]
    summary = load.summarize(samples, ["boom", "boom", "other"], started=10.0, ended=14.0, clients=3,
                             requests_per_client=1)
    assert summary["aggregate_tokens_per_second"] == 20.0  # (30 + 50) / 4 s
    assert (summary["requests"], summary["completed"], summary["errors"]) == (3, 2, 3)
    assert summary["error_messages"] == ["boom", "other"]
    assert summary["requests_per_second"] == 0.5
    assert (summary["ttft_ms"]["p50"], summary["ttft_ms"]["p95"]) == (100.0, 145.0)
    assert summary["stream_tokens_per_second"]["p50"] == 15.0


def test_clients_send_at_the_same_time_and_every_request_is_measured():
    first, step = 0.25, 0.005
    with FakeLlamaServer(api_key=KEY, models=["m"], reply=REPLY, first_token_delay=first, token_delay=step) as server:
        result = load.run_load(server.base_url, "m", clients=4, requests_per_client=2, prompt="hi", max_tokens=64,
                               api_key=KEY, request_timeout=10)
        chats = [request for request in server.requests if request[1] == "/v1/chat/completions"]
    assert (result["requests"], result["completed"], result["errors"]) == (8, 8, 0)
    assert result["completion_tokens"] == 8 * len(split_tokens(REPLY))
    # One after the other the 8 requests take 8 x 0.25 s at least; four clients at once about a quarter of that.
    assert result["duration_s"] < 4 * first * 2
    assert result["aggregate_tokens_per_second"] == pytest.approx(result["completion_tokens"] / result["duration_s"],
                                                                  rel=0.01)
    assert first * 1000 <= result["ttft_ms"]["p50"] <= result["ttft_ms"]["p95"] <= result["ttft_ms"]["max"]
    assert all(headers["authorization"] == "Bearer " + KEY for _m, _p, headers, _b in chats)
    assert all(body["stream"] and body["max_tokens"] == 64 and body["model"] == "m" for _m, _p, _h, body in chats)


def test_a_refused_key_is_an_error_per_request_and_the_key_is_not_in_the_messages():
    with FakeLlamaServer(api_key=KEY, models=["m"], reply=REPLY) as server:
        result = load.run_load(server.base_url, "m", clients=2, requests_per_client=2, prompt="hi", max_tokens=8,
                               api_key="sk-wrong-key-0123456789abcdef", request_timeout=5)
    assert (result["completed"], result["errors"]) == (0, 4)
    assert result["aggregate_tokens_per_second"] == 0.0 and result["ttft_ms"]["p50"] is None
    assert len(result["error_messages"]) == 1 and "refused the API key (HTTP 401)" in result["error_messages"][0]
    assert "sk-wrong-key" not in repr(result)


def test_the_warm_up_loads_the_model_and_only_the_test_after_it_is_measured():
    # A lane or llama.cpp's router loads the model on its first request: without a warm-up, its loading time would
    # be the test's time to first token.
    loading = 0.5
    with FakeLlamaServer(api_key=KEY, models=["m"], reply=REPLY, load_delay=loading) as server:
        result = load.run_load(server.base_url, "m", clients=2, requests_per_client=2, prompt="hi", max_tokens=4,
                               api_key=KEY, request_timeout=10, warmup_requests=1)
        chats = [request for request in server.requests if request[1] == "/v1/chat/completions"]
    assert len(chats) == 1 + 4
    assert (result["requests"], result["completed"], result["errors"]) == (4, 4, 0)
    assert (result["warmup_requests"], result["warmup_s"] >= loading) == (1, True)
    assert result["ttft_ms"]["max"] < loading * 1000 and result["duration_s"] < loading


def test_without_a_warm_up_the_loading_time_is_measured():
    with FakeLlamaServer(api_key=KEY, models=["m"], reply=REPLY, load_delay=0.5) as server:
        result = load.run_load(server.base_url, "m", clients=2, requests_per_client=1, prompt="hi", max_tokens=4,
                               api_key=KEY, request_timeout=10)
    assert (result["warmup_requests"], result["warmup_s"]) == (0, 0.0)
    assert result["ttft_ms"]["min"] >= 400


def test_a_failed_warm_up_leaves_the_errors_to_the_test():
    with FakeLlamaServer(api_key=KEY, models=["m"], reply=REPLY) as server:
        result = load.run_load(server.base_url, "m", clients=1, requests_per_client=2, prompt="hi", max_tokens=4,
                               api_key="sk-wrong-key-0123456789abcdef", request_timeout=5, warmup_requests=3)
        chats = [request for request in server.requests if request[1] == "/v1/chat/completions"]
    # The first warm-up request failed: no more of them, and the test's two requests are its errors.
    assert len(chats) == 1 + 2
    assert (result["completed"], result["errors"], result["warmup_requests"]) == (0, 2, 3)

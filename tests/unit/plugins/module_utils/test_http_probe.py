# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import socket
from urllib.error import URLError

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils._http_probe import (
    Answer,
    InferenceProbe,
    ProbeError,
    SSEDecoder,
    StreamMeter,
    describe_error,
    truncate,
)


def decode(lines):
    decoder = SSEDecoder()
    events = [decoder.feed(line) for line in lines]
    events.append(decoder.close())
    return [e for e in events if e is not None]


def chunk(content=None, reasoning=None, finish_reason=None, **extra):
    delta = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    obj = {"choices": [{"index": 0, "finish_reason": finish_reason, "delta": delta}], "object": "chat.completion.chunk"}
    obj.update(extra)
    return obj


# -- SSE decoding -------------------------------------------------------------------------------


def test_sse_llama_server_lines():
    lines = [
        b'data: {"choices":[{"delta":{"role":"assistant","content":null}}]}\n', b"\n",
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n', b"\n",
        b"data: [DONE]\n", b"\n",
    ]
    assert decode(lines) == [
        ("message", '{"choices":[{"delta":{"role":"assistant","content":null}}]}'),
        ("message", '{"choices":[{"delta":{"content":"Hi"}}]}'),
        ("message", "[DONE]"),
    ]


def test_sse_crlf_no_space_comments_and_event_names():
    lines = ["data:{}\r\n", "\r\n", ": keep-alive\r\n", "\r\n", "event: ping\n", "id: 7\n", "data: x\n", "\n"]
    assert decode(lines) == [("message", "{}"), ("ping", "x")]


def test_sse_multiline_data_is_joined_with_newlines():
    assert decode(["data: a\n", "data:  b\n", "\n"]) == [("message", "a\n b")]


def test_sse_last_event_without_blank_line_is_not_lost():
    assert decode([b"data: [DONE]\n"]) == [("message", "[DONE]")]


def test_sse_llama_server_error_line():
    body = '{"error":{"code":500,"message":"boom","type":"server_error"}}'
    assert decode([f"error: {body}\n", "\n"]) == [("error", body)]


def test_sse_blank_lines_alone_dispatch_nothing():
    assert decode(["\n", "\n", ""]) == []


# -- stream arithmetic --------------------------------------------------------------------------


def test_meter_ttft_and_decode_speed_from_usage():
    meter = StreamMeter(started=10.0)
    meter.add({"choices": [{"delta": {"role": "assistant", "content": None}}]}, 10.05)  # no text: not a token
    for i in range(5):
        meter.add(chunk(content=f" t{i}"), 10.2 + i * 0.1)  # tokens at 10.2 ... 10.6
    meter.add(chunk(finish_reason="stop", content=""), 10.61)
    meter.add({"choices": [], "usage": {"completion_tokens": 9, "prompt_tokens": 4},
               "timings": {"predicted_per_second": 20.0}}, 10.62)
    meter.done = True
    summary = meter.summary(ended=10.7)
    assert summary["ttft_ms"] == pytest.approx(200.0)
    assert summary["content_chunks"] == 5
    # usage wins over the chunk count: (9 - 1) tokens in 0.4 s
    assert summary["completion_tokens"] == 9
    assert summary["completion_tokens_source"] == "usage"
    assert summary["tokens_per_second"] == pytest.approx(20.0)
    assert summary["decode_ms"] == pytest.approx(400.0)
    assert summary["elapsed_ms"] == pytest.approx(700.0)
    assert summary["prompt_tokens"] == 4
    assert summary["finish_reason"] == "stop"
    assert summary["server_timings"] == {"predicted_per_second": 20.0}
    assert summary["content"] == " t0 t1 t2 t3 t4"
    assert summary["done"] is True


def test_meter_falls_back_to_chunk_count_without_usage():
    meter = StreamMeter(started=0.0)
    for i in range(11):
        meter.add(chunk(content="x"), 1.0 + i * 0.05)
    summary = meter.summary(ended=2.0)
    assert summary["completion_tokens"] == 11
    assert summary["completion_tokens_source"] == "chunks"
    assert summary["tokens_per_second"] == pytest.approx(10 / 0.5)
    assert summary["ttft_ms"] == pytest.approx(1000.0)
    assert summary["server_timings"] is None
    assert summary["prompt_tokens"] is None


def test_meter_reasoning_counts_as_a_token_and_is_kept_apart():
    meter = StreamMeter(started=0.0)
    meter.add(chunk(reasoning="hmm"), 0.3)
    meter.add({"choices": [{"delta": {"reasoning": " so"}}]}, 0.4)  # newer vLLM's field name
    meter.add(chunk(content="Yes"), 0.5)
    summary = meter.summary(ended=0.6)
    assert summary["ttft_ms"] == pytest.approx(300.0)
    assert summary["content_chunks"] == 3
    assert summary["reasoning_content"] == "hmm so"
    assert summary["content"] == "Yes"
    assert summary["tokens_per_second"] == pytest.approx(2 / 0.2)


def test_meter_one_token_has_no_speed():
    meter = StreamMeter(started=0.0)
    meter.add(chunk(content="x"), 0.1)
    meter.add({"choices": [], "usage": {"completion_tokens": 1}}, 0.2)
    summary = meter.summary(ended=0.2)
    assert summary["completion_tokens"] == 1
    assert summary["tokens_per_second"] is None
    assert summary["ttft_ms"] == pytest.approx(100.0)


def test_meter_no_text_at_all():
    meter = StreamMeter(started=0.0)
    meter.add({"choices": [{"delta": {"role": "assistant", "content": None}}]}, 0.1)
    meter.add(chunk(content="", finish_reason="stop"), 0.2)
    summary = meter.summary(ended=0.3)
    assert summary["content_chunks"] == 0
    assert summary["ttft_ms"] is None
    assert summary["tokens_per_second"] is None
    assert summary["completion_tokens"] == 0


def test_meter_ignores_junk_and_keeps_the_last_timings():
    meter = StreamMeter(started=0.0)
    meter.add(["not", "a", "chunk"], 0.1)
    meter.add({"choices": ["junk", {"delta": "junk"}]}, 0.1)
    meter.add(chunk(content="a", timings={"predicted_n": 1}), 0.2)
    meter.add(chunk(content="b", timings={"predicted_n": 2}), 0.3)
    meter.add({"choices": [], "usage": {"completion_tokens": True}}, 0.4)  # not a count
    summary = meter.summary(ended=0.4)
    assert summary["server_timings"] == {"predicted_n": 2}
    assert summary["completion_tokens"] == 2
    assert summary["completion_tokens_source"] == "chunks"


# -- helpers --------------------------------------------------------------------------------------


def test_truncate():
    assert truncate("abc", 5) == "abc"
    assert truncate(b"abcdefgh", 5) == "abcde... (3 more characters)"
    assert truncate(None) == ""


def test_probe_error_message_names_step_url_status_and_body():
    exc = ProbeError("health", "not ready", method="GET", url="http://h:1/health", status=503, body='{"x":1}')
    assert str(exc) == 'health step failed: not ready [GET http://h:1/health -> HTTP 503: {"x":1}]'
    exc = ProbeError("health", "not ready", method="GET", url="http://h:1/health", error="connection refused")
    assert str(exc) == "health step failed: not ready [GET http://h:1/health -> connection refused]"
    assert str(ProbeError("stream", "too slow")) == "stream step failed: too slow"


def test_describe_error():
    assert describe_error(URLError(ConnectionRefusedError(111, "Connection refused"))).startswith("connection refused")
    assert describe_error(URLError(socket.timeout("timed out"))).startswith("timed out")
    assert describe_error(OSError("weird")) == "OSError: weird"


def test_headers_with_and_without_the_key():
    probe = InferenceProbe("http://h:1/", api_key="k3y", headers={"X-Api-Key": "other", "authorization": "x", "X-Extra": 1})
    with_key = probe.headers(auth=True, payload=True)
    assert with_key["Authorization"] == "Bearer k3y"
    assert with_key["X-Extra"] == "1"
    assert with_key["Content-Type"] == "application/json"
    without = probe.headers(auth=False, payload=True)
    assert {k.lower() for k in without} == {"x-extra", "accept", "content-type"}
    assert probe.base_url == "http://h:1"


def test_redact():
    probe = InferenceProbe("http://h:1", api_key="s3cr3t")
    assert probe.redact("key s3cr3t echoed") == "key ******** echoed"
    assert InferenceProbe("http://h:1").redact(b"plain") == "plain"


def test_chat_payload():
    probe = InferenceProbe("http://h:1")
    assert probe.chat_payload("m", "p", 8) == {
        "model": "m", "messages": [{"role": "user", "content": "p"}], "max_tokens": 8, "temperature": 0}
    streamed = probe.chat_payload("m", "p", 8, stream=True)
    assert streamed["stream"] is True
    assert streamed["stream_options"] == {"include_usage": True}
    # Decoding is measured over max_tokens tokens: neither the end of the answer nor a service's stop strings cut it.
    assert streamed["ignore_eos"] is True and streamed["stop"] == ["<|gpufleet-probe: no stop|>"]


# -- the health loop, on a fake clock -------------------------------------------------------------


class ScriptedProbe(InferenceProbe):
    """Answers from a script instead of the network; time passes only when it sleeps."""

    def __init__(self, answers, request_cost=0.0):
        self.now = 100.0
        self.slept = []
        super().__init__("http://h:1", clock=lambda: self.now, sleep=self._sleep)
        self.answers = list(answers)
        self.request_cost = request_cost
        self.timeouts = []

    def _sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def request(self, method, path, payload=None, auth=True, timeout=None, stream=False):
        self.timeouts.append(timeout)
        self.now += self.request_cost
        status, body, error = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return Answer(method, self.url(path), status=status, body=body, error=error)


LOADING = (503, b'{"error":{"message":"Loading model","type":"unavailable_error","code":503}}', None)
REFUSED = (None, b"", "connection refused ([Errno 111] Connection refused)")
OK = (200, b'{"status":"ok"}', None)


def test_health_polls_through_refusals_and_503_until_200():
    probe = ScriptedProbe([REFUSED, REFUSED, LOADING, LOADING, OK])
    health = probe.wait_healthy(timeout=60, interval=2)
    assert health == {"status": 200, "waited_seconds": 8.0, "attempts": 5, "body": {"status": "ok"}}
    assert probe.slept == [2, 2, 2, 2]


def test_health_timeout_reports_attempts_and_last_body():
    probe = ScriptedProbe([LOADING], request_cost=0.5)
    with pytest.raises(ProbeError) as exc:
        probe.wait_healthy(timeout=5, interval=1)
    err = exc.value
    assert err.step == "health"
    assert err.status == 503
    assert "Loading model" in err.body
    assert "within 5s" in str(err) and "4 attempts" in str(err)
    assert err.url == "http://h:1/health"
    # never sleeps past the deadline, and a request never waits longer than what is left
    assert sum(probe.slept) + 4 * 0.5 == pytest.approx(5.0)
    assert probe.timeouts[-1] == pytest.approx(0.5)


def test_health_timeout_while_refused_says_so():
    probe = ScriptedProbe([REFUSED], request_cost=0.1)
    with pytest.raises(ProbeError) as exc:
        probe.wait_healthy(timeout=1, interval=0.3)
    assert exc.value.status is None
    assert "connection refused" in str(exc.value)
    assert "could not connect" in str(exc.value)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_health_client_errors_fail_at_once(status):
    probe = ScriptedProbe([(status, b'{"error":{"message":"File Not Found"}}', None), OK])
    with pytest.raises(ProbeError) as exc:
        probe.wait_healthy(timeout=60, interval=1)
    assert exc.value.status == status
    assert probe.slept == []
    if status == 404:
        assert "without /v1" in str(exc.value)


def test_health_zero_timeout_still_asks_once():
    probe = ScriptedProbe([OK])
    assert probe.wait_healthy(timeout=0, interval=1)["attempts"] == 1
    assert probe.timeouts == [pytest.approx(0.1)]


def test_health_body_that_is_not_json_is_kept_as_text():
    probe = ScriptedProbe([(200, b"OK", None)])
    assert probe.wait_healthy(timeout=1, interval=1)["body"] == "OK"


def test_model_listing_matches_aliases_and_lists_ids():
    listing = {"object": "list", "data": [{"id": "/models/gemma.gguf", "aliases": ["gemma-3-270m"]}, {"id": "x"}]}
    probe = ScriptedProbe([(200, json.dumps(listing).encode(), None)])
    assert probe.list_models("gemma-3-270m") == ["/models/gemma.gguf", "x"]
    with pytest.raises(ProbeError) as exc:
        probe.list_models("llama")
    assert "'/models/gemma.gguf', 'x'" in str(exc.value)


def test_model_listing_that_is_not_a_list():
    probe = ScriptedProbe([(200, b'{"object":"list"}', None)])
    with pytest.raises(ProbeError, match="no 'data' array"):
        probe.list_models("m")

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inference_probe's main() against tests/support/fake_openai.py, a llama-server look-alike on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from ansible_collections.gpufleet.inference.plugins.filter.stack import inference_tls_names
from ansible_collections.gpufleet.inference.plugins.modules import inference_probe
from ansible_collections.gpufleet.inference.tests.support.fake_openai import FakeLlamaServer, split_tokens
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)
from ansible_collections.gpufleet.inference.tests.unit.utils.module_process import run_module

KEY = "sk-gpufleet-0d9f3c2a7b-never-echo-me"
MODEL = "gemma-3-270m"
REPLY = "GPUs hum in the dark, tensors bloom like spring rain, fans breathe out the heat."
N_TOKENS = len(split_tokens(REPLY))
# The tests that measure use these; the others run with short delays.
FIRST_TOKEN_DELAY = 0.15
TOKEN_DELAY = 0.02


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """A proxy from the environment must not stand between the probe and 127.0.0.1."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def server(**kwargs):
    options = dict(api_key=KEY, models=[MODEL], reply=REPLY, first_token_delay=0.01, token_delay=0.002)
    options.update(kwargs)
    return FakeLlamaServer(**options)


def probe_args(base_url, **kwargs):
    args = {"base_url": base_url, "api_key": KEY, "model": MODEL, "health_timeout": 2, "interval": 0.05,
            "request_timeout": 10}
    args.update(kwargs)
    return {k: v for k, v in args.items() if v is not None}


def run(args, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with set_module_args(args), pytest.raises(AnsibleExitJson) as exc:
        inference_probe.main()
    return exc.value.args[0]


def run_fail(args):
    with set_module_args(args), pytest.raises(AnsibleFailJson) as exc:
        inference_probe.main()
    return exc.value.args[0]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_key(result):
    assert KEY not in json.dumps(result, default=str)


def test_happy_path():
    with server(first_token_delay=FIRST_TOKEN_DELAY, token_delay=TOKEN_DELAY) as fake:
        started = time.monotonic()
        result = run(probe_args(fake.base_url))
        wall_ms = 1000 * (time.monotonic() - started)
        methods_paths = [(m, p) for m, p, _h, _b in fake.requests]
        requests = list(fake.requests)

    assert result["changed"] is False
    assert result["base_url"] == fake.base_url
    assert result["model"] == MODEL
    assert result["health"]["status"] == 200
    assert result["health"]["body"] == {"status": "ok"}
    assert result["health"]["attempts"] == 1
    assert result["models"] == [MODEL]
    assert result["unauthorized_status"] == 401

    chat = result["chat"]
    assert chat["content"] == REPLY
    assert chat["completion_tokens"] == N_TOKENS
    assert chat["prompt_tokens"] > 0
    assert chat["finish_reason"] == "stop"
    expected_chat_ms = 1000 * (FIRST_TOKEN_DELAY + TOKEN_DELAY * (N_TOKENS - 1))
    # The figures are bounded below by the server's delays and above by what the test saw, not by a margin a busy
    # machine can exceed.
    assert expected_chat_ms * 0.9 <= chat["elapsed_ms"] <= wall_ms

    stream = result["stream"]
    assert stream["content"] == REPLY
    assert stream["done"] is True
    assert stream["finish_reason"] == "stop"
    assert stream["completion_tokens"] == N_TOKENS
    assert stream["completion_tokens_source"] == "usage"
    assert stream["content_chunks"] == N_TOKENS
    # The time to the first token leaves out the decode that followed it, and tokens/s is the decode's rate. (Chunks
    # that a busy machine reads late arrive together, so the decode's own length is not bounded here.)
    assert FIRST_TOKEN_DELAY * 1000 * 0.9 <= stream["ttft_ms"]
    assert stream["decode_ms"] > 0
    assert stream["elapsed_ms"] >= stream["ttft_ms"] + stream["decode_ms"]
    assert stream["tokens_per_second"] == pytest.approx((N_TOKENS - 1) / (stream["decode_ms"] / 1000), rel=0.05)
    timings = stream["server_timings"]
    assert timings["predicted_n"] == N_TOKENS
    assert timings["prompt_n"] == chat["prompt_tokens"]
    assert {"predicted_per_second", "prompt_per_second", "predicted_ms", "prompt_ms", "cache_n"} <= set(timings)
    assert result["ttft_ms"] == stream["ttft_ms"]
    assert result["tokens_per_second"] == stream["tokens_per_second"]

    # the steps, in order: health, models, unauthorized, chat, stream
    assert methods_paths == [("GET", "/health"), ("GET", "/v1/models")] + [("POST", "/v1/chat/completions")] * 3
    unauthorized, plain, streamed = (r[2:] for r in requests[2:])
    assert "authorization" not in unauthorized[0] and "x-api-key" not in unauthorized[0]
    assert unauthorized[1]["max_tokens"] == 1
    assert plain[0]["authorization"] == f"Bearer {KEY}"
    assert plain[1] == {"model": MODEL, "messages": [{"role": "user", "content": "Write a haiku about GPUs."}],
                        "max_tokens": 64, "temperature": 0}
    assert streamed[1] == dict(plain[1], stream=True, stream_options={"include_usage": True}, ignore_eos=True,
                               stop=["<|gpufleet-probe: no stop|>"])
    assert_no_key(result)


@pytest.mark.parametrize("loading", [{"loading_requests": 4}, {"loading_seconds": 1.5}], ids=["requests", "seconds"])
def test_health_waits_through_loading(loading):
    with server(**loading) as fake:
        result = run(probe_args(fake.base_url, interval=0.05))
        health_requests = fake.paths().count("/health")
    assert result["health"]["status"] == 200
    assert result["health"]["attempts"] == health_requests
    if "loading_requests" in loading:
        assert health_requests == 5
        assert result["health"]["waited_seconds"] >= 4 * 0.05 * 0.9
    else:
        # At least one 503 then the 200. Loading lasts long enough that a busy machine (where the probe's first
        # request came 0.3 s after the server started) still finds the server loading.
        assert health_requests >= 2
        # Loading began with the server, before the probe's first request: the probe waited at least its interval
        # between each of its requests.
        assert result["health"]["waited_seconds"] >= (health_requests - 1) * 0.05 * 0.9
    assert result["stream"]["completion_tokens"] == N_TOKENS


def test_health_timeout_fails_naming_the_step_and_the_last_body():
    with server(loading_seconds=3600) as fake:
        started = time.monotonic()
        result = run_fail(probe_args(fake.base_url, health_timeout=1, interval=0.1))
        took = time.monotonic() - started
        paths = fake.paths()
    assert result["step"] == "health"
    assert result["status"] == 503
    assert result["url"] == f"{fake.base_url}/health"
    assert "Loading model" in result["body"]
    assert result["msg"].startswith("health step failed: the server did not answer HTTP 200 within 1s")
    assert "HTTP 503" in result["msg"] and "Loading model" in result["msg"] and "/health" in result["msg"]
    assert 0.9 <= took < 1.8
    assert set(paths) == {"/health"} and len(paths) >= 5
    assert result["models"] is None and result["chat"] is None
    assert_no_key(result)


def test_connection_refused_until_timeout():
    port = free_port()
    started = time.monotonic()
    result = run_fail(probe_args(f"http://127.0.0.1:{port}", health_timeout=1, interval=0.1))
    assert 0.9 <= time.monotonic() - started < 1.8
    assert result["step"] == "health"
    assert result["status"] is None
    assert result["url"] == f"http://127.0.0.1:{port}/health"
    assert "connection refused" in result["msg"].lower()
    assert "within 1s" in result["msg"]


def test_refused_connection_is_said_in_error():
    port = free_port()
    result = run_fail(probe_args(f"http://127.0.0.1:{port}", health_timeout=0, steps=["health", "models"]))
    assert result["step"] == "health"
    assert result["error"].startswith("connection refused")


def test_reach_steps_generate_nothing():
    """health, models and unauthorized only: the server is asked, no completion is generated with the key."""
    with server() as fake:
        result = run(probe_args(fake.base_url, steps=["health", "models", "unauthorized"]))
        chats = [headers for method, path, headers, _body in fake.requests
                 if path == "/v1/chat/completions" and "authorization" in headers]
    assert result["models"] == [MODEL]
    assert result["unauthorized_status"] == 401
    assert result["chat"] is None and result["stream"] is None and result["tokens_per_second"] is None
    assert chats == []


def test_reach_steps_still_catch_an_open_endpoint():
    with server(enforce_key=False) as fake:
        result = run_fail(probe_args(fake.base_url, steps=["health", "models", "unauthorized"]))
    assert result["step"] == "unauthorized"
    assert result["error"] is None
    assert_no_key(result)


def test_health_waits_until_the_server_listens():
    port = free_port()
    fake = server(port=port)
    starter = threading.Timer(0.4, fake.start)
    starter.start()
    try:
        result = run(probe_args(f"http://127.0.0.1:{port}", health_timeout=5, interval=0.05))
    finally:
        starter.join()
        fake.stop()
    # It retried until the server listened, and the wait it reports covers the pauses between its attempts. (Not
    # the timer's 0.4 s: on a busy machine the probe itself can start that much later.)
    assert result["health"]["attempts"] > 1
    assert result["health"]["waited_seconds"] >= round((result["health"]["attempts"] - 1) * 0.05, 2) - 0.01
    assert result["chat"]["content"] == REPLY


def test_model_missing_lists_the_served_ids():
    with server(models=["qwen3-8b", "llama-3.2-1b"]) as fake:
        result = run_fail(probe_args(fake.base_url))
        posts = fake.paths("POST")
    assert result["step"] == "models"
    assert result["status"] == 200
    assert result["url"] == f"{fake.base_url}/v1/models"
    assert f"'{MODEL}' is not served" in result["msg"]
    assert "'qwen3-8b', 'llama-3.2-1b'" in result["msg"]
    assert result["health"]["status"] == 200
    assert posts == []


def test_endpoint_open_without_the_key_fails_the_unauthorized_step():
    with server(enforce_key=False) as fake:
        result = run_fail(probe_args(fake.base_url))
    assert result["step"] == "unauthorized"
    assert result["status"] == 200
    assert result["url"] == f"{fake.base_url}/v1/chat/completions"
    assert "answered 200 without an API key: it is open to anyone who can reach it" in result["msg"]
    assert result["models"] == [MODEL]
    assert_no_key(result)


def test_unauthorized_step_skipped_when_disabled():
    with server(enforce_key=False) as fake:
        result = run(probe_args(fake.base_url, check_unauthorized=False))
        posts = fake.paths("POST")
    assert result["unauthorized_status"] is None
    assert len(posts) == 2


def test_wrong_key_llama_server_fails_at_the_first_protected_request():
    # llama-server serves /v1/models to anyone, so a wrong key shows at the chat step.
    with server(api_key="the-right-key") as fake:
        result = run_fail(probe_args(fake.base_url))
    assert result["models"] == [MODEL]
    assert result["unauthorized_status"] == 401  # a request without any key is refused too
    assert result["step"] == "chat"
    assert result["status"] == 401
    assert "Invalid API Key" in result["body"]
    assert "refused the API key" in result["msg"] and "HTTP 401" in result["msg"]
    assert_no_key(result)


def test_wrong_key_protected_listing_fails_at_the_models_step():
    # vLLM (and llama-server behind an authenticating proxy) protect /v1/models too.
    with server(api_key="the-right-key", public_models=False) as fake:
        result = run_fail(probe_args(fake.base_url))
    assert result["step"] == "models"
    assert result["status"] == 401
    assert result["url"] == f"{fake.base_url}/v1/models"
    assert "authentication_error" in result["body"]
    assert "refused the API key" in result["msg"]
    assert_no_key(result)


def test_no_key_given_for_a_protected_server():
    with server() as fake:
        result = run_fail(probe_args(fake.base_url, api_key=None))
    assert result["step"] == "chat"
    assert result["status"] == 401
    assert "requires an API key" in result["msg"]


def test_open_server_without_a_key():
    with server(api_key=None) as fake:
        result = run(probe_args(fake.base_url, api_key=None))
        headers = [h for _m, _p, h, _b in fake.requests]
    assert result["unauthorized_status"] is None
    assert result["stream"]["completion_tokens"] == N_TOKENS
    assert all("authorization" not in h for h in headers)


def test_empty_completion_fails_the_chat_step():
    with server(reply="") as fake:
        result = run_fail(probe_args(fake.base_url))
    assert result["step"] == "chat"
    assert result["status"] == 200
    assert "the completion is empty" in result["msg"]
    assert '"content":""' in result["body"]


def test_reasoning_only_answer_counts():
    with server(reply="", reasoning="Let me think about GPUs first.") as fake:
        result = run(probe_args(fake.base_url))
    assert result["chat"]["content"] == ""
    assert result["chat"]["reasoning_content"] == "Let me think about GPUs first."
    assert result["stream"]["reasoning_content"] == "Let me think about GPUs first."
    assert result["stream"]["content_chunks"] == 6
    assert result["ttft_ms"] is not None


def test_stream_without_usage_chunk_counts_chunks():
    with server(stream_usage=False, first_token_delay=FIRST_TOKEN_DELAY, token_delay=TOKEN_DELAY) as fake:
        result = run(probe_args(fake.base_url))
    stream = result["stream"]
    assert stream["completion_tokens_source"] == "chunks"
    assert stream["completion_tokens"] == stream["content_chunks"] == N_TOKENS
    assert stream["prompt_tokens"] is None
    assert stream["server_timings"]["predicted_n"] == N_TOKENS  # on the finish chunk instead
    assert 0.4 / TOKEN_DELAY <= stream["tokens_per_second"] <= 1.5 / TOKEN_DELAY


def test_server_without_timings():
    with server(timings=False) as fake:
        result = run(probe_args(fake.base_url))
    assert result["stream"]["server_timings"] is None
    assert result["tokens_per_second"] > 0


def test_one_token_gives_no_speed():
    with server() as fake:
        result = run(probe_args(fake.base_url, max_tokens=1))
    assert result["chat"]["finish_reason"] == "length"
    assert result["stream"]["completion_tokens"] == 1
    assert result["stream"]["finish_reason"] == "length"
    assert result["tokens_per_second"] is None
    assert result["ttft_ms"] is not None


def test_check_mode_probes_too():
    with server() as fake:
        result = run(probe_args(fake.base_url), check_mode=True)
        paths = fake.paths()
    assert result["changed"] is False
    assert result["stream"]["completion_tokens"] == N_TOKENS
    assert paths.count("/v1/chat/completions") == 3


def test_base_url_with_v1_is_taken_as_the_root():
    with server() as fake:
        result = run(probe_args(fake.base_url + "/v1/"))
    assert result["base_url"] == fake.base_url
    assert result["models"] == [MODEL]


def test_extra_headers_are_sent():
    with server() as fake:
        run(probe_args(fake.base_url, headers={"X-Request-Source": "verify"}))
        headers = [h for _m, _p, h, _b in fake.requests]
    assert all(h.get("x-request-source") == "verify" for h in headers)


def test_the_key_never_appears_in_results_or_failures():
    outcomes = []
    with server() as fake:
        outcomes.append(run(probe_args(fake.base_url)))
        outcomes.append(run_fail(probe_args(fake.base_url, model="missing")))
    with server(api_key="another-key") as fake:
        outcomes.append(run_fail(probe_args(fake.base_url)))
    with server(enforce_key=False) as fake:
        outcomes.append(run_fail(probe_args(fake.base_url)))
    outcomes.append(run_fail(probe_args(f"http://127.0.0.1:{free_port()}", health_timeout=0)))
    assert [o.get("step") for o in outcomes] == [None, "models", "chat", "unauthorized", "health"]
    for outcome in outcomes:
        assert_no_key(outcome)


def test_header_values_never_appear_in_the_output_of_the_module():
    proxy_secret = "proxy-0f3c9a-never-echo-me"
    headers = {"Authorization": "Bearer " + proxy_secret, "X-Proxy-Token": proxy_secret}
    with server(enforce_key=False) as fake:
        result, printed = run_module("inference_probe", probe_args(fake.base_url, api_key=None, headers=headers,
                                                                   check_unauthorized=False))
        sent = [h for _m, _p, h, _b in fake.requests]

    assert result.get("failed") is None, printed
    assert all(h.get("x-proxy-token") == proxy_secret for h in sent)
    assert proxy_secret not in printed
    assert result["invocation"]["module_args"]["headers"] == {"Authorization": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER",
                                                              "X-Proxy-Token": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}


@pytest.mark.parametrize("bad, wanted", [
    ({"interval": 0}, "interval must be more than 0"),
    ({"max_tokens": 0}, "max_tokens must be 1 or more"),
    ({"health_timeout": -1}, "health_timeout must be 0 or more"),
    ({"base_url": "127.0.0.1:8080"}, "base_url must be an http:// or https:// URL"),
])
def test_bad_parameters(bad, wanted):
    args = probe_args("http://127.0.0.1:9")
    args.update(bad)
    result = run_fail(args)
    assert wanted in result["msg"]


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate made the way inference_stack makes a TLS front's (openssl, EC P-256, loopback names)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "front.crt", where / "front.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=chat", "-addext",
                    "subjectAltName=" + ",".join(inference_tls_names({"name": "chat", "tls": {"self_signed": True}})),
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_https_front_is_probed_with_its_self_signed_certificate(self_signed):
    with server(tls=self_signed) as fake:
        assert fake.base_url.startswith("https://127.0.0.1:")
        result = run(probe_args(fake.base_url, ca_path=self_signed[0]))
    assert result["chat"]["content"] == REPLY
    assert result["unauthorized_status"] == 401


def test_https_front_with_an_unknown_certificate_fails_unless_told_not_to_check(self_signed):
    with server(tls=self_signed) as fake:
        failed = run_fail(probe_args(fake.base_url, health_timeout=0))
        unchecked = run(probe_args(fake.base_url, validate_certs=False))
    assert failed["step"] == "health"
    assert "certificate" in failed["msg"].lower()
    assert unchecked["chat"]["content"] == REPLY

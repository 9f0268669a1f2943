# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""inference_load's main() against tests/support/fake_openai.py: the key from a file on the host, the limits of its
options, a test where nothing completed, and no key in what it returns."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpufleet.inference.plugins.modules import inference_load
from ansible_collections.gpufleet.inference.tests.support.fake_openai import FakeLlamaServer
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

KEY = "sk-gpufleet-load-module-key-9876543210"


pytestmark = pytest.mark.usefixtures("no_proxy_env")


@pytest.fixture
def server():
    with FakeLlamaServer(api_key=KEY, models=["gemma"], reply="a b c d e f", first_token_delay=0.02) as fake:
        yield fake


def run(args, fail=False):
    with set_module_args(args), pytest.raises(AnsibleFailJson if fail else AnsibleExitJson) as caught:
        inference_load.main()
    return caught.value.args[0]


def test_the_key_file_is_read_on_the_host_and_never_returned(server, tmp_path):
    key_file = tmp_path / "chat.key"
    key_file.write_text(KEY + "\n")
    result = run({"base_url": server.base_url + "/v1", "api_key_file": str(key_file), "model": "gemma",
                  "clients": 3, "requests_per_client": 2, "max_tokens": 4, "request_timeout": 10})
    assert not result["changed"]
    assert (result["completed"], result["errors"], result["completion_tokens"]) == (6, 0, 24)
    assert result["aggregate_tokens_per_second"] > 0
    assert result["ttft_ms"]["p50"] <= result["ttft_ms"]["p95"]
    assert result["msg"].startswith("gemma at %s: 3 clients x 2 requests, " % server.base_url)
    assert KEY not in json.dumps(result)
    # One warm-up request by default, not measured.
    assert result["warmup_requests"] == 1
    assert len([path for path in server.paths("POST") if path == "/v1/chat/completions"]) == 1 + 6


@pytest.mark.parametrize("args, message", [
    ({"clients": 0}, "clients must be 1 to 256, not 0"),
    ({"requests_per_client": 1001}, "requests_per_client must be 1 to 1000, not 1001"),
    ({"max_tokens": 0}, "max_tokens must be 1 or more, not 0"),
    ({"warmup_requests": 101}, "warmup_requests must be 0 to 100, not 101"),
    ({"base_url": "127.0.0.1:8080"}, "base_url must be an http:// or https:// URL"),
    ({"api_key_file": "/nonexistent/key"}, "api_key_file /nonexistent/key cannot be read"),
])
def test_a_wrong_option_is_named(args, message):
    result = run(dict({"base_url": "http://127.0.0.1:9", "model": "gemma"}, **args), fail=True)
    assert message in result["msg"]


def test_nothing_completed_fails_with_the_reason(server):
    result = run({"base_url": server.base_url, "api_key": "sk-not-the-key-0123456789abc", "model": "gemma",
                  "clients": 2, "requests_per_client": 1, "request_timeout": 5}, fail=True)
    assert result["msg"].startswith("no request of the load test completed (2 failed): stream step failed: "
                                    "the server refused the API key (HTTP 401)")
    assert result["errors"] == 2

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: inference_load
short_description: Load-test an OpenAI-compatible LLM endpoint with several clients at once
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Starts O(clients) clients together; each sends O(requests_per_client) streamed chat completions
    (C(POST /v1/chat/completions), C(temperature=0), O(max_tokens)) one after the other. Every request is measured
    as M(gpufleet.inference.inference_probe) measures its streamed answer.
  - "Returns the aggregate completion tokens/s (the completion tokens of every request that completed / the wall
    time from the first request to the last answer), the time to first token per request (50th and 95th percentile,
    interpolated linearly between the closest ranks; mean, minimum, maximum), requests/s, the decode speed of one
    stream, and the errors."
  - O(warmup_requests) requests go first, one at a time, and are not measured, so that a model loaded on its first
    request (a lane, llama.cpp's router mode) or a server's first, compiling requests do not count as serving time.
  - A request that fails counts as an error, with its message; the test fails only when no request completed.
  - Uses only the Python standard library on the managed host. Sends requests and changes nothing, so it reports
    RV(ignore:changed=false) and runs in check mode too.
  - The API key is sent only in the C(Authorization) header and never returned; O(api_key_file) is read on the
    host, so the key need not pass through the controller.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: The test only sends requests, so it runs in check mode as well.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  base_url:
    description:
      - The service's root URL as the host reaches it, for example V(http://127.0.0.1:8080).
      - A trailing C(/v1) is removed, with a warning.
    type: str
    required: true
  api_key:
    description: "The server's API key, sent as C(Authorization: Bearer KEY). Mutually exclusive with O(api_key_file)."
    type: str
  api_key_file:
    description: A file on the host holding the key (leading and trailing white space ignored).
    type: path
  model:
    description: The model name sent in the requests, as C(/v1/models) lists it.
    type: str
    required: true
  clients:
    description: Clients sending at the same time, 1 to 256.
    type: int
    default: 4
  requests_per_client:
    description: Requests each client sends, one after the other, 1 to 1000.
    type: int
    default: 4
  max_tokens:
    description: C(max_tokens) of each request, 1 or more.
    type: int
    default: 128
  prompt:
    description: The user message of each request.
    type: str
    default: Write a short story about a lighthouse keeper.
  request_timeout:
    description: Seconds one streamed request may take, 1 or more.
    type: int
    default: 300
  warmup_requests:
    description:
      - Requests sent one at a time before the clients start, not measured, 0 to 100.
      - A warm-up request that fails ends the warm-up; the test's own requests then show the error.
    type: int
    default: 1
  validate_certs:
    description: Check the server's certificate for C(https://) URLs.
    type: bool
    default: true
  ca_path:
    description: A PEM file with the CA (or the self-signed certificate) that signs the server's certificate.
    type: path
  use_proxy:
    description: Send the requests through the proxy of C(http_proxy) / C(https_proxy).
    type: bool
    default: false
requirements:
  - Python 3 on the host (standard library)
seealso:
  - module: gpufleet.inference.inference_probe
"""

EXAMPLES = r"""
- name: Eight clients, four requests each, against the chat service
  gpufleet.inference.inference_load:
    base_url: http://127.0.0.1:8080
    api_key_file: /opt/gpufleet/stack/secrets/chat.key
    model: gemma-3-270m
    clients: 8
    requests_per_client: 4
    max_tokens: 128
  register: load

- name: Say it
  ansible.builtin.debug:
    msg: >-
      {{ load.aggregate_tokens_per_second }} tokens/s for {{ load.clients }} clients,
      TTFT p50 {{ load.ttft_ms.p50 }} ms, p95 {{ load.ttft_ms.p95 }} ms, {{ load.errors }} errors
"""

RETURN = r"""
msg:
  description: The figures in one line.
  returned: success
  type: str
  sample: "gemma-3-270m at http://127.0.0.1:8080: 4 clients x 4 requests, 165.03 tokens/s in all, time to first
    token p50 180.2 ms, p95 402.7 ms, 0 errors"
clients:
  description: Clients that sent at the same time.
  returned: success
  type: int
  sample: 4
requests_per_client:
  description: Requests each client sent.
  returned: success
  type: int
  sample: 4
requests:
  description: Requests sent in all.
  returned: success
  type: int
  sample: 16
completed:
  description: Requests answered with a complete stream.
  returned: success
  type: int
  sample: 16
errors:
  description: Requests that failed.
  returned: success
  type: int
  sample: 0
error_messages:
  description: The first distinct messages of the requests that failed (at most 5), without the key.
  returned: success
  type: list
  elements: str
  sample: []
duration_s:
  description: Wall time from the first request sent to the last answer ended, in seconds.
  returned: success
  type: float
  sample: 12.41
completion_tokens:
  description: Completion tokens of the requests that completed (the usage chunk's, else one per chunk).
  returned: success
  type: int
  sample: 2048
aggregate_tokens_per_second:
  description: RV(completion_tokens) / RV(duration_s), what the endpoint delivered to all clients together.
  returned: success
  type: float
  sample: 165.03
requests_per_second:
  description: Completed requests / RV(duration_s).
  returned: success
  type: float
  sample: 1.289
ttft_ms:
  description: Time to first token of the completed requests, in ms.
  returned: success
  type: dict
  contains:
    p50:
      description: 50th percentile (median).
      type: float
    p95:
      description: 95th percentile.
      type: float
    mean:
      description: Mean.
      type: float
    min:
      description: Shortest.
      type: float
    max:
      description: Longest.
      type: float
  sample: {"p50": 180.2, "p95": 402.7, "mean": 210.5, "min": 95.1, "max": 420.0}
stream_tokens_per_second:
  description: Decode speed of one stream (completion tokens - 1) / (last token - first token), same keys as RV(ttft_ms).
  returned: success
  type: dict
  sample: {"p50": 41.3, "p95": 48.0, "mean": 42.1, "min": 35.2, "max": 48.9}
warmup_requests:
  description: Unmeasured requests sent before the test.
  returned: success
  type: int
  sample: 1
warmup_s:
  description: Seconds the warm-up took (for a lane not loaded yet, mostly the switch to it).
  returned: success
  type: float
  sample: 0.42
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils._load_test import run_load

LIMITS = (
    ("clients", 1, 256),
    ("requests_per_client", 1, 1000),
    ("max_tokens", 1, None),
    ("request_timeout", 1, None),
    ("warmup_requests", 0, 100),
)


def check_params(module):
    """What the argument spec cannot check; returns the base URL and the key."""
    params = module.params
    base_url = params["base_url"].strip().rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        module.fail_json(msg="base_url must be an http:// or https:// URL, not %r" % base_url)
    if base_url.endswith("/v1"):
        base_url = base_url[:-3]
        module.warn("base_url is the server root; the trailing /v1 was removed (%s)" % base_url)
    for name, low, high in LIMITS:
        value = params[name]
        if value < low or (high is not None and value > high):
            wanted = "%d to %d" % (low, high) if high is not None else "%d or more" % low
            module.fail_json(msg="%s must be %s, not %d" % (name, wanted, value))
    api_key = params["api_key"]
    if params["api_key_file"]:
        try:
            with open(params["api_key_file"], "rb") as handle:
                api_key = handle.read().decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            module.fail_json(msg="api_key_file %s cannot be read: %s" % (params["api_key_file"], to_native(exc)))
        if not api_key:
            module.fail_json(msg="api_key_file %s is empty" % params["api_key_file"])
        module.no_log_values.add(api_key)
    return base_url, api_key


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            api_key_file=dict(type="path"),
            model=dict(type="str", required=True),
            clients=dict(type="int", default=4),
            requests_per_client=dict(type="int", default=4),
            max_tokens=dict(type="int", default=128, no_log=False),  # a count of tokens, not a secret
            prompt=dict(type="str", default="Write a short story about a lighthouse keeper."),
            request_timeout=dict(type="int", default=300),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            use_proxy=dict(type="bool", default=False),
            warmup_requests=dict(type="int", default=1),
        ),
        mutually_exclusive=[("api_key", "api_key_file")],
        supports_check_mode=True,
    )
    params = module.params
    base_url, api_key = check_params(module)
    result = run_load(base_url, params["model"], params["clients"], params["requests_per_client"], params["prompt"],
                      params["max_tokens"], api_key=api_key, request_timeout=params["request_timeout"],
                      validate_certs=params["validate_certs"], ca_path=params["ca_path"],
                      use_proxy=params["use_proxy"], warmup_requests=params["warmup_requests"])
    if not result["completed"]:
        module.fail_json(msg="no request of the load test completed (%d failed): %s" % (
            result["errors"], "; ".join(result["error_messages"]) or "no message"), **result)
    result["msg"] = "%s at %s: %d clients x %d requests, %s tokens/s in all, time to first token p50 %s ms, p95 %s ms, " \
        "%d errors" % (params["model"], base_url, result["clients"], result["requests_per_client"],
                       result["aggregate_tokens_per_second"], result["ttft_ms"]["p50"], result["ttft_ms"]["p95"],
                       result["errors"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

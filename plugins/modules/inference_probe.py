#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: inference_probe
short_description: Check that an OpenAI-compatible LLM endpoint serves, and measure it
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Probes an OpenAI-compatible inference server (llama.cpp's C(llama-server), vLLM) from the managed host and
    returns what it found. The steps run in this order; the first that fails ends the probe, and the failure
    names the step, the URL, the HTTP status and the start of the body that came back.
  - C(health) - C(GET /health) until it answers 200. C(llama-server) answers 503 while it loads the model, and
    refuses connections before it listens; both are waited through, every O(interval) seconds, for at most
    O(health_timeout) seconds. Any other 4xx answer fails at once.
  - C(models) - C(GET /v1/models), with the key, must list O(model) (as an C(id) or one of its C(aliases)).
  - C(unauthorized) - when O(check_unauthorized=true) and O(api_key) is set, a chat completion request
    (C(max_tokens=1)) sent B(without) the key must be refused with 401 (or 403). The completion endpoint is
    checked rather than C(/v1/models) because C(llama-server) serves C(/health) and the model listings to
    anyone even with C(--api-key). Then each of O(unauthorized_routes) must answer 401 (or 403) to a C(GET) without
    the key.
  - C(chat) - C(POST /v1/chat/completions), not streamed, C(temperature=0), must return a choice with some
    content (or reasoning content).
  - C(stream) - the same request streamed as server-sent events, asking for a usage chunk, with C(ignore_eos) and a
    stop string no answer contains (in place of the service's own, C(stop)), so that it decodes O(max_tokens)
    tokens however short the model's answer would be. Measures the time
    to the first token (the first chunk whose delta carries text) and the decode speed seen by the client,
    (completion tokens - 1) / (time of the last token - time of the first). The completion tokens are taken
    from the usage chunk, or counted as chunks when the server sends none. The server's own figures
    (the C(timings) object of C(llama-server)) are returned as they came.
  - Uses only the Python standard library on the managed host. Changes nothing, so it reports RV(ignore:changed=false)
    and runs in check mode too.
  - The API key is sent only in the C(Authorization) header and never returned.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: The probe only reads, so it runs in check mode as well.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  base_url:
    description:
      - Root URL of the server, without C(/v1), for example V(http://127.0.0.1:8080).
      - A trailing C(/v1) is removed, with a warning.
    type: str
    required: true
  api_key:
    description:
      - "The server's API key, sent as C(Authorization: Bearer KEY)."
      - Without it no C(Authorization) header is sent and the C(unauthorized) step is skipped.
    type: str
  model:
    description:
      - The model name the server must serve, as C(/v1/models) lists it (C(llama-server --alias), vLLM
        C(--served-model-name)). Also sent as C(model) in the completion requests.
    type: str
    required: true
  health_timeout:
    description:
      - Seconds to wait for C(/health) to answer 200 (loading a large model takes minutes).
    type: int
    default: 300
  interval:
    description:
      - Seconds between two C(/health) requests.
    type: float
    default: 1.0
  request_timeout:
    description:
      - Seconds one request may take; for the streamed completion, the whole stream.
    type: int
    default: 120
  prompt:
    description:
      - The user message of the chat completion requests.
    type: str
    default: Write a haiku about GPUs.
  max_tokens:
    description:
      - C(max_tokens) of the chat completion requests. At least 2 are needed to measure a decode speed.
    type: int
    default: 64
  check_unauthorized:
    description:
      - Check that a request without O(api_key) is refused. Skipped when O(api_key) is not set.
    type: bool
    default: true
  unauthorized_routes:
    description:
      - Paths that must answer 401 (or 403) to a C(GET) without the key, in the C(unauthorized) step, for example
        C(/metrics) and C(/health) behind a reverse proxy that guards every route. Checked only when the
        C(unauthorized) step runs.
    type: list
    elements: str
    default: []
    version_added: 0.1.0
  steps:
    description:
      - The steps to run, always in the order above. V([health, models, unauthorized]) generates nothing - a cheap
        check that the server answers at O(base_url), serves O(model) and guards it (the verify role's probe of a
        published address from the controller).
    type: list
    elements: str
    choices: [health, models, unauthorized, chat, stream]
    default: [health, models, unauthorized, chat, stream]
    version_added: 0.2.0
  validate_certs:
    description:
      - Verify the server's TLS certificate for C(https) URLs.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of the certificates that verify the server's (a private CA, or a self-signed certificate
        itself), instead of the system's CA store. Used when O(validate_certs) is true.
    type: path
    version_added: 0.1.0
  use_proxy:
    description:
      - Use the proxy named by the C(http_proxy) and C(https_proxy) environment variables of the managed host
        (C(no_proxy) exempts hosts from it).
    type: bool
    default: true
  headers:
    description:
      - Extra HTTP headers for every request. C(Authorization) and C(X-Api-Key) among them are left out of the
        C(unauthorized) request; O(api_key), when set, replaces C(Authorization).
      - The headers are treated as secrets (they carry C(Authorization) and proxy tokens) - Ansible masks every
        value of them wherever it appears in the output of the task.
    type: dict
    default: {}
notes:
  - The figures are measured from the managed host, over one request each, with a short prompt. They tell that
    the endpoint works and roughly how fast; they are not a benchmark.
seealso:
  - name: llama.cpp HTTP server
    description: The endpoints, C(--api-key), and the C(timings) object of C(llama-server).
    link: https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
  - name: OpenAI chat completions streaming
    description: The chunk format, and the usage chunk that C(stream_options.include_usage) asks for.
    link: https://platform.openai.com/docs/api-reference/chat-streaming
"""

EXAMPLES = r"""
- name: Check the local llama-server and measure it
  gpufleet.inference.inference_probe:
    base_url: http://127.0.0.1:8080
    api_key: "{{ llama_server_api_key }}"
    model: gemma-3-270m
    health_timeout: 300
    max_tokens: 64
    prompt: Write a haiku about GPUs.
  register: probe

- name: Show what a report shows
  ansible.builtin.debug:
    msg: >-
      {{ probe.model }}: first token after {{ probe.ttft_ms }} ms,
      {{ probe.tokens_per_second }} tokens/s
      (server: {{ probe.stream.server_timings.predicted_per_second | default('n/a') }})

- name: An endpoint without a key, behind a proxy that wants its own header
  gpufleet.inference.inference_probe:
    base_url: https://llm.example.internal
    model: Qwen/Qwen3-8B
    headers:
      X-Proxy-Token: "{{ proxy_token }}"
    health_timeout: 30
"""

RETURN = r"""
base_url:
  description: The server root that was probed.
  returned: always
  type: str
  sample: http://127.0.0.1:8080
model:
  description: The model name that was asked for.
  returned: always
  type: str
  sample: gemma-3-270m
health:
  description: How the C(health) step ended.
  returned: success
  type: dict
  contains:
    status:
      description: The final HTTP status, 200.
      type: int
      sample: 200
    waited_seconds:
      description: Seconds from the first C(/health) request to the 200 answer.
      type: float
      sample: 12.04
    attempts:
      description: How many C(/health) requests were sent.
      type: int
      sample: 13
    body:
      description: The final body, parsed when it is JSON.
      type: raw
      sample: {"status": "ok"}
models:
  description: The C(id) of each model that C(/v1/models) listed.
  returned: success
  type: list
  elements: str
  sample: ["gemma-3-270m"]
unauthorized_status:
  description: The HTTP status of the request sent without the key; V(null) when that step was skipped.
  returned: success
  type: int
  sample: 401
unauthorized_routes:
  description: The HTTP status of each of O(unauthorized_routes) asked for without the key.
  returned: success
  type: dict
  sample: {"/metrics": 401, "/health": 401}
chat:
  description: The non-streamed completion.
  returned: success
  type: dict
  contains:
    content:
      description: The text of the first choice.
      type: str
      sample: "Silicon rivers flow..."
    reasoning_content:
      description: The model's reasoning, for models and servers that return it separately; else empty.
      type: str
      sample: ""
    model:
      description: The C(model) field of the answer (behind lanes, the lane that answered).
      type: str
      sample: gemma-3-270m
    finish_reason:
      description: Why the generation stopped, V(stop) or V(length).
      type: str
      sample: stop
    prompt_tokens:
      description: C(usage.prompt_tokens), V(null) when the server sent no usage.
      type: int
      sample: 14
    completion_tokens:
      description: C(usage.completion_tokens), V(null) when the server sent no usage.
      type: int
      sample: 17
    elapsed_ms:
      description: Wall time of the request, in milliseconds.
      type: float
      sample: 412.3
stream:
  description: The streamed completion and what was measured on it.
  returned: success
  type: dict
  contains:
    ttft_ms:
      description: Milliseconds from sending the request to the first chunk that carried text.
      type: float
      sample: 48.2
    completion_tokens:
      description: Tokens generated, from the usage chunk, else the number of chunks that carried text.
      type: int
      sample: 17
    completion_tokens_source:
      description: Where RV(stream.completion_tokens) came from, V(usage) or V(chunks).
      type: str
      sample: usage
    prompt_tokens:
      description: C(usage.prompt_tokens) of the usage chunk, V(null) without one.
      type: int
      sample: 14
    content_chunks:
      description: How many chunks carried text.
      type: int
      sample: 17
    tokens_per_second:
      description:
        - Decode speed seen by the client, (completion tokens - 1) / (last token time - first token time).
        - V(null) when fewer than two tokens came.
      type: float
      sample: 181.5
    decode_ms:
      description: Milliseconds from the first to the last chunk that carried text.
      type: float
      sample: 88.2
    elapsed_ms:
      description: Wall time of the whole streamed request, in milliseconds.
      type: float
      sample: 140.9
    finish_reason:
      description: The C(finish_reason) of the final chunk.
      type: str
      sample: stop
    done:
      description: "Whether the stream ended with C(data: [DONE])."
      type: bool
      sample: true
    content:
      description: The streamed text, joined.
      type: str
      sample: "Silicon rivers flow..."
    reasoning_content:
      description: The streamed reasoning, joined; empty for most models.
      type: str
      sample: ""
    server_timings:
      description:
        - The C(timings) object C(llama-server) adds to its last chunk, as it came
          (C(prompt_n), C(prompt_ms), C(prompt_per_second), C(predicted_n), C(predicted_ms),
          C(predicted_per_second), ...); V(null) from servers that send none.
      type: dict
      sample: {"prompt_n": 14, "prompt_per_second": 1450.2, "predicted_n": 17, "predicted_per_second": 190.3}
ttft_ms:
  description: Same as RV(stream.ttft_ms).
  returned: success
  type: float
  sample: 48.2
tokens_per_second:
  description: Same as RV(stream.tokens_per_second).
  returned: success
  type: float
  sample: 181.5
step:
  description: The step that failed, V(health), V(models), V(unauthorized), V(chat) or V(stream).
  returned: failure
  type: str
  sample: health
url:
  description: The URL of the request that failed.
  returned: failure
  type: str
  sample: http://127.0.0.1:8080/health
status:
  description: The HTTP status of the failed request; V(null) when no answer came.
  returned: failure
  type: int
  sample: 503
error:
  description: Why no answer came (for example V(connection refused), V(timed out)); V(null) when one came.
  returned: failure
  type: str
  sample: "connection refused ([Errno 111] Connection refused)"
  version_added: 0.2.0
body:
  description: The start of the body that came back.
  returned: failure
  type: str
  sample: '{"error":{"message":"Loading model","type":"unavailable_error","code":503}}'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.inference.plugins.module_utils._http_probe import (
    DEFAULT_PROMPT,
    STEPS,
    InferenceProbe,
    ProbeError,
)


def check_params(module):
    """Validate what the argument spec cannot; return the normalized base URL."""
    params = module.params
    base_url = params["base_url"].strip().rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        module.fail_json(msg=f"base_url must be an http:// or https:// URL, not {base_url!r}")
    if base_url.endswith("/v1"):
        base_url = base_url[:-3]
        module.warn(f"base_url is the server root; the trailing /v1 was removed ({base_url})")
    limits = (
        ("health_timeout", params["health_timeout"] >= 0, "0 or more"),
        ("interval", params["interval"] > 0, "more than 0"),
        ("request_timeout", params["request_timeout"] >= 1, "1 or more"),
        ("max_tokens", params["max_tokens"] >= 1, "1 or more"),
    )
    for name, ok, wanted in limits:
        if not ok:
            module.fail_json(msg=f"{name} must be {wanted}, not {params[name]}")
    return base_url


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            model=dict(type="str", required=True),
            health_timeout=dict(type="int", default=300),
            interval=dict(type="float", default=1.0),
            request_timeout=dict(type="int", default=120),
            prompt=dict(type="str", default=DEFAULT_PROMPT),
            max_tokens=dict(type="int", default=64, no_log=False),  # a count of tokens, not a secret
            check_unauthorized=dict(type="bool", default=True),
            unauthorized_routes=dict(type="list", elements="str", default=[]),
            steps=dict(type="list", elements="str", choices=list(STEPS), default=list(STEPS)),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            use_proxy=dict(type="bool", default=True),
            headers=dict(type="dict", default={}, no_log=True),  # Authorization, proxy tokens
        ),
        supports_check_mode=True,
    )
    params = module.params
    probe = InferenceProbe(
        check_params(module),
        api_key=params["api_key"],
        request_timeout=params["request_timeout"],
        validate_certs=params["validate_certs"],
        headers=params["headers"],
        use_proxy=params["use_proxy"],
        ca_path=params["ca_path"],
    )
    try:
        result = probe.run(
            params["model"],
            health_timeout=params["health_timeout"],
            interval=params["interval"],
            prompt=params["prompt"],
            max_tokens=params["max_tokens"],
            check_unauthorized=params["check_unauthorized"],
            unauthorized_routes=params["unauthorized_routes"],
            steps=params["steps"],
        )
    except ProbeError as exc:
        module.fail_json(msg=str(exc), step=exc.step, url=exc.url, status=exc.status, body=exc.body, error=exc.error,
                         **probe.result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for llama.cpp's ``llama-server``, speaking its HTTP the way it does.

Standard library only, so that it also runs on a bare Debian host. What it
imitates (llama.cpp ``tools/server``: ``server-http.cpp``, ``server-task.cpp``):

* ``GET /health`` (and ``/v1/health``): ``503`` with
  ``{"error":{"message":"Loading model","type":"unavailable_error","code":503}}``
  while the "model loads", then ``200`` ``{"status":"ok"}``. Every other path
  but the model listings answers the same ``503`` while loading; the listings
  are served during loading, as llama-server does.
* ``GET /v1/models`` (and ``/models``): ``{"object":"list","data":[{"id":...,
  "object":"model","owned_by":"llamacpp",...}]}``.
* ``POST /v1/chat/completions``, plain and streamed (``"stream": true``):
  server-sent events ``data: {...}`` with ``choices[0].delta``; a first chunk
  with ``{"role":"assistant","content":null}``, one chunk per token, a chunk
  with ``finish_reason``, a usage chunk with empty ``choices`` when
  ``stream_options.include_usage`` is set, llama.cpp's ``timings`` on the last
  chunk, then ``data: [DONE]``.
* ``--api-key``: a request without ``Authorization: Bearer KEY`` (or
  ``X-Api-Key: KEY``) gets ``401``
  ``{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}``.
  llama-server leaves ``/health``, ``/v1/health``, ``/models``, ``/v1/models``,
  ``/api/tags`` and ``/`` open even then; ``public_models=False`` protects the
  model listings too, as vLLM does.

In pytest::

    with FakeLlamaServer(api_key="k", loading_requests=2, token_delay=0.01) as server:
        server.base_url  # http://127.0.0.1:PORT

From a shell (``--help`` lists every option)::

    python3 tests/support/fake_openai.py --port 8080 --api-key secret --model gemma-3-270m
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_MODEL = "gemma-3-270m"
DEFAULT_REPLY = "Silicon rivers flow, tensors bloom in parallel, fans hum through the night."
BUILD_INFO = "b0-fake_openai"

PUBLIC_PATHS = frozenset({"/health", "/v1/health", "/models", "/v1/models", "/api/tags", "/"})
MODEL_PATHS = frozenset({"/models", "/v1/models", "/api/tags"})
HEALTH_PATHS = frozenset({"/health", "/v1/health"})
CHAT_PATHS = frozenset({"/chat/completions", "/v1/chat/completions"})


def error_body(code, message, kind):
    """llama-server's error object (``format_error_response``): message, type, code."""
    return {"error": {"message": message, "type": kind, "code": code}}


def split_tokens(text):
    """Cut ``text`` into "tokens": each word with the whitespace before it."""
    return re.findall(r"\s*\S+", text or "")


class FakeLlamaServer:
    """An OpenAI-compatible server on 127.0.0.1 that behaves like llama-server.

    :param api_key: the key requests must carry; ``None`` serves everyone (no ``--api-key``).
    :param enforce_key: ``False`` accepts requests without the key even when ``api_key`` is set
        (an endpoint left open by mistake).
    :param public_models: llama-server serves the model listings without a key; ``False`` protects them.
    :param models: the ids ``/v1/models`` lists.
    :param loading_seconds: ``/health`` answers 503 until this long after start...
    :param loading_requests: ...and for this many ``/health`` requests.
    :param reply: the completion's text, split into one token per word.
    :param reasoning: text sent as ``reasoning_content`` before the reply.
    :param first_token_delay: seconds before the first token (prompt processing).
    :param load_delay: seconds the model takes to load on the first chat completion, as a lane or llama.cpp's
        router loads one on demand: every chat completion waits until then.
    :param token_delay: seconds between two tokens.
    :param stream_usage: honour ``stream_options.include_usage``; ``False`` ignores it.
    :param timings: add llama.cpp's ``timings`` object.
    :param tls: ``(certificate file, key file)``: speak HTTPS with them, as a TLS front does.
    """

    def __init__(self, host="127.0.0.1", port=0, api_key=None, enforce_key=True, public_models=True,
                 models=(DEFAULT_MODEL,), loading_seconds=0.0, loading_requests=0, reply=DEFAULT_REPLY,
                 reasoning="", first_token_delay=0.0, token_delay=0.0, stream_usage=True, timings=True,
                 tls=None, load_delay=0.0):
        self.host = host
        self.port = port
        self.api_key = api_key
        self.enforce_key = enforce_key
        self.public_models = public_models
        self.models = list(models)
        self.loading_seconds = loading_seconds
        self.loading_requests = loading_requests
        self.reply = reply
        self.reasoning = reasoning
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.stream_usage = stream_usage
        self.timings = timings
        self.tls = tls
        self.load_delay = load_delay
        self._loaded_at = None  # monotonic time the model is loaded, from the first chat completion
        self.requests = []  # (method, path, headers with lower-case names, parsed JSON body or None)
        self._lock = threading.Lock()
        self._loading_answers = 0
        self._started = None
        self._httpd = None
        self._thread = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def base_url(self):
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self):
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llama-server", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def serve_forever(self):
        """Block until interrupted (the CLI), starting the server first if needed."""
        if self._httpd is None:
            self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    # -- behaviour ----------------------------------------------------------------------------

    def ready(self, counting_health=False):
        """Whether the "model" has loaded; a health request answered while loading counts towards it."""
        with self._lock:
            loaded = (time.monotonic() - self._started >= self.loading_seconds
                      and self._loading_answers >= self.loading_requests)
            if not loaded and counting_health:
                self._loading_answers += 1
            return loaded

    def loading_left(self):
        """Seconds until the model is loaded: ``load_delay`` from the first chat completion (which starts it)."""
        with self._lock:
            if self._loaded_at is None:
                self._loaded_at = time.monotonic() + self.load_delay
            return max(0.0, self._loaded_at - time.monotonic())

    def authorized(self, headers):
        if self.api_key is None or not self.enforce_key:
            return True
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[len("Bearer "):] == self.api_key:
            return True
        return headers.get("x-api-key", "") == self.api_key

    def record(self, method, path, headers, body):
        with self._lock:
            self.requests.append((method, path, headers, body))

    def paths(self, method=None):
        """The paths requested so far, in order (optionally only those of one method)."""
        with self._lock:
            return [p for m, p, _h, _b in self.requests if method in (None, m)]

    def models_body(self):
        created = int(time.time())
        return {
            "models": [{"name": m, "model": m, "modified_at": "", "size": "", "digest": "", "type": "model",
                        "description": "", "tags": [""], "capabilities": ["completion"], "parameters": "",
                        "details": {"parent_model": "", "format": "gguf", "family": "", "families": [""],
                                    "parameter_size": "", "quantization_level": ""}} for m in self.models],
            "object": "list",
            "data": [{"id": m, "object": "model", "created": created, "owned_by": "llamacpp",
                      "meta": {"vocab_type": 1, "n_vocab": 262144, "n_ctx_train": 32768, "n_embd": 640,
                               "n_params": 268098176, "size": 291565056}} for m in self.models],
        }


class _Handler(BaseHTTPRequestHandler):
    """One request; ``fake`` (the FakeLlamaServer) is set on a subclass by ``start()``."""

    fake = None  # type: FakeLlamaServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one small write per token: do not let them wait for ACKs

    def version_string(self):
        return "llama.cpp"  # cpp-httplib's Server header as llama-server sets it

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """Quiet: tests read ``FakeLlamaServer.requests`` instead."""

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self):
        return {k.lower(): v for k, v in self.headers.items()}

    def _send_json(self, status, obj):
        data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _write_chunk(self, text):
        data = text.encode("utf-8")
        self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")

    def _sse(self, obj):
        self._write_chunk("data: " + (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))) + "\n\n")

    def _route(self, method):
        fake = self.fake
        path = self.path.split("?", 1)[0]
        headers = self._headers()
        body = None
        length = int(headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                fake.record(method, path, headers, None)
                self._send_json(400, error_body(400, f"Failed to parse JSON: {exc}", "invalid_request_error"))
                return
        fake.record(method, path, headers, body)

        # llama-server's pre-routing middlewares: server state first, then the API key.
        if not fake.ready(counting_health=path in HEALTH_PATHS) and path not in MODEL_PATHS:
            self._send_json(503, error_body(503, "Loading model", "unavailable_error"))
            return
        public = path in PUBLIC_PATHS and (fake.public_models or path not in MODEL_PATHS)
        if not public and not fake.authorized(headers):
            self._send_json(401, error_body(401, "Invalid API Key", "authentication_error"))
            return

        if method == "GET" and path in HEALTH_PATHS:
            self._send_json(200, {"status": "ok"})
        elif method == "GET" and path in MODEL_PATHS:
            self._send_json(200, fake.models_body())
        elif method == "POST" and path in CHAT_PATHS:
            self._chat(body)
        else:
            self._send_json(404, error_body(404, "File Not Found", "not_found_error"))

    # -- chat completions ---------------------------------------------------------------------

    def _chat(self, body):
        fake = self.fake
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            self._send_json(400, error_body(400, "'messages' is required and must be a non-empty array",
                                            "invalid_request_error"))
            return
        prompt_text = " ".join(str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict))
        n_prompt = max(1, len(split_tokens(prompt_text)))
        max_tokens = body.get("max_tokens", body.get("n_predict", -1))
        pieces = [("reasoning_content", t) for t in split_tokens(fake.reasoning)]
        pieces += [("content", t) for t in split_tokens(fake.reply)]
        finish_reason = "stop"
        if isinstance(max_tokens, int) and 0 <= max_tokens < len(pieces):
            pieces = pieces[:max_tokens]
            finish_reason = "length"
        model = body.get("model") or (fake.models[0] if fake.models else "")
        cmpl_id = "chatcmpl-" + uuid.uuid4().hex[:32]
        time.sleep(fake.loading_left())
        if body.get("stream"):
            include_usage = fake.stream_usage and bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(pieces, finish_reason, model, cmpl_id, n_prompt, include_usage)
        else:
            self._complete(pieces, finish_reason, model, cmpl_id, n_prompt)

    def _timings(self, n_prompt, n_predicted, prompt_s, predicted_s):
        prompt_ms = prompt_s * 1000.0
        predicted_ms = predicted_s * 1000.0
        return {
            "cache_n": 0,
            "prompt_n": n_prompt,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / n_prompt if n_prompt else 0.0,
            "prompt_per_second": 1000.0 * n_prompt / prompt_ms if prompt_ms > 0 else 0.0,
            "predicted_n": n_predicted,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / n_predicted if n_predicted else 0.0,
            "predicted_per_second": 1000.0 * n_predicted / predicted_ms if predicted_ms > 0 else 0.0,
        }

    @staticmethod
    def _usage(n_prompt, n_predicted):
        return {"completion_tokens": n_predicted, "prompt_tokens": n_prompt, "total_tokens": n_prompt + n_predicted,
                "prompt_tokens_details": {"cached_tokens": 0}}

    def _complete(self, pieces, finish_reason, model, cmpl_id, n_prompt):
        fake = self.fake
        start = time.monotonic()
        time.sleep(fake.first_token_delay)
        prompt_s = time.monotonic() - start
        time.sleep(fake.token_delay * max(len(pieces) - 1, 0))
        predicted_s = time.monotonic() - start - prompt_s
        message = {"role": "assistant", "content": "".join(t for k, t in pieces if k == "content")}
        reasoning = "".join(t for k, t in pieces if k == "reasoning_content")
        if reasoning:
            message["reasoning_content"] = reasoning
        result = {
            "choices": [{"finish_reason": finish_reason, "index": 0, "message": message}],
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": BUILD_INFO,
            "object": "chat.completion",
            "usage": self._usage(n_prompt, len(pieces)),
            "id": cmpl_id,
        }
        if fake.timings:
            result["timings"] = self._timings(n_prompt, len(pieces), prompt_s, predicted_s)
        self._send_json(200, result)

    def _stream(self, pieces, finish_reason, model, cmpl_id, n_prompt, include_usage):
        fake = self.fake
        created = int(time.time())

        def chunk(choices, **extra):
            obj = {"choices": choices, "created": created, "id": cmpl_id, "model": model,
                   "system_fingerprint": BUILD_INFO, "object": "chat.completion.chunk"}
            obj.update(extra)
            return obj

        def delta(value):
            return [{"finish_reason": None, "index": 0, "delta": value}]

        start = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(fake.first_token_delay)
        prompt_s = time.monotonic() - start
        # llama-server's first partial result: the role, then the first token's diff.
        self._sse(chunk(delta({"role": "assistant", "content": None})))
        for i, (kind, text) in enumerate(pieces):
            if i:
                time.sleep(fake.token_delay)
            self._sse(chunk(delta({kind: text})))
        predicted_s = time.monotonic() - start - prompt_s
        final = [chunk([{"finish_reason": finish_reason, "index": 0, "delta": {}}])]
        if include_usage:
            final.append(chunk([], usage=self._usage(n_prompt, len(pieces))))
        if fake.timings:
            final[-1]["timings"] = self._timings(n_prompt, len(pieces), prompt_s, predicted_s)
        for obj in final:
            self._sse(obj)
        self._sse("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    # -- verbs --------------------------------------------------------------------------------

    def do_GET(self):  # pylint: disable=invalid-name
        self._route("GET")

    def do_POST(self):  # pylint: disable=invalid-name
        self._route("POST")


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake llama-server (OpenAI-compatible HTTP API) for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--api-key", help="require this key (Authorization: Bearer KEY)")
    parser.add_argument("--no-enforce-key", action="store_true", help="accept requests without the key anyway")
    parser.add_argument("--protect-models", action="store_true", help="require the key for /v1/models too (like vLLM)")
    parser.add_argument("--model", action="append", dest="models", help="a served model id (repeatable)")
    parser.add_argument("--loading-seconds", type=float, default=0.0, help="answer 503 to /health this long")
    parser.add_argument("--loading-requests", type=int, default=0, help="answer 503 to this many /health requests")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="the completion text, one token per word")
    parser.add_argument("--reasoning", default="", help="reasoning_content sent before the reply")
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds (default: %(default)s)")
    parser.add_argument("--token-delay", type=float, default=0.05, help="seconds (default: %(default)s)")
    parser.add_argument("--no-usage", action="store_true", help="ignore stream_options.include_usage")
    parser.add_argument("--no-timings", action="store_true", help="leave out llama.cpp's timings object")
    args = parser.parse_args(argv)
    server = FakeLlamaServer(
        host=args.host, port=args.port, api_key=args.api_key, enforce_key=not args.no_enforce_key,
        public_models=not args.protect_models, models=args.models or [DEFAULT_MODEL],
        loading_seconds=args.loading_seconds, loading_requests=args.loading_requests, reply=args.reply,
        reasoning=args.reasoning, first_token_delay=args.first_token_delay, token_delay=args.token_delay,
        stream_usage=not args.no_usage, timings=not args.no_timings,
    )
    server.start()
    print(f"fake llama-server listening on {server.base_url} (Ctrl-C stops it)", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Probe an OpenAI-compatible LLM endpoint (llama.cpp's llama-server, vLLM) over plain HTTP.

Standard library plus ``ansible.module_utils.urls`` only, so that the module
runs on a bare host. The steps, in order:

1. ``health`` - ``GET /health`` until it answers 200 (llama-server answers 503
   while it loads the model, and refuses connections before it listens).
2. ``models`` - ``GET /v1/models`` (with the key) must list the model.
3. ``unauthorized`` - a chat completion request *without* the key must be refused
   with 401 (or 403). llama-server leaves ``/v1/models`` open to everyone even
   with ``--api-key`` (``server-http.cpp``: ``public_endpoints``), so a request
   there proves nothing; the completion endpoint is what must be protected.
4. ``chat`` - a non-streamed chat completion must return some content.
5. ``stream`` - the same request streamed (server-sent events): time to first
   token, decode speed, and llama.cpp's own ``timings`` when it sends them.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, make_context

BODY_LIMIT = 500  # characters of a response body quoted in a failure message
MAX_BODY = 16 * 1024 * 1024  # bytes read from a non-streamed response at most
MAX_LINE = 1024 * 1024  # bytes of one line of an event stream at most
DEFAULT_PROMPT = "Write a haiku about GPUs."
# A stop string no answer contains: it stands in for the service's default ones while decoding is measured.
NO_STOP = "<|gpufleet-probe: no stop|>"
REDACTED = "********"
AUTH_HEADERS = ("authorization", "x-api-key")
STEPS = ("health", "models", "unauthorized", "chat", "stream")


class ProbeError(Exception):
    """A step failed: what was asked (``method``, ``url``) and what came back (``status``, ``body``) or ``error``."""

    def __init__(self, step, reason, method=None, url=None, status=None, body=None, error=None):
        super().__init__(reason)
        self.step = step
        self.reason = reason
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        self.error = error

    def __str__(self):
        msg = f"{self.step} step failed: {self.reason}"
        if self.url:
            msg += f" [{self.method or 'GET'} {self.url}"
            if self.status is not None:
                msg += f" -> HTTP {self.status}"
                if self.body:
                    msg += f": {self.body}"
            elif self.error:
                msg += f" -> {self.error}"
            msg += "]"
        return msg


def truncate(text, limit=BODY_LIMIT):
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    text = to_text(text, errors="surrogate_or_replace") if text is not None else ""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def parse_json(data):
    """The JSON value in ``data`` (bytes or text), or ``None`` when it is not JSON."""
    try:
        return json.loads(to_text(data, errors="surrogate_or_replace"))
    except ValueError:
        return None


def describe_error(exc):
    """A short description of a failure to connect or to read."""
    reason = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"timed out ({to_native(reason) or 'no answer'})"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused ({to_native(reason)})"
    text = to_native(reason)
    return f"{type(reason).__name__}: {text}" if text else type(reason).__name__


def ms(seconds):
    return round(seconds * 1000.0, 1)


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder (the parts of the WHATWG rules an LLM stream uses).

    Feed it one line at a time; it returns ``(event, data)`` when a blank line ends an event,
    else ``None``. llama-server reports an error inside a stream as an ``error: {...}`` line;
    that comes back as an event named ``error``.
    """

    def __init__(self):
        self._event = ""
        self._data = []

    def feed(self, line):
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "error":
            self._event = "error"
            self._data.append(value)
        return None

    def close(self):
        """End of stream: the event in progress, if any (a server may omit the last blank line)."""
        return self._dispatch()

    def _dispatch(self):
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return event, "\n".join(data)


def chunk_text(container):
    """``(content, reasoning)`` of a chat ``message`` or stream ``delta``; either may be ``""``.

    llama-server and older vLLM put a model's thinking in ``reasoning_content``, newer vLLM in ``reasoning``.
    """
    if not isinstance(container, dict):
        return "", ""
    content = container.get("content")
    reasoning = container.get("reasoning_content")
    if not isinstance(reasoning, str) or not reasoning:
        reasoning = container.get("reasoning")
    return (content if isinstance(content, str) else ""), (reasoning if isinstance(reasoning, str) else "")


class StreamMeter:
    """Measure a streamed chat completion from its chunks and the time each arrived.

    ``started`` is the clock reading taken just before the request was sent.
    """

    def __init__(self, started):
        self.started = started
        self.first = None  # arrival of the first chunk carrying text
        self.last = None  # arrival of the last chunk carrying text
        self.content_chunks = 0
        self.content = []
        self.reasoning = []
        self.usage = None
        self.timings = None
        self.finish_reason = None
        self.done = False

    def add(self, chunk, now):
        """Account for one parsed chunk that arrived at ``now``."""
        if not isinstance(chunk, dict):
            return
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
        carried = False
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            content, reasoning = chunk_text(choice.get("delta"))
            if content:
                self.content.append(content)
            if reasoning:
                self.reasoning.append(reasoning)
            carried = carried or bool(content or reasoning)
        if carried:
            self.content_chunks += 1
            if self.first is None:
                self.first = now
            self.last = now

    def usage_count(self, key):
        value = (self.usage or {}).get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def summary(self, ended):
        """The figures: times in ms, decode speed in tokens/s (``None`` when it cannot be told)."""
        reported = self.usage_count("completion_tokens")
        completion_tokens = reported if reported is not None else self.content_chunks
        tokens_per_second = None
        if self.first is not None and completion_tokens > 1 and self.last > self.first:
            tokens_per_second = round((completion_tokens - 1) / (self.last - self.first), 2)
        return {
            "ttft_ms": ms(self.first - self.started) if self.first is not None else None,
            "completion_tokens": completion_tokens,
            "completion_tokens_source": "usage" if reported is not None else "chunks",
            "prompt_tokens": self.usage_count("prompt_tokens"),
            "content_chunks": self.content_chunks,
            "tokens_per_second": tokens_per_second,
            "decode_ms": ms(self.last - self.first) if self.first is not None else None,
            "elapsed_ms": ms(ended - self.started),
            "finish_reason": self.finish_reason,
            "done": self.done,
            "content": "".join(self.content),
            "reasoning_content": "".join(self.reasoning),
            "server_timings": self.timings,
        }


class Answer:
    """What one request got back: ``status`` and ``body`` (bytes), or ``error`` when nothing came back."""

    def __init__(self, method, url, status=None, body=b"", error=None, elapsed=0.0, response=None):
        self.method = method
        self.url = url
        self.status = status
        self.body = body
        self.error = error
        self.elapsed = elapsed
        self.response = response  # kept open for streams

    def json(self):
        return parse_json(self.body)


class InferenceProbe:
    """Run the probe's steps against ``base_url`` (the server root, without ``/v1``)."""

    def __init__(self, base_url, api_key=None, request_timeout=120, validate_certs=True, headers=None,
                 use_proxy=True, clock=time.monotonic, sleep=time.sleep, ca_path=None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.request_timeout = request_timeout
        self.extra_headers = dict(headers or {})
        self.clock = clock
        self.sleep = sleep
        self.result = {}
        # One TLS context for all requests: Request.open would load the CA bundle again each time,
        # tens of milliseconds that would count as time to first token.
        self._request = Request(
            context=make_context(cafile=ca_path or None, validate_certs=validate_certs),
            validate_certs=validate_certs,
            use_proxy=use_proxy,
            timeout=request_timeout,
            http_agent="gpufleet.inference.inference_probe",
            follow_redirects="safe",
            decompress=False,
            use_netrc=False,  # a ~/.netrc entry would replace the bearer token
        )

    # -- plumbing -----------------------------------------------------------------------------

    def url(self, path):
        return self.base_url + path

    def redact(self, value):
        """``value`` (text) with the API key blotted out, should a server echo it back."""
        if value is None:
            return None
        text = to_text(value, errors="surrogate_or_replace")
        if self.api_key:
            text = text.replace(self.api_key, REDACTED)
        return text

    def body_excerpt(self, answer):
        return self.redact(truncate(answer.body))

    def headers(self, auth=True, payload=False, stream=False):
        headers = {}
        for name, value in self.extra_headers.items():
            if not auth and str(name).lower() in AUTH_HEADERS:
                continue
            headers[str(name)] = str(value)
        headers.setdefault("Accept", "text/event-stream" if stream else "application/json")
        if payload:
            headers["Content-Type"] = "application/json"
        if auth and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def request(self, method, path, payload=None, auth=True, timeout=None, stream=False):
        """Send one request; never raises for HTTP statuses or network errors (see ``Answer``)."""
        url = self.url(path)
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        headers = self.headers(auth=auth, payload=payload is not None, stream=stream)
        started = self.clock()
        response = None
        try:
            response = self._request.open(method, url, data=data, headers=headers,
                                          timeout=timeout or self.request_timeout)
            status = response.getcode()
            if stream and status == 200:
                return Answer(method, url, status=status, elapsed=self.clock() - started, response=response)
            body = response.read(MAX_BODY)
        except HTTPError as exc:  # 4xx and 5xx: the answer is in the exception
            status = exc.code
            try:
                body = exc.read(MAX_BODY) if exc.fp is not None else b""
            except (OSError, http.client.HTTPException):
                body = b""
        except (UrlsConnectionError, URLError, OSError, http.client.HTTPException, ValueError) as exc:
            return Answer(method, url, error=self.redact(describe_error(exc)), elapsed=self.clock() - started)
        finally:
            if response is not None and not stream:
                response.close()
        return Answer(method, url, status=status, body=body, elapsed=self.clock() - started)

    def fail(self, step, reason, answer=None):
        if answer is None:
            raise ProbeError(step, self.redact(reason))
        raise ProbeError(step, self.redact(reason), method=answer.method, url=answer.url, status=answer.status,
                         body=self.body_excerpt(answer) if answer.status is not None else None,
                         error=answer.error)

    def fail_status(self, step, answer, expected="HTTP 200"):
        """Fail ``step`` for an answer that is not the one expected, saying what it probably means."""
        if answer.status is None:
            reason = f"no answer ({answer.error})"
        elif answer.status == 401 and self.api_key:
            reason = "the server refused the API key (HTTP 401); check api_key"
        elif answer.status in (401, 403):
            reason = f"the endpoint requires an API key (HTTP {answer.status}); set api_key"
        elif answer.status == 503:
            reason = "the server is not ready (HTTP 503)"
        else:
            reason = f"expected {expected}, got HTTP {answer.status}"
        self.fail(step, reason, answer)

    def chat_payload(self, model, prompt, max_tokens, stream=False):
        payload = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
            # The streamed request measures decoding: max_tokens tokens, whatever the model would say. Both engines
            # take ignore_eos; a request's own stop replaces a service's default stop strings (llama.cpp's
            # --reverse-prompt, which end a base model's answer after a few words).
            payload["ignore_eos"] = True
            payload["stop"] = [NO_STOP]
        return payload

    # -- steps --------------------------------------------------------------------------------

    def wait_healthy(self, timeout, interval):
        """Step 1: poll ``/health`` until it answers 200 or ``timeout`` seconds have passed."""
        started = self.clock()
        deadline = started + timeout
        attempts = 0
        while True:
            attempts += 1
            remaining = deadline - self.clock()
            answer = self.request("GET", "/health", timeout=max(0.1, min(self.request_timeout, remaining)))
            if answer.status == 200:
                body = answer.json()
                return {
                    "status": 200,
                    "waited_seconds": round(self.clock() - started, 2),
                    "attempts": attempts,
                    "body": body if body is not None else self.body_excerpt(answer),
                }
            if answer.status is not None and 400 <= answer.status < 500 and answer.status not in (408, 429):
                # Loading ends with 200; a 4xx will not change by waiting (wrong URL, a proxy refusing us).
                hint = " (base_url is the server root, without /v1)" if answer.status == 404 else ""
                self.fail("health", f"the health endpoint answered HTTP {answer.status}{hint}", answer)
            remaining = deadline - self.clock()
            if remaining <= 0:
                waited = self.clock() - started
                if answer.status is None:
                    last = "the last attempt could not connect"
                else:
                    last = f"the last answer was HTTP {answer.status}"
                self.fail("health", f"the server did not answer HTTP 200 within {timeout:g}s "
                                    f"({attempts} attempts over {waited:.1f}s; {last})", answer)
            self.sleep(min(interval, remaining))

    def list_models(self, model):
        """Step 2: ``/v1/models`` must list ``model`` (as an id, or as one of an entry's ``aliases``)."""
        answer = self.request("GET", "/v1/models")
        if answer.status != 200:
            self.fail_status("models", answer)
        listing = answer.json()
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            self.fail("models", "the answer is not an OpenAI model list (no 'data' array)", answer)
        ids = [entry["id"] for entry in data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]
        names = set(ids)
        for entry in data:
            aliases = entry.get("aliases") if isinstance(entry, dict) else None
            if isinstance(aliases, list):
                names.update(a for a in aliases if isinstance(a, str))
        if model not in names:
            served = ", ".join(repr(i) for i in ids) or "nothing"
            self.fail("models", f"the model {model!r} is not served; /v1/models lists {served}", answer)
        return ids

    def check_unauthorized(self, model):
        """Step 3: a completion request without the key must be refused (401, or 403)."""
        payload = self.chat_payload(model, "ping", 1)
        answer = self.request("POST", "/v1/chat/completions", payload=payload, auth=False)
        if answer.status in (401, 403):
            return answer.status
        if answer.status is not None and 200 <= answer.status < 300:
            reason = (f"the endpoint answered {answer.status} without an API key: "
                      "it is open to anyone who can reach it")
        elif answer.status is None:
            reason = f"expected HTTP 401 for a request without the API key, got no answer ({answer.error})"
        else:
            reason = f"expected HTTP 401 for a request without the API key, got HTTP {answer.status}"
        self.fail("unauthorized", reason, answer)
        return None  # not reached

    def check_routes(self, routes):
        """Step 3 too: each of ``routes`` (paths) must answer 401 (or 403) to a GET without the key.

        Returns the status of each route. A route that answers anything else fails the step, naming it: a reverse
        proxy in front of vLLM must keep ``/metrics``, ``/health`` and the rest closed, not only ``/v1``.
        """
        statuses = {}
        for route in routes:
            answer = self.request("GET", route, auth=False)
            statuses[route] = answer.status
            if answer.status not in (401, 403):
                got = f"HTTP {answer.status}" if answer.status is not None else f"no answer ({answer.error})"
                self.fail("unauthorized", f"{route} answered {got} without the API key; expected 401", answer)
        return statuses

    def chat(self, model, prompt, max_tokens):
        """Step 4: a plain chat completion must come back with some text."""
        answer = self.request("POST", "/v1/chat/completions", payload=self.chat_payload(model, prompt, max_tokens))
        if answer.status != 200:
            self.fail_status("chat", answer)
        reply = answer.json()
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            self.fail("chat", "the answer has no choices", answer)
        content, reasoning = chunk_text(choices[0].get("message"))
        if not content.strip() and not reasoning.strip():
            self.fail("chat", "the completion is empty (no content or reasoning_content)", answer)
        usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        return {
            "content": content,
            "reasoning_content": reasoning,
            # The model that answered, as the server names it: behind lanes, the lane that served the request.
            "model": reply.get("model"),
            "finish_reason": choices[0].get("finish_reason"),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "elapsed_ms": ms(answer.elapsed),
        }

    def stream(self, model, prompt, max_tokens):
        """Step 5: the same request streamed; measure time to first token and decode speed."""
        payload = self.chat_payload(model, prompt, max_tokens, stream=True)
        started = self.clock()
        answer = self.request("POST", "/v1/chat/completions", payload=payload, stream=True)
        if answer.status != 200:
            self.fail_status("stream", answer)
        meter = StreamMeter(started)
        decoder = SSEDecoder()
        deadline = started + self.request_timeout
        response = answer.response
        try:
            while not meter.done:
                try:
                    line = response.readline(MAX_LINE)
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    answer.error = self.redact(describe_error(exc))
                    self.fail("stream", "the connection failed while the answer was streamed", answer_no_status(answer))
                now = self.clock()
                event = decoder.feed(line) if line else decoder.close()
                if event is not None:
                    self.stream_event(event, meter, now, answer)
                if not line:
                    break
                if now > deadline:
                    answer.error = f"still streaming after {now - started:.1f}s"
                    self.fail("stream", f"the stream did not end within request_timeout ({self.request_timeout}s)",
                              answer_no_status(answer))
        finally:
            response.close()
        summary = meter.summary(self.clock())
        if not meter.content_chunks:
            self.fail("stream", "the stream carried no content (no delta with content or reasoning_content)",
                      Answer(answer.method, answer.url, status=200, body=summary_excerpt(summary)))
        return summary

    def stream_event(self, event, meter, now, answer):
        name, data = event
        if name == "error":
            self.fail("stream", "the server reported an error in the stream",
                      Answer(answer.method, answer.url, status=answer.status, body=data.encode("utf-8")))
        if data.strip() == "[DONE]":
            meter.done = True
            return
        chunk = parse_json(data)
        if chunk is None:
            self.fail("stream", "an event of the stream is not JSON",
                      Answer(answer.method, answer.url, status=answer.status, body=data.encode("utf-8")))
        if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
            self.fail("stream", "the server reported an error in the stream",
                      Answer(answer.method, answer.url, status=answer.status, body=data.encode("utf-8")))
        meter.add(chunk, now)

    # -- all of it ----------------------------------------------------------------------------

    def run(self, model, health_timeout=300, interval=1.0, prompt=DEFAULT_PROMPT, max_tokens=64,
            check_unauthorized=True, unauthorized_routes=(), steps=STEPS):
        """Run ``steps`` (every step by default) in their order; ``self.result`` holds what was found so far when
        one raises ``ProbeError``. Without ``chat`` and ``stream`` nothing is generated: a check that the server
        answers, serves the model and guards it, cheap enough for every run."""
        self.result = {
            "base_url": self.base_url,
            "model": model,
            "health": None,
            "models": None,
            "unauthorized_status": None,
            "unauthorized_routes": {},
            "chat": None,
            "stream": None,
            "ttft_ms": None,
            "tokens_per_second": None,
        }
        if "health" in steps:
            self.result["health"] = self.wait_healthy(health_timeout, interval)
        if "models" in steps:
            self.result["models"] = self.list_models(model)
        if "unauthorized" in steps and check_unauthorized and self.api_key:
            self.result["unauthorized_status"] = self.check_unauthorized(model)
            self.result["unauthorized_routes"] = self.check_routes(unauthorized_routes)
        if "chat" in steps:
            self.result["chat"] = self.chat(model, prompt, max_tokens)
        if "stream" not in steps:
            return self.result
        stream = self.stream(model, prompt, max_tokens)
        self.result["stream"] = stream
        self.result["ttft_ms"] = stream["ttft_ms"]
        self.result["tokens_per_second"] = stream["tokens_per_second"]
        return self.result


def answer_no_status(answer):
    """The answer of a stream that broke off: the status line came, the body did not."""
    return Answer(answer.method, answer.url, error=answer.error)


def summary_excerpt(summary):
    keys = ("finish_reason", "done", "content_chunks", "completion_tokens")
    return json.dumps({k: summary[k] for k in keys}).encode("utf-8")

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A multi-client load test of an OpenAI-compatible endpoint, and its statistics.

N clients (threads), each sending M streamed chat completions one after the other, all clients at once. Each
request is measured as the probe measures its streamed answer (``_http_probe.InferenceProbe.stream``): time to
first token, completion tokens, decode speed. The test's figures are:

* aggregate completion tokens/s: the completion tokens of every request that completed ÷ the wall time from the
  first request sent to the last answer ended - what the endpoint delivers to all clients together;
* time to first token per request, its 50th and 95th percentile (linear interpolation between the closest ranks,
  as ``numpy.percentile`` does by default), mean, minimum and maximum;
* requests/s, the per-stream decode speed (median), and the errors (a request that failed counts once, with its
  message; the figures are of the requests that completed).

Warm-up requests, sent one at a time before the clients start, are not measured: a model that a server loads on its
first request (a lane, llama.cpp's router) or a first request that compiles would otherwise be counted as serving
time. How long they took is in the result (``warmup_s``: for a lane, mostly the time to switch to it).

Standard library only, like the probe, so that it runs on a bare host.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.gpufleet.inference.plugins.module_utils._http_probe import InferenceProbe, ProbeError

ERROR_SAMPLES = 5  # distinct error messages kept in the result


def percentile(values, fraction):
    """The ``fraction`` (0..1) percentile of ``values``, interpolated linearly between the closest ranks;
    ``None`` for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be from 0 to 1, not %r" % (fraction,))
    rank = (len(ordered) - 1) * fraction
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value, digits=1):
    return None if value is None else round(value, digits)


def distribution(values, digits=1):
    """p50, p95, mean, min and max of ``values`` (``None`` each when there are none)."""
    values = [value for value in values if value is not None]
    return {
        "p50": _round(percentile(values, 0.50), digits),
        "p95": _round(percentile(values, 0.95), digits),
        "mean": _round(sum(values) / len(values), digits) if values else None,
        "min": _round(min(values), digits) if values else None,
        "max": _round(max(values), digits) if values else None,
    }


def summarize(samples, errors, started, ended, clients, requests_per_client, warmup_requests=0, warmup_s=0.0):
    """The test's figures from the completed requests' ``samples`` (the probe's stream summaries), the ``errors``
    (messages of the requests that failed) and the wall time ``started``..``ended`` (seconds); the warm-up's
    requests and seconds as given."""
    wall = max(ended - started, 1e-9)
    tokens = sum(sample.get("completion_tokens") or 0 for sample in samples)
    distinct = []
    for message in errors:
        if message not in distinct:
            distinct.append(message)
    return {
        "clients": clients,
        "requests_per_client": requests_per_client,
        "requests": clients * requests_per_client,
        "completed": len(samples),
        "errors": len(errors),
        "error_messages": distinct[:ERROR_SAMPLES],
        "duration_s": round(wall, 3),
        "completion_tokens": tokens,
        "aggregate_tokens_per_second": round(tokens / wall, 2),
        "requests_per_second": round(len(samples) / wall, 3),
        "ttft_ms": distribution([sample.get("ttft_ms") for sample in samples]),
        "stream_tokens_per_second": distribution([sample.get("tokens_per_second") for sample in samples], 2),
        "warmup_requests": warmup_requests,
        "warmup_s": round(warmup_s, 3),
    }


def warm_up(probe, model, prompt, max_tokens, requests, clock=time.monotonic):
    """Send ``requests`` streamed chat completions one at a time, unmeasured; returns the seconds they took. One
    that fails is not retried: the test's own requests then show what is wrong."""
    started = clock()
    for sent in range(requests):
        try:
            probe.stream(model, prompt, max_tokens)
        except Exception:  # pylint: disable=broad-except  # a failed warm-up is the measured requests' to report
            break
    return clock() - started


def run_load(base_url, model, clients, requests_per_client, prompt, max_tokens, api_key=None, request_timeout=300,
             validate_certs=True, ca_path=None, use_proxy=False, warmup_requests=0, clock=time.monotonic):
    """Run the test: ``warmup_requests`` unmeasured requests one at a time, then ``clients`` threads released
    together, each sending ``requests_per_client`` streamed chat completions in turn. Returns ``summarize``'s
    figures."""
    samples, errors = [], []
    lock = threading.Lock()
    gate = threading.Barrier(clients + 1)

    def new_probe():
        return InferenceProbe(base_url, api_key=api_key, request_timeout=request_timeout,
                              validate_certs=validate_certs, use_proxy=use_proxy, ca_path=ca_path, clock=clock)

    warmup_s = warm_up(new_probe(), model, prompt, max_tokens, warmup_requests, clock=clock)

    def client():
        # One probe (one connection set-up, one TLS context) per client, as separate users have.
        probe = new_probe()
        gate.wait()
        for sent in range(requests_per_client):
            try:
                sample = probe.stream(model, prompt, max_tokens)
            except ProbeError as exc:
                with lock:
                    errors.append(str(exc))
                continue
            except Exception as exc:  # pylint: disable=broad-except  # one client's fault must not hang the test
                with lock:
                    errors.append("%s: %s" % (type(exc).__name__, exc))
                continue
            with lock:
                samples.append(sample)

    threads = [threading.Thread(target=client, name="load-client-%d" % index, daemon=True)
               for index in range(clients)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = clock()
    for thread in threads:
        thread.join()
    ended = clock()
    return summarize(samples, errors, started, ended, clients, requests_per_client, warmup_requests, warmup_s)

"""Lanes as their users meet them: several models behind one port, switched on demand, nothing lost.

``lanes`` (port 8100, behind the proxy): two vLLM models, a budget that holds one, the lane switcher.
``gguf-lanes`` (port 8101): two llama.cpp lanes in llama.cpp's router mode, one loaded at a time.
``q4`` (port 11347): a llama.cpp service that stays loaded while the lanes switch (seed 003's persistent lanes).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

STACK = "/opt/gpufleet/stack"
VLLM_LANES = ("lanes", 8100, ("tiny-a", "tiny-b"))
GGUF_LANES = ("gguf-lanes", 8101, ("gemma-short", "gemma-long"))
PERSISTENT = ("q4", 11347, "gemma-3-270m")

# Runs inside the test host with its Python: the requests given as JSON on stdin, each in a thread started at its
# offset (seconds), and prints per request the status, the model that answered, start and end times.
CLIENT = r'''
import json, subprocess, sys, threading, time, urllib.request, urllib.error
jobs = json.load(sys.stdin)
t0 = time.monotonic()
results = [None] * len(jobs)
def run(i, job):
    time.sleep(job.get("at", 0))
    if "kill" in job:  # a shell command at its time, beside the requests
        start = time.monotonic() - t0
        results[i] = {"kill": job["kill"], "rc": subprocess.call(job["kill"], shell=True), "start": start}
        return
    body = {"model": job["model"], "max_tokens": job.get("max_tokens", 4),
            "messages": [{"role": "user", "content": "Hi"}]}
    for key in ("ignore_eos", "n"):
        if key in job:
            body[key] = job[key]
    req = urllib.request.Request("http://%s:%d/v1/chat/completions" % (job.get("address", "127.0.0.1"), job["port"]),
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + job["key"]})
    start = time.monotonic() - t0
    try:
        with urllib.request.urlopen(req, timeout=job.get("timeout", 600)) as resp:
            status, data = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            data = json.loads(text or b"{}")
        except ValueError:
            data = {"error": {"message": text.decode(errors="replace")}}
        status = exc.code
    except Exception as exc:
        status, data = None, {"error": {"message": repr(exc)}}
    results[i] = {"status": status, "model": data.get("model"), "error": data.get("error"), "start": start,
                  "end": time.monotonic() - t0, "want": job["model"]}
threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
'''


def key(host, service):
    return host.check_output(f"cat {STACK}/secrets/{service}.key")


def requests(host, jobs):
    host.check_output(f"cat > /tmp/lanes_client.py <<'EOF'\n{CLIENT}\nEOF")
    encoded = base64.b64encode(json.dumps(jobs).encode()).decode()
    out = host.check_output(f"echo {encoded} | base64 -d | python3 /tmp/lanes_client.py")
    return json.loads(out)


def get(host, port, path, api_key):
    return json.loads(host.check_output(f"curl -s -m 60 -H 'Authorization: Bearer {api_key}' http://127.0.0.1:{port}{path}"))


def vllm_lanes(host):
    return get(host, VLLM_LANES[1], "/lanes", key(host, VLLM_LANES[0]))


def loaded(host, port, api_key):
    models = get(host, port, "/v1/models" if port == VLLM_LANES[1] else "/models", api_key)["data"]
    return [m["id"] for m in models if (m.get("status") or {}).get("value") == "loaded"]


def expected_switches(start, sequence):
    """Switches a one-lane-at-a-time group makes for ``sequence`` of requests, one after another."""
    count, current = 0, start
    for lane in sequence:
        if lane != current:
            count, current = count + 1, lane
    return count


def test_every_lane_is_listed(host):
    for service, port, lanes in (VLLM_LANES, GGUF_LANES):
        models = get(host, port, "/v1/models", key(host, service))["data"]
        assert {m["id"] for m in models} >= set(lanes), service


def test_lanes_need_the_key(host):
    for service, port, _lanes in (VLLM_LANES, GGUF_LANES):
        status = host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -m 30 -H 'Content-Type: application/json' "
                                   f"-d '{{\"model\": \"x\"}}' http://127.0.0.1:{port}/v1/chat/completions")
        assert status == "401", service


def test_interleaved_requests_are_answered_by_their_lane_and_switch_as_often_as_they_alternate(host):
    service, port, lanes = VLLM_LANES
    api_key = key(host, service)
    before = vllm_lanes(host)
    start = loaded(host, port, api_key)
    assert len(start) <= 1, "the budget holds one lane"
    other = [lane for lane in lanes if lane not in start][0]
    # To the other lane, again to it (no switch), back: two switches (each ~20 s for vLLM on 2 cores).
    sequence = [other, other, [lane for lane in lanes if lane != other][0]]
    for lane in sequence:
        result = requests(host, [{"model": lane, "port": port, "key": api_key}])[0]
        assert result["status"] == 200, result
        assert result["model"] == lane, result
    after = vllm_lanes(host)
    assert after["switches"] - before["switches"] == expected_switches(start[0] if start else None, sequence)
    assert after["last_switch_seconds"] > 0
    assert after["queue_depth"] == 0


def test_router_lanes_answer_interleaved_requests_by_name(host):
    service, port, lanes = GGUF_LANES
    api_key = key(host, service)
    for lane in [lanes[1], lanes[0], lanes[1]]:
        result = requests(host, [{"model": lane, "port": port, "key": api_key}])[0]
        assert result["status"] == 200, result
        assert result["model"] == lane, result
    assert len(loaded(host, port, api_key)) == 1, "one lane at a time within the budget"


def test_concurrent_requests_to_both_lanes_are_all_answered_while_the_persistent_lane_keeps_answering(host):
    service, port, lanes = VLLM_LANES
    api_key = key(host, service)
    persistent_key = key(host, PERSISTENT[0])
    current = loaded(host, port, api_key)
    other = [lane for lane in lanes if lane not in current][0]
    jobs = [{"model": lane, "port": port, "key": api_key, "at": 0.1 * i}
            for i, lane in enumerate([other, lanes[0], lanes[1], other, lanes[0], lanes[1]])]
    # The persistent lane, asked every second while the vLLM lanes switch.
    jobs += [{"model": PERSISTENT[2], "port": PERSISTENT[1], "key": persistent_key, "at": 0.5 + i}
             for i in range(20)]
    results = requests(host, jobs)
    for result in results:
        assert result["status"] == 200, result
        assert result["model"] == result["want"], result
    switched = [r for r in results[:6] if r["want"] == other]
    window = (min(r["start"] for r in switched), max(r["end"] for r in switched))
    during = [r for r in results[6:] if window[0] < r["end"] < window[1]]
    assert during, f"no answer of the persistent lane while the switch to {other} ran ({window})"


def killed_mid_answer(host, port, api_key, lane, kill, long_answer, at=2):
    """A long answer from ``lane`` whose engine process is killed (the shell command ``kill``) ``at`` seconds into it:
    the answer to that request, then to the next one."""
    assert requests(host, [{"model": lane, "port": port, "key": api_key}])[0]["status"] == 200
    result, killed = requests(host, [dict(long_answer, model=lane, port=port, key=api_key, timeout=300),
                                     {"kill": kill, "at": at}])
    assert killed["rc"] == 0, killed
    assert result["status"] is not None, "the request hung or the connection was dropped"
    assert result["status"] >= 500, result
    assert result["end"] > killed["start"], (result, killed)
    again = requests(host, [{"model": lane, "port": port, "key": api_key}])[0]
    assert again["status"] == 200 and again["model"] == lane, again
    return result


def test_killing_a_router_lane_mid_request_gives_an_error_and_the_next_request_is_served(host):
    service, port, lanes = GGUF_LANES
    # The router's instance of the lane (anchored: the shell running pkill has the pattern in its own command line).
    killed_mid_answer(host, port, key(host, service), lanes[0], f"pkill -9 -f '^/app/bin/llama-server .*--alias {lanes[0]} '",
                      {"max_tokens": 3000, "ignore_eos": True})


def test_unknown_lane_is_refused_by_name(host):
    service, port, lanes = VLLM_LANES
    result = requests(host, [{"model": "no-such-lane", "port": port, "key": key(host, service)}])[0]
    assert result["status"] == 404
    assert all(lane in result["error"]["message"] for lane in lanes)


def test_report_has_every_lane_and_the_switching_figures():
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / "gpufleet-vllm_stack.json"
    services = {svc["name"]: svc for svc in json.loads(path.read_text())["services"]}
    for service, _port, lanes in (VLLM_LANES, GGUF_LANES):
        entry = services[service]
        assert entry["model"] == list(lanes)
        assert [lane["name"] for lane in entry["lanes"]] == list(lanes)
        assert all(lane["health"]["status"] == 200 and lane["model"] == lane["name"] for lane in entry["lanes"])
        switching = entry["switching"]
        assert switching["switches"] >= 1, switching
        assert switching["last_switch_seconds"] > 0, switching
        assert {lane["name"] for lane in switching["lanes"]} >= set(lanes)
    assert services["lanes"]["switching"]["mechanism"] == "gpufleet-lanes"
    assert services["lanes"]["switching"]["queue_depth"] == 0
    assert services["gguf-lanes"]["switching"]["mechanism"] == "llama.cpp-router"
    # What the router's instances run on, from their start-up lines in the router's log.
    assert services["gguf-lanes"]["backend"] == "CPU" and services["gguf-lanes"]["devices"] == ["CPU"]

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vLLM lane switcher (roles/inference_stack/files/gpufleet_lanes.py), run as the container runs it.

The lanes are stand-in OpenAI servers (Python's http.server) started by the switcher as it starts vLLM: they take
a while to load, answer a chat with their own name and take a while to answer. The molecule scenario vllm_stack
runs the same switcher with real vLLM servers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SWITCHER = Path(__file__).resolve().parents[3] / "roles" / "inference_stack" / "files" / "gpufleet_lanes.py"
KEY = "test-key-0123456789"

LANE_SERVER = r'''
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
name, port = sys.argv[1], int(sys.argv[2])
time.sleep(float(os.environ.get("LOAD_SECONDS", "0.3")))
if os.environ.get("FAIL_TO_LOAD") == name:
    sys.exit(3)
class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.reply(200, {"status": "ok"})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != "Bearer " + os.environ.get("VLLM_API_KEY", ""):
            return self.reply(401, {"error": "key"})
        time.sleep(float(body.get("seconds", 0.05)))
        self.reply(200, {"model": name, "pid": os.getpid(), "choices": [{"message": {"content": "hi"}}]})
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_switcher_module():
    spec = importlib.util.spec_from_file_location("gpufleet_lanes", SWITCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Switcher:
    def __init__(self, tmp_path, lanes=("alpha", "beta"), max_loaded=1, switch_timeout=30, env=None, preload=True):
        server = tmp_path / "lane_server.py"
        server.write_text(LANE_SERVER)
        self.port = free_port()
        specs = []
        for index, name in enumerate(lanes):
            lane_port = free_port()
            specs.append({"name": name, "port": lane_port, "bytes": 10, "preload": preload and index == 0,
                          "command": [sys.executable, str(server), name, str(lane_port)]})
        config = {"host": "127.0.0.1", "port": self.port, "mode": "switching", "max_loaded": max_loaded,
                  "budget_bytes": 10 * max_loaded, "switch_timeout": switch_timeout, "stop_timeout": 5,
                  "api_key_env": "VLLM_API_KEY", "lanes": specs}
        path = tmp_path / "lanes.json"
        path.write_text(json.dumps(config))
        self.process = subprocess.Popen([sys.executable, str(SWITCHER), str(path)],
                                        env=dict(os.environ, VLLM_API_KEY=KEY, **(env or {})),
                                        stderr=open(tmp_path / "switcher.log", "w"))
        self.log = tmp_path / "switcher.log"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.get("/health")["status"] == "ok":
                    break
            except OSError:
                time.sleep(0.1)

    def request(self, method, path, body=None, key=KEY, timeout=60):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get(self, path):
        return self.request("GET", path)[1]

    def chat(self, model, seconds=0.05, key=KEY):
        return self.request("POST", "/v1/chat/completions", {"model": model, "seconds": seconds,
                                                             "messages": [{"role": "user", "content": "hi"}]}, key=key)

    def lanes(self):
        return self.get("/lanes")

    def wait_loaded(self, name, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(lane["name"] == name and lane["state"] == "loaded" for lane in self.lanes()["lanes"]):
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} not loaded: {self.lanes()}")

    def lane_pid(self, name):
        for lane in self.lanes()["lanes"]:
            if lane["name"] == name and lane["state"] == "loaded":
                return self.chat(name)[1]["pid"]
        return None

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


@pytest.fixture
def switcher(tmp_path):
    started = []

    def start(**kwargs):
        instance = Switcher(tmp_path, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        if instance.process.poll() is None:
            instance.stop()


def parallel(calls):
    results = [None] * len(calls)

    def run(index, call):
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_lanes_are_listed_and_the_first_is_loaded_at_start(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    models = lanes.get("/v1/models")["data"]
    assert [m["id"] for m in models] == ["alpha", "beta"]
    # Loading at start is not a switch: the count follows the requests.
    assert lanes.lanes()["switches"] == 0


def test_interleaved_requests_switch_as_often_as_they_alternate(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    sequence = ["beta", "beta", "alpha", "beta", "alpha", "alpha"]
    for name in sequence:
        status, body = lanes.chat(name)
        assert (status, body["model"]) == (200, name)
    state = lanes.lanes()
    assert state["switches"] == 4
    assert state["last_switch"]["to"] == "alpha" and state["last_switch"]["from"] == ["beta"]
    assert state["last_switch_seconds"] >= 0.3  # the stand-in takes 0.3 s to load
    assert [lane["state"] for lane in state["lanes"]] == ["loaded", "unloaded"]


def test_concurrent_requests_for_both_lanes_are_all_answered_and_none_is_cut_off(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    # Long answers on the loaded lane while requests for the other lane arrive: the switch waits for them.
    calls = [lambda: lanes.chat("alpha", seconds=1.0)] * 3 + [lambda: lanes.chat("beta")] * 3 + \
            [lambda: lanes.chat("alpha")] * 2
    results = parallel(calls)
    assert [status for status, body in results] == [200] * 8, results
    assert [body["model"] for status, body in results] == ["alpha"] * 3 + ["beta"] * 3 + ["alpha"] * 2
    state = lanes.lanes()
    assert state["queue_depth"] == 0 and state["failed_requests"] == 0
    assert state["switches"] >= 1


def test_a_request_without_the_key_is_refused_and_switches_nothing(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    status, body = lanes.chat("beta", key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert lanes.request("GET", "/lanes", key="wrong-key-0123456789")[0] == 401
    assert lanes.lanes()["switches"] == 0


def test_an_unknown_model_is_refused_with_the_lanes_named(switcher):
    lanes = switcher()
    status, body = lanes.chat("gamma")
    assert status == 404
    assert "alpha" in body["error"]["message"] and "beta" in body["error"]["message"]


def test_killing_the_active_lane_mid_request_gives_an_error_and_the_next_request_is_served(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    pid = lanes.lane_pid("alpha")
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    status, body = lanes.chat("alpha", seconds=5)
    assert status == 502
    assert "lane alpha stopped answering" in body["error"]["message"]
    status, body = lanes.chat("alpha")
    assert (status, body.get("model")) == (200, "alpha"), (body, lanes.log.read_text())
    assert body["pid"] != pid
    assert lanes.lanes()["failed_requests"] == 1


def test_a_lane_that_cannot_load_gives_a_clear_error_and_the_others_keep_working(switcher):
    lanes = switcher(env={"FAIL_TO_LOAD": "beta"})
    lanes.wait_loaded("alpha")
    status, body = lanes.chat("beta")
    assert status == 503
    assert "lane beta exited with status 3 while loading" in body["error"]["message"]
    status, body = lanes.chat("alpha")
    assert (status, body["model"]) == (200, "alpha")


def test_a_switch_that_takes_too_long_is_answered_with_an_error_not_a_hang(switcher):
    lanes = switcher(env={"LOAD_SECONDS": "30"}, switch_timeout=2, preload=False)
    started = time.monotonic()
    status, body = lanes.chat("alpha")
    assert status == 503 and body["error"]["code"] == "lane_switch_timeout"
    assert time.monotonic() - started < 15


def test_lanes_that_fit_together_are_not_switched(switcher):
    lanes = switcher(max_loaded=2)
    lanes.wait_loaded("alpha")
    for name in ["beta", "alpha", "beta"]:
        assert lanes.chat(name)[1]["model"] == name
    state = lanes.lanes()
    assert [lane["state"] for lane in state["lanes"]] == ["loaded", "loaded"]
    assert state["switches"] == 1  # beta's first load; nothing was stopped
    assert state["last_switch"]["from"] == []


def test_metrics_in_prometheus_text(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    lanes.chat("beta")
    req = urllib.request.Request(f"http://127.0.0.1:{lanes.port}/metrics", headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    assert "gpufleet_lanes_switches_total 1" in text
    assert 'gpufleet_lanes_loaded{lane="beta"} 1' in text
    assert "gpufleet_lanes_queue_depth 0" in text


def test_stopping_the_switcher_stops_every_lane(switcher):
    lanes = switcher()
    lanes.wait_loaded("alpha")
    pid = lanes.lane_pid("alpha")
    lanes.stop()
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("budget, max_loaded, expected", [
    (100, 1, ["a", "b"]),      # one at a time: every loaded lane goes
    (100, 2, []),              # two fit by count and memory
    (25, 0, ["a"]),            # memory: 10 + 10 + 10 > 25, the least recently used idle lane goes
    (15, 0, ["a", "b"]),       # room for the new lane only
])
def test_pick_victims(budget, max_loaded, expected):
    module = load_switcher_module()
    lanes = [{"name": "a", "state": "loaded", "bytes": 10, "in_flight": 0, "last_used": 1},
             {"name": "b", "state": "loaded", "bytes": 10, "in_flight": 0, "last_used": 2},
             {"name": "c", "state": "unloaded", "bytes": 10, "in_flight": 0, "last_used": 0}]
    if max_loaded == 2:
        lanes[1]["state"] = "unloaded"
    victims = module.pick_victims(lanes[2], lanes, budget, max_loaded)
    assert [v["name"] for v in victims] == expected


def test_pick_victims_prefers_idle_lanes_over_busy_ones():
    module = load_switcher_module()
    lanes = [{"name": "busy", "state": "loaded", "bytes": 10, "in_flight": 2, "last_used": 1},
             {"name": "idle", "state": "loaded", "bytes": 10, "in_flight": 0, "last_used": 5},
             {"name": "new", "state": "unloaded", "bytes": 10, "in_flight": 0, "last_used": 0}]
    assert [v["name"] for v in module.pick_victims(lanes[2], lanes, 25, 0)] == ["idle"]

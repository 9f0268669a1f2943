# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lane switcher: several vLLM models behind one OpenAI-compatible port, loaded on demand within a memory budget.

It runs inside the vLLM image (its Python and aiohttp), as the container's main process, and starts each lane's
``vllm.entrypoints.openai.api_server`` as a child process on a loopback port, the way llama.cpp's router mode
starts a ``llama-server`` per model. The ``model`` field of a request names the lane. A request for a lane that is
not loaded waits while the switcher stops the least recently used idle lanes that must make room (a lane that is
answering is drained first, never cut off) and starts the lane; requests for a loaded lane keep being served.
A request that cannot be served in time gets an error response; none is dropped silently.

Routes: ``/v1/*`` (routed by ``model``), ``/v1/models`` (every lane, with its state), ``/health`` (the switcher;
no key), ``/lanes`` (JSON) and ``/metrics`` (Prometheus text): switches, the last switch's seconds, the queue.
vLLM's development routes (``/sleep``, ``/wake_up``, ...) are never forwarded.

Configuration: one JSON file (written by the inference_stack role), the only argument.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import sys
import time

UNLOADED, LOADING, LOADED, STOPPING = "unloaded", "loading", "loaded", "stopping"
# After a lane's server stopped answering: how long to wait for its process to be reaped.
DEATH_WAIT_SECONDS = 3
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "host", "content-length"))


class LaneError(Exception):
    """A request that cannot be served: answered with ``status`` and an OpenAI-style error body."""

    def __init__(self, status, message, code):
        super().__init__(message)
        self.status = status
        self.code = code


def pick_victims(lane, lanes, budget_bytes, max_loaded):
    """The lanes to stop so that ``lane`` fits: least recently used first, idle ones before busy ones.

    ``lanes`` are the group's lanes (dicts or objects with ``name``, ``state``, ``bytes``, ``in_flight``,
    ``last_used``). Returns the list of lanes to stop (empty when ``lane`` fits as things are).
    """
    def get(item, key):
        return item[key] if isinstance(item, dict) else getattr(item, key)

    running = [other for other in lanes if get(other, "state") in (LOADED, LOADING) and get(other, "name") != get(lane, "name")]
    used = sum(get(other, "bytes") for other in running)
    victims = []
    for other in sorted(running, key=lambda o: (get(o, "in_flight") > 0, get(o, "last_used"))):
        fits_memory = budget_bytes is None or used + get(lane, "bytes") <= budget_bytes
        fits_count = not max_loaded or len(running) - len(victims) < max_loaded
        if fits_memory and fits_count:
            break
        victims.append(other)
        used -= get(other, "bytes")
    return victims


def prometheus(snapshot):
    """The switcher's figures as Prometheus text."""
    lines = [
        "# HELP gpufleet_lanes_switches_total Lane loads started by requests since the switcher started.",
        "# TYPE gpufleet_lanes_switches_total counter",
        "gpufleet_lanes_switches_total %d" % snapshot["switches"],
        "# HELP gpufleet_lanes_last_switch_seconds Seconds the last lane switch took (stop, start, ready).",
        "# TYPE gpufleet_lanes_last_switch_seconds gauge",
        "gpufleet_lanes_last_switch_seconds %.3f" % (snapshot["last_switch_seconds"] or 0.0),
        "# HELP gpufleet_lanes_queue_depth Requests waiting for their lane to be loaded.",
        "# TYPE gpufleet_lanes_queue_depth gauge",
        "gpufleet_lanes_queue_depth %d" % snapshot["queue_depth"],
        "# HELP gpufleet_lanes_failed_requests_total Requests answered with an error by the switcher.",
        "# TYPE gpufleet_lanes_failed_requests_total counter",
        "gpufleet_lanes_failed_requests_total %d" % snapshot["failed_requests"],
        "# HELP gpufleet_lanes_loaded Whether a lane is loaded (1) or not (0).",
        "# TYPE gpufleet_lanes_loaded gauge",
    ]
    for lane in snapshot["lanes"]:
        lines.append('gpufleet_lanes_loaded{lane="%s"} %d' % (lane["name"], lane["state"] == LOADED))
    lines += ["# HELP gpufleet_lanes_in_flight Requests a lane is answering.", "# TYPE gpufleet_lanes_in_flight gauge"]
    for lane in snapshot["lanes"]:
        lines.append('gpufleet_lanes_in_flight{lane="%s"} %d' % (lane["name"], lane["in_flight"]))
    return "\n".join(lines) + "\n"


def reap_group(process):
    """Kill what is left of a lane's process group (vLLM's engine processes outlive a killed API server)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def error_body(message, code, kind="invalid_request_error"):
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class LaneGone(Exception):
    """The lane refused the connection: its server is gone, and the request never reached it."""


class Lane:
    def __init__(self, spec):
        self.name = spec["name"]
        self.command = [str(word) for word in spec["command"]]
        self.port = int(spec["port"])
        self.bytes = int(spec.get("bytes") or 0)
        self.environment = {str(k): str(v) for k, v in (spec.get("environment") or {}).items()}
        self.preload = bool(spec.get("preload"))
        self.state = UNLOADED
        self.draining = False
        self.process = None
        self.in_flight = 0
        self.last_used = 0.0
        self.loads = 0
        self.last_load_seconds = None
        self.failed_at = 0.0
        self.last_error = None

    def alive(self):
        return self.process is not None and self.process.returncode is None

    def snapshot(self):
        return {"name": self.name, "state": self.state, "in_flight": self.in_flight, "loads": self.loads,
                "last_load_seconds": self.last_load_seconds, "bytes": self.bytes, "port": self.port,
                "last_error": self.last_error}


class Switcher:
    def __init__(self, config):
        self.config = config
        self.lanes = {spec["name"]: Lane(spec) for spec in config["lanes"]}
        self.budget = config.get("budget_bytes")
        self.max_loaded = int(config.get("max_loaded") or 0)
        self.switch_timeout = float(config.get("switch_timeout", 900))
        self.stop_timeout = float(config.get("stop_timeout", 30))
        key_env = config.get("api_key_env")
        self.api_key = os.environ.get(key_env, "") if key_env else ""
        self.cond = asyncio.Condition()
        self.switching = False
        self.waiting = 0
        self.switches = 0
        self.last_switch_seconds = None
        self.last_switch = None
        self.failed_requests = 0
        self.session = None

    # -- state ---------------------------------------------------------------------------------------------
    def snapshot(self):
        return {
            "mode": self.config.get("mode", "switching"),
            "budget_bytes": self.budget,
            "max_loaded": self.max_loaded,
            "switches": self.switches,
            "last_switch_seconds": self.last_switch_seconds,
            "last_switch": self.last_switch,
            "queue_depth": self.waiting,
            "failed_requests": self.failed_requests,
            "lanes": [lane.snapshot() for lane in self.lanes.values()],
        }

    def log(self, message):
        print("gpufleet-lanes: %s" % message, file=sys.stderr, flush=True)

    async def acquire(self, lane, preload=False):
        """Wait until ``lane`` is loaded (switching to it when needed) and count the request in it."""
        deadline = time.monotonic() + self.switch_timeout
        started = time.monotonic()
        queued = False
        async with self.cond:
            try:
                while True:
                    if lane.state == LOADED and not lane.alive():
                        self.log("lane %s exited (status %s)" % (lane.name, lane.process.returncode))
                        reap_group(lane.process)
                        lane.state, lane.process = UNLOADED, None
                        self.cond.notify_all()
                    if lane.state == LOADED and not lane.draining:
                        lane.in_flight += 1
                        lane.last_used = time.monotonic()
                        return
                    if lane.state == UNLOADED and lane.failed_at > started:
                        raise LaneError(503, "lane %s could not be loaded: %s" % (lane.name, lane.last_error),
                                        "lane_unavailable")
                    if lane.state == UNLOADED and not self.switching:
                        self.switching = True
                        break
                    if not queued:
                        queued = True
                        self.waiting += 1
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise LaneError(503, "lane %s was not ready within %d s (a switch was in progress); retry"
                                        % (lane.name, self.switch_timeout), "lane_switch_timeout")
                    try:
                        await asyncio.wait_for(self.cond.wait(), remaining)
                    except asyncio.TimeoutError:
                        pass
            finally:
                if queued:
                    self.waiting -= 1
        # This request switches: the other waiters sleep on the condition until it is done.
        try:
            await self.switch_to(lane, deadline, preload)
        finally:
            async with self.cond:
                self.switching = False
                self.cond.notify_all()
        await self.acquire_loaded(lane)

    async def acquire_loaded(self, lane):
        async with self.cond:
            if lane.state != LOADED or not lane.alive():
                raise LaneError(503, "lane %s stopped right after it was loaded: %s" % (lane.name, lane.last_error),
                                "lane_unavailable")
            lane.in_flight += 1
            lane.last_used = time.monotonic()

    async def release(self, lane):
        async with self.cond:
            lane.in_flight -= 1
            lane.last_used = time.monotonic()
            self.cond.notify_all()

    async def switch_to(self, lane, deadline, preload=False):
        began = time.monotonic()
        async with self.cond:
            victims = pick_victims(lane, self.lanes.values(), self.budget, self.max_loaded)
            for victim in victims:
                victim.draining = True
            # Requests the victims are answering finish first.
            while any(victim.in_flight for victim in victims):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for victim in victims:
                        victim.draining = False
                    raise LaneError(503, "lane %s: the lanes to unload (%s) were still answering after %d s; retry"
                                    % (lane.name, ", ".join(v.name for v in victims), self.switch_timeout),
                                    "lane_switch_timeout")
                try:
                    await asyncio.wait_for(self.cond.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
            for victim in victims:
                victim.state = STOPPING
            lane.state = LOADING
        for victim in victims:
            await self.stop(victim)
        async with self.cond:
            for victim in victims:
                victim.state, victim.draining, victim.process = UNLOADED, False, None
            self.cond.notify_all()
        try:
            await self.start(lane, deadline)
        except LaneError as exc:
            async with self.cond:
                lane.state, lane.failed_at, lane.last_error = UNLOADED, time.monotonic(), str(exc)
                self.cond.notify_all()
            raise
        seconds = time.monotonic() - began
        async with self.cond:
            lane.state = LOADED
            lane.loads += 1
            lane.last_load_seconds = round(seconds, 3)
            lane.last_error = None
            if not preload:
                # Loads at start-up (preload) are not switches: the count follows the requests.
                self.switches += 1
                self.last_switch_seconds = round(seconds, 3)
                self.last_switch = {"to": lane.name, "from": [v.name for v in victims], "seconds": round(seconds, 3),
                                    "at": time.time()}
            self.cond.notify_all()
        self.log("lane %s loaded in %.1f s (stopped: %s)" % (lane.name, seconds, ", ".join(v.name for v in victims) or "none"))

    async def start(self, lane, deadline):
        self.log("starting lane %s on port %d" % (lane.name, lane.port))
        env = dict(os.environ, **lane.environment)
        lane.process = await asyncio.create_subprocess_exec(*lane.command, env=env, start_new_session=True)
        url = "http://127.0.0.1:%d/health" % lane.port
        while True:
            if lane.process.returncode is not None:
                reap_group(lane.process)
                raise LaneError(503, "lane %s exited with status %s while loading (see the container's log)"
                                % (lane.name, lane.process.returncode), "lane_unavailable")
            try:
                async with self.session.get(url) as response:
                    if response.status == 200:
                        return
            except Exception:  # pylint: disable=broad-except
                pass
            if time.monotonic() > deadline:
                await self.stop(lane)
                raise LaneError(503, "lane %s did not answer /health within %d s" % (lane.name, self.switch_timeout),
                                "lane_switch_timeout")
            try:
                await asyncio.wait_for(lane.process.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    async def stop(self, lane):
        process = lane.process
        if process is None or process.returncode is not None:
            return
        self.log("stopping lane %s" % lane.name)
        # The server first (it shuts its engine processes down), then whatever is left of its process group.
        try:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), self.stop_timeout)
        except (ProcessLookupError, asyncio.TimeoutError):
            pass
        reap_group(process)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except asyncio.TimeoutError:
            self.log("lane %s did not stop after SIGKILL" % lane.name)

    async def stop_all(self):
        for lane in self.lanes.values():
            await self.stop(lane)

    async def preload(self):
        for lane in self.lanes.values():
            if lane.preload:
                try:
                    await self.acquire(lane, preload=True)
                    await self.release(lane)
                except LaneError as exc:
                    self.log("preloading lane %s failed: %s" % (lane.name, exc))

    # -- HTTP ----------------------------------------------------------------------------------------------
    def authorized(self, request):
        if not self.api_key:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), ("Bearer " + self.api_key).encode())

    def models_list(self):
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": lane.name, "object": "model", "created": created, "owned_by": "gpufleet-lanes",
             "status": {"value": lane.state}} for lane in self.lanes.values()]}

    async def handle(self, request):
        from aiohttp import web  # pylint: disable=import-outside-toplevel

        path = request.path
        if path == "/health":
            return web.json_response({"status": "ok", "lanes": {n: lane.state for n, lane in self.lanes.items()}})
        if not self.authorized(request):
            self.failed_requests += 1
            return web.Response(status=401, body=error_body("Missing or invalid API key", "invalid_api_key"),
                                content_type="application/json")
        if path == "/lanes":
            return web.json_response(self.snapshot())
        if path == "/metrics":
            return web.Response(text=prometheus(self.snapshot()), content_type="text/plain")
        if path in ("/v1/models", "/models"):
            return web.json_response(self.models_list())
        if path.startswith("/v1/models/"):
            name = path[len("/v1/models/"):]
            for entry in self.models_list()["data"]:
                if entry["id"] == name:
                    return web.json_response(entry)
            return web.Response(status=404, body=error_body("The model %r does not exist" % name, "model_not_found"),
                                content_type="application/json")
        if not path.startswith("/v1/") or request.method != "POST":
            return web.Response(status=404, body=error_body("Not found", "not_found", "not_found"),
                                content_type="application/json")
        body = await request.read()
        try:
            name = json.loads(body or b"{}").get("model")
        except (ValueError, AttributeError):
            name = None
        if not isinstance(name, str) or not name:
            self.failed_requests += 1
            return web.Response(status=400, body=error_body(
                "The request names no model; this endpoint serves the lanes %s" % ", ".join(self.lanes), "model_required"),
                content_type="application/json")
        lane = self.lanes.get(name)
        if lane is None:
            self.failed_requests += 1
            return web.Response(status=404, body=error_body(
                "The model %r does not exist; the lanes are %s" % (name, ", ".join(self.lanes)), "model_not_found"),
                content_type="application/json")
        for attempt in (1, 2):
            try:
                await self.acquire(lane)
            except LaneError as exc:
                self.failed_requests += 1
                return web.Response(status=exc.status, body=error_body(str(exc), exc.code, "server_error"),
                                    content_type="application/json", headers={"Retry-After": "10"})
            try:
                return await self.forward(request, lane, body, retry=attempt == 1)
            except LaneGone:
                # The lane's server had died before the request reached it (nothing was processed): once its
                # process is reaped the lane counts as unloaded and the request loads it again.
                if lane.process is not None:
                    try:
                        await asyncio.wait_for(lane.process.wait(), 5)
                    except asyncio.TimeoutError:
                        pass
            finally:
                await self.release(lane)
        return None

    async def forward(self, request, lane, body, retry=False):
        from aiohttp import ClientConnectorError, ClientError, web  # pylint: disable=import-outside-toplevel

        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        url = "http://127.0.0.1:%d%s" % (lane.port, request.path_qs)
        response = None
        try:
            async with self.session.request(request.method, url, headers=headers, data=body) as upstream:
                response = web.StreamResponse(status=upstream.status, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except ClientConnectorError:
            if retry:
                raise LaneGone() from None
            self.failed_requests += 1
            message = "lane %s does not accept connections" % lane.name
            self.log(message)
            return web.Response(status=502, body=error_body(message, "lane_failed", "server_error"),
                                content_type="application/json")
        except (ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            self.failed_requests += 1
            message = "lane %s stopped answering: %s" % (lane.name, exc.__class__.__name__)
            self.log(message)
            # A lane's server that died takes a moment to be reaped (longer on a loaded host): wait for it, so that
            # its process group goes and the next request finds the lane unloaded and loads it again, instead of
            # reaching what is left of it.
            if lane.process is not None and lane.alive():
                try:
                    await asyncio.wait_for(asyncio.shield(lane.process.wait()), DEATH_WAIT_SECONDS)
                except asyncio.TimeoutError:
                    pass
            if not lane.alive():
                reap_group(lane.process)
            if response is None:
                return web.Response(status=502, body=error_body(message, "lane_failed", "server_error"),
                                    content_type="application/json")
            # Headers are gone already (a stream): end it with an error event the client can read.
            try:
                await response.write(b"data: " + error_body(message, "lane_failed", "server_error") + b"\n\n")
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                pass
            return response


def main(argv):
    from aiohttp import ClientSession, ClientTimeout, TCPConnector, web  # pylint: disable=import-outside-toplevel

    with open(argv[1], encoding="utf-8") as handle:
        config = json.load(handle)

    async def run():
        switcher = Switcher(config)
        switcher.session = ClientSession(timeout=ClientTimeout(total=None, sock_connect=10),
                                         # A new loopback connection per request: a pooled one to a lane that
                                         # was stopped or died would fail the next request.
                                         connector=TCPConnector(limit=0, force_close=True), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", switcher.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, config.get("host", "0.0.0.0"), int(config["port"]))
        await site.start()
        switcher.log("listening on port %s: lanes %s (%s, at most %s loaded, budget %s bytes)" % (
            config["port"], ", ".join(switcher.lanes), config.get("mode"), switcher.max_loaded or "all",
            switcher.budget))
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        preload = asyncio.ensure_future(switcher.preload())
        await stopping.wait()
        preload.cancel()
        switcher.log("stopping")
        await runner.cleanup()
        await switcher.stop_all()
        await switcher.session.close()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

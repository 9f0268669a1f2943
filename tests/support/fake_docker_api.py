# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only part of the Docker Engine API that inference_runtime_info uses, on a unix socket.

Serves containers (``GET /containers/json`` with label filters, ``/containers/<id>/json``), images
(``/images/<id>/json``) and logs (``/containers/<id>/logs``) in the engine's multiplexed stream format: an 8-byte
header per frame (stream 1 or 2, three zero bytes, big-endian size) then the bytes. Counts the log frames it sent,
so a test can tell that a reader stopped early. Standard library only.
"""

from __future__ import annotations

import json
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlparse


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeDockerApi:
    def __init__(self, path):
        self.path = str(path)
        self.containers = {}   # id -> inspect dict (Id, Name, Image, Config{Labels, Image, Tty}, State{Status, StartedAt})
        self.images = {}       # id -> inspect dict
        self.logs = {}         # id -> list of (stream, line)
        self.frames_sent = 0
        self.requests = []
        self._server = None

    def add(self, container_id, name, image_id, labels, log_lines, image_labels=None, state="running",
            started_at="2026-11-30T14:00:00.000000000Z", image_ref="gpufleet/llama.cpp:cpu-0123456789ab",
            status="Up 2 hours (healthy)", mounts=()):
        """``mounts``: (source, destination, read_write) of bind mounts, as the listing gives them."""
        self.containers[container_id] = {
            "Id": container_id, "Name": "/" + name, "Image": image_id,
            "Config": {"Labels": labels, "Image": image_ref, "Tty": False},
            "State": {"Status": state, "StartedAt": started_at},
            "Status": status,
            "Mounts": [{"Type": "bind", "Source": source, "Destination": destination, "Mode": "" if rw else "ro",
                        "RW": rw, "Propagation": "rprivate"} for source, destination, rw in mounts],
        }
        self.images[image_id] = {"Id": image_id, "Config": {"Labels": image_labels or {}}}
        self.logs[container_id] = [(2, line) for line in log_lines]

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def address_string(self):
                return "unix"

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                query = parse_qs(url.query)
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                api.requests.append(self.path)
                if parts == ["containers", "json"]:
                    wanted = json.loads(query.get("filters", ["{}"])[0]).get("label", [])
                    out = []
                    for c in api.containers.values():
                        labels = c["Config"]["Labels"]
                        # A filter is key=value, or a key the container must have.
                        if all(labels.get(k) == v if sep else k in labels
                               for k, sep, v in (item.partition("=") for item in wanted)):
                            out.append({"Id": c["Id"], "Names": [c["Name"]], "Image": c["Config"]["Image"],
                                        "ImageID": c["Image"], "Labels": labels, "State": c["State"]["Status"],
                                        "Status": c["Status"], "Mounts": c["Mounts"]})
                    return self._json(200, out)
                if len(parts) == 3 and parts[0] == "containers" and parts[2] == "json":
                    c = api.containers.get(parts[1]) or next(
                        (c for c in api.containers.values() if c["Name"] == "/" + parts[1]), None)
                    return self._json(200, c) if c else self._json(404, {"message": f"No such container: {parts[1]}"})
                if len(parts) == 3 and parts[0] == "images" and parts[2] == "json":
                    image = api.images.get(parts[1])
                    return self._json(200, image) if image else self._json(404, {"message": f"No such image: {parts[1]}"})
                if len(parts) == 3 and parts[0] == "containers" and parts[2] == "logs":
                    if parts[1] not in api.logs:
                        return self._json(404, {"message": f"No such container: {parts[1]}"})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for stream, line in api.logs[parts[1]]:
                            data = (line + "\n").encode()
                            self.wfile.write(struct.pack(">BxxxL", stream, len(data)) + data)
                            self.wfile.flush()
                            api.frames_sent += 1
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                    return None
                return self._json(404, {"message": "page not found"})

        return Handler

    def __enter__(self):
        self._server = _Server(self.path, self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

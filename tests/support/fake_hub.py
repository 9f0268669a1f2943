# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake Hugging Face hub: the part of the HTTP API that ``huggingface_hub`` downloads use.

Standard library only: it also runs on bare test hosts with a plain ``python3``.

Repositories are directories under ``root``: ``ROOT/ORG/NAME/...`` is the repository ``ORG/NAME``
(``ROOT/NAME`` also works for a repository id without an organisation). Every file of such a
directory is a file of the repository at revision ``main`` (and at the commit sha the hub reports).
Sizes, sha256 and git blob ids are computed from the files on disk, so editing a file changes
what the hub advertises.

Routes (what ``HfApi.model_info``, ``get_paths_info``, ``list_repo_tree``, ``hf_hub_url`` and
``get_hf_file_metadata`` of huggingface_hub 2.x call):

- ``GET  /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}`` (``?blobs=true`` adds size,
  ``blobId`` and ``lfs`` to each sibling)
- ``POST /api/models/{repo}/paths-info/{rev}`` (form or JSON body with ``paths``)
- ``GET  /api/models/{repo}/tree/{rev}[/{path}]`` (``?recursive=true``)
- ``HEAD|GET /{repo}/resolve/{rev}/{filename}``: a regular (git) file is served directly with
  ``ETag`` = its blob sha1; an LFS file gets a ``302`` to ``/cdn/{repo}/{sha256}/{filename}``
  (on ``cdn_host`` when set, so that it is another host), with ``X-Linked-Etag`` (sha256) and
  ``X-Linked-Size``. Both carry ``X-Repo-Commit``.
- ``HEAD|GET /cdn/...``: the LFS content, ``ETag`` = sha256, no authentication (a signed URL on the real hub).
  Without ``cdn_host`` it also sends ``X-Repo-Commit``: huggingface_hub follows a redirect that stays on the
  same origin and then reads the commit from this response.
- ``HEAD|GET /files/{path}``: any file under ``root``, a plain HTTP server for URL downloads.
- ``GET /_fake/stats`` and ``POST /_fake/config``: counters and knobs for tests on other hosts.

Content responses honour ``Range: bytes=...`` (``206``, or ``416``) and ``If-Range``
(a different ETag gets the whole file with ``200``).

Knobs: ``token`` (hub routes answer ``401`` without ``Authorization: Bearer TOKEN``), byte counters
per file and per path, ``drop_after`` (close the connection once a file's absolute offset is
reached, to simulate a killed download), ``corrupt`` (serve a file with one byte flipped while
advertising the real hashes), ``rate`` (bytes per second per response) and ``commit`` (a fixed
40-hex commit sha; by default it is derived from the repository content).

In pytest::

    with FakeHub(tmp_path / "hub") as hub:
        hub.url            # http://127.0.0.1:PORT
        hub.served("model.gguf")

On a test host::

    python3 tests/support/fake_hub.py --root DIR --host 127.0.0.1 --port 8080 [--token T]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_LFS_THRESHOLD = 1024 * 1024
DEFAULT_LFS_EXTENSIONS = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack")
CHUNK = 256 * 1024
POINTER_TEMPLATE = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
LAST_MODIFIED = "2026-01-01T00:00:00.000Z"


def git_blob_sha1(data):
    """The git object id of ``data`` as a blob."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


class RepoFileInfo:
    """What the hub knows about one file: path in the repository, size, hashes, LFS or not."""

    def __init__(self, path, disk_path, size, sha256, blob_sha1, lfs):
        self.path = path
        self.disk_path = disk_path
        self.size = size
        self.sha256 = sha256
        self.lfs = lfs
        if lfs:
            # The git blob of an LFS file is its pointer file.
            pointer = POINTER_TEMPLATE.format(sha256=sha256, size=size).encode("ascii")
            self.blob_id = git_blob_sha1(pointer)
            self.pointer_size = len(pointer)
        else:
            self.blob_id = blob_sha1
            self.pointer_size = None

    @property
    def etag(self):
        return '"%s"' % (self.sha256 if self.lfs else self.blob_id)


class FakeHub:
    """The fake hub; a context manager that serves on a background thread."""

    def __init__(self, root, host="127.0.0.1", port=0, token=None, commit=None,
                 lfs_threshold=DEFAULT_LFS_THRESHOLD, lfs_extensions=DEFAULT_LFS_EXTENSIONS, cdn_host=None, verbose=False):
        self.root = os.path.abspath(str(root))
        self.host = host
        self.port = port
        self.token = token
        self.fixed_commit = commit
        self.lfs_threshold = lfs_threshold
        self.lfs_extensions = tuple(lfs_extensions)
        self.cdn_host = cdn_host
        self.verbose = verbose
        self.rate = None
        self.lock = threading.Lock()
        self._hash_cache = {}
        self._drop_after = {}
        self._corrupt = set()
        self.bytes_by_file = {}
        self.bytes_by_path = {}
        self.requests = []
        self.server = None
        self.thread = None

    # ---- life cycle -------------------------------------------------------------------------

    def start(self):
        handler = type("BoundHandler", (FakeHubHandler,), {"hub": self})
        self.server = ThreadingHTTPServer((self.host, self.port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        host = self.host if ":" not in self.host else "[%s]" % self.host
        return "http://%s:%d" % (host, self.port)

    # ---- knobs and counters -----------------------------------------------------------------

    def drop_after(self, name, offset, times=1):
        """Close the connection when the download of ``name`` reaches byte ``offset`` (``times`` times)."""
        with self.lock:
            self._drop_after[name] = [int(offset), int(times)]

    def corrupt(self, name, enabled=True):
        """Serve ``name`` with its middle byte flipped (the metadata keeps the real hashes)."""
        with self.lock:
            if enabled:
                self._corrupt.add(name)
            else:
                self._corrupt.discard(name)

    def reset(self):
        """Forget counters, the request log and the drop/corrupt knobs."""
        with self.lock:
            self._drop_after.clear()
            self._corrupt.clear()
            self.bytes_by_file.clear()
            self.bytes_by_path.clear()
            del self.requests[:]
            self.rate = None

    def served(self, name=None):
        """Body bytes served for a file (``name`` is a repository path, ``org/repo/path`` or a ``/files/`` path)."""
        with self.lock:
            return sum(count for key, count in self.bytes_by_file.items() if name is None or _matches(key, name))

    def stats(self):
        with self.lock:
            return {
                "bytes_by_file": dict(self.bytes_by_file),
                "bytes_by_path": dict(self.bytes_by_path),
                "requests": len(self.requests),
                "total_bytes": sum(self.bytes_by_file.values()),
            }

    def configure(self, config):
        """Apply knobs from a JSON object (the ``/_fake/config`` route and the CLI)."""
        if config.get("reset"):
            self.reset()
        for name, offset in (config.get("drop_after") or {}).items():
            if isinstance(offset, list):
                self.drop_after(name, offset[0], offset[1])
            else:
                self.drop_after(name, offset)
        for name in config.get("corrupt") or []:
            self.corrupt(name)
        for name in config.get("uncorrupt") or []:
            self.corrupt(name, enabled=False)
        if "rate" in config:
            self.rate = config["rate"] or None
        if "token" in config:
            self.token = config["token"] or None

    def _take_drop(self, key):
        with self.lock:
            for name, entry in self._drop_after.items():
                if _matches(key, name) and entry[1] > 0:
                    return name, entry[0]
        return None, None

    def _consume_drop(self, name):
        with self.lock:
            entry = self._drop_after.get(name)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._drop_after[name]

    def _is_corrupt(self, key):
        with self.lock:
            return any(_matches(key, name) for name in self._corrupt)

    def _count(self, key, path, count):
        with self.lock:
            self.bytes_by_file[key] = self.bytes_by_file.get(key, 0) + count
            self.bytes_by_path[path] = self.bytes_by_path.get(path, 0) + count

    # ---- repositories -----------------------------------------------------------------------

    def repo_dir(self, repo_id):
        parts = repo_id.split("/")
        if not 1 <= len(parts) <= 2 or any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        path = os.path.join(self.root, *parts)
        return path if os.path.isdir(path) else None

    def file_info(self, repo_dir, relpath):
        disk_path = os.path.join(repo_dir, *relpath.split("/"))
        st = os.stat(disk_path)
        cache_key = (disk_path, st.st_size, st.st_mtime_ns)
        with self.lock:
            cached = self._hash_cache.get(cache_key)
        if cached is None:
            sha256 = hashlib.sha256()
            blob = hashlib.sha1(b"blob %d\0" % st.st_size)
            with open(disk_path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                    sha256.update(chunk)
                    blob.update(chunk)
            cached = (sha256.hexdigest(), blob.hexdigest())
            with self.lock:
                self._hash_cache[cache_key] = cached
        lfs = st.st_size > self.lfs_threshold or relpath.lower().endswith(self.lfs_extensions)
        return RepoFileInfo(relpath, disk_path, st.st_size, cached[0], cached[1], lfs)

    def list_files(self, repo_dir):
        """Repository paths of every file, sorted (``.git`` directories left out)."""
        found = []
        for current, dirs, files in os.walk(repo_dir):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            rel = os.path.relpath(current, repo_dir)
            for name in sorted(files):
                found.append(name if rel == "." else "/".join(rel.split(os.sep) + [name]))
        return sorted(found)

    def commit(self, repo_id):
        """The commit sha the hub reports for ``main``: fixed, or derived from the repository content."""
        if self.fixed_commit:
            return self.fixed_commit
        repo_dir = self.repo_dir(repo_id)
        digest = hashlib.sha1(repo_id.encode("utf-8"))
        if repo_dir is not None:
            for path in self.list_files(repo_dir):
                info = self.file_info(repo_dir, path)
                digest.update(("%s %s %s\n" % (path, info.blob_id, info.sha256)).encode("utf-8"))
        return digest.hexdigest()

    def revision_ok(self, repo_id, revision):
        return revision in ("main", self.commit(repo_id))


def _matches(key, name):
    return key == name or key.endswith("/" + name)


def parse_range(header, size):
    """``(start, end)`` for a single ``bytes=`` range, ``None`` to ignore it, ``"unsatisfiable"`` for 416."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, last = (header[len("bytes="):].strip().split("-", 1) + [""])[:2]
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                return "unsatisfiable"
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


class FakeHubHandler(BaseHTTPRequestHandler):
    """One request; ``hub`` is set on a subclass by FakeHub.start."""

    hub = None  # type: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if self.hub.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    # ---- plumbing ---------------------------------------------------------------------------

    def _log(self, status):
        with self.hub.lock:
            self.hub.requests.append({
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "authorization": self.headers.get("Authorization"),
                "range": self.headers.get("Range"),
                "if_range": self.headers.get("If-Range"),
                "status": status,
            })

    def _send(self, status, body=b"", headers=None, content_type="application/json"):
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, data, status=200, headers=None):
        self._send(status, json.dumps(data).encode("utf-8"), headers)

    def _error(self, status, code, message):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json({"error": message}, status=status, headers=headers)

    def _authorized(self):
        token = self.hub.token
        if not token:
            return True
        header = self.headers.get("Authorization")
        if header == "Bearer %s" % token:
            return True
        if header:
            self._error(401, None, "Invalid credentials in Authorization header")
        else:
            self._error(401, "RepoNotFound", "Repository not found")
        return False

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _split(self):
        parsed = urlsplit(self.path)
        raw = [segment for segment in parsed.path.split("/") if segment != ""]
        return [unquote(segment) for segment in raw], parse_qs(parsed.query), parsed.path

    # ---- methods ----------------------------------------------------------------------------

    def do_HEAD(self):  # pylint: disable=invalid-name
        self._dispatch()

    def do_GET(self):  # pylint: disable=invalid-name
        self._dispatch()

    def do_POST(self):  # pylint: disable=invalid-name
        self._dispatch()

    def _dispatch(self):
        try:
            segments, query, path = self._split()
            if segments[:1] == ["_fake"]:
                return self._control(segments, path)
            if segments[:2] == ["api", "models"]:
                return self._api(segments[2:], query)
            if segments[:1] == ["cdn"]:
                return self._cdn(segments[1:], path)
            if segments[:1] == ["files"]:
                return self._plain_file(segments[1:], path)
            for index in (1, 2):
                if len(segments) > index + 2 and segments[index] == "resolve":
                    return self._resolve("/".join(segments[:index]), segments[index + 1], "/".join(segments[index + 2:]))
            return self._error(404, None, "Not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return None

    # ---- control ----------------------------------------------------------------------------

    def _control(self, segments, path):
        if segments == ["_fake", "stats"] and self.command in ("GET", "HEAD"):
            return self._json(self.hub.stats())
        if segments == ["_fake", "config"] and self.command == "POST":
            try:
                config = json.loads(self._read_body() or b"{}")
            except ValueError:
                return self._error(400, None, "config is not JSON")
            self.hub.configure(config)
            return self._json(self.hub.stats())
        return self._error(404, None, "No control route %s" % path)

    # ---- API --------------------------------------------------------------------------------

    def _repo_and_rest(self, segments, markers):
        """Split ``org/name/<marker>/...`` (or ``name/<marker>/...``) into repo id, marker and the rest."""
        for index in (2, 1):
            if len(segments) >= index and (len(segments) == index or segments[index] in markers):
                repo_id = "/".join(segments[:index])
                if self.hub.repo_dir(repo_id) is not None:
                    return repo_id, (segments[index] if len(segments) > index else None), segments[index + 1:]
        return None, None, None

    def _api(self, segments, query):
        body = self._read_body() if self.command == "POST" else b""
        if not self._authorized():
            return None
        repo_id, marker, rest = self._repo_and_rest(segments, ("revision", "paths-info", "tree"))
        if repo_id is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        revision = rest[0] if rest else "main"
        if marker is not None and not rest:
            return self._error(404, None, "Not found")
        if not self.hub.revision_ok(repo_id, revision):
            return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
        repo_dir = self.hub.repo_dir(repo_id)
        if marker in (None, "revision") and self.command in ("GET", "HEAD") and len(rest) <= 1:
            blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
            return self._json(self._model_info(repo_id, repo_dir, blobs))
        if marker == "paths-info" and self.command == "POST" and len(rest) == 1:
            return self._json(self._paths_info(repo_dir, body))
        if marker == "tree" and self.command in ("GET", "HEAD"):
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._tree(repo_dir, "/".join(rest[1:]), recursive)
        return self._error(404, None, "Not found")

    def _model_info(self, repo_id, repo_dir, blobs):
        siblings = []
        used = 0
        for path in self.hub.list_files(repo_dir):
            if not blobs:
                siblings.append({"rfilename": path})
                continue
            info = self.hub.file_info(repo_dir, path)
            used += info.size
            sibling = {"rfilename": path, "size": info.size, "blobId": info.blob_id}
            if info.lfs:
                sibling["lfs"] = {"size": info.size, "sha256": info.sha256, "pointerSize": info.pointer_size}
            siblings.append(sibling)
        return {
            "_id": hashlib.sha1(repo_id.encode("utf-8")).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0] if "/" in repo_id else None,
            "sha": self.hub.commit(repo_id),
            "lastModified": LAST_MODIFIED,
            "createdAt": LAST_MODIFIED,
            "private": bool(self.hub.token),
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": used,
        }

    def _entry(self, repo_dir, path):
        disk_path = os.path.join(repo_dir, *path.split("/"))
        if os.path.isdir(disk_path):
            tree_id = hashlib.sha1(("tree " + path).encode("utf-8")).hexdigest()
            return {"type": "directory", "oid": tree_id, "size": 0, "path": path}
        info = self.hub.file_info(repo_dir, path)
        entry = {"type": "file", "oid": info.blob_id, "size": info.size, "path": path}
        if info.lfs:
            entry["lfs"] = {"oid": info.sha256, "size": info.size, "pointerSize": info.pointer_size}
        return entry

    def _paths_info(self, repo_dir, body):
        content_type = self.headers.get("Content-Type") or ""
        if "json" in content_type:
            paths = json.loads(body or b"{}").get("paths") or []
        else:
            paths = parse_qs(body.decode("utf-8")).get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        result = []
        for path in paths:
            path = path.strip("/")
            if path and ".." not in path.split("/") and os.path.exists(os.path.join(repo_dir, *path.split("/"))):
                result.append(self._entry(repo_dir, path))
        return result

    def _tree(self, repo_dir, path, recursive):
        base = os.path.join(repo_dir, *path.split("/")) if path else repo_dir
        if ".." in path.split("/") or not os.path.isdir(base):
            return self._error(404, "EntryNotFound", "Path %s not found" % path)
        entries = []
        for name in sorted(os.listdir(base)):
            if name == ".git":
                continue
            child = name if not path else path + "/" + name
            entries.append(self._entry(repo_dir, child))
            if recursive and os.path.isdir(os.path.join(base, name)):
                entries.extend(entry for entry in self._walk(repo_dir, child))
        return self._json(entries)

    def _walk(self, repo_dir, path):
        base = os.path.join(repo_dir, *path.split("/"))
        for name in sorted(os.listdir(base)):
            child = path + "/" + name
            yield self._entry(repo_dir, child)
            if os.path.isdir(os.path.join(base, name)):
                yield from self._walk(repo_dir, child)

    # ---- files ------------------------------------------------------------------------------

    def _resolve(self, repo_id, revision, filename):
        if self.command not in ("GET", "HEAD"):
            return self._error(405, None, "Method not allowed")
        if not self._authorized():
            return None
        repo_dir = self.hub.repo_dir(repo_id)
        if repo_dir is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if not self.hub.revision_ok(repo_id, revision):
            return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
        if ".." in filename.split("/") or not os.path.isfile(os.path.join(repo_dir, *filename.split("/"))):
            return self._error(404, "EntryNotFound", "Entry not found")
        info = self.hub.file_info(repo_dir, filename)
        commit = self.hub.commit(repo_id)
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if not info.lfs:
            headers["ETag"] = info.etag
            return self._content(info, repo_id + "/" + filename, headers)
        host = self.headers.get("Host") or "%s:%d" % (self.hub.host, self.hub.port)
        if self.hub.cdn_host:
            host = "%s:%d" % (self.hub.cdn_host, self.hub.port)
        location = "http://%s/cdn/%s/%s/%s?expires=%d" % (host, repo_id, info.sha256, quote(filename), int(time.time()) + 3600)
        headers.update({
            "ETag": info.etag,
            "X-Linked-Etag": info.etag,
            "X-Linked-Size": str(info.size),
            "Location": location,
        })
        return self._send(302, b"", headers, content_type="text/plain")

    def _cdn(self, segments, path):
        if self.command not in ("GET", "HEAD"):
            return self._error(405, None, "Method not allowed")
        for index in (2, 1):
            if len(segments) > index + 1 and self.hub.repo_dir("/".join(segments[:index])) is not None:
                repo_id = "/".join(segments[:index])
                sha256 = segments[index]
                filename = "/".join(segments[index + 1:])
                repo_dir = self.hub.repo_dir(repo_id)
                disk_path = os.path.join(repo_dir, *filename.split("/"))
                if ".." in filename.split("/") or not os.path.isfile(disk_path):
                    break
                info = self.hub.file_info(repo_dir, filename)
                if info.sha256 != sha256:
                    break
                headers = {"ETag": '"%s"' % info.sha256, "Accept-Ranges": "bytes"}
                if not self.hub.cdn_host:
                    # Same origin as the hub: huggingface_hub follows the redirect for HEAD and wants the commit here.
                    headers["X-Repo-Commit"] = self.hub.commit(repo_id)
                return self._content(info, repo_id + "/" + filename, headers)
        return self._error(404, None, "No such object %s" % path)

    def _plain_file(self, segments, path):
        if self.command not in ("GET", "HEAD"):
            return self._error(405, None, "Method not allowed")
        relpath = "/".join(segments)
        disk_path = os.path.join(self.hub.root, *segments) if segments else ""
        if not segments or ".." in segments or not os.path.isfile(disk_path):
            return self._error(404, None, "No such file %s" % path)
        st = os.stat(disk_path)
        info = RepoFileInfo(relpath, disk_path, st.st_size, None, None, False)
        headers = {"ETag": '"%x-%x"' % (st.st_size, st.st_mtime_ns), "Accept-Ranges": "bytes"}
        return self._content(info, relpath, headers)

    def _content(self, info, key, headers):
        """Serve a file's bytes, with Range/If-Range, the drop/corrupt/rate knobs and the counters."""
        size = info.size
        start, end, status = 0, size - 1, 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and (if_range is None or if_range == headers.get("ETag")):
            parsed = parse_range(wanted, size)
            if parsed == "unsatisfiable":
                headers = dict(headers, **{"Content-Range": "bytes */%d" % size})
                return self._send(416, b"", headers, content_type="text/plain")
            if parsed is not None:
                start, end = parsed
                status = 206
                headers = dict(headers, **{"Content-Range": "bytes %d-%d/%d" % (start, end, size)})
        length = max(0, end - start + 1)
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return None

        drop_name, drop_at = self._drop_point(key, start, end)
        flip_at = size // 2 if self.hub._is_corrupt(key) else None  # pylint: disable=protected-access
        stop = end + 1 if drop_at is None else drop_at
        path = urlsplit(self.path).path
        began = time.monotonic()
        sent = 0
        with open(info.disk_path, "rb") as handle:
            if flip_at is None and not self.hub.rate and stop > start:
                # The fast path, for benchmarks: the kernel copies the file to the socket.
                self.hub._count(key, path, stop - start)  # pylint: disable=protected-access
                self.wfile.flush()
                self.connection.sendfile(handle, start, stop - start)
                position = stop
            else:
                position = start
            handle.seek(position)
            while position < stop:
                chunk = handle.read(min(CHUNK, stop - position))
                if not chunk:
                    break
                if flip_at is not None and position <= flip_at < position + len(chunk):
                    chunk = bytearray(chunk)
                    chunk[flip_at - position] ^= 0xFF
                    chunk = bytes(chunk)
                if self._peer_gone():
                    break  # the client died (a killed download): these bytes never leave, so they are not counted
                # Counted before it is written, so that a client never sees bytes the counters do not hold yet.
                self.hub._count(key, path, len(chunk))  # pylint: disable=protected-access
                self.wfile.write(chunk)
                position += len(chunk)
                sent += len(chunk)
                if self.hub.rate:
                    ahead = sent / float(self.hub.rate) - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        if drop_at is not None:
            self.hub._consume_drop(drop_name)  # pylint: disable=protected-access
            self._abort()
        return None

    def _drop_point(self, key, start, end):
        name, offset = self.hub._take_drop(key)  # pylint: disable=protected-access
        if name is None or not start <= offset <= end:
            return None, None
        return name, offset

    def _peer_gone(self):
        """Whether the client closed its end: during a body it sends nothing, so readable means EOF or a reset."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return not self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def _abort(self):
        """Cut the connection mid-body, as a killed server or a dropped link would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake Hugging Face hub serving repositories from a directory.")
    parser.add_argument("--root", required=True, help="directory holding ORG/NAME repository directories")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on hub routes")
    parser.add_argument("--commit", help="a fixed 40-hex commit sha for every repository")
    parser.add_argument("--cdn-host", help="host name for LFS redirects (another name for this server)")
    parser.add_argument("--lfs-threshold", type=int, default=DEFAULT_LFS_THRESHOLD, help="files larger than this are LFS files")
    parser.add_argument("--rate", type=int, help="bytes per second per response")
    parser.add_argument("--drop-after", action="append", default=[], metavar="FILE:OFFSET",
                        help="close the connection once FILE's download reaches OFFSET (once)")
    parser.add_argument("--corrupt", action="append", default=[], metavar="FILE", help="serve FILE with one byte flipped")
    parser.add_argument("--port-file", help="write the port number to this file once listening")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    if args.commit and (len(args.commit) != 40 or any(c not in "0123456789abcdef" for c in args.commit)):
        parser.error("--commit must be 40 lowercase hexadecimal characters")
    hub = FakeHub(args.root, host=args.host, port=args.port, token=args.token, commit=args.commit,
                  lfs_threshold=args.lfs_threshold, cdn_host=args.cdn_host, verbose=args.verbose)
    drops = {}
    for item in args.drop_after:
        name, offset = item.rsplit(":", 1) if ":" in item else ("", "")
        if not name or not offset.isdigit():
            parser.error("--drop-after takes FILE:OFFSET")
        drops[name] = int(offset)
    hub.configure({"drop_after": drops, "corrupt": args.corrupt, "rate": args.rate})
    hub.start()
    if args.port_file:
        with open(args.port_file, "w", encoding="ascii") as handle:
            handle.write("%d\n" % hub.port)
    sys.stdout.write("fake hub serving %s on %s\n" % (hub.root, hub.url))
    sys.stdout.flush()
    try:
        while hub.thread.is_alive():
            hub.thread.join(1)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

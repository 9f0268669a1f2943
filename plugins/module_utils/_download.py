# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verified, resumable, lock-protected downloads into a directory (standard library and ansible.module_utils only).

The pieces, used by the ``model_download`` module:

- ``FileSpec``: one file to place under the destination directory - where it comes from (an HTTP(S)
  URL or a local path), what it must be (size, sha256, git blob sha1) and the source id to record.
- ``Downloader.run(specs)``: plan (what is already there, what still has to move, how many bytes),
  check the free space, then, under an ``fcntl`` lock in the directory, transfer each missing file
  into ``.NAME.part`` (resuming with ``Range``/``If-Range`` from a ``.part`` a previous run left,
  when its sidecar ``.NAME.part.json`` says it is the same remote file), hash while writing, verify,
  ``os.replace`` onto the final name and note the file in the verification record.
- ``Record``: ``.gpufleet-verified.json`` in the destination - per file size, ``mtime_ns``, sha256
  and source. A file whose size and mtime match its entry is trusted without being read again.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import json
import os
import posixpath
import queue
import select
import shutil
import stat
import threading
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit, urlunsplit

from ansible.module_utils.urls import Request

CHUNK_SIZE = 8 * 1024 * 1024
SYNC_EVERY = 64 * 1024 * 1024  # bytes written between background flushes to disk
WRITE_SIZE = 16 * 1024  # bytes per write(2): on ext4 with large folios (Linux 6.16+), page-sized writes
# such as curl's 16 KiB were measured 2-3x faster into the page cache than 1-8 MiB ones (docs/benchmarks.md)
DOWNLOAD_CHUNK = 1024 * 1024  # buffer size of downloads: at most four of them are in flight when a kill strikes
RECORD_NAME = ".gpufleet-verified.json"
LOCK_NAME = ".gpufleet-download.lock"
RECORD_VERSION = 1
MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
RESERVED_NAMES = (RECORD_NAME, LOCK_NAME)


class DownloadError(Exception):
    """A failure to report as is: the message names the file, option or host at fault."""


def human_size(size):
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % size  # not reached


def safe_name(name, option="files"):
    """Normalise a relative file name; refuse absolute names, ``..`` and the module's own files."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise DownloadError("%s: %r is not a usable file name" % (option, name))
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm.startswith("/") or norm in (".", "..") or norm.split("/")[0] == "..":
        raise DownloadError("%s: %r must be a relative path inside dest, without '..'" % (option, name))
    if posixpath.basename(norm) in RESERVED_NAMES or norm.endswith((".part", ".part.json")):
        raise DownloadError("%s: %r clashes with a name model_download keeps for itself" % (option, name))
    return norm


def redact_url(url):
    """The URL without its query string and credentials, for messages (CDN URLs carry signatures)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_origin(url):
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme, 0)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class Hasher:
    """sha256 of a byte stream, and its git blob sha1 when the size is known up front."""

    def __init__(self, blob_size=None):
        self.sha256 = hashlib.sha256()
        self.blob = hashlib.sha1(b"blob %d\0" % blob_size) if blob_size is not None else None  # nosec - git's object id
        self.size = 0

    def update(self, data):
        self.sha256.update(data)
        if self.blob is not None:
            self.blob.update(data)
        self.size += len(data)

    @property
    def sha256_hex(self):
        return self.sha256.hexdigest()

    @property
    def blob_hex(self):
        return self.blob.hexdigest() if self.blob is not None else None


def hash_file(path, blob_size=None, chunk_size=CHUNK_SIZE, hasher=None):
    """Read ``path`` through a Hasher (a new one, or ``hasher`` to continue)."""
    hasher = hasher or Hasher(blob_size)
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            hasher.update(chunk)
    return hasher


class StreamWriter:
    """Hash and write a byte stream on two worker threads while the caller reads the next chunk.

    ``hashlib`` and ``os.write`` release the GIL, so reading from the socket, hashing and writing
    overlap: the caller fills buffers from a small pool (``take``, ``put``), the write thread writes
    them in order and passes them on, the hash thread hashes them and hands them back. Writing comes
    first so that what was received reaches the page cache (which a SIGKILL does not lose) as soon as
    it can; the hash of a resumed file is taken again from the disk. Writes go
    out in ``WRITE_SIZE`` pieces. Every ``SYNC_EVERY`` bytes a third thread starts an ``fdatasync``,
    so the data goes to disk during the transfer and the final ``fsync`` in ``close`` is short.
    A write or sync error stops the stream and is raised by the next ``take`` or by ``close``;
    ``close`` always waits for what was already put, so after an interrupted read the file holds
    every byte that was received (the next run resumes from there).
    """

    def __init__(self, fd, hasher, chunk_size=CHUNK_SIZE, depth=4):
        self.fd = fd
        self.hasher = hasher
        self.written = 0
        self.error = None
        self._free = queue.Queue()
        for dummy in range(depth):
            self._free.put(bytearray(chunk_size))
        self._to_hash = queue.Queue()
        self._to_write = queue.Queue()
        self._synced = 0
        self._syncer = None
        self._threads = [threading.Thread(target=self._write_loop, name="model_download-write", daemon=True),
                         threading.Thread(target=self._hash_loop, name="model_download-hash", daemon=True)]
        for thread in self._threads:
            thread.start()

    def take(self):
        """A free buffer to read into."""
        buf = self._free.get()
        self._raise()
        return buf

    def idle(self):
        """Whether every buffer put so far is written (or being written): the next one can go at once."""
        return self._to_write.empty()

    def put(self, buf, size):
        """Write and hash the first ``size`` bytes of ``buf`` (from ``take``), after those put before."""
        self._to_write.put((buf, size))

    def close(self):
        """Wait for the workers, then fsync; raises the first error (OSError)."""
        self._to_write.put(None)
        for thread in self._threads:
            thread.join()
        if self._syncer is not None:
            self._syncer.join()
        if self.error is None:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self.error = exc
        self._raise()

    def _raise(self):
        if self.error is not None:
            raise self.error

    def _write_loop(self):
        while True:
            item = self._to_write.get()
            if item is not None and self.error is None:
                try:
                    view = memoryview(item[0])[:item[1]]
                    while view:
                        view = view[os.write(self.fd, view[:WRITE_SIZE]):]
                    self.written += item[1]
                    self._sync_now_and_then()
                except OSError as exc:
                    self.error = exc
            self._to_hash.put(item)
            if item is None:
                return

    def _hash_loop(self):
        while True:
            item = self._to_hash.get()
            if item is None:
                return
            if self.error is None:
                self.hasher.update(memoryview(item[0])[:item[1]])
            self._free.put(item[0])

    def _sync_now_and_then(self):
        if self.written - self._synced < SYNC_EVERY or (self._syncer is not None and self._syncer.is_alive()):
            return
        self._synced = self.written
        self._syncer = threading.Thread(target=self._sync, name="model_download-sync", daemon=True)
        self._syncer.start()

    def _sync(self):
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            self.error = self.error or exc  # the kernel reports a writeback error once: keep it for close()


def read_into(reader, buf, hand_off=None):
    """Read into ``buf`` from ``reader``: ``(byte count, error)``.

    Without ``hand_off`` the buffer is filled (``readinto`` until it is full): the count is short only at
    the end of the stream or on an error. With ``hand_off`` (a download), the reads are ``readinto1`` (what
    the stream has at hand), and the buffer goes back to the caller as soon as ``hand_off()`` says the
    writer waits for data and the socket has no more right now: what the network delivered reaches the
    ``.part`` file at once and survives a kill of the process, instead of waiting in a buffer that dies
    with it (and is fetched again by the resume). While the writer is busy or more data is already there,
    the reads go on filling the buffer, so a fast transfer still moves large pieces.
    The error (OSError or HTTPException) is returned, not raised, so that the bytes that arrived before
    it are kept.
    """
    view = memoryview(buf)
    read = getattr(reader, "readinto1", None) if hand_off is not None else None
    if read is None:
        read, hand_off = reader.readinto, None
    filled = 0
    while filled < len(buf):
        try:
            count = read(view[filled:])
        except (OSError, http.client.HTTPException) as exc:
            return filled, exc
        if not count:
            break
        filled += count
        if hand_off is not None and hand_off() and not _more_waiting(reader):
            break
    return filled, None


def _more_waiting(reader):
    """Whether the socket under ``reader`` has bytes that a read would return without waiting."""
    try:
        return bool(select.select([reader.fileno()], [], [], 0)[0])
    except (AttributeError, OSError, ValueError):
        return False  # not a socket (or closed): hand what was read on


class FileSpec:
    """One file to place under dest.

    ``url`` (with ``headers``, and ``auth_headers`` sent only to the URL's own origin) or ``src``
    (a local file) says where the bytes come from. ``size``, ``sha256`` and ``blob_sha1`` (git blob id)
    are what the file must be, where known. ``source`` is recorded with the file. ``source_match``,
    for a spec without any hash (a local copy without sha256, an offline lookup), decides whether
    a record entry's source is this file.
    """

    def __init__(self, name, url=None, src=None, size=None, sha256=None, blob_sha1=None, source=None,
                 headers=None, auth_headers=None, source_match=None):
        self.name = name
        self.url = url
        self.src = src
        self.size = size
        self.sha256 = sha256.lower() if sha256 else None
        self.blob_sha1 = blob_sha1.lower() if blob_sha1 else None
        self.source = source
        self.headers = dict(headers or {})
        self.auth_headers = dict(auth_headers or {})
        self.source_match = source_match

    @property
    def has_hash(self):
        return bool(self.sha256 or self.blob_sha1)

    def accepts(self, entry):
        """Whether a record entry (already matched on size and mtime) is this file."""
        if self.size is not None and entry.get("size") != self.size:
            return False
        if self.sha256:
            return entry.get("sha256") == self.sha256
        if self.blob_sha1:
            return entry.get("blob_sha1") == self.blob_sha1
        if self.source_match is not None:
            return bool(self.source_match(entry.get("source") or {}))
        return False

    def mismatch(self, hasher):
        """``None`` when the hashed content is this file, else ``(what, expected, got)``."""
        if self.size is not None and hasher.size != self.size:
            return "size", "%d bytes" % self.size, "%d bytes" % hasher.size
        if self.sha256 and hasher.sha256_hex != self.sha256:
            return "sha256", self.sha256, hasher.sha256_hex
        if self.blob_sha1 and hasher.blob_hex != self.blob_sha1:
            return "git blob sha1", self.blob_sha1, hasher.blob_hex
        return None

    def new_hasher(self):
        return Hasher(self.size if self.blob_sha1 else None)

    def identity(self):
        """What the ``.part`` sidecar must hold for a partial file to be resumed."""
        return {"sha256": self.sha256, "blob_sha1": self.blob_sha1}


class Record:
    """The verification record ``.gpufleet-verified.json`` of a destination directory."""

    def __init__(self, dest):
        self.path = os.path.join(dest, RECORD_NAME)
        self.files = {}
        self.dirty = False

    def load(self):
        self.files = {}
        self.dirty = False
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return self  # absent or unreadable: every file gets hashed once again
        if isinstance(data, dict) and data.get("version") == RECORD_VERSION and isinstance(data.get("files"), dict):
            self.files = dict((k, v) for k, v in data["files"].items() if isinstance(v, dict))
        return self

    def lookup(self, name, st):
        """The entry of ``name`` when the file's size and mtime are still the recorded ones."""
        entry = self.files.get(name)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return entry
        return None

    def put(self, name, entry):
        if self.files.get(name) != entry:
            self.files[name] = entry
            self.dirty = True

    def save(self):
        if not self.dirty:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"version": RECORD_VERSION, "files": self.files}, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self.dirty = False


class DestLock:
    """An exclusive ``fcntl.flock`` on ``dest/.gpufleet-download.lock``, waited for up to ``timeout`` seconds."""

    def __init__(self, dest, timeout, poll=0.2):
        self.dest = dest
        self.path = os.path.join(dest, LOCK_NAME)
        self.timeout = timeout
        self.poll = poll
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    self._close()
                    raise
            if time.monotonic() >= deadline:
                self._close()
                raise DownloadError(
                    "Another model_download is writing into %s (it holds %s); gave up after waiting %s seconds "
                    "(lock_timeout)." % (self.dest, self.path, self.timeout)
                )
            time.sleep(self.poll)

    def _close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __exit__(self, *exc):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self._close()


class HttpClient:
    """GET/HEAD with ansible.module_utils.urls, following redirects by hand.

    ``auth_headers`` go only to the origin (scheme, host, port) of the first URL: the hub redirects
    LFS files to a CDN, which must not see the token.
    """

    def __init__(self, timeout=60, validate_certs=True, http_agent="gpufleet.inference.model_download"):
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.http_agent = http_agent

    def open(self, method, url, headers=None, auth_headers=None):
        origin = url_origin(url)
        for dummy in range(MAX_REDIRECTS):
            send = dict(headers or {})
            if auth_headers and url_origin(url) == origin:
                send.update(auth_headers)
            request = Request(timeout=self.timeout, validate_certs=self.validate_certs, http_agent=self.http_agent,
                              follow_redirects="none")
            try:
                return request.open(method, url, headers=send)
            except HTTPError as exc:
                location = exc.headers.get("Location") if exc.headers is not None else None
                if exc.code in REDIRECT_CODES and location:
                    exc.close()
                    url = urljoin(url, location)
                    continue
                raise
        raise DownloadError("Too many redirects (more than %d) from %s" % (MAX_REDIRECTS, redact_url(url)))


def _part_paths(path):
    directory, base = os.path.split(path)
    part = os.path.join(directory, "." + base + ".part")
    return part, part + ".json"


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)


def _remove(*paths):
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _content_range(value):
    """``'bytes 10-99/100'`` -> ``(10, 100)``; ``(None, None)`` when absent or odd."""
    try:
        unit, rest = value.strip().split(" ", 1)
        span, total = rest.split("/", 1)
        start = int(span.split("-", 1)[0])
        return (start, int(total) if total.strip() != "*" else None) if unit == "bytes" else (None, None)
    except (AttributeError, ValueError):
        return None, None


def _int_header(response, name):
    try:
        return int(response.headers.get(name))
    except (TypeError, ValueError):
        return None


def _strong_etag(value):
    return value if value and not value.startswith("W/") else None


class FilePlan:
    """What to do with one FileSpec: ``current`` (recorded), ``verified`` (hashed just now), ``fetch`` or ``missing``."""

    def __init__(self, spec, path, state, entry=None, partial=0, reason=None):
        self.spec = spec
        self.path = path
        self.state = state
        self.entry = entry
        self.partial = partial
        self.reason = reason
        self.fetched = False

    @property
    def still_to_fetch(self):
        if self.state != "fetch" or self.spec.size is None:
            return 0
        return max(0, self.spec.size - self.partial)


class Downloader:
    """Place a list of FileSpecs under ``dest``, verified, resumable and safe against a concurrent run."""

    def __init__(self, dest, client=None, file_mode=None, check_mode=False, lock_timeout=600, chunk_size=CHUNK_SIZE,
                 label=None, progress=None):
        self.dest = dest
        self.progress = progress  # a _progress.ProgressFile told about every byte that moves, or None
        self.label = label  # what the files are (a repository, a file name), for messages
        self.client = client or HttpClient()
        self.file_mode = file_mode
        self.check_mode = check_mode
        self.lock_timeout = lock_timeout
        self.chunk_size = chunk_size
        self.bytes_fetched = 0
        self.transfer_seconds = 0.0

    # ---- planning ---------------------------------------------------------------------------

    def plan(self, spec, record, offline=False):
        path = os.path.join(self.dest, *spec.name.split("/"))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except NotADirectoryError:
            raise DownloadError("%s: a parent of %s is not a directory" % (spec.name, path))
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise DownloadError("%s: %s exists and is not a regular file" % (spec.name, path))
        if st is not None:
            entry = record.lookup(spec.name, st)
            if entry is not None and spec.accepts(entry):
                return FilePlan(spec, path, "current", entry=entry)
            entry = self._verify_present(spec, path, st)
            if entry is not None:
                return FilePlan(spec, path, "verified", entry=entry)
        if offline and spec.src is None:
            reason = "absent" if st is None else "present but not verified by a previous run"
            return FilePlan(spec, path, "missing", reason=reason)
        return FilePlan(spec, path, "fetch", partial=self._valid_partial(spec, path))

    def _verify_present(self, spec, path, st):
        """Hash a file that is present but not (or no longer) in the record; its entry when it is right."""
        if spec.has_hash:
            hasher = hash_file(path, spec.size if spec.blob_sha1 else None, self.chunk_size)
            if spec.mismatch(hasher) is not None:
                return None
        elif spec.src is not None:
            try:
                if os.stat(spec.src).st_size != st.st_size:
                    return None
            except OSError:
                return None
            hasher = hash_file(path, None, self.chunk_size)
            if hash_file(spec.src, None, self.chunk_size).sha256_hex != hasher.sha256_hex:
                return None
        else:
            return None
        return self._entry(spec, st, hasher)

    @staticmethod
    def _entry(spec, st, hasher):
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": hasher.sha256_hex, "source": spec.source}
        if spec.blob_sha1:
            entry["blob_sha1"] = hasher.blob_hex
        return entry

    @staticmethod
    def _sidecar_matches(sidecar, spec):
        if spec.src is not None or not spec.has_hash or sidecar.get("identity") != spec.identity():
            return False
        size = sidecar.get("size")
        return spec.size is None or size is None or size == spec.size

    def _valid_partial(self, spec, path):
        part, side = _part_paths(path)
        try:
            size = os.stat(part).st_size
        except OSError:
            return 0
        if not self._sidecar_matches(_read_json(side), spec):
            return 0
        if spec.size is not None and size > spec.size:
            return 0
        return size

    def probe(self, plan):
        """HEAD a URL whose size is not known yet, for the free-space check and check mode."""
        spec = plan.spec
        try:
            response = self.client.open("HEAD", spec.url, dict(spec.headers, **{"Accept-Encoding": "identity"}),
                                        spec.auth_headers)
        except HTTPError as exc:
            if exc.code in (404, 401, 403, 410):
                raise DownloadError("%s: HEAD %s answered HTTP %d %s" % (spec.name, redact_url(spec.url), exc.code, exc.reason))
            return  # some servers refuse HEAD; the size is checked again when the GET answers
        except (URLError, OSError, http.client.HTTPException) as exc:
            raise DownloadError("%s: cannot reach %s: %s" % (spec.name, redact_url(spec.url), _reason(exc)))
        with response:
            length = _int_header(response, "Content-Length")
        if length is not None and response.status == 200:
            spec.size = length
            plan.partial = self._valid_partial(spec, plan.path)

    def check_space(self, needed):
        if needed <= 0:
            return
        path = self.dest
        while not os.path.isdir(path):
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        free = shutil.disk_usage(path).free
        if needed > free:
            what = "%s in %s" % (self.label, self.dest) if self.label else self.dest
            raise DownloadError(
                "Not enough free space for %s: %.2f GB (%s, %d bytes) still to fetch, but only %.2f GB (%s, %d bytes) free "
                "on the file system of %s. Nothing was written."
                % (what, needed / 1e9, human_size(needed), needed, free / 1e9, human_size(free), free, path)
            )

    # ---- running ----------------------------------------------------------------------------

    def run(self, specs, offline=False):
        """Plan, check, then (outside check mode) fetch; returns the list of FilePlans."""
        names = set()
        for spec in specs:
            if spec.name in names:
                raise DownloadError("%s is listed twice" % spec.name)
            names.add(spec.name)
        if os.path.exists(self.dest) and not os.path.isdir(self.dest):
            raise DownloadError("dest %s exists and is not a directory" % self.dest)

        record = Record(self.dest).load()
        plans = [self.plan(spec, record, offline) for spec in specs]
        missing = [plan for plan in plans if plan.state == "missing"]
        if missing:
            raise DownloadError(
                "offline=true and %d file(s) are not in %s as verified by a previous run: %s"
                % (len(missing), self.dest, ", ".join("%s (%s)" % (p.spec.name, p.reason) for p in missing))
            )
        for plan in plans:
            if plan.state == "fetch" and plan.spec.size is None and plan.spec.url:
                self.probe(plan)
        self.check_space(sum(plan.still_to_fetch for plan in plans))
        if self.check_mode:
            return plans

        work = [p for p in plans if p.state in ("fetch", "verified")
                or (p.state == "current" and p.spec.source is not None and p.entry.get("source") != p.spec.source)]
        if not work:
            return plans  # everything is in place and recorded: no lock, no write
        try:
            os.makedirs(self.dest, 0o755, exist_ok=True)  # exist_ok: a concurrent run may create it too
        except OSError as exc:
            raise DownloadError("cannot create dest %s: %s" % (self.dest, _reason(exc)))
        with DestLock(self.dest, self.lock_timeout):
            record.load()  # another run may have placed files while this one waited
            for plan in plans:
                if plan.state == "fetch":
                    self._recheck(plan, record)
            self.check_space(sum(plan.still_to_fetch for plan in plans))
            self._start_progress(plans)
            try:
                for plan in plans:
                    if plan.state == "fetch":
                        self.fetch(plan, record)
                    elif plan.state == "verified":
                        record.put(plan.spec.name, plan.entry)
                    elif plan.spec.source is not None and plan.entry.get("source") != plan.spec.source:
                        # Same content, newer source (e.g. another commit of the repository): no need to hash again.
                        plan.entry = dict(plan.entry, source=plan.spec.source)
                        record.put(plan.spec.name, plan.entry)
                record.save()
            finally:
                if self.progress is not None:
                    self.progress.close()
        return plans

    def _start_progress(self, plans):
        """Tell the progress file what this run fetches: the sizes of its files (when all are known), what
        partial downloads already hold."""
        if self.progress is None:
            return
        fetch = [plan for plan in plans if plan.state == "fetch"]
        sizes = [plan.spec.size for plan in fetch]
        total = sum(sizes) if fetch and None not in sizes else None
        self.progress.start(total, sum(plan.partial for plan in fetch if plan.spec.url))

    def _moved(self, count, spec):
        if self.progress is not None:
            self.progress.add(count, spec.name)

    def _recheck(self, plan, record):
        try:
            st = os.stat(plan.path)
        except OSError:
            plan.partial = self._valid_partial(plan.spec, plan.path)
            return
        entry = record.lookup(plan.spec.name, st)
        if entry is not None and plan.spec.accepts(entry):
            plan.state, plan.entry = "current", entry
        else:
            plan.partial = self._valid_partial(plan.spec, plan.path)

    def fetch(self, plan, record):
        directory = os.path.dirname(plan.path)
        try:
            os.makedirs(directory, 0o755, exist_ok=True)
        except OSError as exc:
            raise DownloadError("%s: cannot create %s: %s" % (plan.spec.name, directory, _reason(exc)))
        if plan.spec.src is not None:
            hasher = self._copy(plan)
        else:
            hasher = self._download(plan)
        part, side = _part_paths(plan.path)
        problem = plan.spec.mismatch(hasher)
        if problem is not None:
            _remove(part, side)
            raise DownloadError(
                "%s: %s mismatch: expected %s, got %s; the bad file was deleted. The source holds other bytes than its "
                "metadata (or the sha256 option) says." % (plan.spec.name, problem[0], problem[1], problem[2])
            )
        if self.file_mode is not None:
            os.chmod(part, self.file_mode)
        os.replace(part, plan.path)
        _remove(side)
        _fsync_dir(directory)
        plan.entry = self._entry(plan.spec, os.stat(plan.path), hasher)
        plan.fetched = True
        record.put(plan.spec.name, plan.entry)
        record.save()  # now, so that a later failure keeps this file's verification

    def _copy(self, plan):
        spec = plan.spec
        part, side = _part_paths(plan.path)
        _remove(side)
        hasher = spec.new_hasher()
        started = time.monotonic()
        try:
            with open(spec.src, "rb") as source, open(part, "wb", buffering=0) as target:
                writer = StreamWriter(target.fileno(), hasher, self.chunk_size)
                try:
                    while True:
                        buf = writer.take()
                        count, error = read_into(source, buf)
                        if error is not None:
                            raise error
                        if not count:
                            break
                        writer.put(buf, count)
                        self._moved(count, spec)
                finally:
                    writer.close()
                    self.bytes_fetched += writer.written
        except OSError as exc:
            _remove(part)
            raise DownloadError("%s: copying %s failed: %s" % (spec.name, spec.src, _reason(exc)))
        finally:
            self.transfer_seconds += time.monotonic() - started
        return hasher

    def _download(self, plan):
        spec = plan.spec
        part, side = _part_paths(plan.path)
        sidecar = _read_json(side)
        hasher = spec.new_hasher()
        offset = self._valid_partial(spec, plan.path)
        if offset:
            hash_file(part, chunk_size=self.chunk_size, hasher=hasher)  # the prefix, so the hash covers the whole file
        else:
            _remove(part)
            sidecar = {}
        sidecar.update({"identity": spec.identity(), "url": redact_url(spec.url)})
        if spec.size is not None:
            sidecar["size"] = spec.size
        _write_json(side, sidecar)
        if spec.size is not None and offset == spec.size:
            return hasher  # a previous run got every byte but stopped before the rename

        resumed_from = offset
        response, offset, total = self._open_content(spec, offset, sidecar.get("etag"))
        if offset == 0:
            hasher = spec.new_hasher()
            if resumed_from:
                self._moved(-resumed_from, spec)  # the server sends the whole file again: the partial one goes
        etag = _strong_etag(response.headers.get("ETag"))
        if etag or total is not None:
            sidecar.update({"etag": etag, "size": spec.size if spec.size is not None else total})
            _write_json(side, sidecar)
        if total is not None and spec.size is None:
            try:
                self.check_space(total - offset)
            except DownloadError:
                response.close()
                raise
        expected = _int_header(response, "Content-Length")
        received = 0
        failure = None
        started = time.monotonic()
        try:
            with open(part, "ab" if offset else "wb", buffering=0) as target:
                writer = StreamWriter(target.fileno(), hasher, min(self.chunk_size, DOWNLOAD_CHUNK))
                try:
                    while True:
                        buf = writer.take()
                        count, error = read_into(response, buf, hand_off=writer.idle)
                        if count:
                            writer.put(buf, count)
                            received += count
                            self._moved(count, spec)
                        if error is not None:
                            failure = _reason(error)
                        if error is not None or not count:
                            break
                finally:
                    writer.close()  # an error writing the file (disk full, I/O) propagates from here
        finally:
            response.close()
            self.bytes_fetched += received
            self.transfer_seconds += time.monotonic() - started
        if failure is None and expected is not None and received < expected:
            failure = "the connection closed early"
        if failure is not None:
            size = total if total is not None else spec.size
            raise DownloadError(
                "%s: the transfer from %s was interrupted after %d of %s bytes (%s). %s was kept; the next run resumes "
                "from there." % (spec.name, redact_url(spec.url), offset + received, size if size is not None else "?",
                                 failure, part)
            )
        return hasher

    def _open_content(self, spec, offset, etag):
        """GET the file from ``offset``: ``(response, offset, total size)``; the offset is 0 when the server restarts it."""
        for dummy in range(2):
            headers = dict(spec.headers, **{"Accept-Encoding": "identity"})
            if offset:
                headers["Range"] = "bytes=%d-" % offset
                if _strong_etag(etag):
                    headers["If-Range"] = etag
            try:
                response = self.client.open("GET", spec.url, headers, spec.auth_headers)
            except HTTPError as exc:
                exc.close()
                if exc.code == 416 and offset:
                    offset = 0  # the .part is longer than the file: start again
                    continue
                raise DownloadError("%s: GET %s answered HTTP %d %s" % (spec.name, redact_url(spec.url), exc.code, exc.reason))
            except (URLError, OSError, http.client.HTTPException) as exc:
                raise DownloadError("%s: cannot reach %s: %s" % (spec.name, redact_url(spec.url), _reason(exc)))
            if response.status == 206:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start == offset:
                    return response, offset, total
                response.close()
                offset = 0  # a range we did not ask for
                continue
            # 200: the whole file (no Range sent, Range not supported, or If-Range did not match).
            return response, 0, _int_header(response, "Content-Length")
        raise DownloadError("%s: %s does not answer range requests consistently" % (spec.name, redact_url(spec.url)))


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc):
    if isinstance(exc, URLError) and not isinstance(exc, HTTPError):
        return str(exc.reason)
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__

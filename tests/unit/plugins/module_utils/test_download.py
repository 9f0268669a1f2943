# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pieces of plugins/module_utils/_download.py, and a few of tests/support/fake_hub.py."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import time

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _download
from ansible_collections.gpufleet.inference.plugins.module_utils._download import (
    DestLock,
    DownloadError,
    Downloader,
    FilePlan,
    FileSpec,
    Hasher,
    HttpClient,
    Record,
    StreamWriter,
    hash_file,
    human_size,
    read_into,
    safe_name,
)
from ansible_collections.gpufleet.inference.tests.support.fake_hub import FakeHub, parse_range

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    real_connect = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOCAL_HOSTS:
            raise OSError("unit tests may not connect to %r" % (address,))
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "size, text",
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (3 * 1024 ** 2, "3.0 MiB"),
     (int(2.5 * 1024 ** 3), "2.5 GiB"), (5 * 1024 ** 4, "5.0 TiB"), (5 * 1024 ** 5, "5120.0 TiB")],
)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("name, expected", [("a.gguf", "a.gguf"), ("./a/b.json", "a/b.json"), ("a//b", "a/b")])
def test_safe_name_normalises(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize(
    "name", ["", "/etc/passwd", "../x", "a/../../x", "..", ".", ".gpufleet-verified.json", "sub/.gpufleet-download.lock",
             ".x.part", "x.part.json", "a\0b"],
)
def test_safe_name_refuses(name):
    with pytest.raises(DownloadError) as exc:
        safe_name(name, "files")
    assert "files" in str(exc.value)


@pytest.mark.parametrize(
    "content, blob",
    [(b"", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"), (b"hello\n", "ce013625030ba8dba906f756967f9e9ca394464a")],
)
def test_hasher_computes_the_git_blob_id(content, blob):
    hasher = Hasher(len(content))
    for index in range(len(content)):
        hasher.update(content[index:index + 1])
    assert hasher.blob_hex == blob  # what `git hash-object` prints
    assert hasher.sha256_hex == hashlib.sha256(content).hexdigest()
    assert hasher.size == len(content)
    assert Hasher().blob_hex is None


def test_hash_file_continues_a_hasher(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"world")
    hasher = Hasher()
    hasher.update(b"hello ")
    assert hash_file(str(path), chunk_size=2, hasher=hasher).sha256_hex == hashlib.sha256(b"hello world").hexdigest()


def test_stream_writer_writes_and_hashes_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(_download, "WRITE_SIZE", 5)
    monkeypatch.setattr(_download, "SYNC_EVERY", 64)  # background syncs happen during the stream too
    content = os.urandom(10007)
    path = tmp_path / "out"
    with open(path, "wb", buffering=0) as target:
        writer = StreamWriter(target.fileno(), Hasher(), chunk_size=97, depth=2)
        for start in range(0, len(content), 97):
            buf = writer.take()
            piece = content[start:start + 97]
            buf[:len(piece)] = piece
            writer.put(buf, len(piece))
        writer.close()
    assert path.read_bytes() == content
    assert writer.written == len(content)
    assert writer.hasher.sha256_hex == hashlib.sha256(content).hexdigest()


def test_stream_writer_raises_a_write_error_from_close():
    with open("/dev/full", "wb", buffering=0) as target:
        writer = StreamWriter(target.fileno(), Hasher(), chunk_size=4096)
        buf = writer.take()
        writer.put(buf, 4096)
        with pytest.raises(OSError) as exc:
            writer.close()
    assert exc.value.errno == errno.ENOSPC
    assert writer.written == 0


class _Flaky:
    """A reader that hands out ``data`` in pieces of 3 bytes, then raises ``error``."""

    def __init__(self, data, error):
        self.data, self.error = data, error

    def readinto(self, view):
        if not self.data:
            raise self.error
        piece, self.data = self.data[:3], self.data[3:]
        view[:len(piece)] = piece
        return len(piece)


def test_read_into_keeps_the_bytes_that_came_before_an_error():
    buf = bytearray(16)
    error = ConnectionResetError("reset by peer")
    count, got = read_into(_Flaky(b"abcdefg", error), buf)
    assert (count, got) == (7, error)
    assert bytes(buf[:7]) == b"abcdefg"


class _Socket(_Flaky):
    """``_Flaky`` over a real socket pair: ``readinto1`` hands out one piece; ``fileno`` is the socket's."""

    def __init__(self, data, error, waiting):
        super().__init__(data, error)
        self.ours, self.theirs = socket.socketpair()
        if waiting:
            self.theirs.send(b"x")  # the socket is readable: more is already there

    readinto1 = _Flaky.readinto

    def fileno(self):
        return self.ours.fileno()

    def close(self):
        self.ours.close()
        self.theirs.close()


@pytest.mark.parametrize("writer_idle, waiting, expected", [
    (True, False, 3),  # the writer waits and the socket is drained: each piece goes on at once
    (False, False, 9),  # the writer is busy: keep filling the buffer
    (True, True, 9),  # more is there already: read it before handing the buffer on
])
def test_read_into_hands_a_download_on_as_soon_as_the_writer_waits(writer_idle, waiting, expected):
    reader = _Socket(b"abcdefghi", ConnectionResetError("reset"), waiting)
    buf = bytearray(9)
    try:
        count, error = read_into(reader, buf, hand_off=lambda: writer_idle)
    finally:
        reader.close()
    assert (count, error) == (expected, None)
    assert bytes(buf[:count]) == b"abcdefghi"[:count]


def test_read_into_fills_the_buffer_of_a_reader_without_readinto1():
    buf = bytearray(6)
    count, error = read_into(_Flaky(b"abcdefg", ConnectionResetError("reset")), buf, hand_off=lambda: True)
    assert (count, error) == (6, None)


def test_filespec_accepts_and_mismatch():
    spec = FileSpec("m", sha256="AB" * 32, size=3)
    assert spec.sha256 == "ab" * 32
    assert spec.accepts({"size": 3, "sha256": "ab" * 32})
    assert not spec.accepts({"size": 4, "sha256": "ab" * 32})
    assert not spec.accepts({"size": 3, "sha256": "cd" * 32})
    hasher = Hasher()
    hasher.update(b"abc")
    assert spec.mismatch(hasher) == ("sha256", "ab" * 32, hashlib.sha256(b"abc").hexdigest())
    assert FileSpec("m", size=4).mismatch(hasher) == ("size", "4 bytes", "3 bytes")
    blob = FileSpec("m", blob_sha1="0" * 40, size=3)
    assert not blob.accepts({"size": 3, "sha256": "x"})
    assert blob.accepts({"size": 3, "blob_sha1": "0" * 40})
    unhashed = FileSpec("m")
    assert not unhashed.accepts({"size": 3, "sha256": "x"})
    matching = FileSpec("m", source_match=lambda source: source.get("repo") == "a/b")
    assert matching.accepts({"source": {"repo": "a/b"}})
    assert not matching.accepts({"source": {"repo": "c/d"}})


def test_record_round_trip_and_lookup(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = os.stat(path)
    record = Record(str(tmp_path)).load()
    assert record.files == {}
    record.put("f", {"size": 3, "mtime_ns": st.st_mtime_ns, "sha256": "s"})
    record.save()
    assert not record.dirty

    again = Record(str(tmp_path)).load()
    assert again.lookup("f", st)["sha256"] == "s"
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert again.lookup("f", os.stat(path)) is None
    assert again.lookup("g", st) is None
    assert sorted(os.listdir(tmp_path)) == [".gpufleet-verified.json", "f"]


def test_record_save_writes_only_when_something_changed(tmp_path):
    record = Record(str(tmp_path)).load()
    record.put("f", {"size": 1})
    record.save()
    mtime = os.stat(record.path).st_mtime_ns
    time.sleep(0.01)
    record.put("f", {"size": 1})
    record.save()
    assert os.stat(record.path).st_mtime_ns == mtime


@pytest.mark.parametrize("content", ["not json", "[]", '{"version": 99, "files": {}}', '{"version": 1, "files": []}'])
def test_unreadable_record_is_an_empty_record(tmp_path, content):
    (tmp_path / ".gpufleet-verified.json").write_text(content)
    assert Record(str(tmp_path)).load().files == {}


def test_dest_lock_waits_then_fails_naming_lock_timeout(tmp_path):
    with DestLock(str(tmp_path), timeout=5):
        started = time.monotonic()
        with pytest.raises(DownloadError) as exc:
            with DestLock(str(tmp_path), timeout=0.3, poll=0.05):
                pass
        assert time.monotonic() - started >= 0.3
    assert "lock_timeout" in str(exc.value)
    with DestLock(str(tmp_path), timeout=0):  # released
        pass


@pytest.mark.parametrize(
    "value, expected",
    [("bytes 10-99/100", (10, 100)), ("bytes 0-0/*", (0, None)), ("items 1-2/3", (None, None)), (None, (None, None)), ("junk", (None, None))],
)
def test_content_range(value, expected):
    assert _download._content_range(value) == expected  # pylint: disable=protected-access


def test_redact_url_drops_credentials_and_query():
    assert _download.redact_url("https://user:pw@cdn.example/x/y.gguf?X-Amz-Signature=s") == "https://cdn.example/x/y.gguf"


def test_disk_usage_is_asked_of_the_nearest_existing_directory(tmp_path, monkeypatch):
    asked = []

    class Usage:
        free = 10

    def disk_usage(path):
        asked.append(path)
        return Usage()

    monkeypatch.setattr(_download.shutil, "disk_usage", disk_usage)
    downloader = Downloader(str(tmp_path / "a" / "b" / "c"))
    downloader.check_space(0)
    assert asked == []
    downloader.check_space(10)
    with pytest.raises(DownloadError) as exc:
        downloader.check_space(11)
    assert asked == [str(tmp_path), str(tmp_path)]
    assert "11 bytes" in str(exc.value) and "10 bytes" in str(exc.value)


# ---- HTTP, against the fake hub ----------------------------------------------------------------


@pytest.fixture
def served_dir(tmp_path):
    root = tmp_path / "root"
    (root / "org" / "repo").mkdir(parents=True)
    (root / "org" / "repo" / "big.gguf").write_bytes(os.urandom(300000))
    (root / "plain.bin").write_bytes(b"0123456789" * 1000)
    return root


def test_http_client_keeps_the_token_on_its_origin(served_dir):
    with FakeHub(served_dir, token="tok", cdn_host="localhost") as hub:
        client = HttpClient(timeout=10)
        response = client.open("GET", hub.url + "/org/repo/resolve/main/big.gguf", {}, {"Authorization": "Bearer tok"})
        with response:
            body = response.read()
        assert body == (served_dir / "org" / "repo" / "big.gguf").read_bytes()
        assert [(r["status"], r["authorization"]) for r in hub.requests] == [(302, "Bearer tok"), (200, None)]


def test_http_client_reports_http_errors(served_dir):
    with FakeHub(served_dir) as hub:
        with pytest.raises(_download.HTTPError) as exc:
            HttpClient(timeout=10).open("GET", hub.url + "/files/absent")
        assert exc.value.code == 404


def _url_plan(hub, dest, name="plain.bin", size=None):
    with open(os.path.join(hub.root, name), "rb") as handle:
        content = handle.read()
    spec = FileSpec(name, url="%s/files/%s" % (hub.url, name), size=size, sha256=hashlib.sha256(content).hexdigest(),
                    source={"type": "url"})
    return spec, FilePlan(spec, os.path.join(dest, name), "fetch"), content


def test_part_longer_than_the_remote_file_is_restarted_after_416(served_dir, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    with FakeHub(served_dir) as hub:
        spec, plan, content = _url_plan(hub, str(dest))
        (dest / ".plain.bin.part").write_bytes(b"x" * (len(content) + 10))
        (dest / ".plain.bin.part.json").write_text(json.dumps({"identity": spec.identity()}))
        downloader = Downloader(str(dest), client=HttpClient(timeout=10), chunk_size=4096)

        downloader.fetch(plan, Record(str(dest)).load())

        assert (dest / "plain.bin").read_bytes() == content
        assert [r["status"] for r in hub.requests] == [416, 200]
        assert downloader.bytes_fetched == len(content)
        assert sorted(os.listdir(dest)) == [".gpufleet-verified.json", "plain.bin"]


def test_complete_part_is_renamed_without_a_request(served_dir, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    with FakeHub(served_dir) as hub:
        spec, plan, content = _url_plan(hub, str(dest), size=10000)
        (dest / ".plain.bin.part").write_bytes(content)
        (dest / ".plain.bin.part.json").write_text(json.dumps({"identity": spec.identity(), "size": len(content)}))
        downloader = Downloader(str(dest), client=HttpClient(timeout=10), file_mode=0o640)

        downloader.fetch(plan, Record(str(dest)).load())

        assert hub.requests == []
        assert downloader.bytes_fetched == 0
        assert (dest / "plain.bin").read_bytes() == content
        assert oct(os.stat(dest / "plain.bin").st_mode & 0o777) == oct(0o640)
        assert plan.fetched is True


def test_range_resume_in_small_chunks_hashes_the_whole_file(served_dir, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    with FakeHub(served_dir) as hub:
        spec, plan, content = _url_plan(hub, str(dest), size=10000)
        hub.drop_after("plain.bin", 4321)
        downloader = Downloader(str(dest), client=HttpClient(timeout=10), chunk_size=1000)
        with pytest.raises(DownloadError) as exc:
            downloader.fetch(plan, Record(str(dest)).load())
        assert "interrupted after 4321 of 10000 bytes" in str(exc.value)

        downloader.fetch(plan, Record(str(dest)).load())

        assert (dest / "plain.bin").read_bytes() == content
        assert downloader.bytes_fetched == 10000
        assert hub.requests[-1]["range"] == "bytes=4321-"


# ---- the fake hub itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, size, expected",
    [("bytes=0-", 10, (0, 9)), ("bytes=5-", 10, (5, 9)), ("bytes=2-4", 10, (2, 4)), ("bytes=-3", 10, (7, 9)),
     ("bytes=8-100", 10, (8, 9)), ("bytes=10-", 10, "unsatisfiable"), ("bytes=1-2,4-5", 10, None), ("items=0-", 10, None), (None, 10, None)],
)
def test_fake_hub_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


def test_fake_hub_control_routes(served_dir):
    with FakeHub(served_dir) as hub:
        client = HttpClient(timeout=10)
        with client.open("GET", hub.url + "/files/plain.bin") as response:
            response.read()
        with client.open("GET", hub.url + "/_fake/stats") as response:
            stats = json.loads(response.read())
        assert stats["bytes_by_file"] == {"plain.bin": 10000}
        request = _download.Request(timeout=10)
        with request.open("POST", hub.url + "/_fake/config", data=json.dumps({"reset": True, "corrupt": ["plain.bin"]}),
                          headers={"Content-Type": "application/json"}) as response:
            assert json.loads(response.read())["total_bytes"] == 0
        with client.open("GET", hub.url + "/files/plain.bin") as response:
            assert response.read() != (served_dir / "plain.bin").read_bytes()

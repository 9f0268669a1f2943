# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_download: the real module main() and the real huggingface_hub client against tests/support/fake_hub.py."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before huggingface_hub is imported anywhere: it reads these once, at import time.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gpufleet-hf-home-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], True)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
for _name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
    os.environ.pop(_name, None)

# pylint: disable=wrong-import-position
import builtins  # noqa: E402
import fcntl  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from ansible_collections.gpufleet.inference.plugins.module_utils import _download, _hf  # noqa: E402
from ansible_collections.gpufleet.inference.plugins.modules import model_download  # noqa: E402
from ansible_collections.gpufleet.inference.tests.support.fake_hub import FakeHub  # noqa: E402
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (  # noqa: E402
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)
from ansible_collections.gpufleet.inference.tests.unit.utils.module_process import (  # noqa: E402
    parse_result,
    run_module,
    start_module,
)

REPO = "org/model"
MIB = 1024 * 1024
TOKEN = "hf_test_s3cr3t_token_value"
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")
COLLECTIONS = str(Path(__file__).resolve().parents[4] / "collections")


def data(size, seed):
    return random.Random(seed).randbytes(size)


def sha256(content):
    return hashlib.sha256(content).hexdigest()


def git_blob(content):
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any connection or name lookup beyond the loopback fails the test's request."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOCAL_HOSTS:
            raise OSError("unit tests may not connect to %r" % (address,))
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (None,) + LOCAL_HOSTS:
            raise socket.gaierror("unit tests may not look up %r" % host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")


@pytest.fixture
def repo_files():
    return {
        "model.gguf": data(3 * MIB, 1),
        "config.json": b'{"architectures": ["Gemma3ForCausalLM"], "hidden_size": 640}\n',
        "tokenizer.json": data(200 * 1024, 2),
        "weights/model-00001-of-00002.safetensors": data(MIB + 3, 3),
        "weights/model-00002-of-00002.safetensors": data(512 * 1024, 4),
        "README.md": b"# model\n",
    }


@pytest.fixture
def hub_root(tmp_path, repo_files):
    root = tmp_path / "hub"
    for name, content in repo_files.items():
        path = root / REPO / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@pytest.fixture
def hub(hub_root):
    with FakeHub(hub_root) as server:
        yield server


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "models" / "gemma"


def run(args, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with set_module_args(args), pytest.raises(AnsibleExitJson) as exc:
        model_download.main()
    return exc.value.args[0]


def run_fail(args, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with set_module_args(args), pytest.raises(AnsibleFailJson) as exc:
        model_download.main()
    return exc.value.args[0]


def hf(hub, dest, **kwargs):
    args = {"dest": str(dest), "hf_repo": REPO, "endpoint": hub.url}
    args.update(kwargs)
    return args


def listing(directory):
    """Every path under ``directory``, relative, sorted; hidden files included."""
    if not directory.exists():
        return None
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def by_name(result):
    return {f["name"]: f for f in result["files"]}


def content_requests(hub):
    """GET requests that were answered with file bytes (not the hub's redirects to the CDN)."""
    return [r for r in hub.requests if r["method"] == "GET" and r["status"] in (200, 206)
            and ("/resolve/" in r["path"] or r["path"].startswith(("/cdn/", "/files/")))]


# ---- Hugging Face sources ---------------------------------------------------------------------


def test_hf_single_lfs_file(hub, dest, repo_files):
    result = run(hf(hub, dest, files=["model.gguf"]))

    content = repo_files["model.gguf"]
    assert result["changed"] is True
    assert result["revision"] == hub.commit(REPO)
    assert len(result["revision"]) == 40
    assert result["files"] == [{
        "name": "model.gguf", "path": str(dest / "model.gguf"), "size": len(content), "sha256": sha256(content), "fetched": True,
    }]
    assert (dest / "model.gguf").read_bytes() == content
    assert result["bytes_fetched"] == len(content) == result["bytes_to_fetch"]
    assert result["throughput_bytes_per_second"] > 0
    assert result["elapsed_seconds"] >= 0
    assert result["dest"] == str(dest)
    assert stat.S_IMODE((dest / "model.gguf").stat().st_mode) == 0o644
    assert listing(dest) == [".gpufleet-download.lock", ".gpufleet-verified.json", "model.gguf"]
    assert hub.served("model.gguf") == len(content)
    # Pinned to the commit, and the LFS file came from the CDN route after a redirect.
    gets = content_requests(hub)
    assert [r["path"].split("?")[0] for r in gets] == ["/cdn/%s/%s/model.gguf" % (REPO, sha256(content))]
    assert any("/resolve/%s/model.gguf" % hub.commit(REPO) in r["path"] for r in hub.requests)
    record = json.loads((dest / ".gpufleet-verified.json").read_text())
    entry = record["files"]["model.gguf"]
    assert entry["sha256"] == sha256(content)
    assert entry["size"] == len(content)
    assert entry["mtime_ns"] == (dest / "model.gguf").stat().st_mtime_ns
    assert entry["source"] == {"type": "hf", "repo": REPO, "revision": "main", "commit": hub.commit(REPO)}


def test_hf_list_of_files_keeps_repository_paths(hub, dest, repo_files):
    names = ["config.json", "weights/model-00001-of-00002.safetensors", "tokenizer.json"]

    result = run(hf(hub, dest, files=names))

    assert result["changed"] is True
    assert [f["name"] for f in result["files"]] == names
    for name in names:
        assert (dest / name).read_bytes() == repo_files[name]
        assert by_name(result)[name]["sha256"] == sha256(repo_files[name])
        assert by_name(result)[name]["fetched"] is True
    assert result["bytes_fetched"] == sum(len(repo_files[n]) for n in names)
    assert not (dest / "model.gguf").exists()
    assert not [p for p in listing(dest) if p.endswith((".part", ".part.json"))]


@pytest.mark.parametrize(
    "selection, expected",
    [
        ({"allow_patterns": ["*.safetensors"]}, ["weights/model-00001-of-00002.safetensors", "weights/model-00002-of-00002.safetensors"]),
        ({"allow_patterns": ["*.json", "README*"]}, ["README.md", "config.json", "tokenizer.json"]),
        ({"ignore_patterns": ["*.safetensors", "*.gguf"]}, ["README.md", "config.json", "tokenizer.json"]),
        ({"allow_patterns": ["weights/*"], "ignore_patterns": ["*-00002-of-*"]}, ["weights/model-00001-of-00002.safetensors"]),
        ({}, ["README.md", "config.json", "model.gguf", "tokenizer.json",
              "weights/model-00001-of-00002.safetensors", "weights/model-00002-of-00002.safetensors"]),
    ],
)
def test_hf_patterns_select_files(hub, dest, repo_files, selection, expected):
    result = run(hf(hub, dest, **selection))

    assert sorted(f["name"] for f in result["files"]) == expected
    for name in expected:
        assert (dest / name).read_bytes() == repo_files[name]
    for name in set(repo_files) - set(expected):
        assert not (dest / name).exists()


def test_hf_patterns_that_select_nothing_fail(hub, dest):
    result = run_fail(hf(hub, dest, allow_patterns=["*.onnx"]))

    assert "allow_patterns" in result["msg"]
    assert not dest.exists()


def test_hf_missing_file_is_named(hub, dest):
    result = run_fail(hf(hub, dest, files=["config.json", "model-Q9.gguf"]))

    assert "model-Q9.gguf" in result["msg"]
    assert "config.json" not in result["msg"].split(":")[-1]
    assert not dest.exists()


def test_hf_unknown_revision_fails(hub, dest):
    result = run_fail(hf(hub, dest, files=["config.json"], revision="v9"))

    assert "revision v9" in result["msg"]
    assert not dest.exists()


def test_hf_revision_can_be_the_commit_sha(hub, dest, repo_files):
    result = run(hf(hub, dest, files=["config.json"], revision=hub.commit(REPO)))

    assert result["revision"] == hub.commit(REPO)
    assert (dest / "config.json").read_bytes() == repo_files["config.json"]


def test_non_lfs_file_is_verified_by_its_git_blob_id(hub, dest, repo_files):
    content = repo_files["config.json"]

    result = run(hf(hub, dest, files=["config.json"]))

    assert result["files"][0]["sha256"] == sha256(content)
    entry = json.loads((dest / ".gpufleet-verified.json").read_text())["files"]["config.json"]
    assert entry["blob_sha1"] == git_blob(content)
    # Served directly by the hub (no CDN redirect) with the blob id as ETag.
    assert [r["path"] for r in content_requests(hub)] == ["/%s/resolve/%s/config.json" % (REPO, hub.commit(REPO))]


def test_non_lfs_file_with_bad_bytes_fails_on_the_blob_id(hub, dest, repo_files):
    hub.corrupt("config.json")

    result = run_fail(hf(hub, dest, files=["config.json"]))

    assert "config.json" in result["msg"]
    assert "git blob sha1 mismatch" in result["msg"]
    assert git_blob(repo_files["config.json"]) in result["msg"]
    bad = bytearray(repo_files["config.json"])
    bad[len(bad) // 2] ^= 0xFF
    assert git_blob(bytes(bad)) in result["msg"]
    assert listing(dest) == [".gpufleet-download.lock"]


def test_lfs_checksum_mismatch_deletes_the_file_and_names_it(hub, dest, repo_files):
    hub.corrupt("model.gguf")
    content = repo_files["model.gguf"]
    bad = bytearray(content)
    bad[len(bad) // 2] ^= 0xFF

    result = run_fail(hf(hub, dest, files=["config.json", "model.gguf"]))

    assert "model.gguf" in result["msg"]
    assert "sha256 mismatch" in result["msg"]
    assert sha256(content) in result["msg"]
    assert sha256(bytes(bad)) in result["msg"]
    assert not (dest / "model.gguf").exists()
    assert not (dest / ".model.gguf.part").exists()
    assert not (dest / ".model.gguf.part.json").exists()
    # The good file before it stays, verified and recorded.
    assert (dest / "config.json").read_bytes() == repo_files["config.json"]
    assert "config.json" in json.loads((dest / ".gpufleet-verified.json").read_text())["files"]

    hub.corrupt("model.gguf", enabled=False)
    again = run(hf(hub, dest, files=["config.json", "model.gguf"]))
    assert by_name(again)["model.gguf"]["fetched"] is True
    assert by_name(again)["config.json"]["fetched"] is False
    assert (dest / "model.gguf").read_bytes() == content


# ---- tokens -----------------------------------------------------------------------------------


@pytest.fixture
def private_hub(hub_root):
    with FakeHub(hub_root, token=TOKEN, cdn_host="localhost") as server:
        yield server


def test_private_repository_without_token_fails_clearly(private_hub, dest):
    result = run_fail(hf(private_hub, dest, files=["model.gguf"]))

    assert "token" in result["msg"]
    assert REPO in result["msg"]
    assert "401" in result["msg"]
    assert not dest.exists()


def test_wrong_token_fails_and_is_not_echoed(private_hub, dest):
    wrong = "hf_wrong_token_12345"

    result = run_fail(hf(private_hub, dest, files=["model.gguf"], token=wrong))

    assert "token" in result["msg"]
    assert wrong not in json.dumps(result)
    assert not dest.exists()


def test_token_is_sent_to_the_hub_only_never_to_the_cdn(private_hub, dest, repo_files):
    result = run(hf(private_hub, dest, files=["model.gguf", "config.json"], token=TOKEN))

    assert TOKEN not in json.dumps(result)
    assert (dest / "model.gguf").read_bytes() == repo_files["model.gguf"]
    cdn = [r for r in private_hub.requests if r["path"].startswith("/cdn/")]
    assert cdn and all(r["authorization"] is None for r in cdn)
    assert all(r["host"].startswith("localhost:") for r in cdn)
    hub_requests = [r for r in private_hub.requests if not r["path"].startswith("/cdn/")]
    assert hub_requests and all(r["authorization"] == "Bearer " + TOKEN for r in hub_requests)
    assert TOKEN not in (dest / ".gpufleet-verified.json").read_text()


def test_token_is_kept_out_of_failure_messages(private_hub, dest, monkeypatch):
    def failing_resolve(*args, **kwargs):
        raise _download.DownloadError("hub said: bad header Authorization: Bearer %s" % TOKEN)

    monkeypatch.setattr(_hf, "resolve", failing_resolve)

    result = run_fail(hf(private_hub, dest, files=["model.gguf"], token=TOKEN))

    assert TOKEN not in json.dumps(result)
    assert "********" in result["msg"]


# ---- url and src sources ----------------------------------------------------------------------


def test_url_source_with_sha256(hub, dest, repo_files):
    content = repo_files["tokenizer.json"]
    url = "%s/files/%s/tokenizer.json" % (hub.url, REPO)

    result = run({"dest": str(dest), "url": url, "sha256": sha256(content)})

    assert result["changed"] is True
    assert result["files"] == [{"name": "tokenizer.json", "path": str(dest / "tokenizer.json"), "size": len(content),
                                "sha256": sha256(content), "fetched": True}]
    assert "revision" not in result
    assert (dest / "tokenizer.json").read_bytes() == content
    served = hub.served()

    again = run({"dest": str(dest), "url": url, "sha256": sha256(content)})

    assert again["changed"] is False
    assert again["files"][0]["fetched"] is False
    assert hub.served() == served
    assert [r for r in hub.requests if r["method"] == "HEAD" or r["method"] == "GET"][-1]["path"].endswith("tokenizer.json")
    assert len(hub.requests) == 2  # HEAD for the size, GET; the re-run asks nothing


def test_url_source_through_a_redirect_with_filename(hub, dest, repo_files):
    content = repo_files["model.gguf"]
    url = "%s/%s/resolve/main/model.gguf" % (hub.url, REPO)

    result = run({"dest": str(dest), "url": url, "sha256": sha256(content).upper(), "filename": "gemma.gguf", "mode": "0600"})

    assert result["files"][0]["name"] == "gemma.gguf"
    assert (dest / "gemma.gguf").read_bytes() == content
    assert stat.S_IMODE((dest / "gemma.gguf").stat().st_mode) == 0o600


def test_url_source_with_the_wrong_sha256_fails_and_deletes(hub, dest, repo_files):
    url = "%s/files/%s/tokenizer.json" % (hub.url, REPO)
    wrong = "0" * 64

    result = run_fail({"dest": str(dest), "url": url, "sha256": wrong})

    assert "tokenizer.json" in result["msg"]
    assert wrong in result["msg"]
    assert sha256(repo_files["tokenizer.json"]) in result["msg"]
    assert not (dest / "tokenizer.json").exists()
    assert not [p for p in listing(dest) if "part" in p]


def test_url_404_fails_naming_the_file(hub, dest):
    result = run_fail({"dest": str(dest), "url": hub.url + "/files/nope.gguf", "sha256": "a" * 64})

    assert "nope.gguf" in result["msg"]
    assert "404" in result["msg"]
    assert not dest.exists()


PASSWORD = "pa55-w0rd-never-shown"
SIGNATURE = "X-Signature=5ec4e7519a7u4e"


def test_url_credentials_and_signature_never_reach_the_output(hub, dest, repo_files, tmp_path):
    content = repo_files["tokenizer.json"]
    plain = "%s/files/%s/tokenizer.json" % (hub.url, REPO)
    secret = plain.replace("://", "://model-reader:%s@" % PASSWORD) + "?" + SIGNATURE
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf-home"))

    result, printed = run_module("model_download", {"dest": str(dest), "url": secret, "sha256": sha256(content)}, env)
    failed, printed_failure = run_module("model_download", {"dest": str(dest), "url": secret.replace("tokenizer", "nope"),
                                                            "sha256": sha256(content)}, env)

    assert result.get("failed") is None, printed
    assert (dest / "tokenizer.json").read_bytes() == content
    assert result["source_url"] == plain
    assert failed["failed"] is True
    assert plain.replace("tokenizer", "nope") in failed["msg"]
    assert "404" in failed["msg"]
    for text in (printed, printed_failure, (dest / ".gpufleet-verified.json").read_text()):
        assert PASSWORD not in text
        assert "5ec4e7519a7u4e" not in text
    assert result["invocation"]["module_args"]["url"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_src_file_with_sha256(tmp_path, dest):
    src = tmp_path / "share" / "model.gguf"
    src.parent.mkdir()
    content = data(2 * MIB, 7)
    src.write_bytes(content)

    result = run({"dest": str(dest), "src": str(src), "sha256": sha256(content)})

    assert result["changed"] is True
    assert result["bytes_fetched"] == len(content)
    assert (dest / "model.gguf").read_bytes() == content
    assert result["files"][0]["sha256"] == sha256(content)

    again = run({"dest": str(dest), "src": str(src), "sha256": sha256(content)})
    assert again["changed"] is False
    assert again["bytes_fetched"] == 0


def test_src_file_with_the_wrong_sha256_fails(tmp_path, dest):
    src = tmp_path / "model.gguf"
    src.write_bytes(b"not the model")

    result = run_fail({"dest": str(dest), "src": str(src), "sha256": "b" * 64})

    assert "model.gguf" in result["msg"]
    assert "b" * 64 in result["msg"]
    assert sha256(b"not the model") in result["msg"]
    assert not (dest / "model.gguf").exists()


def test_src_directory_is_copied_and_recopied_when_a_file_changes(tmp_path, dest):
    src = tmp_path / "share" / "llama"
    (src / "tokenizer").mkdir(parents=True)
    files = {"model.safetensors": data(MIB, 8), "config.json": b"{}\n", "tokenizer/vocab.txt": b"a\nb\n"}
    for name, content in files.items():
        (src / name).write_bytes(content)

    result = run({"dest": str(dest), "src": str(src)})

    assert result["changed"] is True
    assert sorted(f["name"] for f in result["files"]) == sorted(files)
    for name, content in files.items():
        assert (dest / name).read_bytes() == content
        assert by_name(result)[name]["sha256"] == sha256(content)

    again = run({"dest": str(dest), "src": str(src)})
    assert again["changed"] is False
    assert again["bytes_fetched"] == 0

    (src / "config.json").write_bytes(b'{"changed": true}\n')
    third = run({"dest": str(dest), "src": str(src)})
    assert third["changed"] is True
    assert [f["name"] for f in third["files"] if f["fetched"]] == ["config.json"]
    assert (dest / "config.json").read_bytes() == b'{"changed": true}\n'


def test_src_directory_already_in_place_is_hashed_once_and_not_copied(tmp_path, dest):
    src = tmp_path / "share"
    src.mkdir()
    (src / "a.bin").write_bytes(data(1000, 9))
    dest.mkdir(parents=True)
    (dest / "a.bin").write_bytes(data(1000, 9))

    result = run({"dest": str(dest), "src": str(src)})

    assert result["changed"] is False
    assert result["files"][0]["fetched"] is False
    assert result["bytes_fetched"] == 0
    assert "a.bin" in json.loads((dest / ".gpufleet-verified.json").read_text())["files"]


# ---- option errors: before anything on the host changes ---------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        ({"url": "https://example.invalid/model.gguf"}, "sha256 is required with url"),
        ({"url": "ftp://example.invalid/model.gguf", "sha256": "a" * 64}, "url must be an http:// or https:// URL"),
        ({"url": "https://example.invalid/m.gguf", "sha256": "xyz"}, "sha256 must be 64 hexadecimal characters"),
        ({"url": "https://example.invalid/m.gguf", "sha256": "a" * 64, "files": ["x"]}, "files can only be used with hf_repo"),
        ({"url": "https://example.invalid/m.gguf", "sha256": "a" * 64, "token": "hf_abcdefgh"}, "token can only be used with hf_repo"),
        ({"url": "https://example.invalid/", "sha256": "a" * 64}, "set filename"),
        ({"url": "https://example.invalid/m.gguf", "sha256": "a" * 64, "filename": "../m.gguf"}, "filename"),
        ({"hf_repo": REPO, "filename": "x.gguf"}, "filename can only be used with url"),
        ({"hf_repo": REPO, "sha256": "a" * 64}, "sha256 can only be used with url or src"),
        ({"hf_repo": REPO, "offline": True}, "files is required with offline=true"),
        ({"hf_repo": REPO, "files": ["../../etc/passwd"]}, "files"),
        ({"hf_repo": REPO, "url": "https://example.invalid/m.gguf"}, "mutually exclusive"),
        ({"hf_repo": REPO, "files": ["a"], "allow_patterns": ["*"]}, "mutually exclusive"),
        ({}, "one of the following is required: hf_repo, url, src"),
        ({"src": "/nonexistent/gpufleet/model.gguf"}, "src /nonexistent/gpufleet/model.gguf does not exist"),
        ({"hf_repo": REPO, "files": ["a"], "lock_timeout": -1}, "lock_timeout"),
    ],
)
def test_option_errors_name_the_option_and_change_nothing(dest, args, message):
    args = dict(args, dest=str(dest))
    if "hf_repo" in args:
        args.setdefault("endpoint", "http://127.0.0.1:9")

    result = run_fail(args)

    assert message in result["msg"]
    assert not dest.exists()


def test_dest_that_is_a_file_fails(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")

    result = run_fail({"dest": str(path), "src": str(path)})

    assert "dest" in result["msg"] and "not a directory" in result["msg"]


def test_src_directory_with_sha256_fails(tmp_path, dest):
    result = run_fail({"dest": str(dest), "src": str(tmp_path), "sha256": "a" * 64})

    assert "sha256 can only be used when src is a file" in result["msg"]
    assert not dest.exists()


# ---- resume -----------------------------------------------------------------------------------


def test_interrupted_download_resumes_from_the_part_file(hub, dest, repo_files):
    content = repo_files["model.gguf"]
    half = len(content) // 2 + 12345
    hub.drop_after("model.gguf", half)

    first = run_fail(hf(hub, dest, files=["model.gguf"]))

    assert "model.gguf" in first["msg"]
    assert "interrupted" in first["msg"]
    assert "resumes" in first["msg"]
    assert not (dest / "model.gguf").exists()
    part = dest / ".model.gguf.part"
    assert part.read_bytes() == content[:half]
    sidecar = json.loads((dest / ".model.gguf.part.json").read_text())
    assert sidecar["identity"]["sha256"] == sha256(content)
    assert sidecar["etag"] == '"%s"' % sha256(content)
    assert sidecar["size"] == len(content)
    assert TOKEN not in json.dumps(sidecar)
    served_before = hub.served("model.gguf")
    hub.requests.clear()

    second = run(hf(hub, dest, files=["model.gguf"]))

    remaining = len(content) - half
    served = hub.served("model.gguf") - served_before
    assert remaining <= served <= remaining + 64 * 1024
    assert second["bytes_fetched"] == remaining
    assert second["bytes_to_fetch"] == remaining
    assert second["files"][0]["fetched"] is True
    assert second["files"][0]["sha256"] == sha256(content)
    assert (dest / "model.gguf").read_bytes() == content
    assert not part.exists()
    assert not (dest / ".model.gguf.part.json").exists()
    cdn = content_requests(hub)
    assert len(cdn) == 1
    assert cdn[0]["range"] == "bytes=%d-" % half
    assert cdn[0]["if_range"] == '"%s"' % sha256(content)
    assert cdn[0]["status"] == 206


def test_interrupted_non_lfs_download_resumes_and_verifies_the_blob_id(hub, dest, repo_files):
    content = repo_files["tokenizer.json"]
    hub.drop_after("tokenizer.json", 1000)

    run_fail(hf(hub, dest, files=["tokenizer.json"]))
    assert (dest / ".tokenizer.json.part").stat().st_size == 1000

    result = run(hf(hub, dest, files=["tokenizer.json"]))

    assert result["bytes_fetched"] == len(content) - 1000
    assert (dest / "tokenizer.json").read_bytes() == content
    entry = json.loads((dest / ".gpufleet-verified.json").read_text())["files"]["tokenizer.json"]
    assert entry["blob_sha1"] == git_blob(content)


def test_part_file_of_a_different_remote_file_is_discarded(hub, hub_root, dest, repo_files):
    hub.drop_after("model.gguf", MIB)
    run_fail(hf(hub, dest, files=["model.gguf"]))
    assert (dest / ".model.gguf.part").stat().st_size == MIB
    # The repository moves on: model.gguf is another file now.
    new_content = data(3 * MIB, 99)
    (hub_root / REPO / "model.gguf").write_bytes(new_content)
    served_before = hub.served("model.gguf")

    result = run(hf(hub, dest, files=["model.gguf"]))

    assert hub.served("model.gguf") - served_before == len(new_content)
    assert result["bytes_fetched"] == len(new_content)
    assert result["files"][0]["sha256"] == sha256(new_content)
    assert (dest / "model.gguf").read_bytes() == new_content
    assert not [r for r in content_requests(hub) if r["range"] and r["path"].split("?")[0].endswith("/%s/model.gguf" % sha256(new_content))]


def test_part_file_with_a_stale_etag_is_restarted_by_if_range(hub, dest, repo_files):
    content = repo_files["model.gguf"]
    hub.drop_after("model.gguf", MIB)
    run_fail(hf(hub, dest, files=["model.gguf"]))
    sidecar_path = dest / ".model.gguf.part.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["etag"] = '"an-etag-of-another-version"'
    sidecar_path.write_text(json.dumps(sidecar))
    served_before = hub.served("model.gguf")

    result = run(hf(hub, dest, files=["model.gguf"]))

    assert hub.served("model.gguf") - served_before == len(content)
    assert result["bytes_fetched"] == len(content)
    assert (dest / "model.gguf").read_bytes() == content
    last = content_requests(hub)[-1]
    assert last["if_range"] == '"an-etag-of-another-version"'
    assert last["status"] == 200


def test_part_file_with_a_bad_prefix_is_caught_by_the_hash(hub, dest, repo_files):
    content = repo_files["model.gguf"]
    hub.drop_after("model.gguf", MIB)
    run_fail(hf(hub, dest, files=["model.gguf"]))
    part = dest / ".model.gguf.part"
    part.write_bytes(b"\0" * MIB)  # same length, wrong bytes

    result = run_fail(hf(hub, dest, files=["model.gguf"]))

    assert "sha256 mismatch" in result["msg"]
    assert not part.exists()
    again = run(hf(hub, dest, files=["model.gguf"]))
    assert (dest / "model.gguf").read_bytes() == content
    assert again["bytes_fetched"] == len(content)


# ---- free space -------------------------------------------------------------------------------


class DiskUsage:
    def __init__(self, free):
        self.total, self.used, self.free = 10 * free, 9 * free, free


def test_not_enough_space_fails_before_writing_anything(hub, dest, repo_files, monkeypatch):
    calls = []

    def disk_usage(path):
        calls.append(path)
        return DiskUsage(MIB)

    monkeypatch.setattr(_download.shutil, "disk_usage", disk_usage)
    needed = len(repo_files["model.gguf"]) + len(repo_files["config.json"])

    result = run_fail(hf(hub, dest, files=["model.gguf", "config.json"]))

    assert "Not enough free space for %s in %s" % (REPO, dest) in result["msg"]
    assert "0.00 GB (3.0 MiB, %d bytes) still to fetch" % needed in result["msg"]
    assert "only 0.00 GB (1.0 MiB, %d bytes) free" % MIB in result["msg"]
    assert calls
    assert not dest.exists()
    assert content_requests(hub) == []
    assert hub.served() == 0


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MiB tmpfs: the free-space check meets a real file system that is too small (root only)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "gpufleet-test", str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("this host does not let the tests mount a tmpfs: %s" % done.stderr.decode(errors="replace").strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_file_system_stops_the_download_before_its_first_byte(hub, repo_files, small_filesystem):
    dest = small_filesystem / "models" / "gemma"
    needed = len(repo_files["model.gguf"])
    free = shutil.disk_usage(str(small_filesystem)).free

    result = run_fail(hf(hub, dest, files=["model.gguf"]))

    assert "Not enough free space for %s in %s" % (REPO, dest) in result["msg"]
    assert "%.2f GB (3.0 MiB, %d bytes) still to fetch" % (needed / 1e9, needed) in result["msg"]
    assert "free on the file system of %s" % small_filesystem in result["msg"]
    assert "%d bytes) free" % free in result["msg"]
    assert list(small_filesystem.iterdir()) == []
    assert content_requests(hub) == []
    assert hub.served() == 0


def test_space_check_counts_what_part_files_hold(hub, dest, repo_files, monkeypatch):
    content = repo_files["model.gguf"]
    hub.drop_after("model.gguf", 2 * MIB)
    run_fail(hf(hub, dest, files=["model.gguf"]))
    remaining = len(content) - 2 * MIB
    monkeypatch.setattr(_download.shutil, "disk_usage", lambda path: DiskUsage(remaining))

    result = run(hf(hub, dest, files=["model.gguf"]))
    assert result["bytes_fetched"] == remaining

    (dest / "model.gguf").unlink()
    monkeypatch.setattr(_download.shutil, "disk_usage", lambda path: DiskUsage(len(content) - 1))
    failed = run_fail(hf(hub, dest, files=["model.gguf"]))
    assert "%d bytes" % len(content) in failed["msg"]
    assert "%d bytes" % (len(content) - 1) in failed["msg"]


def test_space_check_for_a_url_of_unknown_size_happens_before_the_body_is_written(hub, dest, repo_files, monkeypatch):
    content = repo_files["tokenizer.json"]
    monkeypatch.setattr(_download.shutil, "disk_usage", lambda path: DiskUsage(1000))

    result = run_fail({"dest": str(dest), "url": "%s/files/%s/tokenizer.json" % (hub.url, REPO), "sha256": sha256(content)})

    assert "%d bytes" % len(content) in result["msg"]
    assert not dest.exists()


# ---- concurrency ------------------------------------------------------------------------------


def test_two_concurrent_runs_into_one_dest_fetch_the_file_once(hub, dest, repo_files, monkeypatch):
    content = repo_files["model.gguf"]
    hub.rate = 6 * MIB  # half a second for the file: the second run has to wait for the lock
    args = hf(hub, dest, files=["model.gguf"])
    results = []
    errors = []
    # Both runs finish planning (both see the file missing) before either may take the lock.
    barrier = threading.Barrier(2, timeout=30)
    planned = threading.local()
    real_check_space = _download.Downloader.check_space

    def check_space(self, needed):
        real_check_space(self, needed)
        if not getattr(planned, "done", False):
            planned.done = True
            barrier.wait()

    monkeypatch.setattr(_download.Downloader, "check_space", check_space)

    def worker():
        try:
            model_download.main()
        except AnsibleExitJson as exc:
            results.append(exc.args[0])
        except BaseException as exc:  # pylint: disable=broad-except
            errors.append(exc)

    with set_module_args(args):
        threads = [threading.Thread(target=worker) for dummy in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert errors == []
    assert len(results) == 2
    assert hub.served("model.gguf") == len(content)
    assert sorted(r["files"][0]["fetched"] for r in results) == [False, True]
    assert sorted(r["changed"] for r in results) == [False, True]
    assert (dest / "model.gguf").read_bytes() == content


def test_two_concurrent_processes_into_one_dest_fetch_the_file_once(hub, dest, repo_files, tmp_path):
    content = repo_files["model.gguf"]
    hub.rate = 3 * MIB  # a second for the file
    args = hf(hub, dest, files=["model.gguf"])
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf-home"))
    procs = [start_module("model_download", args, env) for dummy in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]

    results = [parse_result(out) for out, err in outputs]
    assert [r.get("failed") for r in results] == [None, None], outputs
    assert hub.served("model.gguf") == len(content)
    assert sorted(r["files"][0]["fetched"] for r in results) == [False, True]
    assert (dest / "model.gguf").read_bytes() == content


def test_progress_file_follows_the_transfer_and_goes_at_the_end(hub, dest, repo_files, tmp_path):
    content = repo_files["model.gguf"]
    hub.rate = MIB  # three seconds for the file
    progress = tmp_path / "gemma.progress.json"
    proc = start_module("model_download", hf(hub, dest, files=["model.gguf"], progress_file=str(progress)),
                        dict(os.environ, HF_HOME=str(tmp_path / "hf-home")))
    seen = []
    while proc.poll() is None:
        try:
            seen.append(json.loads(progress.read_text()))
        except (OSError, ValueError):
            pass  # not written yet, or already removed
        time.sleep(0.2)
    out, err = proc.communicate(timeout=60)

    assert parse_result(out)["changed"] is True, out + err
    assert seen, "no progress was written during a three-second download"
    assert {s["total"] for s in seen} == {len(content)}
    assert {s["file"] for s in seen if s["done"]} == {"model.gguf"}
    middle = [s for s in seen if 0 < s["done"] < len(content)]
    assert middle, seen
    assert all(0.3 * MIB < s["rate"] < 3 * MIB for s in middle if s["rate"]), middle
    assert [s["done"] for s in seen] == sorted(s["done"] for s in seen)
    assert not progress.exists()
    assert listing(dest) == [".gpufleet-download.lock", ".gpufleet-verified.json", "model.gguf"]


def test_progress_file_inside_dest_is_refused(hub, dest):
    result = run_fail(hf(hub, dest, files=["model.gguf"], progress_file=str(dest / "progress.json")))

    assert result["msg"].startswith("progress_file %s must be outside dest" % (dest / "progress.json"))
    assert not dest.exists()


def test_lock_held_too_long_fails_clearly(hub, dest):
    dest.mkdir(parents=True)
    with open(dest / ".gpufleet-download.lock", "w", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)

        result = run_fail(hf(hub, dest, files=["config.json"], lock_timeout=1))

    assert "lock_timeout" in result["msg"]
    assert str(dest) in result["msg"]
    assert not (dest / "config.json").exists()
    assert hub.served() == 0


# ---- check mode -------------------------------------------------------------------------------


def test_check_mode_reports_what_would_be_fetched_and_writes_nothing(hub, dest, repo_files):
    result = run(hf(hub, dest, files=["model.gguf", "config.json"]), check_mode=True)

    assert result["changed"] is True
    assert result["bytes_fetched"] == 0
    assert result["bytes_to_fetch"] == len(repo_files["model.gguf"]) + len(repo_files["config.json"])
    assert [f["fetched"] for f in result["files"]] == [True, True]
    assert by_name(result)["model.gguf"]["sha256"] == sha256(repo_files["model.gguf"])
    assert by_name(result)["model.gguf"]["size"] == len(repo_files["model.gguf"])
    assert not dest.exists()
    assert hub.served() == 0


def test_check_mode_counts_part_files_and_leaves_them(hub, dest, repo_files):
    hub.drop_after("model.gguf", MIB)
    run_fail(hf(hub, dest, files=["model.gguf"]))
    before = listing(dest)

    result = run(hf(hub, dest, files=["model.gguf"]), check_mode=True)

    assert result["bytes_to_fetch"] == len(repo_files["model.gguf"]) - MIB
    assert listing(dest) == before
    assert (dest / ".model.gguf.part").stat().st_size == MIB


def test_check_mode_for_a_url_asks_the_size_with_head(hub, dest, repo_files):
    content = repo_files["tokenizer.json"]

    result = run({"dest": str(dest), "url": "%s/files/%s/tokenizer.json" % (hub.url, REPO), "sha256": sha256(content)},
                 check_mode=True)

    assert result["changed"] is True
    assert result["bytes_to_fetch"] == len(content)
    assert [r["method"] for r in hub.requests] == ["HEAD"]
    assert not dest.exists()


def test_check_mode_after_a_run_reports_no_change(hub, dest):
    run(hf(hub, dest, files=["model.gguf"]))

    result = run(hf(hub, dest, files=["model.gguf"]), check_mode=True)

    assert result["changed"] is False
    assert result["bytes_to_fetch"] == 0
    assert result["files"][0]["fetched"] is False


# ---- idempotence ------------------------------------------------------------------------------


class NoHashing:
    """Once armed: fail on any hashing of a file, and note every file opened under dest."""

    def __init__(self, monkeypatch, dest):
        self.monkeypatch = monkeypatch
        self.dest = str(dest)
        self.opened = []

    def arm(self):
        real_open = builtins.open

        def spy_open(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.abspath(str(file)).startswith(self.dest):
                self.opened.append(os.path.relpath(str(file), self.dest))
            return real_open(file, *args, **kwargs)

        def refuse(*args, **kwargs):
            raise AssertionError("a file was hashed")

        self.monkeypatch.setattr(builtins, "open", spy_open)
        self.monkeypatch.setattr(_download, "hash_file", refuse)
        self.monkeypatch.setattr(_download.Hasher, "update", refuse)


@pytest.fixture
def no_hashing(monkeypatch, dest):
    return NoHashing(monkeypatch, dest)


def test_rerun_moves_no_bytes_hashes_nothing_and_reports_no_change(hub, dest, repo_files, no_hashing):
    names = ["model.gguf", "config.json", "weights/model-00001-of-00002.safetensors"]
    run(hf(hub, dest, files=names))
    served = hub.served()
    record = dest / ".gpufleet-verified.json"
    record_mtime = record.stat().st_mtime_ns
    lock_mtime = (dest / ".gpufleet-download.lock").stat().st_mtime_ns
    no_hashing.arm()

    result = run(hf(hub, dest, files=names))

    assert result["changed"] is False
    assert result["bytes_fetched"] == 0
    assert result["throughput_bytes_per_second"] == 0
    assert [f["fetched"] for f in result["files"]] == [False, False, False]
    assert [f["sha256"] for f in result["files"]] == [sha256(repo_files[n]) for n in names]
    assert hub.served() == served
    assert no_hashing.opened == [".gpufleet-verified.json"]  # the record, read; no model file
    assert record.stat().st_mtime_ns == record_mtime
    assert (dest / ".gpufleet-download.lock").stat().st_mtime_ns == lock_mtime


def test_rerun_of_a_src_directory_hashes_nothing(tmp_path, dest, no_hashing):
    src = tmp_path / "share"
    src.mkdir()
    (src / "a.bin").write_bytes(data(5000, 11))
    run({"dest": str(dest), "src": str(src)})
    no_hashing.arm()

    result = run({"dest": str(dest), "src": str(src)})

    assert result["changed"] is False
    assert no_hashing.opened == [".gpufleet-verified.json"]


def test_a_touched_file_is_hashed_again_once(hub, dest, repo_files):
    run(hf(hub, dest, files=["model.gguf"]))
    os.utime(dest / "model.gguf", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    served = hub.served()

    result = run(hf(hub, dest, files=["model.gguf"]))

    assert result["changed"] is False
    assert hub.served() == served
    entry = json.loads((dest / ".gpufleet-verified.json").read_text())["files"]["model.gguf"]
    assert entry["mtime_ns"] == 1_600_000_000_000_000_000


def test_present_but_unrecorded_file_is_hashed_once_and_recorded(hub, dest, repo_files, monkeypatch):
    dest.mkdir(parents=True)
    (dest / "model.gguf").write_bytes(repo_files["model.gguf"])
    (dest / "config.json").write_bytes(b"{}")  # wrong: replaced
    hashed = []
    real_hash_file = _download.hash_file

    def spy(path, *args, **kwargs):
        hashed.append(os.path.basename(path))
        return real_hash_file(path, *args, **kwargs)

    monkeypatch.setattr(_download, "hash_file", spy)

    result = run(hf(hub, dest, files=["model.gguf", "config.json"]))

    assert by_name(result)["model.gguf"]["fetched"] is False
    assert by_name(result)["config.json"]["fetched"] is True
    assert result["changed"] is True
    assert hub.served("model.gguf") == 0
    assert (dest / "config.json").read_bytes() == repo_files["config.json"]
    assert sorted(hashed) == ["config.json", "model.gguf"]
    del hashed[:]

    again = run(hf(hub, dest, files=["model.gguf", "config.json"]))

    assert again["changed"] is False
    assert hashed == []


def test_present_and_right_file_alone_is_no_change(hub, dest, repo_files):
    dest.mkdir(parents=True)
    (dest / "model.gguf").write_bytes(repo_files["model.gguf"])

    result = run(hf(hub, dest, files=["model.gguf"]))

    assert result["changed"] is False
    assert result["files"][0]["fetched"] is False
    assert hub.served() == 0
    assert "model.gguf" in json.loads((dest / ".gpufleet-verified.json").read_text())["files"]


def test_new_commit_with_the_same_file_moves_nothing(hub, hub_root, dest, repo_files):
    run(hf(hub, dest, files=["model.gguf"]))
    old_commit = hub.commit(REPO)
    (hub_root / REPO / "README.md").write_bytes(b"# changed\n")  # another commit, same model.gguf
    assert hub.commit(REPO) != old_commit
    served = hub.served()

    result = run(hf(hub, dest, files=["model.gguf"]))

    assert result["changed"] is False
    assert result["revision"] == hub.commit(REPO)
    assert hub.served() == served
    entry = json.loads((dest / ".gpufleet-verified.json").read_text())["files"]["model.gguf"]
    assert entry["source"]["commit"] == hub.commit(REPO)


def test_mode_of_an_existing_file_is_corrected(hub, dest):
    run(hf(hub, dest, files=["config.json"]))
    os.chmod(dest / "config.json", 0o600)

    result = run(hf(hub, dest, files=["config.json"]))

    assert result["changed"] is True
    assert result["bytes_fetched"] == 0
    assert stat.S_IMODE((dest / "config.json").stat().st_mode) == 0o644


# ---- offline ----------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("offline=true opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_with_the_record_succeeds_without_network(hub, dest, repo_files, monkeypatch, request):
    names = ["model.gguf", "config.json"]
    first = run(hf(hub, dest, files=names))
    endpoint = hub.url
    hub.stop()
    request.getfixturevalue("no_network")
    monkeypatch.setattr(_hf, "HAS_HF_HUB", False)  # not even the library is needed

    result = run({"dest": str(dest), "hf_repo": REPO, "files": names, "offline": True, "endpoint": endpoint})

    assert result["changed"] is False
    assert result["revision"] == first["revision"]
    assert [f["sha256"] for f in result["files"]] == [sha256(repo_files[n]) for n in names]
    assert [f["fetched"] for f in result["files"]] == [False, False]


def test_offline_without_the_files_fails_naming_them(hub, dest, repo_files, no_network):
    dest.mkdir(parents=True)
    (dest / "config.json").write_bytes(repo_files["config.json"])  # present, but no run verified it

    result = run_fail({"dest": str(dest), "hf_repo": REPO, "files": ["model.gguf", "config.json"], "offline": True})

    assert "offline=true" in result["msg"]
    assert "model.gguf (absent)" in result["msg"]
    assert "config.json (present but not verified" in result["msg"]
    assert listing(dest) == ["config.json"]


def test_offline_with_another_repository_recorded_fails(hub, dest):
    run(hf(hub, dest, files=["config.json"]))

    result = run_fail({"dest": str(dest), "hf_repo": "other/model", "files": ["config.json"], "offline": True})

    assert "config.json" in result["msg"]


def test_offline_url_verifies_a_present_file_by_its_sha256(tmp_path, dest, no_network):
    content = b"weights"
    dest.mkdir(parents=True)
    (dest / "m.bin").write_bytes(content)

    result = run({"dest": str(dest), "url": "https://example.invalid/m.bin", "sha256": sha256(content), "offline": True})

    assert result["changed"] is False
    assert result["files"][0]["sha256"] == sha256(content)

    (dest / "m.bin").unlink()
    failed = run_fail({"dest": str(dest), "url": "https://example.invalid/m.bin", "sha256": sha256(content), "offline": True})
    assert "m.bin (absent)" in failed["msg"]


# ---- huggingface_hub missing ------------------------------------------------------------------


def test_missing_huggingface_hub_is_reported(dest, monkeypatch):
    monkeypatch.setattr(_hf, "HAS_HF_HUB", False)
    monkeypatch.setattr(_hf, "HF_HUB_IMPORT_ERROR", "Traceback ...\nModuleNotFoundError: No module named 'huggingface_hub'")

    result = run_fail({"dest": str(dest), "hf_repo": REPO, "files": ["model.gguf"]})

    assert "huggingface_hub" in result["msg"]
    assert "No module named" in result["exception"]
    assert not dest.exists()


BLOCKED_RUN = r"""
import json, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2"):
            raise ImportError("blocked for this test: " + name)
        return None

sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpufleet.inference.plugins.modules import model_download
with patch_module_args(json.loads(sys.argv[2])):
    model_download.main()
"""


def _run_blocked(args):
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, COLLECTIONS, json.dumps(args)],
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return json.loads(lines[-1])


def test_url_and_src_sources_work_without_huggingface_hub(hub, tmp_path, dest, repo_files):
    content = repo_files["tokenizer.json"]
    url = "%s/files/%s/tokenizer.json" % (hub.url, REPO)

    by_url = _run_blocked({"dest": str(dest), "url": url, "sha256": sha256(content)})
    by_src = _run_blocked({"dest": str(tmp_path / "copy"), "src": str(dest / "tokenizer.json")})
    by_hf = _run_blocked({"dest": str(tmp_path / "hf"), "hf_repo": REPO, "files": ["model.gguf"], "endpoint": hub.url})

    assert by_url.get("failed") is not True, by_url
    assert by_url["changed"] is True
    assert (dest / "tokenizer.json").read_bytes() == content
    assert by_src["changed"] is True
    assert (tmp_path / "copy" / "tokenizer.json").read_bytes() == content
    assert by_hf["failed"] is True
    assert "huggingface_hub" in by_hf["msg"]
    assert not (tmp_path / "hf").exists()


# ---- the fake hub's command line --------------------------------------------------------------


def test_fake_hub_cli_serves_the_module(hub_root, dest, tmp_path, repo_files):
    port_file = tmp_path / "port"
    script = Path(__file__).resolve().parents[3] / "support" / "fake_hub.py"
    proc = subprocess.Popen([sys.executable, str(script), "--root", str(hub_root), "--host", "127.0.0.1", "--port", "0",
                             "--token", TOKEN, "--port-file", str(port_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for dummy in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        endpoint = "http://127.0.0.1:%s" % port_file.read_text().strip()

        result = run({"dest": str(dest), "hf_repo": REPO, "files": ["model.gguf"], "endpoint": endpoint, "token": TOKEN})

        assert result["changed"] is True
        assert (dest / "model.gguf").read_bytes() == repo_files["model.gguf"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)

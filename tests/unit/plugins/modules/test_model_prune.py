# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_prune: models placed by the real model_download, then pruned; a user's files always stay."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.gpufleet.inference.plugins.modules import model_download, model_prune
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)


def call(module, args, check_mode=False):
    args = dict(args, _ansible_check_mode=check_mode)
    with set_module_args(args), pytest.raises(AnsibleExitJson) as exc:
        module.main()
    return exc.value.args[0]


@pytest.fixture
def models(tmp_path):
    """Three models placed by model_download (one from a directory with a subdirectory), in models/."""
    source = tmp_path / "source"
    (source / "tree" / "sub").mkdir(parents=True)
    (source / "a.gguf").write_bytes(b"a" * 1000)
    (source / "b.gguf").write_bytes(b"b" * 2000)
    (source / "tree" / "config.json").write_text("{}")
    (source / "tree" / "sub" / "weights.bin").write_bytes(b"w" * 3000)
    root = tmp_path / "models"
    for name, src in (("alpha", "a.gguf"), ("beta", "b.gguf"), ("tree", "tree")):
        args = {"dest": str(root / name), "src": str(source / src)}
        if src.endswith(".gguf"):
            args["sha256"] = hashlib.sha256((source / src).read_bytes()).hexdigest()
        assert call(model_download, args)["changed"]
    return root


def listing(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _dirs, files in os.walk(root) for f in files)


def prune(root, keep, check_mode=False):
    return call(model_prune, {"models_dir": str(root), "keep": keep}, check_mode=check_mode)


def test_models_not_kept_go_with_their_directories(models):
    result = prune(models, ["alpha"])
    assert result["changed"]
    assert [entry["name"] for entry in result["models"]] == ["beta", "tree"]
    assert result["bytes"] == sum(entry["bytes"] for entry in result["models"])
    assert sorted(os.listdir(models)) == ["alpha"]
    beta = result["models"][0]
    assert beta["remove"] == ["b.gguf", ".gpufleet-verified.json", ".gpufleet-download.lock"] and beta["left"] == []
    assert beta["directory_removed"]
    assert (models / "alpha" / "a.gguf").read_bytes() == b"a" * 1000


def test_sizes_counted_are_the_model_files_and_the_record(models):
    record = (models / "beta" / ".gpufleet-verified.json").stat().st_size
    result = prune(models, ["alpha", "tree"])
    assert result["bytes"] == 2000 + record


def test_a_second_run_changes_nothing(models):
    prune(models, ["alpha"])
    again = prune(models, ["alpha"])
    assert not again["changed"] and again["models"] == [] and again["bytes"] == 0


def test_check_mode_lists_and_removes_nothing(models):
    before = listing(models)
    result = prune(models, ["alpha"], check_mode=True)
    assert result["changed"]
    assert [entry["name"] for entry in result["models"]] == ["beta", "tree"]
    assert result["models"][1]["remove"] == [
        "config.json", "sub/weights.bin", ".gpufleet-verified.json", ".gpufleet-download.lock"]
    assert listing(models) == before


def test_a_user_s_files_and_changed_files_stay_with_their_directory(models):
    (models / "tree" / "notes.txt").write_text("mine")
    (models / "beta" / "b.gguf").write_bytes(b"B" * 2000)  # changed since it was verified
    os.utime(models / "beta" / "b.gguf", ns=(1, 1))
    result = {entry["name"]: entry for entry in prune(models, ["alpha"])["models"]}
    assert result["tree"]["left"] == ["notes.txt"] and not result["tree"]["directory_removed"]
    assert listing(models / "tree") == ["notes.txt"]  # the emptied sub/ went, the user's file stayed
    assert result["beta"]["left"] == ["b.gguf"] and not result["beta"]["directory_removed"]
    assert (models / "beta" / "b.gguf").read_bytes() == b"B" * 2000
    # Without the record the directories are no longer model_download's: a later prune leaves them alone.
    assert prune(models, ["alpha"])["models"] == []


def test_directories_without_a_record_links_and_plain_files_are_never_touched(models, tmp_path):
    (models / "hand-made").mkdir()
    (models / "hand-made" / "model.gguf").write_bytes(b"x")
    (models / "loose.gguf").write_bytes(b"y")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".gpufleet-verified.json").write_text('{"version": 1, "files": {}}')
    (models / "linked").symlink_to(elsewhere)
    result = prune(models, [])
    assert [entry["name"] for entry in result["models"]] == ["alpha", "beta", "tree"]
    assert sorted(os.listdir(models)) == ["hand-made", "linked", "loose.gguf"]
    assert (elsewhere / ".gpufleet-verified.json").exists()


def test_a_record_naming_paths_outside_the_directory_removes_nothing_there(models, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    st = victim.stat()
    (models / "beta" / ".gpufleet-verified.json").write_text(
        '{"version": 1, "files": {"../../victim.txt": {"size": %d, "mtime_ns": %d}}}' % (st.st_size, st.st_mtime_ns))
    prune(models, ["alpha", "tree"])
    assert victim.read_text() == "keep me"


def test_interrupted_downloads_go_too(models):
    (models / "beta" / ".c.gguf.part").write_bytes(b"c" * 10)
    (models / "beta" / ".c.gguf.part.json").write_text("{}")
    result = prune(models, ["alpha", "tree"])["models"][0]
    assert ".c.gguf.part" in result["remove"] and ".c.gguf.part.json" in result["remove"]
    assert not (models / "beta").exists()


def test_a_missing_models_directory_holds_nothing(tmp_path):
    assert prune(tmp_path / "none", [])["models"] == []


def test_keep_is_required():
    with set_module_args({"models_dir": "/nowhere"}), pytest.raises(AnsibleFailJson) as exc:
        model_prune.main()
    assert "keep" in exc.value.args[0]["msg"]

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_manifest writes what bundle_verify checks: a changed, missing or unlisted file fails, naming it."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.gpufleet.inference.plugins.modules import bundle_manifest, bundle_verify
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

CONTENTS = {
    "images": [{"engine": "llamacpp", "ref": "gpufleet/llama.cpp:cpu-abc", "id": "sha256:1", "file": "images/llamacpp.tar"}],
    "models": [{"name": "gemma", "dir": "models/gemma",
                "files": [{"name": "g.gguf", "path": "models/gemma/g.gguf", "sha256": "x", "size": 5}]}],
    "wheels": [{"file": "wheels/hub-1.0-py3-none-any.whl"}],
}


def call(module, args, check_mode=False):
    with set_module_args(dict(args, _ansible_check_mode=check_mode)), pytest.raises(AnsibleExitJson) as exc:
        module.main()
    return exc.value.args[0]


def fail(module, args):
    with set_module_args(args), pytest.raises(AnsibleFailJson) as exc:
        module.main()
    return exc.value.args[0]


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "bundle"
    for rel, data in (("images/llamacpp.tar", b"layers" * 100), ("models/gemma/g.gguf", b"GGUF!"),
                      ("wheels/hub-1.0-py3-none-any.whl", b"PK")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_the_manifest_lists_every_file_with_its_sha256(bundle):
    result = call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    assert result["changed"]
    written = json.loads((bundle / "manifest.json").read_text())
    files = {entry["path"]: entry for entry in written["files"]}
    assert sorted(files) == ["images/llamacpp.tar", "models/gemma/g.gguf", "wheels/hub-1.0-py3-none-any.whl"]
    assert files["models/gemma/g.gguf"]["sha256"] == hashlib.sha256(b"GGUF!").hexdigest()
    assert files["images/llamacpp.tar"]["size"] == 600
    assert written["images"] == CONTENTS["images"]
    assert result["bytes"] == 607


def test_a_second_run_changes_nothing_and_check_mode_writes_nothing(bundle):
    assert call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS}, check_mode=True)["changed"]
    assert not (bundle / "manifest.json").exists()
    call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    assert not call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})["changed"]


def test_contents_naming_a_file_the_bundle_lacks_fail(bundle):
    os.remove(bundle / "wheels/hub-1.0-py3-none-any.whl")
    result = fail(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    assert "wheels/hub-1.0-py3-none-any.whl is named in the manifest but not in the bundle" in result["msg"]


def test_an_intact_bundle_verifies(bundle):
    call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    result = call(bundle_verify, {"path": str(bundle)})
    assert not result["changed"]
    assert len(result["verified"]) == 3
    assert result["manifest"]["images"][0]["ref"] == "gpufleet/llama.cpp:cpu-abc"


def test_a_changed_file_fails_naming_it_and_both_hashes(bundle):
    call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    (bundle / "models/gemma/g.gguf").write_bytes(b"GGUF?")
    result = fail(bundle_verify, {"path": str(bundle)})
    assert "bundle file models/gemma/g.gguf has sha256 %s, manifest.json says %s" % (
        hashlib.sha256(b"GGUF?").hexdigest(), hashlib.sha256(b"GGUF!").hexdigest()) in result["msg"]
    assert len(result["problems"]) == 1


def test_missing_truncated_and_unlisted_files_fail_by_name(bundle):
    call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    os.remove(bundle / "wheels/hub-1.0-py3-none-any.whl")
    (bundle / "images/llamacpp.tar").write_bytes(b"layers")
    asked = ["images/llamacpp.tar", "wheels/hub-1.0-py3-none-any.whl", "images/other.tar"]
    result = fail(bundle_verify, {"path": str(bundle), "files": asked})
    assert result["problems"] == [
        "bundle file images/llamacpp.tar has 6 bytes, manifest.json says 600",
        "bundle file wheels/hub-1.0-py3-none-any.whl is missing",
        "bundle file images/other.tar is not in manifest.json",
    ]


def test_only_the_files_asked_for_are_read(bundle):
    call(bundle_manifest, {"path": str(bundle), "contents": CONTENTS})
    (bundle / "images/llamacpp.tar").write_bytes(b"x" * 600)
    assert call(bundle_verify, {"path": str(bundle), "files": ["models/gemma/g.gguf"]})["bytes"] == 5


def test_a_directory_without_a_manifest_is_not_a_bundle(tmp_path):
    assert "no manifest.json there" in fail(bundle_verify, {"path": str(tmp_path)})["msg"]

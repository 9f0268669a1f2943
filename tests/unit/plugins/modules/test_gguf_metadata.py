# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""gguf_metadata's main() on GGUF files written by llama.cpp's own gguf package: what a file says of itself, the
warning for a file without a chat template, and the cache that spares a second parse."""

from __future__ import annotations

import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

# pylint: disable=wrong-import-position
from ansible_collections.gpufleet.inference.plugins.module_utils import _gguf  # noqa: E402
from ansible_collections.gpufleet.inference.plugins.modules import gguf_metadata  # noqa: E402
from ansible_collections.gpufleet.inference.tests.unit.utils.ansible_module_mock import (  # noqa: E402
    AnsibleExitJson,
    AnsibleFailJson,
    set_module_args,
)

GEMMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
                  "<end_of_turn>\n{% endfor %}<start_of_turn>model\n")


def write_gguf(path, name, template=None, file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M):
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_name(name)
    writer.add_size_label("270M")
    writer.add_file_type(int(file_type))
    writer.add_context_length(32768)
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


@pytest.fixture
def files(tmp_path):
    return {"it": write_gguf(tmp_path / "gemma-it.gguf", "Gemma 3 270m It", GEMMA_TEMPLATE),
            "base": write_gguf(tmp_path / "gemma-base.gguf", "Gemma 3 270m")}


@pytest.fixture(autouse=True)
def warnings(monkeypatch):
    """What the module warns about (the default callback prints each as [WARNING])."""
    given = []
    monkeypatch.setattr(gguf_metadata.AnsibleModule, "warn", lambda module, message: given.append(message))
    return given


def run(**args):
    with set_module_args(args), pytest.raises((AnsibleExitJson, AnsibleFailJson)) as caught:
        gguf_metadata.main()
    return caught.value.args[0], isinstance(caught.value, AnsibleFailJson)


def test_what_each_file_says_of_itself(files, warnings):
    result, failed = run(paths=[files["it"], files["base"]])
    assert not failed and result["changed"] is False
    it, base = result["files"][files["it"]], result["files"][files["base"]]
    assert it["architecture"] == "gemma3" and it["name"] == "Gemma 3 270m It" and it["size_label"] == "270M"
    assert it["file_type"] == "Q4_K_M" and it["context_length"] == 32768 and it["tensor_count"] == 1
    assert it["chat_template"] == GEMMA_TEMPLATE and len(it["chat_template_sha256"]) == 64
    assert base["chat_template"] is None and base["chat_template_sha256"] is None
    assert not warnings


def test_a_file_without_a_template_is_warned_about_per_service(files, warnings):
    failed = run(paths=[files["it"], files["base"]],
                 warn_if_no_template={files["it"]: ["chat"], files["base"]: ["base", "base-long"]})[1]
    assert not failed
    assert [w.split(":")[0] for w in warnings] == ["gpufleet_services (base)", "gpufleet_services (base-long)"]
    assert "gemma-base.gguf carries no chat template" in warnings[0]
    assert "falls back to ChatML" in warnings[0] and "such as gemma" in warnings[0]


def test_the_cache_spares_a_second_parse_until_the_file_changes(files, tmp_path):
    cache = str(tmp_path / "state" / "gguf.json")
    first = run(paths=[files["it"]], cache=cache)[0]
    assert first["read"] == [files["it"]] and os.path.isfile(cache)
    second = run(paths=[files["it"]], cache=cache)[0]
    assert second["read"] == [] and second["files"] == first["files"]
    # The same name, a new file: read again.
    write_gguf(files["it"], "Gemma 3 270m It v2", GEMMA_TEMPLATE)
    third = run(paths=[files["it"]], cache=cache)[0]
    assert third["read"] == [files["it"]] and third["files"][files["it"]]["name"] == "Gemma 3 270m It v2"


def test_check_mode_writes_no_cache(files, tmp_path):
    cache = tmp_path / "gguf.json"
    result, failed = run(paths=[files["it"]], cache=str(cache), _ansible_check_mode=True)
    assert not failed and result["read"] == [files["it"]] and not cache.exists()


def test_a_file_that_is_not_gguf_is_named(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>rate limited</html>" * 10)
    result, failed = run(paths=[str(bad)])
    assert failed and f"{bad} is not a GGUF file llama.cpp can read" in result["msg"]


def test_a_missing_file_is_named(tmp_path):
    result, failed = run(paths=[str(tmp_path / "gone.gguf")])
    assert failed and "gone.gguf: No such file or directory" in result["msg"]


def test_without_the_package_it_says_what_to_install(files, monkeypatch):
    monkeypatch.setattr(_gguf, "gguf", None)
    result, failed = run(paths=[files["it"]])
    assert failed and "gguf" in result["msg"] and "to read GGUF files with" in result["msg"]

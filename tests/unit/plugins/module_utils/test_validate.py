"""What an inventory value must look like: each check accepts the real values and refuses near misses."""

from __future__ import annotations

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _validate as v


@pytest.mark.parametrize("check, good, bad", [
    (v.ip_address_error, ["127.0.0.1", "0.0.0.0", "::", "::1", "[::1]", "192.168.1.20", "fd00::5"],
     ["lan", "localhost", "999.1.1.1", "", "10.0.0", None, 8080]),
    (v.absolute_path_error, ["/opt/gpufleet/models", "/"], ["models", "./stack", "~/models", "", None]),
    (v.cuda_architectures_error, ["121", "90", "120a", "100f", "89-real", "90-virtual", "native", "all", "all-major",
                                  "90;120", "80,86", "", 121],
     ["sm_90", "12.1", "compute_90", "9", "1210", "all;sm_90", None]),
    (v.gfx_targets_error, ["gfx1151", "gfx942", "gfx90a", "gfx1100", "gfx1151;gfx1100", "gfx90a:xnack-",
                           "gfx11-generic", ""],
     ["rdna3", "gfx11511", "gfx1151x", "GFX1151", "gfx", None]),
    (v.git_ref_error, ["b9246", "master", "v1.2.3", "release/2026-01", "0123abc", "a" * 40, 9246],
     ["feature..x", "-b9246", "b 9246", "ref~1", "ref^", "a:b", "x.lock", "dir/", ".hidden", "@", "a@{1}", "", None]),
    (v.hub_revision_error, ["main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567"],
     ["main branch", "abc1234", "..", "", None]),
    (v.sha256_error, ["0123456789abcdef" * 4, "0123456789ABCDEF" * 4], ["z" * 64, "0" * 63, "0" * 65, "", None]),
    (v.context_error, [0, 128, 4096, 131072, 1048576], [64, 127, 1048577, 10_000_000, -1, "4096", True, 4096.0]),
    (v.api_key_error, ["sk-0123456789abcdef", "a" * 512], ["k", "a" * 15, "a" * 513, "spaces in the key ok?", 12345678901234567]),
    (v.url_error, ["https://huggingface.co", "http://mirror.lan:8080/hf"],
     ["huggingface.co", "ftp://x/y", "https:///m.gguf", "https://exa mple.com", "", None]),
    (v.git_url_error, ["https://github.com/ggml-org/llama.cpp.git", "ssh://git@host/repo.git", "git@github.com:o/r.git",
                       "file:///srv/git/llama.cpp"],
     ["github.com/ggml-org/llama.cpp", "ftp://host/repo", ""]),
    (v.repo_id_error, ["Qwen/Qwen3-0.6B", "ggml-org/gemma-3-270m-it-GGUF", "gpt2", "o/r"],
     ["owner/na me", "a/b/c", "owner/--name", "owner/name.", "-owner/name", "o/" + "r" * 96, "", None]),
    (v.file_in_directory_error, ["m.gguf", "Q4/m-00001-of-00002.gguf"], ["/etc/passwd", "../other/m.gguf", "a/../../b", "", None]),
    (v.port_error, [1, 8080, 65535], [0, 65536, "8080", True]),
    (v.version_error, ["0.22.0", "1.18.2", "1.18.2-1", "2.13.0+cpu", "0.10.1rc1"], ["latest", "1", "v1.2", "", None]),
])
def test_checks_accept_real_values_and_refuse_near_misses(check, good, bad):
    assert [value for value in good if check(value) is not None] == []
    assert [value for value in bad if check(value) is None] == []


def test_a_refusal_says_what_is_accepted_and_what_was_given():
    assert v.context_error(10_000_000) == ("must be a number of tokens from 128 to 1,048,576, or 0 for the model's "
                                           "own (got 10000000)")
    assert "such as 127.0.0.1" in v.ip_address_error("lan") and "(got 'lan')" in v.ip_address_error("lan")


def test_an_api_key_is_never_repeated_in_its_message():
    assert "hunter2" not in v.api_key_error("hunter2")
    assert v.api_key_error("hunter2").endswith("(got a string of 7 characters)")


def test_a_single_gfx_target_is_one_target():
    assert v.gfx_targets_error("gfx1151", single=True) is None
    assert "an AMD gfx target" in v.gfx_targets_error("gfx1151;gfx1100", single=True)


@pytest.mark.parametrize("key, known, hint", [
    ("bind", ["name", "bind_address", "port"], " (did you mean 'bind_address'?)"),
    ("contxt", ["context", "args"], " (did you mean 'context'?)"),
    ("revison", ["repo", "revision"], " (did you mean 'revision'?)"),
    ("zzz", ["name", "port"], ""),
])
def test_the_nearest_known_key_is_suggested(key, known, hint):
    assert v.did_you_mean(key, known) == hint


def test_unknown_keys_name_the_entry_and_list_the_known_ones_when_none_is_close():
    assert v.unknown_keys({"name": 1, "bind": 2}, ["name", "bind_address"], "gpufleet_services[0] (chat)") == [
        "gpufleet_services[0] (chat): unknown key 'bind' (did you mean 'bind_address'?)"]
    assert v.unknown_keys({"zzz": 1}, ["name", "port"], "w") == ["w: unknown key 'zzz' (known keys: name, port)"]


def test_named_entries_are_named_once_their_name_is_good():
    seen = {}
    pattern = v.re.compile(r"^[a-z]+$")
    assert v.named_entry("gpufleet_models", 0, "m", pattern, "letters", seen) == ("gpufleet_models[0] (m)", [])
    assert v.named_entry("gpufleet_models", 1, "m", pattern, "letters", seen) == (
        "gpufleet_models[1] (m)", ["gpufleet_models[1] (m): the name is already used by gpufleet_models[0]"])
    assert v.named_entry("gpufleet_models", 2, "M!", pattern, "letters", seen) == (
        "gpufleet_models[2]", ["gpufleet_models[2].name must be letters (got 'M!')"])

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils._json_merge import (
    changed_paths,
    merge_patch,
    same_json,
)

# RFC 7386, Appendix A "Example Test Cases": (original, patch, result), as JSON text.
RFC7386_APPENDIX_A = [
    ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
    ('{"a":"b"}', '{"a":null}', "{}"),
    ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
    ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
    ('{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'),
    ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
    ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
    ('["a","b"]', '["c","d"]', '["c","d"]'),
    ('{"a":"b"}', '["c"]', '["c"]'),
    ('{"a":"foo"}', "null", "null"),
    ('{"a":"foo"}', '"bar"', '"bar"'),
    ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
    ("[1,2]", '{"a":"b","c":null}', '{"a":"b"}'),
    ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
]


@pytest.mark.parametrize(
    "original, patch, expected",
    RFC7386_APPENDIX_A,
    ids=[f"A{n}" for n in range(1, len(RFC7386_APPENDIX_A) + 1)],
)
def test_rfc7386_appendix_a(original, patch, expected):
    result = merge_patch(json.loads(original), json.loads(patch))
    expected = json.loads(expected)
    assert result == expected
    # == would let True/1 and 1/1.0 through; the RFC is about JSON values.
    assert same_json(result, expected)


def test_target_and_patch_are_not_mutated():
    target = {"log-opts": {"max-size": "10m", "max-file": "3"}, "graph": "/var/lib/docker", "dns": ["1.1.1.1"]}
    patch = {"log-opts": {"max-size": "100m", "max-file": None}, "graph": None, "dns": ["8.8.8.8"]}
    target_before = copy.deepcopy(target)
    patch_before = copy.deepcopy(patch)

    result = merge_patch(target, patch)

    assert target == target_before
    assert patch == patch_before
    assert result == {"log-opts": {"max-size": "100m"}, "dns": ["8.8.8.8"]}


def test_result_shares_no_containers_with_inputs():
    target = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}
    patch = {"dns": ["8.8.8.8"], "default-ulimits": {"nofile": {"Hard": 65536}}}

    result = merge_patch(target, patch)
    result["runtimes"]["nvidia"]["runtimeArgs"].append("--debug")
    result["dns"].append("1.1.1.1")
    result["default-ulimits"]["nofile"]["Soft"] = 1024

    assert target == {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}
    assert patch == {"dns": ["8.8.8.8"], "default-ulimits": {"nofile": {"Hard": 65536}}}


def test_null_removes_key_and_keeps_the_others():
    target = {"graph": "/var/lib/docker", "log-driver": "json-file"}
    assert merge_patch(target, {"graph": None}) == {"log-driver": "json-file"}


def test_null_for_a_missing_key_is_a_no_op():
    target = {"log-driver": "json-file"}
    assert merge_patch(target, {"graph": None}) == {"log-driver": "json-file"}


def test_nested_objects_merge_key_by_key():
    target = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3", "compress": "true"},
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
    }
    patch = {"log-opts": {"max-size": "100m", "compress": None, "labels": "env"}}

    assert merge_patch(target, patch) == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3", "labels": "env"},
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
    }


def test_lists_are_replaced_not_merged():
    assert merge_patch({"dns": ["1.1.1.1", "9.9.9.9"]}, {"dns": ["8.8.8.8"]}) == {"dns": ["8.8.8.8"]}


def test_changed_paths_nothing_changed():
    config = {"log-opts": {"max-size": "10m"}, "runtimes": {"nvidia": {"path": "x"}}}
    assert changed_paths(config, copy.deepcopy(config)) == []


def test_changed_paths_key_order_is_not_a_change():
    before = {"a": 1, "b": {"c": 2, "d": 3}}
    after = {"b": {"d": 3, "c": 2}, "a": 1}
    assert changed_paths(before, after) == []


def test_changed_paths_nested_added_removed_changed():
    before = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "compress": "true"},
        "graph": "/var/lib/docker",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
    }
    after = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "100m", "max-file": "3"},
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
        "data-root": "/srv/docker",
    }
    assert sorted(changed_paths(before, after)) == sorted(
        [
            "log-opts.max-size",  # changed
            "log-opts.compress",  # removed, nested
            "log-opts.max-file",  # added, nested
            "graph",  # removed, top level
            "data-root",  # added, top level
        ]
    )


def test_changed_paths_whole_new_subtree_is_one_path():
    before = {"log-driver": "json-file"}
    after = {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    assert changed_paths(before, after) == ["runtimes"]


def test_changed_paths_deeply_nested_change():
    before = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}
    after = {"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []}}}
    assert changed_paths(before, after) == ["runtimes.nvidia.path"]


def test_changed_paths_object_replaced_by_scalar():
    assert changed_paths({"log-opts": {"max-size": "10m"}}, {"log-opts": "none"}) == ["log-opts"]


def test_changed_paths_list_change():
    assert changed_paths({"dns": ["1.1.1.1"]}, {"dns": ["1.1.1.1", "8.8.8.8"]}) == ["dns"]


@pytest.mark.parametrize(
    "left, right",
    [
        (True, 1),
        (False, 0),
        (1, 1.0),
        ("1", 1),
        (None, False),
    ],
)
def test_same_json_distinguishes_values_python_calls_equal(left, right):
    assert not same_json(left, right)
    assert not same_json({"k": left}, {"k": right})


def test_same_json_ignores_key_order():
    assert same_json({"a": 1, "b": {"c": True, "d": None}}, {"b": {"d": None, "c": True}, "a": 1})


def test_true_versus_1_counts_as_a_change():
    before = {"live-restore": 1, "log-opts": {"compress": 1}}
    after = merge_patch(before, {"live-restore": True, "log-opts": {"compress": True}})
    assert after == before  # Python says equal ...
    assert sorted(changed_paths(before, after)) == ["live-restore", "log-opts.compress"]  # ... JSON does not

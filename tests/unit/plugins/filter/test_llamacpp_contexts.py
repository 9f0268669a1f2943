"""Which llama.cpp build contexts go: every one the role made, but the current one and the one used before it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.llamacpp import llamacpp_contexts_to_prune

ROOT = "/var/lib/gpufleet/llamacpp"
A = "archive-" + "a" * 16
B = "archive-" + "b" * 16
C = "dir-" + "c" * 16


def found(*names):
    """find's listing: the mtime follows the order given."""
    return [{"path": f"{ROOT}/{name}", "mtime": 1000.0 + index} for index, name in enumerate(names)]


def test_the_current_and_the_previous_context_stay():
    result = llamacpp_contexts_to_prune(found(A, B, C), [A, B], f"{ROOT}/{C}")
    assert result == {"history": [B, C], "prune": [f"{ROOT}/{A}"]}


def test_going_back_to_an_older_source_keeps_the_one_just_left():
    # A, then B, then A again (its image still there): B was used last before A, so B stays.
    result = llamacpp_contexts_to_prune(found(A, B), [A, B], A)
    assert result == {"history": [B, A], "prune": []}
    result = llamacpp_contexts_to_prune(found(A, B, C), [B, A], C)
    assert result["prune"] == [f"{ROOT}/{B}"]


def test_a_rerun_with_the_same_source_changes_nothing():
    first = llamacpp_contexts_to_prune(found(A, B), [A], B)
    again = llamacpp_contexts_to_prune(found(A, B), first["history"], B)
    assert again == first == {"history": [A, B], "prune": []}


def test_only_the_role_s_contexts_are_ever_named():
    listing = found(A, B, C) + [{"path": f"{ROOT}/check", "mtime": 1.0}, {"path": f"{ROOT}/notes", "mtime": 1.0},
                                {"path": f"{ROOT}/archive-short", "mtime": 1.0}]
    result = llamacpp_contexts_to_prune(listing, [], "git")
    # git is current (not on disk yet); the newest unrecorded context is the previous one.
    assert result["prune"] == [f"{ROOT}/{A}", f"{ROOT}/{B}"]
    assert result["history"] == [C, "git"]


def test_without_a_record_the_newest_other_context_is_the_previous_one():
    listing = [{"path": f"{ROOT}/{A}", "mtime": 3000.0}, {"path": f"{ROOT}/{B}", "mtime": 1000.0},
               {"path": f"{ROOT}/git", "mtime": 2000.0}]
    assert llamacpp_contexts_to_prune(listing, [], C)["prune"] == [f"{ROOT}/{B}", f"{ROOT}/git"]


def test_keep_counts_the_current_one():
    assert llamacpp_contexts_to_prune(found(A, B, C), [A, B], C, keep=1)["prune"] == [f"{ROOT}/{A}", f"{ROOT}/{B}"]
    assert llamacpp_contexts_to_prune(found(A, B, C), [A, B], C, keep=3)["prune"] == []


@pytest.mark.parametrize("keep", [0, -1, "two", True, 1.5])
def test_keep_must_be_a_whole_number_of_at_least_one(keep):
    with pytest.raises(AnsibleFilterError, match="keep must be a whole number of at least 1"):
        llamacpp_contexts_to_prune(found(A), [], A, keep=keep)

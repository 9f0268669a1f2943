# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""JSON Merge Patch (RFC 7386) and a list of what it changed.

Used where the collection edits a JSON file that other tools also own
(``/etc/docker/daemon.json``): objects are merged key by key, ``None`` (JSON
``null``) deletes a key, and any other value replaces what was there.
"""

from __future__ import annotations

import copy
import json


def merge_patch(target, patch):
    """Return ``target`` with ``patch`` applied as RFC 7386 describes (``target`` is left as it was)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def same_json(left, right):
    """Equality as JSON sees it: ``true`` is not ``1`` and ``1`` is not ``1.0``."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def changed_paths(before, after, _path=()):
    """Dotted paths of the keys whose value differs between ``before`` and ``after``."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths = []
        for key in list(before) + [k for k in after if k not in before]:
            path = _path + (str(key),)
            if key not in before or key not in after:
                paths.append(".".join(path))
            else:
                paths.extend(changed_paths(before[key], after[key], path))
        return paths
    return [] if same_json(before, after) else [".".join(_path)]

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: model_prune
short_description: Remove the models model_download placed that a host no longer needs
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Looks at each directory directly under O(models_dir) that holds the verification record of
    M(gpufleet.inference.model_download) (C(.gpufleet-verified.json)) and whose name is not in O(keep).
  - Removes only what M(gpufleet.inference.model_download) wrote there - the files of the record whose size and mtime
    are still the recorded ones, C(.NAME.part) files that have their C(.NAME.part.json) sidecar, the record and the lock
    file - then the directories this left empty, the model's own last.
  - Any other file, and a recorded file changed since it was verified, stays, and so does the directory that holds it;
    RV(models) lists them under C(left). Directories without a record, files directly in O(models_dir) and symbolic
    links are never touched.
  - Works under the lock file of M(gpufleet.inference.model_download), so a download into the same directory waits
    (or this does, up to O(lock_timeout) seconds).
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Lists what would be removed; removes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  models_dir:
    description:
      - The directory of the models, one directory per model (C(<models_dir>/<name>)). A missing one holds nothing to
        remove.
    type: path
    required: true
  keep:
    description:
      - The names of the model directories to keep.
    type: list
    elements: str
    required: true
  lock_timeout:
    description:
      - Seconds to wait for a running download into a directory to be removed.
    type: int
    default: 600
notes:
  - The models role runs it with C(models_prune_unused=true), keeping the models C(gpufleet_models) lists.
"""

EXAMPLES = r"""
- name: Remove the models no longer listed
  gpufleet.inference.model_prune:
    models_dir: /opt/gpufleet/models
    keep: "{{ gpufleet_models | map(attribute='name') | list }}"
  register: pruned

- name: Say what went
  ansible.builtin.debug:
    msg: "{{ pruned.models | map(attribute='name') | list }}: {{ pruned.bytes }} bytes"
"""

RETURN = r"""
models:
  description: Each model directory pruned (or, in check mode, to be pruned).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The model directory's name.
      type: str
      sample: gemma-3-270m
    path:
      description: The directory.
      type: str
      sample: /opt/gpufleet/models/gemma-3-270m
    remove:
      description: What was (or would be) removed, relative to the directory.
      type: list
      elements: str
      sample: [gemma-3-270m-q4_k_m.gguf, .gpufleet-verified.json]
    left:
      description: The files that stay (not model_download's, or changed since they were verified).
      type: list
      elements: str
      sample: [notes.txt]
    bytes:
      description: The size of the files removed.
      type: int
      sample: 253114176
    directory_removed:
      description: Whether the directory itself went (nothing was left in it).
      type: bool
      sample: true
bytes:
  description: The size of every file removed, over all models.
  returned: always
  type: int
  sample: 253114176
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.inference.plugins.module_utils._download import DownloadError
from ansible_collections.gpufleet.inference.plugins.module_utils._prune import prune


def main():
    module = AnsibleModule(
        argument_spec=dict(
            models_dir=dict(type="path", required=True),
            keep=dict(type="list", elements="str", required=True),
            lock_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        models = prune(params["models_dir"], set(params["keep"]), check_mode=module.check_mode,
                       lock_timeout=params["lock_timeout"])
    except (DownloadError, OSError) as exc:
        module.fail_json(msg=f"model_prune in {params['models_dir']}: {exc}")
    module.exit_json(changed=bool(models), models=models, bytes=sum(entry["bytes"] for entry in models))


if __name__ == "__main__":
    main()

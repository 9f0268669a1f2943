#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: bundle_manifest
short_description: Write the manifest of an offline bundle (every file with its sha256)
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Lists every file under O(path) (symbolic links followed, C(*.part) files left out) with its size and sha256, adds
    what O(contents) says the files are (images, models, wheels, collections, tools, sources), and writes the result as
    C(manifest.json) in O(path).
  - A file whose size and modification time are those the manifest already there recorded keeps its recorded sha256,
    so a second run does not read every image again.
  - Fails, naming the file, when O(contents) names a file that is not in the bundle.
  - The bundle playbook (C(gpufleet.inference.bundle)) runs it last; M(gpufleet.inference.bundle_verify) checks a
    bundle against the manifest.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Computes the manifest and says whether it would change; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  path:
    description:
      - The bundle's directory.
    type: path
    required: true
  contents:
    description:
      - What the bundle holds, by section. C(images), C(wheels), C(collections), C(tools), C(sources) are lists of
        dicts with a C(file) (relative to O(path)); C(models) is a list of dicts with C(files), each with a C(path).
      - Any other key (C(collection), C(created_with)) is written as it is.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Write the manifest
  gpufleet.inference.bundle_manifest:
    path: /srv/gpufleet-bundle
    contents:
      images:
        - {engine: llamacpp, ref: "gpufleet/llama.cpp:cpu-c1731ac2cb9a", id: "sha256:4bd4...", file: images/llamacpp.tar}
"""

RETURN = r"""
manifest:
  description: The manifest as written (C(format), the sections of O(contents), C(files) with C(path), C(size),
    C(sha256)).
  returned: always
  type: dict
bytes:
  description: The size of every file of the bundle.
  returned: always
  type: int
  sample: 632733696
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.inference.plugins.module_utils._bundle import (
    MANIFEST,
    build_manifest,
    dumps,
    read_manifest,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            contents=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    root = module.params["path"]
    if not os.path.isdir(root):
        module.fail_json(msg="bundle_manifest: path %s is not a directory" % root)
    try:
        previous = read_manifest(root)
    except ValueError:
        previous = None
    try:
        manifest = build_manifest(root, module.params["contents"], previous)
    except (ValueError, OSError) as exc:
        module.fail_json(msg="bundle_manifest in %s: %s" % (root, exc))
    text = dumps(manifest)
    target = os.path.join(root, MANIFEST)
    changed = previous is None or dumps(previous) != text
    if changed and not module.check_mode:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".manifest.", suffix=".part")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        module.atomic_move(tmp, target)
    module.exit_json(changed=changed, manifest=json.loads(text), bytes=sum(entry["size"] for entry in manifest["files"]))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: bundle_verify
short_description: Check an offline bundle's files against its manifest
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Reads C(manifest.json) of the bundle in O(path) (written by M(gpufleet.inference.bundle_manifest)) and computes the
    sha256 of every file it lists, or of the files in O(files) only.
  - Fails, naming each file, when one is missing, has another size or another sha256 than the manifest says, or is not
    in the manifest at all. Changes nothing.
  - site.yml runs it on the controller before any host changes, and on each host on the files copied there before any
    of them is used.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    details: Nothing changes, so there is no difference to show.
  idempotent:
    support: full
options:
  path:
    description:
      - The bundle's directory (the one that holds C(manifest.json)).
    type: path
    required: true
  files:
    description:
      - The files to check, relative to O(path). Default, every file of the manifest.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the whole bundle
  gpufleet.inference.bundle_verify:
    path: /srv/gpufleet-bundle
  register: bundle

- name: Check the files copied to this host
  gpufleet.inference.bundle_verify:
    path: /var/lib/gpufleet/bundle
    files: [images/llamacpp-cpu.tar, models/gemma/gemma-3-270m-q4_k_m.gguf]
"""

RETURN = r"""
manifest:
  description: The bundle's manifest.
  returned: success
  type: dict
verified:
  description: The files checked, relative to O(path).
  returned: success
  type: list
  elements: str
bytes:
  description: The size of the files checked.
  returned: success
  type: int
  sample: 632733696
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.gpufleet.inference.plugins.module_utils._bundle import read_manifest, verify


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            files=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    root, paths = module.params["path"], module.params["files"]
    try:
        manifest = read_manifest(root)
        problems = verify(root, manifest, paths)
    except (ValueError, OSError, KeyError) as exc:
        module.fail_json(msg="bundle_verify: %s" % exc)
    if problems:
        module.fail_json(msg="bundle %s does not match its manifest: %s" % (root, "; ".join(problems)), problems=problems)
    checked = paths if paths is not None else [entry["path"] for entry in manifest["files"]]
    sizes = {entry["path"]: entry["size"] for entry in manifest["files"]}
    module.exit_json(changed=False, manifest=manifest, verified=checked, bytes=sum(sizes[name] for name in checked))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: gguf_metadata
short_description: Read what GGUF model files say of themselves (architecture, quantization, chat template)
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Reads the header of each GGUF file in O(paths) with llama.cpp's C(gguf) Python package and returns, per file, the
    model's architecture, name and size label, the quantization, the trained context length and the chat template
    the file carries (C(tokenizer.chat_template)), if any.
  - The inference_stack role reads the file each llama.cpp service serves, so that it can say which chat template the
    service answers with and warn when llama-server would fall back to ChatML.
  - Reading a header parses every tensor's description and the vocabulary (seconds for a large model). With O(cache),
    what was read is kept there, keyed by each file's path, size, modification time and inode; a file that changed is
    read again. Writing the cache is not reported as a change.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Reads the files; the cache is not written.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  paths:
    description:
      - The GGUF files. For a model split into several files, the first one holds the metadata.
    type: list
    elements: path
    required: true
  cache:
    description:
      - A JSON file that keeps what was read, so that unchanged files are not parsed again. Its directory is created.
    type: path
  warn_if_no_template:
    description:
      - Files (keys, among O(paths)) whose lack of a chat template deserves a warning, each with the names of the
        services that serve it without setting one (values). The warning names each service and says what to set.
    type: dict
    default: {}
requirements:
  - gguf (llama.cpp's Python package) on the managed host. The models role installs it into its client virtualenv
    (C(models_hf_venv)).
notes:
  - A file that is not GGUF, or that gguf cannot parse, fails the task with a message that names the file.
"""

EXAMPLES = r"""
- name: Read the served GGUF files
  gpufleet.inference.gguf_metadata:
    paths:
      - /opt/gpufleet/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
    cache: /var/lib/gpufleet/gguf-metadata.json
  vars:
    ansible_python_interpreter: /opt/gpufleet/venv/bin/python
  register: gguf_read

- name: Say which files carry no chat template
  ansible.builtin.debug:
    msg: "{{ gguf_read.files | dict2items | rejectattr('value.chat_template') | map(attribute='key') | list }}"
"""

RETURN = r"""
files:
  description: The metadata of each file, keyed by its path.
  returned: always
  type: dict
  contains:
    architecture:
      description: C(general.architecture), llama.cpp's name of the model's architecture.
      type: str
      sample: gemma3
    name:
      description: C(general.name).
      type: str
      sample: Gemma 3 270m
    size_label:
      description: C(general.size_label).
      type: str
      sample: 270M
    file_type:
      description: The quantization of most tensors (C(general.file_type)), as llama.cpp names it.
      type: str
      sample: Q4_K_M
    context_length:
      description: The context the model was trained for, in tokens.
      type: int
      sample: 32768
    chat_template:
      description: The chat template (Jinja) the file carries, or null when it has none.
      type: str
    chat_template_sha256:
      description: The SHA-256 of the chat template, or null.
      type: str
    split_count:
      description: The number of files of a split model (C(split.count)), or null for a single file.
      type: int
    tensor_count:
      description: The number of tensors in this file.
      type: int
      sample: 236
read:
  description: The files parsed by this run (the others came from O(cache)).
  returned: always
  type: list
  elements: str
"""

import sys

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.gpufleet.inference.plugins.module_utils import _chat_template, _gguf


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            cache=dict(type="path"),
            warn_if_no_template=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    if _gguf.gguf is None:
        module.fail_json(msg=missing_required_lib("gguf", reason=f"to read GGUF files with {sys.executable}"))
    cache = None if module.check_mode else module.params["cache"]
    try:
        files, read_now = _gguf.read_many(module.params["paths"], cache=cache)
    except (_gguf.GGUFError, OSError) as exc:
        module.fail_json(msg=f"gguf_metadata: {exc}")
    for path, services in sorted(module.params["warn_if_no_template"].items()):
        metadata = files.get(path)
        if metadata is None:
            continue
        for name in services if isinstance(services, list) else [services]:
            warning = _chat_template.describe({"name": str(name)}, dict(metadata, file=path.rsplit("/", 1)[-1]))["warning"]
            if warning:
                module.warn(warning)
    module.exit_json(changed=False, files=files, read=read_now)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
module: serving_plan
short_description: Read a model's shape and plan how a service serves it in the host's memory
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Reads the shape of a model where the module runs - a GGUF file (through the C(gguf) package), a directory with a
    Hugging Face C(config.json) and its C(*.safetensors) files (or C(model.safetensors.index.json)), or, with
    O(hf_repo), the C(config.json) and file sizes of a repository on the Hugging Face hub (nothing else is downloaded).
  - Plans the service O(service) with it for the GPUs in O(gpu) (the C(gpufleet_gpu) fact of
    M(gpufleet.inference.gpu_facts)), as the filter C(gpufleet.inference.serving_plan) does - weight bytes, KV-cache
    bytes per token, the largest context that fits, and for vLLM C(gpu_memory_utilization), C(max_num_seqs) and
    C(tensor_parallel_size).
  - Fails, naming the service and the variable, when the plan finds an error - C(gpu_memory_utilization) outside
    (0, 1], C(tensor_parallel_size) larger than the GPUs found, a context above the model's limit or above what fits,
    a model that does not fit at all.
  - The module changes nothing.
extends_documentation_fragment:
  - gpufleet.inference.attributes
attributes:
  check_mode:
    support: full
    details: Reads and plans the same in check mode; it never changes anything.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  service:
    description:
      - The service, an entry of C(gpufleet_services) (C(name), C(engine), C(context), C(gpu_memory_utilization),
        C(tensor_parallel_size), C(max_num_seqs), C(kv_cache_dtype), C(dtype), C(parallel), C(args)).
    type: dict
    required: true
  gpu:
    description:
      - The C(gpufleet_gpu) fact. Empty - the model is read and the plan made, but memory is not checked.
    type: dict
    default: {}
  system_memory_bytes:
    description:
      - The host's total memory, for the fraction on unified memory when O(gpu) has no C(system_memory_bytes).
    type: int
  path:
    description:
      - A GGUF file (the first part of a split one), or a directory with C(config.json).
      - In a directory, the first C(*.gguf) file is read when there is no C(config.json).
    type: path
  hf_repo:
    description:
      - A Hugging Face repository (C(org/name)); its C(config.json) is fetched and the sizes of its C(*.safetensors)
        files are read from the hub.
    type: str
  revision:
    description: Branch, tag or commit of O(hf_repo).
    type: str
    default: main
  endpoint:
    description:
      - Base URL of the hub. Defaults to the host's E(HF_ENDPOINT), else V(https://huggingface.co).
    type: str
  token:
    description: Hugging Face access token, for private and gated repositories.
    type: str
  timeout:
    description: Timeout in seconds of each request to the hub.
    type: int
    default: 60
requirements:
  - gguf on the managed host, for GGUF files; tested with 0.19.0
  - huggingface_hub on the managed host, for O(hf_repo); tested with 2.4
notes:
  - The figures and their approximations are explained in the C(notes) of RV(plan).
seealso:
  - name: vLLM - conserving memory
    description: What C(gpu_memory_utilization), C(max_model_len) and C(max_num_seqs) do.
    link: https://docs.vllm.ai/en/latest/configuration/conserving_memory.html
  - name: vLLM issue 35313
    description: On GB10 CUDA's free memory leaves out the page cache, so vLLM's default utilization fails at start-up.
    link: https://github.com/vllm-project/vllm/issues/35313
"""

EXAMPLES = r"""
- name: Read the GPUs
  gpufleet.inference.gpu_facts:

- name: Plan the GGUF service from its file on the host
  gpufleet.inference.serving_plan:
    service: "{{ gpufleet_services[0] }}"
    gpu: "{{ ansible_facts.gpufleet_gpu }}"
    path: /opt/gpufleet/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf
  register: plan

- name: Plan a vLLM service from its repository, before downloading it
  gpufleet.inference.serving_plan:
    service:
      name: glm
      engine: vllm
      context: 8192
      gpu_memory_utilization: 0.9
    gpu: "{{ ansible_facts.gpufleet_gpu }}"
    system_memory_bytes: "{{ ansible_memtotal_mb * 1048576 }}"
    hf_repo: cpatonn/GLM-4.5-Air-AWQ-4bit
  register: plan

- name: Show it
  ansible.builtin.debug:
    msg: "{{ plan.plan.context }} tokens, utilization {{ plan.plan.gpu_memory_utilization }}: {{ plan.plan.notes }}"
"""

RETURN = r"""
shape:
  description:
    - The model's shape - C(format) (V(gguf) or V(hf)), C(architecture), C(layers), C(heads), C(kv_heads), C(head_dim),
      C(hidden), C(vocab), C(experts), C(dtype), C(quantization), C(max_position_embeddings) (the model's own context
      limit), C(kv_values_per_token), C(sliding_window), C(weight_bytes), C(weight_bytes_source) (V(files) or
      V(estimate)), C(notes).
  returned: always
  type: dict
  sample: {"format": "gguf", "architecture": "gemma3", "layers": 18, "kv_heads": 1, "head_dim": 256,
           "max_position_embeddings": 32768, "weight_bytes": 246587904}
plan:
  description:
    - The plan - C(weight_bytes), C(kv_bytes_per_token), C(kv_bytes), C(max_context), C(context),
      C(gpu_memory_utilization), C(max_num_seqs), C(tensor_parallel_size), C(budget_bytes), C(fits) (null when memory
      is unknown), C(notes), C(error) (null; a plan with an error fails the task).
  returned: always
  type: dict
  sample: {"engine": "vllm", "context": 8192, "gpu_memory_utilization": 0.8, "max_num_seqs": 14,
           "tensor_parallel_size": 1, "fits": true}
budget:
  description: The memory budget the plan used (see the filter C(gpufleet.inference.serving_budget)).
  returned: always
  type: dict
"""

import glob
import json
import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.gpufleet.inference.plugins.module_utils import _plan

try:
    from huggingface_hub import HfApi, hf_hub_download
except ImportError:
    HAS_HF_HUB = False
    HF_HUB_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_HF_HUB = True
    HF_HUB_IMPORT_ERROR = None

INDEX = "model.safetensors.index.json"


def local_weight_bytes(directory):
    """Bytes of the safetensors weights of a directory: the index's total_size, else the files' sizes."""
    index = os.path.join(directory, INDEX)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            total = (json.load(handle).get("metadata") or {}).get("total_size")
        if total:
            return int(total)
    files = glob.glob(os.path.join(directory, "*.safetensors"))
    return sum(os.path.getsize(name) for name in files) or None


class ServingPlan:
    def __init__(self, module):
        self.module = module
        self.params = module.params

    def where(self):
        return "gpufleet_services (%s)" % (self.params["service"].get("name") or "?")

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg="%s: %s" % (self.where(), msg), **kwargs)

    def shape(self):
        p = self.params
        try:
            if p["hf_repo"]:
                return self.shape_from_hub()
            path = p["path"]
            if os.path.isdir(path):
                config = os.path.join(path, "config.json")
                if os.path.isfile(config):
                    with open(config, encoding="utf-8") as handle:
                        return _plan.shape_from_hf_config(json.load(handle), local_weight_bytes(path))
                ggufs = sorted(glob.glob(os.path.join(path, "*.gguf")))
                if not ggufs:
                    self.fail("%s has neither config.json nor a .gguf file" % path)
                path = ggufs[0]
            if not os.path.isfile(path):
                self.fail("path %s does not exist" % path)
            return _plan.shape_from_gguf(path)
        except _plan.PlanError as exc:
            if "gguf" in to_native(exc) and "package" in to_native(exc):
                self.fail(missing_required_lib("gguf"), exception=traceback.format_exc())
            self.fail(to_native(exc))
        except (OSError, ValueError) as exc:
            self.fail("cannot read the model: %s" % to_native(exc))

    def shape_from_hub(self):
        p = self.params
        if not HAS_HF_HUB:
            self.fail(missing_required_lib("huggingface_hub"), exception=HF_HUB_IMPORT_ERROR)
        endpoint = p["endpoint"].rstrip("/") if p["endpoint"] else None
        api = HfApi(endpoint=endpoint, token=p["token"])
        try:
            info = api.model_info(p["hf_repo"], revision=p["revision"], files_metadata=True, timeout=p["timeout"])
            sizes = dict((s.rfilename, (s.lfs.size if s.lfs else s.size)) for s in info.siblings or [])
            config, weights = None, None
            if "config.json" in sizes:
                config, weights = self.hub_files(info, sizes, endpoint)
        except Exception as exc:  # pylint: disable=broad-except
            # huggingface_hub and httpx errors: not found, gated, refused, unreachable.
            self.fail("cannot read hf_repo %s (revision %s): %s" % (p["hf_repo"], p["revision"], to_native(exc)))
        if config is None:
            self.fail("hf_repo %s has no config.json at revision %s" % (p["hf_repo"], p["revision"]))
        return _plan.shape_from_hf_config(config, weights or None)

    def hub_files(self, info, sizes, endpoint):
        """config.json and the weight bytes (file sizes, else the index's total_size) of the repository."""
        p = self.params
        with tempfile.TemporaryDirectory() as tmp:
            kwargs = dict(revision=info.sha or p["revision"], endpoint=endpoint, token=p["token"], local_dir=tmp)
            with open(hf_hub_download(p["hf_repo"], "config.json", **kwargs), encoding="utf-8") as handle:
                config = json.load(handle)
            weights = sum(size or 0 for name, size in sizes.items() if name.endswith(".safetensors"))
            if not weights and INDEX in sizes:
                with open(hf_hub_download(p["hf_repo"], INDEX, **kwargs), encoding="utf-8") as handle:
                    weights = (json.load(handle).get("metadata") or {}).get("total_size")
        return config, weights

    def run(self):
        p = self.params
        shape = self.shape()
        budget = _plan.budget_from_gpu(p["gpu"], p["system_memory_bytes"])
        plan = _plan.plan_service(p["service"], shape, budget)
        if plan["error"]:
            self.module.fail_json(msg=plan["error"], shape=shape, plan=plan, budget=budget)
        return {"changed": False, "shape": shape, "plan": plan, "budget": budget}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="dict", required=True),
            gpu=dict(type="dict", default={}),
            system_memory_bytes=dict(type="int"),
            path=dict(type="path"),
            hf_repo=dict(type="str"),
            revision=dict(type="str", default="main"),
            endpoint=dict(type="str"),
            token=dict(type="str", no_log=True),
            timeout=dict(type="int", default=60),
        ),
        required_one_of=[("path", "hf_repo")],
        mutually_exclusive=[("path", "hf_repo")],
        supports_check_mode=True,
    )
    module.exit_json(**ServingPlan(module).run())


if __name__ == "__main__":
    main()

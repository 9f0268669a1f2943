# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


DOCUMENTATION = r"""
name: serving_plan
short_description: How a model fits the memory of a host - context, memory fraction, sequences, tensor parallelism
version_added: 0.1.0
author:
  - gpufleet.inference maintainers (@gpufleet)
description:
  - Plans one entry of C(gpufleet_services) from the shape of its model (RV(gpufleet.inference.serving_plan#module:shape)
    of the module M(gpufleet.inference.serving_plan)) and the C(gpufleet_gpu) fact of M(gpufleet.inference.gpu_facts).
  - Returns the weight bytes, KV-cache bytes per token, the largest context that fits, and for vLLM services
    C(gpu_memory_utilization), C(max_num_seqs) and C(tensor_parallel_size). Values set on the service are checked,
    unset ones are chosen, and C(notes) says why each was chosen.
  - On unified memory (GB10, AMD APUs) vLLM's C(gpu_memory_utilization) is a fraction of all memory, so the budget
    (C(MemAvailable), never total memory) is turned into that fraction. On GB10 the planner picks at most 0.8, as
    NVIDIA's DGX Spark playbooks do, because CUDA's free-memory figure leaves out the reclaimable page cache
    (vLLM issue 35313).
  - On discrete GPUs, as vllm-wizard does - utilization 0.9 (at most the free fraction), tensor parallel size the
    smallest power of two of GPUs that holds the weights and the KV cache of one context, C(max_num_seqs) from the KV
    cache that remains.
  - For llama.cpp services, the weights, the KV cache of C(--ctx-size) (shared by the slots, sliding-window layers as
    llama.cpp sizes them) and an estimate of the compute buffers against the budget.
  - Fails, naming the service and the variable, when C(gpu_memory_utilization) is outside (0, 1] or above the free
    fraction, C(tensor_parallel_size) is larger than the GPUs found, the context is above the model's own limit or
    above what fits, or the model does not fit at all (with the numbers in GiB).
  - The companion filter C(serving_budget) gives the budget the plan uses.
options:
  _input:
    description: The service, an entry of C(gpufleet_services) (C(name), C(engine), C(context), C(gpu_memory_utilization),
      C(tensor_parallel_size), C(max_num_seqs), C(kv_cache_dtype), C(dtype), C(parallel), C(args)).
    type: dict
    required: true
  shape:
    description: The model's shape, RV(gpufleet.inference.serving_plan#module:shape) of the module.
    type: dict
    required: true
  gpu:
    description:
      - The C(gpufleet_gpu) fact (an empty dict when there is none - memory is then not checked).
    type: dict
    required: true
  system_memory_bytes:
    description:
      - The host's total memory, for the fraction on unified memory when the fact has no C(system_memory_bytes)
        (for example C(ansible_memtotal_mb * 1048576)).
    type: int
"""

EXAMPLES = r"""
- name: Plan the vLLM service
  ansible.builtin.set_fact:
    __plan: "{{ service | gpufleet.inference.serving_plan(model_shape, ansible_facts.gpufleet_gpu) }}"

- name: Start vLLM with the planned figures
  ansible.builtin.debug:
    msg: >-
      --max-model-len {{ __plan.context }} --gpu-memory-utilization {{ __plan.gpu_memory_utilization }}
      --max-num-seqs {{ __plan.max_num_seqs }} --tensor-parallel-size {{ __plan.tensor_parallel_size }}
"""

RETURN = r"""
_value:
  description:
    - The plan - C(weight_bytes), C(kv_bytes_per_token), C(kv_bytes), C(max_context) (the largest context that fits),
      C(context), C(gpu_memory_utilization), C(max_num_seqs), C(tensor_parallel_size), C(budget_bytes),
      C(fits) (null when the memory is unknown), C(notes) (why each figure), C(error) (always null here - an error
      raises). llama.cpp plans add C(compute_bytes) and C(parallel).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.module_utils import _plan


def serving_budget(gpu, system_memory_bytes=None):
    """The memory budget of the ``gpufleet_gpu`` fact, as the planner sees it."""
    if gpu is not None and not isinstance(gpu, dict):
        raise AnsibleFilterError("serving_budget: gpufleet_gpu must be a dict (got %s)" % type(gpu).__name__)
    return _plan.budget_from_gpu(gpu or {}, system_memory_bytes)


def serving_plan(service, shape, gpu, system_memory_bytes=None):
    if not isinstance(service, dict):
        raise AnsibleFilterError("serving_plan: the service must be a dict (got %s)" % type(service).__name__)
    if not isinstance(shape, dict):
        raise AnsibleFilterError("serving_plan: gpufleet_services (%s): the model shape must be a dict (got %s)"
                                 % (service.get("name", "?"), type(shape).__name__))
    plan = _plan.plan_service(service, shape, serving_budget(gpu, system_memory_bytes))
    if plan["error"]:
        raise AnsibleFilterError(plan["error"])
    return plan


class FilterModule:
    def filters(self):
        return {"serving_plan": serving_plan, "serving_budget": serving_budget}

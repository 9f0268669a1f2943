# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


# The documentation of each filter of this file is in plugins/filter/<filter>.yml: ansible-doc reads a
# file beside the plugin only when the plugin file itself has no DOCUMENTATION.

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

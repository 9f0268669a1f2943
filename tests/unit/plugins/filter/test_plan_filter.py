# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""serving_plan / serving_budget: the filters raise, naming the service and the variable, and plan otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpufleet.inference.plugins.filter.plan import FilterModule, serving_budget, serving_plan
from ansible_collections.gpufleet.inference.plugins.module_utils import _plan

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "plan"
GIB = 1024 ** 3
GB10 = {
    "vendor": "nvidia", "count": 1, "unified_memory": True, "memory_total_bytes": None,
    "memory_budget_bytes": 118548480 * 1024, "system_memory_bytes": 127598748 * 1024,
    "devices": [{"index": 0, "name": "NVIDIA GB10", "unified_memory": True}],
}
H100 = {
    "vendor": "nvidia", "count": 1, "unified_memory": False, "memory_total_bytes": 85_520_809_984,
    "memory_budget_bytes": 84_000_000_000,
    "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 85_520_809_984,
                 "memory_free_bytes": 84_000_000_000}],
}


@pytest.fixture
def llama():
    config = json.loads((FIXTURES / "Llama-3.1-8B-Instruct.json").read_text(encoding="utf-8"))
    return _plan.shape_from_hf_config(config, 16060522496)


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"serving_plan", "serving_budget"}


def test_same_model_gets_a_lower_fraction_on_gb10_than_on_a_discrete_gpu(llama):
    service = {"name": "chat", "engine": "vllm", "context": 8192}
    spark, discrete = serving_plan(service, llama, GB10), serving_plan(service, llama, H100)
    assert spark["gpu_memory_utilization"] == 0.8 and discrete["gpu_memory_utilization"] == 0.9
    assert spark["context"] == discrete["context"] == 8192
    assert spark["error"] is None and spark["fits"]


def test_gb10_without_memtotal_in_the_fact_takes_it_as_an_argument(llama):
    gpu = {k: v for k, v in GB10.items() if k != "system_memory_bytes"}
    plan = serving_plan({"name": "chat", "engine": "vllm"}, llama, gpu, 127598748 * 1024)
    assert plan["gpu_memory_utilization"] == 0.8


@pytest.mark.parametrize("service, words", [
    ({"gpu_memory_utilization": 1.2}, "gpufleet_services (chat).gpu_memory_utilization must be in (0, 1]"),
    ({"tensor_parallel_size": 2}, "gpufleet_services (chat).tensor_parallel_size 2 is larger than the 1 GPU(s)"),
    ({"context": 262144}, "gpufleet_services (chat).context 262144 is above the model's own limit of 131072"),
])
def test_bad_input_raises_naming_the_variable(llama, service, words):
    with pytest.raises(AnsibleFilterError) as exc:
        serving_plan(dict({"name": "chat", "engine": "vllm"}, **service), llama, H100)
    assert words in str(exc.value)


def test_a_model_that_does_not_fit_raises_with_gib(llama):
    small = dict(H100, memory_budget_bytes=8 * GIB,
                 devices=[dict(H100["devices"][0], memory_total_bytes=16 * GIB, memory_free_bytes=15 * GIB)])
    with pytest.raises(AnsibleFilterError, match=r"\(chat\): the model does not fit: weights 15\.0 GiB"):
        serving_plan({"name": "chat", "engine": "vllm"}, llama, small)


def test_without_gpu_facts_nothing_is_checked_but_the_inputs(llama):
    plan = serving_plan({"name": "chat", "engine": "vllm", "context": 8192}, llama, {})
    assert plan["fits"] is None and plan["context"] == 8192


def test_not_a_dict_is_refused(llama):
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        serving_plan("chat", llama, {})
    with pytest.raises(AnsibleFilterError, match="must be a dict"):
        serving_budget(["gpu"])


def test_budget_says_which_platform():
    assert serving_budget(GB10)["platform"] == "gb10"
    assert serving_budget(H100)["platform"] == "discrete"
    assert serving_budget({})["known"] is False

# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_plan: shapes of real models, budgets of real hosts, and what a user would see in the plan.

The configs in tests/unit/fixtures/plan/ are the published config.json of each model; the GPU facts are those that
gpu_facts reports for the fake hosts of tests/unit/fixtures/gpu/ (GB10, Strix Halo, H100), rebuilt here with the
figures of those fixtures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ansible_collections.gpufleet.inference.plugins.module_utils import _plan

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "unit" / "fixtures" / "plan"
CHECK_MODEL = ROOT / "roles" / "llamacpp_image" / "files" / "check-model.gguf"
GIB = 1024 ** 3
GB = 10 ** 9

# The gpufleet_gpu facts of the fixture hosts (tests/unit/fixtures/gpu/*.yml), as gpu_facts builds them.
GB10 = {
    "vendor": "nvidia", "count": 1, "unified_memory": True, "memory_total_bytes": None,
    "memory_budget_bytes": 118548480 * 1024, "system_memory_bytes": 127598748 * 1024,
    "devices": [{"index": 0, "vendor": "nvidia", "name": "NVIDIA GB10", "unified_memory": True,
                 "memory_total_bytes": None, "memory_free_bytes": None}],
}
STRIX = {
    "vendor": "amd", "count": 1, "unified_memory": True, "memory_total_bytes": 536870912,
    "memory_budget_bytes": 103079215104 + 536870912, "system_memory_bytes": 128 * GIB,
    "devices": [{"index": 0, "vendor": "amd", "name": "Strix Halo", "unified_memory": True, "apu": True,
                 "vram_total_bytes": 536870912, "gtt_total_bytes": 103079215104,
                 "memory_total_bytes": 536870912, "memory_free_bytes": 536870912}],
}


def h100(count, free=84_000_000_000):
    device = {"vendor": "nvidia", "name": "NVIDIA H100 80GB HBM3", "unified_memory": False,
              "memory_total_bytes": 85_520_809_984, "memory_free_bytes": free}
    return {"vendor": "nvidia", "count": count, "unified_memory": False, "memory_total_bytes": count * 85_520_809_984,
            "memory_budget_bytes": count * free, "devices": [dict(device, index=i) for i in range(count)]}


def config(name):
    return json.loads((FIXTURES / ("%s.json" % name)).read_text(encoding="utf-8"))


def shape(name, weight_bytes=None):
    return _plan.shape_from_hf_config(config(name), weight_bytes)


def plan(service, model_shape, gpu, engine=None):
    service = dict({"name": "svc"}, **service)
    return _plan.plan_service(service, model_shape, _plan.budget_from_gpu(gpu), engine)


# ---- shapes ----------------------------------------------------------------------------------


def test_llama_shape_and_estimate_match_the_published_checkpoint():
    s = shape("Llama-3.1-8B-Instruct")
    assert (s["layers"], s["heads"], s["kv_heads"], s["head_dim"]) == (32, 32, 8, 128)
    assert s["max_position_embeddings"] == 131072
    # 8.03 B parameters; the bf16 safetensors total 16060522496 bytes.
    assert s["weight_bytes"] == pytest.approx(16060522496, rel=0.01)
    # GQA: 8 KV heads of 128 in 32 layers, bf16: 128 KiB per token.
    assert _plan.plan_service({"name": "l", "engine": "vllm"}, s, _plan.budget_from_gpu({}))["kv_bytes_per_token"] \
        == 128 * 1024


def test_qwen_without_sliding_window_counts_all_layers():
    s = shape("Qwen2.5-7B-Instruct", weight_bytes=15231233024)
    assert s["kv_heads"] == 4 and s["sliding_window_layers"] == 0
    assert s["weight_bytes"] == 15231233024 and s["weight_bytes_source"] == "files"
    assert s["max_position_embeddings"] == 32768


def test_glm_air_moe_explicit_head_dim_and_parameter_count():
    s = shape("GLM-4.5-Air")
    # head_dim 128 is explicit (hidden 4096 / 96 heads would give 42).
    assert s["head_dim"] == 128 and s["kv_heads"] == 8 and s["experts"] == 128
    # Published: 106 B total parameters (12 B active).
    assert 100e9 < s["params"] < 112e9


def test_glm_air_awq_4bit_is_about_a_quarter_of_bf16():
    awq = dict(config("GLM-4.5-Air"), quantization_config={"quant_method": "awq", "bits": 4, "group_size": 128})
    full, quantised = shape("GLM-4.5-Air"), _plan.shape_from_hf_config(awq)
    assert quantised["quantization"] == "awq"
    assert 0.25 < quantised["weight_bytes"] / full["weight_bytes"] < 0.35


def test_compressed_tensors_4bit_and_fp8_are_read():
    w4 = dict(config("Llama-3.1-8B-Instruct"), quantization_config={
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 32}}}})
    fp8 = dict(config("Llama-3.1-8B-Instruct"), quantization_config={"quant_method": "fp8"})
    assert _plan.shape_from_hf_config(w4)["weight_bytes"] < 6 * GB
    assert 8 * GB < _plan.shape_from_hf_config(fp8)["weight_bytes"] < 10 * GB


@pytest.mark.parametrize("name, low, high", [("gpt-oss-20b", 12 * GB, 15 * GB), ("gpt-oss-120b", 60 * GB, 68 * GB)])
def test_gpt_oss_mxfp4_experts_and_sliding_window(name, low, high):
    s = shape(name)
    # MXFP4 experts, bf16 attention and embeddings: the checkpoints are about 13 GB and 65 GB.
    assert low < s["weight_bytes"] < high
    assert s["sliding_window"] == 128 and s["sliding_window_layers"] == s["layers"] // 2
    assert any("sliding window" in note for note in s["notes"])


def test_multimodal_config_reads_text_config():
    wrapped = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
               "torch_dtype": "bfloat16", "text_config": config("Qwen2.5-7B-Instruct")}
    assert shape_of(wrapped)["layers"] == 28


def shape_of(cfg):
    return _plan.shape_from_hf_config(cfg)


def test_mla_stores_one_latent_per_layer():
    cfg = dict(config("Llama-3.1-8B-Instruct"), kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
               v_head_dim=128, q_lora_rank=1536)
    s = _plan.shape_from_hf_config(cfg)
    assert s["attention"] == "mla" and s["kv_values_per_token"] == 32 * (512 + 64)


def test_config_without_layers_is_refused():
    with pytest.raises(_plan.PlanError, match="num_hidden_layers"):
        _plan.shape_from_hf_config({"model_type": "x"})


def test_gguf_shape_of_the_check_model():
    pytest.importorskip("gguf")
    s = _plan.shape_from_gguf(str(CHECK_MODEL))
    assert s["architecture"] == "llama" and s["layers"] >= 1 and s["max_position_embeddings"]
    # Weight bytes are the tensor data: less than the file (which also holds metadata and the vocabulary).
    assert 0 < s["weight_bytes"] < CHECK_MODEL.stat().st_size


def test_gguf_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(_plan.PlanError, match="pip install gguf"):
        _plan.shape_from_gguf(str(CHECK_MODEL))


def test_gguf_that_is_not_gguf_is_named(tmp_path):
    pytest.importorskip("gguf")
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(_plan.PlanError, match="model.gguf"):
        _plan.shape_from_gguf(str(bad))


# ---- budgets ---------------------------------------------------------------------------------


def test_gb10_fraction_is_of_all_memory_from_memavailable():
    budget = _plan.budget_from_gpu(GB10)
    assert budget["platform"] == "gb10"
    assert budget["total_bytes"] == 127598748 * 1024
    assert budget["available_fraction"] == pytest.approx(118548480 / 127598748)


def test_gb10_without_memtotal_stays_safe():
    gpu = dict(GB10)
    del gpu["system_memory_bytes"]
    budget = _plan.budget_from_gpu(gpu)
    assert budget["total_bytes"] == budget["budget_bytes"]
    assert any("system_memory_bytes" in note for note in budget["notes"])
    assert _plan.budget_from_gpu(gpu, 127598748 * 1024)["total_bytes"] == 127598748 * 1024


def test_strix_fraction_is_of_gtt_plus_carveout():
    budget = _plan.budget_from_gpu(STRIX)
    assert budget["platform"] == "amd-apu"
    assert budget["total_bytes"] == 103079215104 + 536870912


def test_no_gpu_is_not_checked():
    budget = _plan.budget_from_gpu({"vendor": "none", "count": 0, "devices": [], "memory_budget_bytes": None})
    assert budget["known"] is False


# ---- vLLM plans ------------------------------------------------------------------------------


def test_gb10_default_utilization_is_nvidias_and_says_why():
    p = plan({"engine": "vllm"}, shape("Llama-3.1-8B-Instruct"), GB10)
    assert p["gpu_memory_utilization"] == 0.8
    assert any("35313" in note for note in p["notes"])
    assert p["fits"] and p["error"] is None


def test_discrete_default_utilization_is_vllms():
    p = plan({"engine": "vllm"}, shape("Llama-3.1-8B-Instruct"), h100(1))
    assert p["gpu_memory_utilization"] == 0.9 and p["tensor_parallel_size"] == 1


def test_gb10_seed_terrarium_glm_air_awq_at_09_fits_with_a_warning():
    quantization = {"quant_method": "awq", "bits": 4}
    awq = _plan.shape_from_hf_config(dict(config("GLM-4.5-Air"), quantization_config=quantization))
    p = plan({"engine": "vllm", "context": 8192, "gpu_memory_utilization": 0.9}, awq, GB10)
    assert p["error"] is None and p["context"] == 8192 and p["fits"]
    assert any("above NVIDIA's 0.8" in note for note in p["notes"])


def test_utilization_above_free_memory_is_refused_by_name():
    busy = dict(GB10, memory_budget_bytes=100 * GIB)
    p = plan({"engine": "vllm", "gpu_memory_utilization": 0.9}, shape("Llama-3.1-8B-Instruct"), busy)
    assert "gpu_memory_utilization" in p["error"] and "(svc)" in p["error"]


@pytest.mark.parametrize("value", [0, 1.5, -0.1])
def test_utilization_outside_0_1_is_refused(value):
    p = plan({"engine": "vllm", "gpu_memory_utilization": value}, shape("Qwen2.5-7B-Instruct"), h100(1))
    assert "gpu_memory_utilization must be in (0, 1]" in p["error"]


def test_tensor_parallel_larger_than_the_gpus_is_refused():
    p = plan({"engine": "vllm", "tensor_parallel_size": 4}, shape("Qwen2.5-7B-Instruct"), h100(2))
    assert "tensor_parallel_size 4" in p["error"] and "2 GPU" in p["error"]


def test_glm_air_bf16_needs_four_h100_and_fits_no_single_one():
    s = shape("GLM-4.5-Air")
    assert plan({"engine": "vllm"}, s, h100(8))["tensor_parallel_size"] == 4
    single = plan({"engine": "vllm"}, s, h100(1))
    assert single["fits"] is False
    assert "does not fit" in single["error"] and "GiB" in single["error"] and "(svc)" in single["error"]


def test_gpt_oss_120b_fits_one_80gb_gpu():
    p = plan({"engine": "vllm"}, shape("gpt-oss-120b"), h100(1))
    assert p["tensor_parallel_size"] == 1 and p["fits"]


def test_context_above_the_model_limit_is_refused():
    p = plan({"engine": "vllm", "context": 65536}, shape("Qwen2.5-7B-Instruct"), h100(1))
    assert "context 65536 is above the model's own limit of 32768" in p["error"]


def test_max_model_len_is_named_when_that_is_the_key_used():
    p = plan({"engine": "vllm", "max_model_len": 65536}, shape("Qwen2.5-7B-Instruct"), h100(1))
    assert "max_model_len 65536" in p["error"]


def test_context_above_what_fits_is_refused_with_the_numbers():
    p = plan({"engine": "vllm", "context": 131072, "gpu_memory_utilization": 0.35}, shape("Llama-3.1-8B-Instruct"),
             h100(1))
    assert "context 131072 is above what fits" in p["error"] and "GiB" in p["error"]
    assert 0 < p["max_context"] < 131072


def test_largest_context_and_sequences_follow_the_free_kv_cache():
    roomy = plan({"engine": "vllm", "context": 8192}, shape("Llama-3.1-8B-Instruct"), h100(1))
    tight = plan({"engine": "vllm", "context": 8192, "gpu_memory_utilization": 0.3},
                 shape("Llama-3.1-8B-Instruct"), h100(1))
    assert roomy["max_num_seqs"] > tight["max_num_seqs"] >= 1
    assert roomy["max_context"] == 131072


def test_fp8_kv_cache_halves_kv_bytes():
    s = shape("Llama-3.1-8B-Instruct")
    auto = plan({"engine": "vllm"}, s, h100(1))["kv_bytes_per_token"]
    assert plan({"engine": "vllm", "kv_cache_dtype": "fp8"}, s, h100(1))["kv_bytes_per_token"] * 2 == auto


def test_without_gpu_facts_the_plan_checks_inputs_only():
    p = plan({"engine": "vllm", "context": 8192}, shape("Llama-3.1-8B-Instruct"), {})
    assert p["fits"] is None and p["error"] is None and p["context"] == 8192


# ---- llama.cpp plans -------------------------------------------------------------------------


def gguf_shape():
    pytest.importorskip("gguf")
    return _plan.shape_from_gguf(str(CHECK_MODEL))


def test_llamacpp_kv_grows_with_the_context():
    s = gguf_shape()
    assert _plan.llamacpp_kv_bytes(s, 256) == 2 * _plan.llamacpp_kv_bytes(s, 128)


def test_llamacpp_fits_and_largest_context_is_the_models():
    s = gguf_shape()
    p = plan({"context": 0}, s, GB10)
    assert p["fits"] and p["context"] == s["max_position_embeddings"] == p["max_context"]


def test_llamacpp_context_above_the_models_limit_is_refused():
    s = gguf_shape()
    p = plan({"context": s["max_position_embeddings"] * 2}, s, GB10)
    assert "above the model's own limit" in p["error"]


def test_llamacpp_model_that_does_not_fit_names_the_service_and_sizes():
    s = dict(gguf_shape(), weight_bytes=200 * GIB, max_position_embeddings=131072)
    p = plan({"context": 8192}, s, GB10)
    assert p["fits"] is False and "(svc)" in p["error"] and "GiB" in p["error"]


def test_llamacpp_quantised_kv_cache_from_args_is_smaller():
    s = gguf_shape()
    f16 = plan({"context": 256}, s, GB10)["kv_bytes"]
    q8 = plan({"context": 256, "args": ["--cache-type-k", "q8_0", "--cache-type-v", "q8_0"]}, s, GB10)["kv_bytes"]
    assert q8 < f16


def test_llamacpp_sliding_window_layers_hold_window_cells():
    # A Gemma 3 style model: 6 layers, every 6th global, window 512, 4 slots: 5 layers hold 2560 cells at most.
    s = {"layers": 6, "key_length": 256, "value_length": 256, "kv_values_per_layer": [512] * 6,
         "sliding_layers": [True] * 5 + [False], "sliding_window": 512}
    per_layer_cell = 512 * 2
    assert _plan.llamacpp_kv_bytes(s, 8192) == per_layer_cell * (5 * 2560 + 8192)
    assert _plan.llamacpp_kv_bytes(s, 2048) == per_layer_cell * 6 * 2048

# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serving planner: how much memory a model takes, and what an engine may be told to use.

Pure arithmetic on three dicts, shared by the filter ``gpufleet.inference.serving_plan`` and the module of the same
name:

- a **shape** (``shape_from_hf_config`` from a Hugging Face ``config.json``, ``shape_from_gguf`` from a GGUF file
  through the ``gguf`` package): layers, heads, KV heads, head size, dtype, quantisation, the model's own context
  limit, and the bytes of its weights;
- a **budget** (``budget_from_gpu``) from the ``gpufleet_gpu`` fact of ``gpu_facts``: the memory a model may use and
  the total that vLLM's ``gpu_memory_utilization`` is a fraction of;
- a **service** (an entry of ``gpufleet_services``).

``plan_service`` combines them into weight bytes, KV-cache bytes per token, the largest context that fits, and for
vLLM ``gpu_memory_utilization``, ``max_num_seqs`` and ``tensor_parallel_size``. Every figure the planner chooses
comes with a sentence in ``notes`` saying why; bad input gives ``error``, a message naming the service and the
variable.

Approximations (each also said in ``notes`` where it applies):

- KV cache per token = 2 (K and V) x layers x KV heads x head size x bytes of the KV dtype. Multi-head latent
  attention (DeepSeek-style ``kv_lora_rank``) stores one latent of ``kv_lora_rank + qk_rope_head_dim`` per layer
  instead. Sliding-window layers (gpt-oss, Gemma 2/3) are counted in full for vLLM (an upper bound); for llama.cpp
  they hold ``min(context, sliding_window x slots + ubatch)`` cells as llama.cpp allocates them.
- Weights, when no file sizes are given, are estimated from the shape: attention, MLP or experts, embeddings;
  quantised linear layers take the bits of their scheme plus group scales.
- vLLM's activation and runtime overhead per GPU: max(1 GiB, 2 % of the GPU's memory), plus 0.25 GiB per extra
  tensor-parallel rank (the figures of vllm-wizard, seed 002).
"""

from __future__ import annotations

import glob
import math
import re

from ansible_collections.gpufleet.inference.plugins.module_utils._gguf import field_value as _field

GIB = 1024 ** 3
MIB = 1024 ** 2

DTYPE_BYTES = {
    "float32": 4, "fp32": 4, "f32": 4,
    "float16": 2, "fp16": 2, "f16": 2, "half": 2,
    "bfloat16": 2, "bf16": 2,
    "float8": 1, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_e4m3fn": 1, "fp8_inc": 1, "int8": 1,
}
# llama.cpp KV cache types (--cache-type-k / --cache-type-v): bytes per value, block formats as ggml stores them.
GGML_CACHE_BYTES = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32,
    "q5_0": 22 / 32, "q5_1": 24 / 32, "iq4_nl": 18 / 32,
}
# Bits per weight of quantised linear layers, scales included (4-bit with an fp16 scale and zero per 128 weights;
# MXFP4 with an 8-bit scale per 32; FP8 with per-channel scales).
QUANT_BITS = {"awq": 4.25, "gptq": 4.25, "mxfp4": 4.25, "fp8": 8.0, "bitsandbytes": 4.5, "int8": 8.0}

# vLLM defaults (vLLM's own max_num_seqs default, vllm-wizard's utilization).
VLLM_UTILIZATION = 0.9
VLLM_MAX_NUM_SEQS = 256
# DGX Spark: NVIDIA's playbooks run vLLM at 0.8 (the CUDA free-memory figure leaves out the page cache).
GB10_UTILIZATION = 0.8
# When the context is not set, vLLM gets at least this much (or the model's limit, if lower) to pick a TP size.
MIN_CONTEXT = 4096
OVERHEAD_MIN_BYTES = GIB
OVERHEAD_FRACTION = 0.02
OVERHEAD_PER_RANK_BYTES = GIB // 4

# llama.cpp: the default context of the stack's services, slots when --parallel is not set (llama-server's "auto"),
# the micro-batch, and the cell padding of its KV cache.
LLAMACPP_CONTEXT = 4096
LLAMACPP_PARALLEL = 4
LLAMACPP_UBATCH = 512
LLAMACPP_PAD = 256
LLAMACPP_FIXED_BYTES = 16 * MIB

# Layers with a sliding window, by GGUF architecture, where the file does not list them: llama.cpp's patterns.
# ``n``: every n-th layer (1-based) attends to the full context, the others to the window.
GGUF_SWA_PATTERN = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2, "cohere2": 4}


class PlanError(ValueError):
    """A model that cannot be read, or a library that is missing."""


def _int(value, default=None):
    if isinstance(value, bool) or value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _first(config, *keys, default=None):
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def _gib(value):
    return "%.1f GiB" % (value / GIB)


def dtype_bytes(name, default=2):
    if not name or name == "auto":
        return default
    return DTYPE_BYTES.get(str(name).lower().replace("torch.", ""), default)


def _quantization(config):
    """(method, bits per weight, modules kept out) from ``quantization_config``; (None, None, []) when none."""
    quant = config.get("quantization_config") or {}
    if not isinstance(quant, dict) or not quant:
        return None, None, []
    method = str(quant.get("quant_method") or quant.get("method") or "").lower() or None
    bits = _int(quant.get("bits") or quant.get("w_bit") or quant.get("num_bits"))
    if method == "compressed-tensors":
        for group in (quant.get("config_groups") or {}).values():
            weights = (group or {}).get("weights") or {}
            bits = _int(weights.get("num_bits"), bits)
            if str(weights.get("type", "")).lower() == "float" and bits == 8:
                method = "fp8"
        method = method if method == "fp8" else ("awq" if bits == 4 else method)
    if method == "bitsandbytes":
        bits = 8 if quant.get("load_in_8bit") else 4
    if bits:
        per_weight = bits + (0.25 if bits < 8 else 0.0)
    else:
        per_weight = QUANT_BITS.get(method or "", 16.0)
    kept = list(quant.get("modules_to_not_convert") or quant.get("ignore") or [])
    return method, per_weight, kept


def _layer_kinds(config, layers):
    """Per layer: True for a sliding-window layer."""
    types = config.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        return [str(t).startswith("sliding") for t in types]
    if config.get("sliding_window") and config.get("use_sliding_window"):
        window_layers = _int(config.get("max_window_layers"), layers)
        return [index >= window_layers for index in range(layers)]
    return [False] * layers


def shape_from_hf_config(config, weight_bytes=None):
    """The shape of a model from its Hugging Face ``config.json`` (a dict).

    ``weight_bytes`` is the size of its weight files (safetensors sizes, or ``total_size`` of
    ``model.safetensors.index.json``); without it the bytes are estimated from the shape and the quantisation.
    Multimodal configs are read through their ``text_config``.
    """
    if not isinstance(config, dict):
        raise PlanError("config.json must be a JSON object (got %s)" % type(config).__name__)
    top = config
    text = config.get("text_config")
    if isinstance(text, dict):
        config = dict(text, **{k: v for k, v in top.items() if k in ("quantization_config", "torch_dtype")
                               and k not in text})
    notes = []
    layers = _int(_first(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers"))
    heads = _int(_first(config, "num_attention_heads", "n_head", "num_heads"))
    hidden = _int(_first(config, "hidden_size", "n_embd", "d_model"))
    if not layers or not heads or not hidden:
        raise PlanError("config.json has no layer count, attention heads or hidden size "
                        "(num_hidden_layers, num_attention_heads, hidden_size)")
    kv_heads = _int(_first(config, "num_key_value_heads", "num_kv_heads", "n_head_kv"), heads)
    if config.get("multi_query"):
        kv_heads = 1
    head_dim = _int(config.get("head_dim"), hidden // heads)
    dtype = str(_first(config, "torch_dtype", "dtype", default="") or "").replace("torch.", "") or None
    if dtype is None:
        notes.append("config.json names no dtype: bfloat16 assumed")
        dtype = "bfloat16"
    vocab = _int(_first(config, "vocab_size", "padded_vocab_size"), 0)
    intermediate = _int(_first(config, "intermediate_size", "ffn_hidden_size", "n_inner"), 4 * hidden)
    experts = _int(_first(config, "num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"), 0)
    experts_per_token = _int(_first(config, "num_experts_per_tok", "experts_per_token", "moe_topk"), 0)
    shared_experts = _int(_first(config, "n_shared_experts", "num_shared_experts"), 0)
    moe_intermediate = _int(_first(config, "moe_intermediate_size", "expert_intermediate_size"), intermediate)
    dense_layers = _int(config.get("first_k_dense_replace"), 0) if experts else layers
    max_position = _int(_first(config, "max_position_embeddings", "n_positions", "max_sequence_length",
                               "seq_length", "model_max_length"))
    method, bits, kept = _quantization(top if top.get("quantization_config") else config)

    # KV values per token, all layers.
    kv_lora = _int(config.get("kv_lora_rank"))
    if kv_lora:
        rope_dim = _int(config.get("qk_rope_head_dim"), 0)
        attention = "mla"
        kv_values_per_layer = kv_lora + rope_dim
        notes.append("multi-head latent attention: one latent of kv_lora_rank + qk_rope_head_dim (%d) values per "
                     "layer and token, as vLLM stores it" % kv_values_per_layer)
    else:
        attention = "mha" if kv_heads == heads else "gqa"
        kv_values_per_layer = 2 * kv_heads * head_dim
    sliding = _layer_kinds(config, layers)
    window = _int(config.get("sliding_window")) if any(sliding) else None
    if any(sliding):
        notes.append("%d of %d layers use a sliding window of %d tokens; vLLM's figures count them in full "
                     "(an upper bound)" % (sum(sliding), layers, window or 0))

    # Parameter estimate (also the basis of the byte estimate).
    q_out = heads * head_dim
    attn = hidden * q_out + 2 * hidden * kv_heads * head_dim + q_out * hidden
    if kv_lora:
        q_lora = _int(config.get("q_lora_rank"), 0)
        nope = _int(config.get("qk_nope_head_dim"), head_dim)
        rope = _int(config.get("qk_rope_head_dim"), 0)
        v_dim = _int(config.get("v_head_dim"), head_dim)
        q_proj = hidden * q_lora + q_lora * heads * (nope + rope) if q_lora else hidden * heads * (nope + rope)
        attn = q_proj + hidden * (kv_lora + rope) + kv_lora * heads * (nope + v_dim) + heads * v_dim * hidden
    dense_mlp = 3 * hidden * intermediate
    expert_mlp = 3 * hidden * moe_intermediate
    moe_layers = layers - dense_layers
    expert_params = moe_layers * experts * expert_mlp
    other_params = (layers * attn + dense_layers * dense_mlp
                    + moe_layers * (shared_experts * expert_mlp + hidden * experts))
    embed_params = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    params = expert_params + other_params + embed_params

    source = "files"
    if not weight_bytes:
        source = "estimate"
        base = dtype_bytes(dtype)
        if bits and method == "mxfp4" and experts:
            # gpt-oss: only the experts are MXFP4; attention, router and embeddings stay in bf16.
            weight_bytes = expert_params * bits / 8 + (other_params + embed_params) * base
        elif bits:
            kept_attention = any("attn" in str(k) for k in kept)
            quantised = expert_params + other_params - (layers * attn if kept_attention else 0)
            weight_bytes = quantised * bits / 8 + (params - quantised) * base
        else:
            weight_bytes = params * base
        notes.append("weight bytes estimated from the shape (%s%s), no file sizes given"
                     % (dtype, ", %s at %.2f bits" % (method, bits) if bits else ""))
    return {
        "format": "hf",
        "architecture": (top.get("architectures") or [None])[0],
        "model_type": top.get("model_type") or config.get("model_type"),
        "layers": layers,
        "heads": heads,
        "kv_heads": 1 if kv_lora else kv_heads,
        "head_dim": head_dim,
        "hidden": hidden,
        "vocab": vocab,
        "intermediate": intermediate,
        "experts": experts,
        "experts_per_token": experts_per_token,
        "attention": attention,
        "kv_values_per_token": kv_values_per_layer * layers,
        "kv_factor": 1 if kv_lora else 2,
        "sliding_window": window,
        "sliding_window_layers": sum(sliding),
        "dtype": dtype,
        "dtype_bytes": dtype_bytes(dtype),
        "quantization": method,
        "quant_bits": bits,
        "max_position_embeddings": max_position,
        "params": int(params),
        "weight_bytes": int(weight_bytes),
        "weight_bytes_source": source,
        "notes": notes,
    }


def _gguf_shards(path, reader):
    """The other files of a split GGUF (``-00001-of-00003.gguf``), when ``path`` is its first part."""
    count = _field(reader, "split.count")
    match = re.match(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$", path)
    if not count or int(count) <= 1 or not match:
        return []
    return sorted(p for p in glob.glob("%s-*-of-%s.gguf" % (glob.escape(match.group(1)), match.group(3)))
                  if p != path)


def _load_gguf():
    try:
        import gguf  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise PlanError("reading a GGUF file needs the Python package gguf (pip install gguf): %s" % exc) from exc
    return gguf


def shape_from_gguf(path):
    """The shape of the model in a GGUF file, read with the ``gguf`` package's GGUFReader.

    Weight bytes are the tensor data of the file (and of the other parts of a split file). The context limit,
    layers, heads, KV heads and key/value sizes come from ``<arch>.context_length``, ``<arch>.block_count``,
    ``<arch>.attention.head_count(_kv)``, ``<arch>.attention.key_length`` / ``value_length``.
    """
    gguf = _load_gguf()
    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise PlanError("cannot read %s as GGUF: %s" % (path, exc)) from exc
    arch = _field(reader, "general.architecture")
    if not arch:
        raise PlanError("%s has no general.architecture" % path)
    notes = []

    def get(key, default=None):
        value = _field(reader, "%s.%s" % (arch, key))
        return default if value is None else value

    layers = _int(get("block_count"))
    hidden = _int(get("embedding_length"), 0)
    heads = get("attention.head_count")
    kv_heads = get("attention.head_count_kv", heads)
    if not layers or heads is None:
        raise PlanError("%s has no %s.block_count or %s.attention.head_count" % (path, arch, arch))
    heads_per_layer = list(heads) if isinstance(heads, (list, tuple)) else [int(heads)] * layers
    kv_per_layer = list(kv_heads) if isinstance(kv_heads, (list, tuple)) else [int(kv_heads)] * layers
    max_heads = max(heads_per_layer) or 1
    key_length = _int(get("attention.key_length"), hidden // max_heads if hidden else 0)
    value_length = _int(get("attention.value_length"), key_length)
    kv_lora = _int(get("attention.kv_lora_rank"))
    if kv_lora:
        notes.append("multi-head latent attention: llama.cpp's KV layout may differ from the per-head figure")
    per_layer_values = [int(kv) * (key_length + value_length) for kv in kv_per_layer]
    window = _int(get("attention.sliding_window"))
    pattern = GGUF_SWA_PATTERN.get(arch)
    if window and pattern:
        sliding = [(index + 1) % pattern != 0 for index in range(layers)]
    else:
        sliding = [False] * layers
        if window:
            notes.append("%s.attention.sliding_window is %d but the layer pattern of %s is not known: "
                         "all layers counted in full" % (arch, window, arch))
    paths = [path] + _gguf_shards(path, reader)
    weight_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    for shard in paths[1:]:
        weight_bytes += sum(int(t.n_bytes) for t in gguf.GGUFReader(shard).tensors)
    if len(paths) > 1:
        notes.append("split GGUF: %d files" % len(paths))
    vocab = _int(get("vocab_size"))
    if vocab is None:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        vocab = len(tokens.data) if tokens is not None else 0
    experts = _int(get("expert_count"), 0)
    return {
        "format": "gguf",
        "architecture": arch,
        "model_type": arch,
        "name": _field(reader, "general.name"),
        "file_type": _int(_field(reader, "general.file_type")),
        "layers": layers,
        "heads": max_heads,
        "kv_heads": max(int(kv) for kv in kv_per_layer),
        "head_dim": key_length,
        "key_length": key_length,
        "value_length": value_length,
        "hidden": hidden,
        "vocab": vocab,
        "intermediate": _int(get("feed_forward_length"), 4 * hidden),
        "experts": experts,
        "experts_per_token": _int(get("expert_used_count"), 0),
        "attention": "mla" if kv_lora else ("mha" if kv_per_layer == heads_per_layer else "gqa"),
        "kv_values_per_token": sum(per_layer_values),
        "kv_values_per_layer": per_layer_values,
        "kv_factor": 2,
        "sliding_window": window if any(sliding) else None,
        "sliding_window_layers": sum(sliding),
        "sliding_layers": sliding,
        "dtype": "f16",
        "dtype_bytes": 2,
        "quantization": "gguf",
        "quant_bits": None,
        "max_position_embeddings": _int(get("context_length")),
        "params": None,
        "weight_bytes": int(weight_bytes),
        "weight_bytes_source": "files",
        "files": paths,
        "notes": notes,
    }


def budget_from_gpu(gpu, system_memory_bytes=None):
    """The memory budget from the ``gpufleet_gpu`` fact.

    ``budget_bytes`` is the fact's ``memory_budget_bytes`` (MemAvailable on GB10; GTT plus carve-out, at most
    MemAvailable, on an AMD APU; free device memory on discrete GPUs). ``total_bytes`` is what vLLM's
    ``gpu_memory_utilization`` is a fraction of: per GPU on discrete GPUs (the smallest), all memory on unified
    memory - ``system_memory_bytes`` (MemTotal, from the fact's ``system_memory_bytes`` or the caller, e.g.
    ``ansible_memtotal_mb * 1048576``) on GB10, GTT plus carve-out on an AMD APU.
    """
    gpu = gpu if isinstance(gpu, dict) else {}
    notes = []
    devices = [d for d in gpu.get("devices") or [] if isinstance(d, dict)]
    vendor = gpu.get("vendor") or "none"
    count = _int(gpu.get("count"), len(devices))
    unified = bool(gpu.get("unified_memory"))
    budget = _int(gpu.get("memory_budget_bytes"))
    system = _int(system_memory_bytes) or _int(gpu.get("system_memory_bytes"))
    result = {
        "known": budget is not None and count > 0,
        "vendor": vendor,
        "count": count,
        "unified": unified,
        "platform": "none",
        "budget_bytes": budget,
        "total_bytes": None,
        "available_fraction": None,
        "devices": [],
        "notes": notes,
    }
    if vendor == "none" or not count:
        notes.append("no usable GPU in gpufleet_gpu: memory not checked")
        result["known"] = False
        return result
    if budget is None:
        notes.append("gpufleet_gpu has no memory_budget_bytes (%s): memory not checked"
                     % (gpu.get("reason") or "unknown"))
        return result
    if unified:
        apu = [d for d in devices if d.get("apu")]
        if apu:
            result["platform"] = "amd-apu"
            total = sum((d.get("gtt_total_bytes") or 0) + (d.get("vram_total_bytes") or 0) for d in apu) or budget
            notes.append("AMD APU: the GPU maps its GTT plus carve-out (%s); the budget is that, at most "
                         "MemAvailable (%s)" % (_gib(total), _gib(budget)))
        else:
            result["platform"] = "gb10" if any("GB10" in str(d.get("name", "")) for d in devices) else "unified"
            total = system
            if not total:
                total = budget
                notes.append("total system memory unknown (give system_memory_bytes, e.g. ansible_memtotal_mb "
                             "* 1048576): the fraction is taken of MemAvailable, which is lower and so safe")
            else:
                notes.append("unified memory: vLLM's gpu_memory_utilization is a fraction of all %s; MemAvailable "
                             "is %s" % (_gib(total), _gib(budget)))
        result["total_bytes"] = total
        result["available_fraction"] = min(1.0, budget / total) if total else None
        result["devices"] = [{"total_bytes": total, "free_bytes": budget}]
        return result
    result["platform"] = "discrete"
    per_device = []
    for device in devices:
        total = _int(device.get("memory_total_bytes"))
        free = _int(device.get("memory_free_bytes"))
        if total and free is not None:
            per_device.append({"total_bytes": total, "free_bytes": free})
    if len(per_device) != len(devices) or not per_device:
        notes.append("a GPU does not report its memory: memory not checked")
        result["known"] = False
        return result
    result["devices"] = per_device
    result["total_bytes"] = min(d["total_bytes"] for d in per_device)
    result["available_fraction"] = min(d["free_bytes"] / d["total_bytes"] for d in per_device)
    return result


def _where(service):
    return "gpufleet_services (%s)" % service.get("name", "?")


def _number(service, key, kind, errors, low=None):
    value = service.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind) and not (kind is float and isinstance(value, int)):
        errors.append("%s.%s must be a number (got %r)" % (_where(service), key, value))
        return None
    if low is not None and value < low:
        errors.append("%s.%s must be at least %s (got %r)" % (_where(service), key, low, value))
        return None
    return value


def _floor(value, digits=2):
    scale = 10 ** digits
    return math.floor(value * scale + 1e-9) / scale


def _round_context(tokens):
    """Round a context down to a multiple of 256 tokens (a readable figure, a whole number of KV blocks)."""
    return tokens - tokens % 256 if tokens >= 256 else tokens


def _context_key(service):
    return "max_model_len" if service.get("context") is None and service.get("max_model_len") is not None \
        else "context"


def complete_shape(shape):
    """A shape written by hand (an inventory's ``plan`` hint: layers, kv_heads, head_dim, ...) with the KV figures
    the planner computes from them, as ``shape_from_hf_config`` gives them."""
    shape = dict(shape or {})
    if not shape.get("kv_values_per_token"):
        layers, kv_heads = _int(shape.get("layers")), _int(shape.get("kv_heads") or shape.get("heads"))
        head_dim = _int(shape.get("head_dim"))
        if not head_dim and _int(shape.get("hidden")) and _int(shape.get("heads")):
            head_dim = _int(shape["hidden"]) // _int(shape["heads"])
        if layers and kv_heads and head_dim:
            # K and V, per layer.
            shape["kv_values_per_token"] = 2 * kv_heads * head_dim * layers
    return shape


def plan_service(service, shape, budget, engine=None):
    """Plan one service (see the module docstring). Returns the plan; ``error`` is None when all is well."""
    shape = complete_shape(shape)
    service = service if isinstance(service, dict) else {}
    engine = engine or service.get("engine") or "llamacpp"
    budget = budget if isinstance(budget, dict) else budget_from_gpu(budget)
    errors = []
    notes = list(shape.get("notes") or []) + list(budget.get("notes") or [])
    plan = {
        "service": service.get("name"),
        "engine": engine,
        "weight_bytes": int(shape.get("weight_bytes") or 0),
        "kv_bytes_per_token": 0,
        "kv_bytes": 0,
        "max_context": None,
        "context": None,
        "gpu_memory_utilization": None,
        "max_num_seqs": None,
        "tensor_parallel_size": None,
        "budget_bytes": budget.get("budget_bytes"),
        "fits": None,
        "notes": notes,
        "error": None,
    }
    key = _context_key(service)
    context = _number(service, key, int, errors, low=0)
    limit = _int(shape.get("max_position_embeddings"))
    if context and limit and context > limit:
        errors.append("%s.%s %d is above the model's own limit of %d tokens"
                      % (_where(service), key, context, limit))
    if not shape.get("kv_values_per_token"):
        errors.append("%s: the model's shape gives no KV-cache size (it needs layers, kv_heads and head_dim, "
                      "from config.json, the GGUF metadata or the model entry's plan hint)" % _where(service))
    elif engine == "vllm":
        _plan_vllm(service, shape, budget, plan, context, errors)
    else:
        _plan_llamacpp(service, shape, budget, plan, context, errors)
    plan["error"] = "; ".join(errors) if errors else None
    return plan


def _vllm_kv_per_token(service, shape, errors):
    kv_dtype = service.get("kv_cache_dtype") or "auto"
    if kv_dtype == "auto":
        dtype = service.get("dtype") or "auto"
        if dtype == "auto":
            # vLLM's dtype "auto" runs a float32 checkpoint in 16 bits (float16 on GPUs, bfloat16 on CPUs).
            dtype = shape.get("dtype")
            if dtype_bytes(dtype) > 2:
                dtype = "bfloat16"
        size = dtype_bytes(dtype)
    elif kv_dtype.startswith("fp8"):
        size = 1
    else:
        size = dtype_bytes(kv_dtype, 0)
        if not size:
            errors.append("%s.kv_cache_dtype %r is not a KV-cache dtype vLLM knows" % (_where(service), kv_dtype))
            size = 2
    return int(shape.get("kv_values_per_token") or 0) * size


def _plan_vllm(service, shape, budget, plan, context, errors):
    where = _where(service)
    notes = plan["notes"]
    utilization = _number(service, "gpu_memory_utilization", float, errors)
    if utilization is not None and not 0 < utilization <= 1:
        errors.append("%s.gpu_memory_utilization must be in (0, 1] (got %r)" % (where, utilization))
        utilization = None
    tp = _number(service, "tensor_parallel_size", int, errors, low=1)
    seqs = _number(service, "max_num_seqs", int, errors, low=1)
    kv_token = _vllm_kv_per_token(service, shape, errors)
    plan["kv_bytes_per_token"] = kv_token
    weights = plan["weight_bytes"]
    limit = _int(shape.get("max_position_embeddings"))
    count = budget.get("count") or 0
    if tp and budget.get("vendor") not in (None, "none") and tp > count:
        errors.append("%s.tensor_parallel_size %d is larger than the %d GPU(s) found" % (where, tp, count))
    if not budget.get("known"):
        plan["tensor_parallel_size"] = tp or 1
        plan["gpu_memory_utilization"] = utilization
        plan["context"] = context or None
        plan["max_num_seqs"] = seqs
        plan["max_context"] = limit
        return
    available = budget.get("available_fraction") or 0
    platform = budget.get("platform")
    if utilization is None:
        if platform == "gb10" or (platform == "unified" and budget.get("vendor") == "nvidia"):
            utilization = min(GB10_UTILIZATION, _floor(available))
            notes.append("gpu_memory_utilization %.2f: on GB10 CUDA's free memory leaves out the reclaimable page "
                         "cache (vLLM issue #35313), so vLLM's default 0.9 can fail at start-up; NVIDIA's DGX Spark "
                         "playbooks use 0.8 (MemAvailable is %.0f %% of memory)" % (utilization, available * 100))
        else:
            utilization = min(VLLM_UTILIZATION, _floor(available))
            notes.append("gpu_memory_utilization %.2f: vLLM's 0.9, at most the free fraction of memory (%.0f %%)"
                         % (utilization, available * 100))
    elif utilization > available + 1e-9:
        errors.append("%s.gpu_memory_utilization %.2f asks for more than the %.0f %% of memory that is free "
                      "(%s of %s); vLLM refuses to start when free memory is below it"
                      % (where, utilization, available * 100, _gib(budget["budget_bytes"]),
                         _gib(budget["total_bytes"])))
    elif platform == "gb10" and utilization > GB10_UTILIZATION:
        notes.append("gpu_memory_utilization %.2f is above NVIDIA's 0.8 for DGX Spark: CUDA's free memory leaves out "
                     "the page cache (vLLM issue #35313); if vLLM reports too little free memory at start-up, drop "
                     "the page cache or use 0.8" % utilization)
    plan["gpu_memory_utilization"] = utilization

    device_total = budget["total_bytes"]
    kv_heads = shape.get("kv_heads") or 1

    def kv_per_gpu(size):
        # Heads are split across ranks; with fewer KV heads than ranks each rank keeps a copy of one.
        return kv_token * math.ceil(kv_heads / size) / kv_heads if shape.get("attention") != "mla" else kv_token

    def room(size):
        overhead = max(OVERHEAD_MIN_BYTES, int(OVERHEAD_FRACTION * device_total)) + OVERHEAD_PER_RANK_BYTES * (size - 1)
        return int(utilization * device_total) - weights / size - overhead, overhead

    needed = context or min(limit or MIN_CONTEXT, MIN_CONTEXT)
    if tp is None:
        size = 1
        while size <= max(1, count):
            if room(size)[0] >= kv_per_gpu(size) * needed:
                break
            size *= 2
        if size > max(1, count):
            size = None
        else:
            notes.append("tensor_parallel_size %d: the smallest power of two of the %d GPU(s) whose memory holds "
                         "the weights and %d tokens of KV cache" % (size, count, needed))
        tp = size
    if tp is None or tp > max(1, count):
        space, overhead = room(max(1, count))
        plan["tensor_parallel_size"] = tp or count
        plan["fits"] = False
        if context and space > 0:
            tokens = int(space // kv_per_gpu(max(1, count)))
            plan["max_context"] = _round_context(min(tokens, limit) if limit else tokens)
            errors.append("%s.%s %d is above what fits: the KV cache holds %d tokens (%s after weights %s and "
                          "runtime %s per GPU, gpu_memory_utilization %.2f)"
                          % (where, _context_key(service), context, tokens, _gib(space),
                             _gib(weights / max(1, count)), _gib(overhead), utilization))
            return
        errors.append("%s: the model does not fit: weights %s + runtime %s + KV cache for %d tokens %s per GPU on "
                      "%d GPU(s), but gpu_memory_utilization %.2f of %s allows %s"
                      % (where, _gib(weights / max(1, count)), _gib(overhead), needed,
                         _gib(kv_per_gpu(max(1, count)) * needed), max(1, count), utilization, _gib(device_total),
                         _gib(int(utilization * device_total))))
        return
    plan["tensor_parallel_size"] = tp
    space, overhead = room(tp)
    per_token = kv_per_gpu(tp)
    tokens = int(space // per_token) if per_token else 0
    plan["max_context"] = _round_context(min(tokens, limit) if limit else tokens)
    plan["kv_bytes"] = int(max(0, space) * tp)
    if space <= 0 or tokens <= 0:
        errors.append("%s: the model does not fit: weights %s + runtime %s per GPU leave no room for a KV cache "
                      "in %s (gpu_memory_utilization %.2f of %s)"
                      % (where, _gib(weights / tp), _gib(overhead), _gib(int(utilization * device_total)),
                         utilization, _gib(device_total)))
        plan["fits"] = False
        return
    if context and context > tokens:
        errors.append("%s.%s %d is above what fits: the KV cache holds %d tokens (%s after weights %s and "
                      "runtime %s per GPU)" % (where, _context_key(service), context, tokens, _gib(space),
                                               _gib(weights / tp), _gib(overhead)))
        plan["fits"] = False
        return
    plan["context"] = context or plan["max_context"]
    if not context:
        notes.append("context %d: the largest that fits%s" % (
            plan["context"], " (the model's own limit)" if limit and plan["context"] == _round_context(limit) else ""))
    if seqs is None:
        seqs = max(1, min(VLLM_MAX_NUM_SEQS, tokens // plan["context"]))
        notes.append("max_num_seqs %d: sequences of the full context that the KV cache (%d tokens) holds, at most "
                     "vLLM's %d" % (seqs, tokens, VLLM_MAX_NUM_SEQS))
    plan["max_num_seqs"] = seqs
    plan["fits"] = True


def _cache_type(service, long_flag, short_flag):
    args = [str(a) for a in service.get("args") or []]
    for index, arg in enumerate(args):
        if arg in (long_flag, short_flag) and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(long_flag + "="):
            return arg.split("=", 1)[1]
    return "f16"


def llamacpp_kv_bytes(shape, context, parallel=LLAMACPP_PARALLEL, cache_k="f16", cache_v="f16",
                      ubatch=LLAMACPP_UBATCH):
    """KV-cache bytes of llama-server for ``context`` cells (its ``--ctx-size``, shared by all slots)."""
    k_bytes = GGML_CACHE_BYTES.get(cache_k, 2.0)
    v_bytes = GGML_CACHE_BYTES.get(cache_v, 2.0)
    key_length = shape.get("key_length") or shape.get("head_dim") or 0
    value_length = shape.get("value_length") or key_length
    layers = shape.get("layers") or 0
    kv_layers = shape.get("kv_values_per_layer") or [shape.get("kv_values_per_token", 0) / max(1, layers)] * layers
    sliding = shape.get("sliding_layers") or [False] * layers
    window = shape.get("sliding_window")
    total = 0.0
    for values, is_sliding in zip(kv_layers, sliding):
        heads = values / max(1, key_length + value_length)
        per_cell = heads * (key_length * k_bytes + value_length * v_bytes)
        cells = context
        if is_sliding and window:
            swa = window * parallel + ubatch
            cells = min(context, swa + (-swa) % LLAMACPP_PAD)
        total += per_cell * cells
    return int(total)


def _plan_llamacpp(service, shape, budget, plan, context, errors):
    where = _where(service)
    notes = plan["notes"]
    limit = _int(shape.get("max_position_embeddings"))
    parallel = _number(service, "parallel", int, errors, low=1) or LLAMACPP_PARALLEL
    if context is None:
        context = LLAMACPP_CONTEXT
    if context == 0:
        context = limit or LLAMACPP_CONTEXT
        notes.append("context 0: the model's own %d tokens" % context)
    cache_k = _cache_type(service, "--cache-type-k", "-ctk")
    cache_v = _cache_type(service, "--cache-type-v", "-ctv")

    def kv(cells):
        return llamacpp_kv_bytes(shape, cells, parallel, cache_k, cache_v)

    hidden = shape.get("hidden") or 0
    ffn = shape.get("intermediate") or 4 * hidden
    compute = (4 * LLAMACPP_UBATCH * (2 * ffn + 4 * hidden) + 4 * (shape.get("vocab") or 0) * parallel
               + LLAMACPP_FIXED_BYTES)
    full = int(shape.get("kv_values_per_token") or 0) * GGML_CACHE_BYTES.get(cache_k, 2.0)
    plan["kv_bytes_per_token"] = int(full)
    plan["context"] = context
    plan["kv_bytes"] = kv(context)
    plan["compute_bytes"] = int(compute)
    plan["parallel"] = parallel
    if shape.get("sliding_window_layers"):
        notes.append("%d sliding-window layers hold at most %d cells (window x %d slots + ubatch %d), as llama.cpp "
                     "allocates them" % (shape["sliding_window_layers"], shape["sliding_window"] * parallel
                                         + LLAMACPP_UBATCH, parallel, LLAMACPP_UBATCH))
    notes.append("--ctx-size %d is the KV cache of all %d slots together (llama-server's unified KV cache)"
                 % (context, parallel))
    weights = plan["weight_bytes"]
    budget_bytes = budget.get("budget_bytes") if budget.get("known") else None
    if budget_bytes is None:
        plan["max_context"] = limit
        return
    space = budget_bytes - weights - compute
    # Largest context: the KV cache grows (piecewise) linearly, so search on it.
    low, high = 0, limit or 1 << 24
    while low < high:
        middle = (low + high + 1) // 2
        if kv(middle) <= space:
            low = middle
        else:
            high = middle - 1
    plan["max_context"] = _round_context(low)
    needed = weights + compute + plan["kv_bytes"]
    plan["fits"] = needed <= budget_bytes
    if low <= 0:
        errors.append("%s: the model does not fit: weights %s + compute buffers %s need more than the %s budget"
                      % (where, _gib(weights), _gib(compute), _gib(budget_bytes)))
    elif not plan["fits"]:
        errors.append("%s.%s %d is above what fits: weights %s + KV cache %s + compute %s = %s, budget %s "
                      "(the largest context that fits is %d)"
                      % (where, _context_key(service), context, _gib(weights), _gib(plan["kv_bytes"]),
                         _gib(compute), _gib(needed), _gib(budget_bytes), plan["max_context"]))

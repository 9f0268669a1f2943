# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/make-vllm-test-model.py: a loadable Llama checkpoint, the same bytes on every run."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from safetensors.numpy import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "make-vllm-test-model.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("make_vllm_test_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(script, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    script.main([str(out)])
    return out


def digests(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def test_writes_the_files_vllm_reads(model):
    assert sorted(digests(model)) == sorted([
        "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json",
        "tokenizer.json", "tokenizer_config.json"])
    assert not [p for p in model.iterdir() if p.name.startswith(".partial-")]


def test_same_bytes_on_every_run(script, model, tmp_path):
    script.main([str(tmp_path)])
    assert digests(tmp_path) == digests(model)


def test_other_seed_other_weights(script, model, tmp_path):
    script.main([str(tmp_path), "--seed", "7"])
    assert digests(tmp_path)["model.safetensors"] != digests(model)["model.safetensors"]


def test_config_is_the_small_llama(model):
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"]) == (128, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (4, 2)
    assert config["head_dim"] * config["num_attention_heads"] == config["hidden_size"]
    assert 1900 <= config["vocab_size"] <= 2048


def test_every_llama_tensor_with_its_shape(model):
    config = json.loads((model / "config.json").read_text())
    tensors = load_file(str(model / "model.safetensors"))
    h, i, v, d = config["hidden_size"], config["intermediate_size"], config["vocab_size"], config["head_dim"]
    kv = config["num_key_value_heads"] * d
    expected = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        expected.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i),
        })
    assert {name: t.shape for name, t in tensors.items()} == expected
    assert all(t.dtype == np.float32 for t in tensors.values())
    assert all(np.isfinite(t).all() for t in tensors.values())


def test_tokenizer_round_trip_and_special_tokens(model):
    tokenizer = Tokenizer.from_file(str(model / "tokenizer.json"))
    config = json.loads((model / "config.json").read_text())
    text = "Hello world, the model serves 42 tokens."
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    assert tokenizer.token_to_id("<|begin_of_text|>") == config["bos_token_id"]
    assert tokenizer.token_to_id("<|eot_id|>") == config["eos_token_id"]
    # A trained merge table: common words are single tokens, not bytes.
    assert len(tokenizer.encode(" model").ids) == 1


def test_chat_template_renders_a_conversation(model):
    jinja2 = pytest.importorskip("jinja2")
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    template = jinja2.Environment().from_string(tokenizer_config["chat_template"])
    text = template.render(messages=[{"role": "user", "content": " hi "}], add_generation_prompt=True,
                           bos_token=tokenizer_config["bos_token"])
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_corpus_file_trains_the_tokenizer(script, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["zebra quokka"] * 50 + script.corpus_lines(lines=500)))
    out = tmp_path / "model"
    script.main([str(out), "--corpus", str(corpus)])
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert len(tokenizer.encode(" quokka").ids) == 1

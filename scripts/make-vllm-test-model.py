# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the tiny Hugging Face model that the vLLM tests serve: no weights are downloaded.

A ``LlamaForCausalLM`` (a real architecture, so vLLM loads it with its own Llama code) with random weights:
hidden size 128, 2 layers, 4 attention heads, 2 KV heads, an MLP of 352, float32, about 3.6 MB. Its tokenizer is a
byte-level BPE of about 2048 tokens trained here with the ``tokenizers`` package, on text this script makes up from a
fixed seed (or on a local text file, ``--corpus``). ``tokenizer_config.json`` carries a chat template, so
``/v1/chat/completions`` works. What the model says is noise; the tests only ask that vLLM loads it and answers.

Files written into the output directory: ``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``, ``generation_config.json``.
The same arguments give the same bytes on every run (fixed seeds, sorted JSON).

Needs numpy, safetensors and tokenizers (requirements/vllm-test-model.txt); no torch.

    python3 scripts/make-vllm-test-model.py .cache/models/vllm-test-model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SEED = 9001
VOCAB_SIZE = 2048
SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
BOS, EOS, PAD = "<|begin_of_text|>", "<|eot_id|>", "<|pad|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, PAD, HEADER_START, HEADER_END]
# Llama 3's layout: each turn is a header with the role, a blank line, the text and <|eot_id|>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

_WORDS = (
    "the a an of to in on for with from by at as is was are be been this that these those it its they them "
    "model token tokens server engine image container host port key route health metrics version chat answer "
    "question context memory cache layer layers head heads weight weights vector matrix batch request reply "
    "fast slow small large first last next every other same new old good true false open closed ready "
    "run runs ran start stop load loads serve serves build builds pull pulls push read write check checks "
    "gpu cpu disk file files path name names value values number numbers list lists one two three four five "
    "hello world please thank you yes no why how what when where who which system user assistant"
).split()


def corpus_lines(seed=SEED, lines=6000):
    """Sentences made up from a small word list, the same for the same seed."""
    rng = np.random.default_rng(seed)
    words = np.array(_WORDS)
    out = []
    for _line in range(lines):
        n = int(rng.integers(4, 16))
        sentence = " ".join(words[rng.integers(0, len(words), n)])
        number = int(rng.integers(0, 10000))
        punct = ".?!,;:"[int(rng.integers(0, 6))]
        out.append(f"{sentence.capitalize()} {number}{punct}")
    return out


def train_tokenizer(lines, vocab_size=VOCAB_SIZE):
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def llama_config(vocab_size, bos_id, eos_id, pad_id):
    heads = SHAPE["num_attention_heads"]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "head_dim": SHAPE["hidden_size"] // heads,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "mlp_bias": False,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": vocab_size,
        **SHAPE,
    }


def llama_weights(config, seed=SEED):
    """Every tensor of LlamaForCausalLM under the names transformers and vLLM load, float32."""
    rng = np.random.default_rng(seed)
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    head_dim = config["head_dim"]
    q_dim = config["num_attention_heads"] * head_dim
    kv_dim = config["num_key_value_heads"] * head_dim
    vocab = config["vocab_size"]

    def normal(*shape):
        return (rng.standard_normal(shape) * config["initializer_range"]).astype(np.float32)

    def ones(n):
        return np.ones((n,), dtype=np.float32)

    tensors = {"model.embed_tokens.weight": normal(vocab, hidden)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors[p + "input_layernorm.weight"] = ones(hidden)
        tensors[p + "self_attn.q_proj.weight"] = normal(q_dim, hidden)
        tensors[p + "self_attn.k_proj.weight"] = normal(kv_dim, hidden)
        tensors[p + "self_attn.v_proj.weight"] = normal(kv_dim, hidden)
        tensors[p + "self_attn.o_proj.weight"] = normal(hidden, q_dim)
        tensors[p + "post_attention_layernorm.weight"] = ones(hidden)
        tensors[p + "mlp.gate_proj.weight"] = normal(inter, hidden)
        tensors[p + "mlp.up_proj.weight"] = normal(inter, hidden)
        tensors[p + "mlp.down_proj.weight"] = normal(hidden, inter)
    tensors["model.norm.weight"] = ones(hidden)
    tensors["lm_head.weight"] = normal(vocab, hidden)
    return tensors


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def make_model(out_dir, corpus=None, seed=SEED):
    """Write the model into ``out_dir`` (created; files replaced) and return its config."""
    if corpus:
        with open(corpus, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    else:
        lines = corpus_lines(seed)
    tokenizer = train_tokenizer(lines)
    vocab = tokenizer.get_vocab_size()
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    config = llama_config(vocab, ids[BOS], ids[EOS], ids[PAD])

    os.makedirs(out_dir, exist_ok=True)
    # Written beside the target, then renamed: an interrupted run never leaves half a model.
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".partial-") as tmp:
        save_file(llama_weights(config, seed), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save(os.path.join(tmp, "tokenizer.json"))
        _write_json(os.path.join(tmp, "config.json"), config)
        _write_json(os.path.join(tmp, "generation_config.json"), {
            "bos_token_id": ids[BOS],
            "eos_token_id": ids[EOS],
            "pad_token_id": ids[PAD],
            "max_new_tokens": 32,
        })
        _write_json(os.path.join(tmp, "special_tokens_map.json"), {
            "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        })
        _write_json(os.path.join(tmp, "tokenizer_config.json"), {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            "add_bos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": SHAPE["max_position_embeddings"],
            "chat_template": CHAT_TEMPLATE,
        })
        for name in sorted(os.listdir(tmp)):
            # Readable by the engine's user in a container (safetensors writes 0600).
            os.chmod(os.path.join(tmp, name), 0o644)
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="directory to write the model into")
    parser.add_argument("--corpus", help="train the tokenizer on this text file instead of made-up sentences")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the weights and the made-up text")
    args = parser.parse_args(argv)
    config = make_model(args.out_dir, corpus=args.corpus, seed=args.seed)
    print(f"{args.out_dir}: LlamaForCausalLM, vocab {config['vocab_size']}, hidden {config['hidden_size']}, "
          f"{config['num_hidden_layers']} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())

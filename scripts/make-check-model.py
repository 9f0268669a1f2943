# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the tiny GGUF model that llamacpp_image's check runs (roles/llamacpp_image/files/check-model.gguf),
or, with ``--smoke``, the larger one scripts/gpu-smoke.sh serves on a GPU.

A Llama-architecture model with random f16 weights (2 layers, 64 wide, a 259-token SentencePiece-style
vocabulary of three control tokens and the 256 byte tokens): small enough to ship with the role (about
260 KB), real enough that llama.cpp loads it, offloads its layers to a GPU and runs llama-bench on it.
Its output is noise; the check only asks whether the backend loads and computes.

``--smoke``: the same architecture 512 wide with 8 layers (27 M parameters) in Q8_0, about 29 MiB: enough work per
token that a GPU's tokens/s mean something, small enough to carry to a GPU machine without network.

Needs the ``gguf`` package (and numpy): ``pip install gguf``. The seed is fixed, so the file is the same
on every run: ``python3 scripts/make-check-model.py roles/llamacpp_image/files/check-model.gguf``.
"""

from __future__ import annotations

import sys

import gguf
import numpy as np

N_VOCAB = 259
SIZES = {
    # n_embd, n_head, n_layer, n_ff, n_ctx, weight type
    "check": (64, 4, 2, 128, 256, gguf.GGMLQuantizationType.F16),
    "smoke": (512, 8, 8, 1536, 4096, gguf.GGMLQuantizationType.Q8_0),
}


def main(path, size="check"):
    n_embd, n_head, n_layer, n_ff, n_ctx, qtype = SIZES[size]
    rng = np.random.default_rng(1151)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("gpufleet %s model" % size)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if qtype == gguf.GGMLQuantizationType.F16
                         else gguf.LlamaFileType.MOSTLY_Q8_0)

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    def weight(name, *shape):
        data = rng.standard_normal(shape) * 0.02
        if qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            data = data.astype(np.float32)
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_shape=gguf.quant_shape_to_byte_shape(data.shape, qtype),
                              raw_dtype=qtype)

    def norm(name):
        writer.add_tensor(name, np.ones(n_embd, dtype=np.float32))

    # The vocabulary is 259 tokens: too few for the 32-wide blocks of Q8_0 in the embeddings, which stay F16.
    writer.add_tensor("token_embd.weight", (rng.standard_normal((N_VOCAB, n_embd)) * 0.02).astype(np.float16))
    for i in range(n_layer):
        norm(f"blk.{i}.attn_norm.weight")
        for part in ("q", "k", "v", "output"):
            weight(f"blk.{i}.attn_{part}.weight", n_embd, n_embd)
        norm(f"blk.{i}.ffn_norm.weight")
        weight(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        weight(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        weight(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    norm("output_norm.weight")
    writer.add_tensor("output.weight", (rng.standard_normal((N_VOCAB, n_embd)) * 0.02).astype(np.float16))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    kind = "smoke" if "--smoke" in args else "check"
    args = [a for a in args if a != "--smoke"]
    main(args[0] if args else "roles/llamacpp_image/files/check-model.gguf", kind)

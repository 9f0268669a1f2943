# Copyright: (c) 2026, gpufleet.inference contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the tiny GGUF model that llamacpp_image's check runs (roles/llamacpp_image/files/check-model.gguf).

A Llama-architecture model with random f16 weights (2 layers, 64 wide, a 259-token SentencePiece-style
vocabulary of three control tokens and the 256 byte tokens): small enough to ship with the role (about
260 KB), real enough that llama.cpp loads it, offloads its layers to a GPU and runs llama-bench on it.
Its output is noise; the check only asks whether the backend loads and computes.

Needs the ``gguf`` package (and numpy): ``pip install gguf``. The seed is fixed, so the file is the same
on every run: ``python3 scripts/make-check-model.py roles/llamacpp_image/files/check-model.gguf``.
"""

from __future__ import annotations

import sys

import gguf
import numpy as np

N_VOCAB, N_EMBD, N_HEAD, N_LAYER, N_FF, N_CTX = 259, 64, 4, 2, 128, 256


def main(path):
    rng = np.random.default_rng(1151)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("gpufleet check model")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

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
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float16))

    def norm(name):
        writer.add_tensor(name, np.ones(N_EMBD, dtype=np.float32))

    weight("token_embd.weight", N_VOCAB, N_EMBD)
    for i in range(N_LAYER):
        norm(f"blk.{i}.attn_norm.weight")
        for part in ("q", "k", "v", "output"):
            weight(f"blk.{i}.attn_{part}.weight", N_EMBD, N_EMBD)
        norm(f"blk.{i}.ffn_norm.weight")
        weight(f"blk.{i}.ffn_gate.weight", N_FF, N_EMBD)
        weight(f"blk.{i}.ffn_up.weight", N_FF, N_EMBD)
        weight(f"blk.{i}.ffn_down.weight", N_EMBD, N_FF)
    norm("output_norm.weight")
    weight("output.weight", N_VOCAB, N_EMBD)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "roles/llamacpp_image/files/check-model.gguf")

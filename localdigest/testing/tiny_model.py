"""Writes a tiny random-weight llama GGUF with a byte-level tokenizer and a ChatML template.

It loads in milliseconds and drives the real llama.cpp path (tokenizer, chat template,
grammar sampling) so tests exercise everything but the model's knowledge.
"""

from pathlib import Path

import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# "。" as one token that random weights favour: reviews close a sentence with it (the grammar ends
# prose only after one), so the tiny model's answers stay short; as three byte tokens it would
# almost never write one, and every field would run to its length cap.
SENTENCE_END = "。"


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode table: every byte is one printable token."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def write_tiny_gguf(path: Path, seed: int = 0, chat_template: str | None = CHATML_TEMPLATE,
                    embedding: int = 64, layers: int = 2, heads: int = 4, context: int = 32768,
                    end_boost: float = 2.5, quote_boost: float = 2.0, output_scale: float = 0.02) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    byte_tokens = _byte_tokens()
    end_token = "".join(byte_tokens[b] for b in SENTENCE_END.encode("utf-8"))
    tokens = byte_tokens + [end_token] + SPECIAL_TOKENS
    vocab = len(tokens)
    ffn = embedding * 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test")
    writer.add_context_length(context)
    writer.add_embedding_length(embedding)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(embedding // heads)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * 257 + [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS))
    writer.add_token_merges(["Ġ t", "Ġ a", f"{end_token[0]} {end_token[1]}", f"{end_token[:2]} {end_token[2]}"])
    writer.add_bos_token_id(vocab - 3)
    writer.add_eos_token_id(vocab - 1)
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    # Dimension 0 of the residual stream is a constant no layer writes to, and only "。" and the quote
    # read it in the output layer: a fixed bias towards ending sentences and strings at every position,
    # on otherwise random (and flat: output_scale) weights.
    embeddings = weight(vocab, embedding)
    embeddings[:, 0] = 20.0
    output = weight(vocab, embedding) * output_scale
    output[:, 0] = 0.0
    output[tokens.index(end_token), 0] = end_boost
    output[tokens.index('"'), 0] = quote_boost
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(embedding, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(embedding, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(embedding, embedding))
        writer.add_tensor(f"blk.{i}.attn_output.weight", _not_into_dimension_0(weight(embedding, embedding)))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(embedding, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ffn, embedding))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(ffn, embedding))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", _not_into_dimension_0(weight(embedding, ffn)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _not_into_dimension_0(matrix: np.ndarray) -> np.ndarray:
    matrix[0, :] = 0.0  # rows are output dimensions
    return matrix


if __name__ == "__main__":  # python -m localdigest.testing.tiny_model OUT.gguf (used by .ci/run)
    import sys

    print(write_tiny_gguf(Path(sys.argv[1])))

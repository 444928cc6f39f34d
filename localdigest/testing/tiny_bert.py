"""Writes a tiny random-weight sentence-transformers BERT folder, zipped as the embedding model's
package ships it (config.json, model.safetensors, tokenizer.json, modules.json, 1_Pooling/).

It goes through the real conversion (llm.convert) and the real llama.cpp embedding path in
milliseconds; its vocabulary is the letters, so every lower-case ASCII word tokenizes.
"""

import json
import string
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def vocabulary() -> list[str]:
    pieces = list(string.ascii_lowercase + string.digits + string.punctuation)
    return SPECIAL + pieces + ["##" + p for p in string.ascii_lowercase + string.digits] + ["speech", "robot", "audio"]


def write_tiny_bert_zip(path: Path, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 2) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "intermediate_size": 2 * hidden, "max_position_embeddings": 512,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "vocab_size": len(vocab), "_name_or_path": "tiny-bert"}

    def matrix(rows, cols):
        return rng.normal(0, 0.2, (rows, cols)).astype(np.float32)

    tensors = {"embeddings.word_embeddings.weight": matrix(len(vocab), hidden),
               "embeddings.position_embeddings.weight": matrix(512, hidden),
               "embeddings.token_type_embeddings.weight": matrix(2, hidden),
               "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
               "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32)}
    for i in range(layers):
        block = f"encoder.layer.{i}."
        for name, (rows, cols) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                                   "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                                   "intermediate.dense": (2 * hidden, hidden), "output.dense": (hidden, 2 * hidden)}.items():
            tensors[block + name + ".weight"] = matrix(rows, cols)
            tensors[block + name + ".bias"] = np.zeros(rows, np.float32)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[block + norm + ".weight"] = np.ones(hidden, np.float32)
            tensors[block + norm + ".bias"] = np.zeros(hidden, np.float32)
    tokenizer = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {t: i for i, t in enumerate(vocab)}},
                 "added_tokens": [{"id": i, "content": t, "special": True} for i, t in enumerate(SPECIAL)]}
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "model.safetensors"
        save_file(tensors, str(weights))
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("config.json", json.dumps(config))
            bundle.write(weights, "model.safetensors")
            bundle.writestr("tokenizer.json", json.dumps(tokenizer))
            bundle.writestr("modules.json", json.dumps(modules))
            bundle.writestr("1_Pooling/config.json", json.dumps({"pooling_mode_mean_tokens": True}))
    return path


def write_tiny_bert_gguf(path: Path, seed: int = 0) -> Path:
    from localdigest.llm.convert import zipped_bert_to_gguf

    archive = path.with_suffix(".zip")
    zipped_bert_to_gguf(write_tiny_bert_zip(archive, seed), path)
    archive.unlink()
    return path


if __name__ == "__main__":
    print(write_tiny_bert_gguf(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-bert.gguf")))

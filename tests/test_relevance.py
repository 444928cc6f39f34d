"""A reader's profile: include/exclude keywords before any model work, relevance ranking with the
real (tiny) model, --top, --sort relevance, the cache, and the ranking benchmark script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import HF_FEED
from localdigest.cli import main
from localdigest.errors import LocaldigestError
from localdigest.llm.local import LocalModel
from localdigest.llm.registry import ModelSpec
from localdigest.review.relevance import QUESTION, SYSTEM, load_profile
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
    assert markdown.stdout.count("> 🎯 与你的研究兴趣的相关度：") == 1
    alone = run("--top", "2")
    assert alone.exit_code == 1 and "--top needs your interests" in alone.stderr


def test_the_profile_in_the_config_folder_is_used_by_default(tiny_registry, tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "profile.toml").write_text('exclude = ["LongLoRA", "MetaMath"]\n', encoding="utf-8")
    result = run("--limit", "2", "--no-archive")
    assert result.exit_code == 0 and "Left out 2 papers with an excluded keyword" in result.stderr
    assert "LongLoRA" not in result.stdout


def test_the_profile_is_evaluated_once_for_the_whole_list(tiny_gguf):
    import llama_cpp

    model = LocalModel(ModelSpec("tiny", {"path": str(tiny_gguf)}, n_ctx=4096), tiny_gguf)
    interests = "speech recognition " * 40  # a long shared part

    def ask(title):
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": QUESTION.format(interests=interests, title=title, abstract="An abstract.")}]
        llama_cpp.llama_perf_context_reset(model._load().ctx)
        logprobs = model.option_logprobs(messages, ("Yes", "No"))
        return logprobs, llama_cpp.llama_perf_context(model._llama.ctx).n_p_eval, model.prompt_tokens(messages)

    first, evaluated_first, total = ask("A paper on speech")
    second, evaluated_second, _ = ask("A paper on robots")
    assert all(v < 0 for v in first.values()) and first != second
    assert evaluated_first >= total - 1 and evaluated_second < total / 3  # only the paper's own part


def test_ranking_benchmark_script_runs(tiny_registry, tmp_path):
    out = tmp_path / "relevance.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "relevance.py"), "--model", "tiny",
                             "--out", str(out), "--review-papers", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["profiles"]) == {"speech", "robotics", "efficient-llm"}
    assert all(0 <= m["precision_at_5"] <= 1 and 0 <= m["ndcg_at_10"] <= 1
               for methods in report["profiles"].values() for m in methods.values())
    assert "speech          model+boost" in result.stdout and "% of it" in result.stdout

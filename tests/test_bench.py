import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import BENCH_DATA
from localdigest.cli import main
from localdigest.bench.metrics import chrf, cjk_share, copy_rate, reference_free, set_f1, untranslated_words
from localdigest.bench.references import load_references, parse_reference
from localdigest.review.schema import Review
from test_reviews import valid_dict

REFERENCES = BENCH_DATA / "references"


@pytest.mark.parametrize("path", sorted(REFERENCES.glob("*.md")), ids=lambda p: p.name)
def test_every_reference_paper_parses_completely(path):
    reviews = parse_reference(path)
    assert len(reviews) == path.read_text(encoding="utf-8").count("\n## ")
    for review in reviews:
        assert review.main_work and review.highlights, review.arxiv_id
        assert len(review.keywords) == 5, (review.arxiv_id, review.keywords)
        assert set(review.scores) == {"practicality", "innovation", "recommendation"}, review.arxiv_id
        assert all(0 <= s <= 5 for s in review.scores.values())


def test_reference_layout_variants_parse_to_known_values():
    refs = load_references(REFERENCES)
    assert len(refs) == 85
    longlora = refs["2309.12307"]  # ### headings, "- 实用性：4.5/5。"
    assert longlora.keywords[0] == ("LongLoRA", "长LoRA") and longlora.scores["practicality"] == 4.5
    assert longlora.main_work.startswith("本文提出了一种称为LongLoRA")
    assert refs["2309.09530"].keywords[-1] == ("Competitive Performance", "竞争性能")  # inline list, "：" heading
    assert refs["2309.04663"].keywords[3] == ("FIAT (Fusing Instruction-Accelerated Tuning)", "FIAT（融合指令加速调整）")
    assert refs["2309.08628"].scores == {"practicality": 4.0, "innovation": 4.5, "recommendation": 4.0}  # **…评分： 4**
    assert refs["2309.07462"].keywords[0] == ("Large Language Models (LLMs)", "大型语言模型")


def test_keyword_f1_normalises_case_punctuation_and_width():
    assert set_f1(["Large Language Models", "LoRA"], ["large-language models", "Attention"]) == 0.5
    assert set_f1(["ＬｏＲＡ"], ["lora"]) == 1.0
    assert set_f1([], []) == 1.0 and set_f1(["a"], ["b"]) == 0.0
    # A plural is the same keyword, a CJK term with or without the space before Latin letters too;
    # short words and -ss are left alone.
    assert set_f1(["Transformers architecture", "LLMs"], ["Transformer Architecture", "LLM"]) == 1.0
    assert set_f1(["SlimPajama 数据集"], ["SlimPajama数据集"]) == 1.0
    assert set_f1(["Transformer 架构"], ["Transformers架构"]) == 1.0  # both at once (Boolformer's, stop 33)
    assert set_f1(["Loss"], ["Los"]) == 0.0 and set_f1(["Gas"], ["Ga"]) == 0.0
    # A name is the name with what it is after it (GPT-4's "FoleyGen系统"), but not a Chinese term.
    assert set_f1(["FoleyGen", "LMSYS-Chat-1M"], ["FoleyGen系统", "LMSYS-Chat-1M 数据集"]) == 1.0
    assert set_f1(["生成"], ["生成模型"]) == 0.0 and set_f1(["BERT"], ["BERT 微调"]) == 0.0


def test_keyword_f1_matches_abbreviations_and_their_phrases_one_to_one():
    # The references' own spellings: "LLMs" for a review's "Large Language Models", both parts of
    # "Large Language Models (LLMs)".
    assert set_f1(["Large Language Models"], ["LLMs"]) == 1.0
    assert set_f1(["LLM", "Word Error Rate"], ["Large Language Models (LLMs)", "WER"]) == 1.0
    assert set_f1(["Neural Radiance Fields"], ["Neural Radiance Fields (NeRFs)"]) == 1.0
    assert set_f1(["Free Lunch"], ["Federated Learning"]) == 0.0  # two phrases: initials alone never match
    assert set_f1(["FL"], ["Free Lunch Diffusion"]) == 0.0
    # One keyword counts once: two spellings of LLM against one reference are one hit of two.
    assert set_f1(["LLM", "Large Language Models"], ["LLMs"]) == pytest.approx(2 / 3)


def test_chrf_known_values():
    assert chrf("本文提出了方法", "本文提出了方法") == pytest.approx(100)
    assert chrf("完全不同", "毫无关系") == 0
    partial = chrf("本文提出了新方法", "本文提出了方法")
    assert 50 < partial < 100


def test_cjk_share_and_copy_rate():
    assert cjk_share("本文 LoRA") == pytest.approx(2 / 6)
    assert copy_rate("abcdefghij", ["xxabcdefghijxx"]) == 1.0
    assert copy_rate("abcdefghij", ["nothing alike"]) == 0.0


def test_untranslated_words_leave_out_names_and_kept_words():
    # As Qwen 1.5B wrote OpenBA's and CoVe's reviews before the decoder kept English words out.
    paper = "OpenBA: An Open-sourced 15B Bilingual Asymmetric seq2seq Model\nSee huggingface.co/openBA."
    review = Review.from_dict({**valid_dict(), "main_work": "本文训练 seq2seq 模型 OpenBA，用 380B tokens，生成虚假但 plausible信息，"
                                                            "见 huggingface.co/openBA 与 GitHub。" + "补充说明。" * 20,
                               "highlights": "它减少 hallucinations，即 Q-functions 的 2.8x 提升，超过零-shot。"})
    assert untranslated_words(review, paper) == ["plausible", "hallucinations", "shot"]
    # The paper's name with other capitals inside is the name (stop 46, seed 2: the abstract's
    # "Huggingface Transformers Library"); not with another first letter, nor a Capitalised common word.
    paper = "OpenBA: An Open-sourced Model\nThe code follows the Huggingface Transformers Library."
    review = Review.from_dict({**valid_dict(), "main_work": "本文的模型可从 HuggingFace Transformers 库中直接使用，"
                                                            "而 huggingface 写法和 Backbone 都不是名字。" + "补充说明。" * 20})
    assert untranslated_words(review, paper) == ["huggingface", "Backbone"]


def test_reference_free_flags_identical_scores_and_duplicates():
    review = Review.from_dict(valid_dict())
    result = reference_free([review, review], ["We present LongLoRA.", "Other."], [])
    assert result["identical_scores"] == 1.0 and result["score_spread"] == 0
    assert result["duplicate_main_work"] == 0.5 and result["duplicate_keywords"] == 0


def test_answers_sent_back_are_counted_by_kind_and_a_hostile_cache_entry_counts_nothing():
    from types import SimpleNamespace

    from localdigest.bench.runner import sent_back_for

    costs = [{"sent_back_for": ["the innovation reason repeats 主要工作/亮点", "main_work is too short"]},
             {"sent_back_for": ["the innovation reason repeats 主要工作/亮点"]}, {}, None,
             {"sent_back_for": "main_work is too short"}, {"sent_back_for": [3, None, "misreads a number"]}]
    assert sent_back_for([SimpleNamespace(cost=cost) for cost in costs]) == {
        "the innovation reason repeats 主要工作/亮点": 2, "main_work is too short": 1, "misreads a number": 1}


def test_bench_on_the_tiny_model_writes_table_json_csv_and_chart(tiny_registry, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["bench", "--limit", "2", "--prompt", "default", "--prompt", "concise",
                                       "--out-dir", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "2 papers (2 with a reference; 0 left out as the prompts' worked examples) x 2 prompts x 1 models" \
        in result.stderr
    assert "English keyword F1 vs reference" in result.stdout and "generation tokens/s" in result.stdout
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [(r["prompt"], r["model"]) for r in data["results"]] == [("default", "tiny"), ("concise", "tiny")]
    assert data["results"][0]["valid"] == 1.0 and "main_work_chrf" in data["results"][0]
    assert (out / "results.csv").read_text(encoding="utf-8").startswith("prompt,model,seed,papers,valid,")
    assert (out / "quality_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rerun = CliRunner().invoke(main, ["bench", "--limit", "2", "--prompt", "default", "--out-dir", str(out)])
    assert rerun.exit_code == 0 and json.loads((out / "results.json").read_text())["results"][0]["valid"] == 1.0


def test_bench_with_several_seeds_shows_each_draw_and_their_mean(tiny_registry, tmp_path):
    """Another seed is another draw of the same prompt and model: a prompt tuner compares means and
    sees how far one draw moves (random weights: the two draws' answers differ)."""
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["bench", "--limit", "2", "--prompt", "default", "--seed", "42", "--seed", "7",
                                       "--out-dir", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "x 1 prompts x 1 models x 2 seeds" in result.stderr and "seed 7" in result.stdout
    rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]
    assert [r["seed"] for r in rows] == [42, 7, "mean"]
    for key in ("main_work_chrf", "completion_tokens"):
        assert rows[2][key] == pytest.approx((rows[0][key] + rows[1][key]) / 2)
    assert rows[0]["completion_tokens"] != rows[1]["completion_tokens"]


def test_bench_without_matplotlib_says_so_first_and_writes_the_rest(tiny_registry, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as after `pip install localdigest` without [bench]
    out = tmp_path / "results"
    result = CliRunner().invoke(main, ["bench", "--limit", "1", "--prompt", "concise", "--out-dir", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("Note: matplotlib is not installed")  # before any paper was reviewed
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "results.json"]


def test_bench_refuses_an_unwritable_out_dir_before_reviewing(tiny_registry, tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, ["bench", "--limit", "1", "--out-dir", str(tmp_path / "file" / "results")])
    assert result.exit_code == 1 and "Not a directory" in result.stderr and "papers (" not in result.stderr


def test_papers_shown_as_worked_examples_are_left_out_of_the_bench(tmp_path):
    from localdigest.bench.runner import not_in_examples
    from localdigest.review.prompts import load_prompt
    from localdigest.sources.feeds import load_feeds

    papers = load_feeds([str(BENCH_DATA / "papers" / "2023-09-22.json")]).papers
    shown = load_prompt("default")
    prompt = tmp_path / "shows-longlora.toml"
    prompt.write_text(f'system = "s"\nuser = "$title"\n[[examples]]\nuser = "{papers[0].title}"\n'
                      f'assistant = """{shown.examples[0][1]}"""\n', encoding="utf-8")
    kept, left_out = not_in_examples(papers, [shown, load_prompt(str(prompt))])
    assert left_out == [papers[0].arxiv_id] and kept == papers[1:]


def test_llama_batched_bench_table_is_read():
    """benchmarks/vs_llama_cpp.py reads llama.cpp's generation rate from llama-batched-bench's
    table (the fixture is its real output, tiny model, -npl 1,2)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_llama_cpp.py"
    spec = importlib.util.spec_from_file_location("vs_llama_cpp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (Path(__file__).parent / "fixtures" / "llama_batched_bench.txt").read_text()
    assert module.parse_batched_bench(text) == {1: 9913.26, 2: 21220.16}
    assert module.parse_batched_bench("llama-batched-bench: error") == {}


def test_llama_completion_and_speculative_summaries_are_read():
    """benchmarks/draft_model.py reads both tools' own summaries (the fixtures are their real output
    on Qwen2.5-Coder 1.5B, with the 0.5B as the draft)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "draft_model.py"
    spec = importlib.util.spec_from_file_location("draft_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fixtures = Path(__file__).parent / "fixtures"
    assert module.parse_completion((fixtures / "llama_completion.txt").read_text()) == 13.39  # not the prompt's 37.52
    assert module.parse_speculative((fixtures / "llama_speculative_simple.txt").read_text()) == \
        {"tok_s": 5.176, "tokens": 301, "accepted": pytest.approx(0.55645)}
    with pytest.raises(ValueError, match="llama-completion"):
        module.parse_completion("error: model not found")

import os

from localdigest.sources.papers import HF, Paper
from localdigest.output.files import write_atomic
from localdigest.output.render import DigestInfo, render_json, render_markdown
from localdigest.review.pipeline import PaperResult
from localdigest.review.schema import Review
from test_reviews import valid_dict

PAPER = Paper(arxiv_id="2309.12307", title="LongLoRA: Efficient Fine-tuning", abstract="We present LongLoRA.",
              source=HF, upvotes=12)
INFO = DigestInfo(date="2023-09-22", model="tiny (tiny.gguf)", prompt="default")


def test_markdown_follows_the_reference_layout():
    review = Review.from_dict(valid_dict())
    failed = PaperResult(Paper(arxiv_id="2309.11523", title="RMT", abstract="x", source=HF), None, error="bad JSON")
    text = render_markdown(INFO, [PaperResult(PAPER, review), failed])
    lines = text.splitlines()
    assert lines[0] == "# 【2023-09-22】Huggingface 每日论文速览"
    assert lines[2] == "- [Huggingface Daily Papers 2023-09-22](https://huggingface.co/papers?date=2023-09-22) 共推荐 2 篇论文。"
    assert "> 💡说明：" in lines
    assert "GPT-4" not in text and "tiny (tiny.gguf)" in text and "default" in text
    section = text.split("## LongLoRA: Efficient Fine-tuning\n")[1].split("## RMT")[0]
    for heading in ("### 1. 介绍本文的主要工作", "### 2. 本文工作的主要亮点", "### 3. 核心关键词", "### 4. 评分"):
        assert heading in section
    assert section.count("- `Keyword") == 5 and "- `Keyword 0` (`关键词0`)" in section
    assert "- 实用性：4.5/5。 实用。" in section and "- 创新性：4/5。 新颖。" in section and "- 推荐度：0/5。 一般。" in section
    assert section.rstrip().endswith("[到 Huggingface 论文主页查看详情](https://huggingface.co/papers/2309.12307) · "
                                     "[arXiv](https://arxiv.org/abs/2309.12307) · [PDF](https://arxiv.org/pdf/2309.12307)"
                                     " · 👍 12")
    assert "⚠️ 本文速览生成失败：bad JSON" in text
    assert "(https://huggingface.co/papers/2309.11523)" in text


def test_json_output_carries_reviews_and_errors():
    import json

    data = json.loads(render_json(INFO, [PaperResult(PAPER, Review.from_dict(valid_dict()))]))
    assert data["papers"][0]["review"]["scores"]["practicality"]["score"] == 4.5
    assert data["papers"][0]["error"] is None


def test_write_atomic_replaces_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "digest.md"
    write_atomic(target, "first")
    write_atomic(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert os.listdir(target.parent) == ["digest.md"]


def test_links_follow_the_source_and_what_the_feed_knows():
    import json

    from localdigest.sources.feeds import load_feeds

    hf_item = {"paper": {"id": "2309.12307", "title": "LongLoRA", "summary": "A.", "upvotes": 40,
                         "githubRepo": "https://github.com/dvlab-research/LongLoRA", "githubStars": 2600,
                         "ai_keywords": ["LoRA", "long context", 5]}, "numComments": 3}
    feeds = [("hf.json", json.dumps([hf_item])), ("arxiv.json", json.dumps([{"arxiv_id": "2309.12207",
                                                                            "title": "Boolformer", "abstract": "B."}]))]
    papers = []
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as folder:
        for name, content in feeds:
            (Path(folder) / name).write_text(content, encoding="utf-8")
            papers += load_feeds([str(Path(folder) / name)]).papers
    hf, arxiv = papers
    assert hf.ai_keywords == ("LoRA", "long context") and hf.stars == 2600 and hf.comments == 3
    text = render_markdown(INFO, [PaperResult(p, None, error="x") for p in papers])
    assert "[代码](<https://github.com/dvlab-research/LongLoRA>) ⭐ 2600 · 👍 40 · 💬 3" in text
    assert "[到 arXiv 查看详情](https://arxiv.org/abs/2309.12207) · [PDF](https://arxiv.org/pdf/2309.12207)\n" in text
    assert text.startswith("# 【2023-09-22】每日论文速览") and "来自 Huggingface Daily Papers 与 arXiv 的论文" in text
    only_arxiv = render_markdown(INFO, [PaperResult(arxiv, None, error="x")])
    assert only_arxiv.startswith("# 【2023-09-22】arXiv 每日论文速览") and "huggingface.co" not in only_arxiv
    data = json.loads(render_json(INFO, [PaperResult(hf, None, error="x")]))["papers"][0]
    assert data["links"]["code"] == "https://github.com/dvlab-research/LongLoRA" and data["source"] == "hf"

"""今日速览: its checks (no invented paper names), its place in the digest, and the real decoding path."""

import json

import pytest
from click.testing import CliRunner

from conftest import HF_FEED
from localdigest.cli import main
from localdigest.output.render import DigestInfo, render_markdown
from localdigest.review.overview import problems, short_name
from localdigest.review.pipeline import PaperResult
from localdigest.review.schema import Review
from localdigest.sources.papers import Paper
from test_reviews import valid_dict

DAY = [PaperResult(Paper(f"2309.{i}", title, "An abstract."), Review.from_dict({**valid_dict(), "main_work": work}))
       for i, (title, work) in enumerate([
           ("LongLoRA: Efficient Fine-tuning of Long-Context Large Language Models", "本文把 LLaMA2 的上下文扩展到 100k。"),
           ("MetaMath: Bootstrap Your Own Mathematical Questions", "本文用改写的数学题微调 LLaMA-2。")])]


FOCUS = "今天的论文集中在长上下文与数学推理。"  # what makes a short example long enough to be an overview


@pytest.mark.parametrize("text, expected", [
    ("今天的论文集中在长上下文与数学推理。建议先读 LongLoRA 和 MetaMath，二者都基于 LLaMA2。", []),
    (FOCUS + "今天建议先读 LongLoRA 与 GPT-5 的对比。", ["提到了列表中没有的名字：GPT-5"]),  # invented
    (FOCUS + "今天建议先读 DreamLLM。", ["提到了列表中没有的名字：DreamLLM"]),
    ("犊*U>˨。掘H。", ["太短（9 字），请写 2-4 句、约 100-200 字"]),  # random weights, after the Capitalised ban
    (FOCUS + "我们建议先读 LongLoRA。", ["用了第一人称"]),
    ("Today LongLoRA and MetaMath stand out for long context and math.", ["不是中文", "句子被截断"]),  # no 。
    # As random weights wrote it: mostly CJK, so only the garbled characters give it away
    ("虃\U0010b6b8嶪\ufffd\ufffdC。", ["有乱码", "太短（7 字），请写 2-4 句、约 100-200 字"]),
    (FOCUS + "今天建议先读 LongLoRA\ufffd。", ["有乱码"]),
])
def test_an_overview_names_only_papers_of_the_day(text, expected):
    assert problems(text, DAY) == expected


def test_short_names_are_what_readers_call_papers():
    assert short_name("LongLoRA: Efficient Fine-tuning") == "LongLoRA"
    assert short_name("A Survey of Everything") == "A Survey of Everything"
    assert short_name("x" * 50 + ": y") == "x" * 50 + ": y"


def test_the_overview_opens_the_digest_escaped():
    markdown = render_markdown(DigestInfo("2023-09-22", "m", "p", overview="先读 **LongLoRA**。"), DAY)
    assert "## 今日速览\n\n先读 \\*\\*LongLoRA\\*\\*。\n" in markdown
    assert markdown.index("## 今日速览") < markdown.index("## LongLoRA")


def test_an_overview_that_fails_its_checks_is_left_out_with_a_warning(tiny_registry, tmp_path):
    """The tiny model's random characters (garbled, names no paper has, or a line too short to say
    anything): the run keeps the digest and says why."""
    out = tmp_path / "d.json"
    result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--limit", "2", "--date", "2023-09-22",
                                       "--overview", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "Warning: no 今日速览: the model's answers failed the checks (" in result.stderr
    digest = json.loads(out.read_text(encoding="utf-8"))
    assert "overview" not in digest and len(digest["papers"]) == 2

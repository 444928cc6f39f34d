import json
import re

import pytest
from click.testing import CliRunner

from conftest import HF_FEED
from localdigest.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def sections(markdown: str) -> list[str]:
    return markdown.split("\n## ")[1:]


def test_digest_of_a_day_then_cached_rerun(tiny_registry, tmp_path):
    out = tmp_path / "digest.md"
    first = run("run", "--feed", str(HF_FEED), "--date", "2023-09-22", "--out", str(out))
    assert first.exit_code == 0, first.stderr
    assert "8 papers: 8 generated, 0 from cache, 0 failed" in first.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# 【2023-09-22】Huggingface 每日论文速览\n")
    assert "共推荐 8 篇论文。" in text and "使用本地模型 tiny (tiny.gguf)" in text
    parts = sections(text)
    assert len(parts) == 8 and parts[0].startswith("LongLoRA: Efficient Fine-tuning")
    for part in parts:
        assert "### 1. 介绍本文的主要工作" in part and "### 4. 评分" in part
        assert len(re.findall(r"^- `.+` \(`.+`\)$", part, re.M)) == 5
        assert len(re.findall(r"^- (实用性|创新性|推荐度)：\d(\.5)?/5。 .+$", part, re.M)) == 3
        assert re.search(r"\[到 Huggingface 论文主页查看详情\]\(https://huggingface.co/papers/\d{4}\.\d{5}\)", part)

    second = run("run", "--feed", str(HF_FEED), "--date", "2023-09-22", "--out", str(out))
    assert "8 papers: 0 generated, 8 from cache, 0 failed" in second.stderr
    assert out.read_text(encoding="utf-8") == text


def test_stdout_output_and_json_format(tiny_registry):
    markdown = run("run", "--feed", str(HF_FEED), "--limit", "1", "--date", "2023-09-22")
    assert markdown.exit_code == 0 and markdown.stdout.startswith("# 【2023-09-22】")
    assert "Wrote" not in markdown.stdout  # progress and messages stay on stderr
    as_json = run("run", "--feed", str(HF_FEED), "--limit", "1", "--format", "json")
    data = json.loads(as_json.stdout)
    assert data["papers"][0]["arxiv_id"] == "2309.12307" and data["papers"][0]["review"]["keywords"]


def test_cache_dir_option_and_no_cache(tiny_registry, tmp_path):
    run("run", "--feed", str(HF_FEED), "--limit", "1", "--cache-dir", str(tmp_path / "mine"))
    assert (tmp_path / "mine" / "cache.db").is_file()
    again = run("run", "--feed", str(HF_FEED), "--limit", "1", "--no-cache", "--cache-dir", str(tmp_path / "mine"))
    assert "1 generated, 0 from cache" in again.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--feed", "missing.json"], "Error: missing.json: no such file (check the path given to --feed)"),
        (["--feed", str(HF_FEED), "--model", "gpt-5"], "Error: unknown model 'gpt-5'"),
        (["--feed", str(HF_FEED), "--prompt", "nope"], "Error: prompt 'nope' not found"),
        (["--feed", str(HF_FEED), "--date", "22/09/2023"], "Error: --date '22/09/2023' is not a date"),
    ],
)
def test_errors_are_one_line_without_traceback(tiny_registry, args, message):
    result = run("run", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and "localdigest, version" in result.stdout


def test_an_unwritable_out_fails_before_any_review(tiny_registry, tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    for out, problem in ((tmp_path / "notes.txt" / "digest.md", "Not a directory"), (tmp_path, "it is a folder")):
        result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--date", "2023-09-22", "--out", str(out)])
        assert result.exit_code == 1 and problem in result.stderr and "papers:" not in result.stderr, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.toml", "notes.txt"]  # no temp files left

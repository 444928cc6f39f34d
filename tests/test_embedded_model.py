"""The real embedded default model on real abstracts (minutes on a 2-core CPU)."""

import json
import re

import pytest
from click.testing import CliRunner

from conftest import BENCH_DATA
from localdigest.cli import main

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.slow
def test_embedded_default_model_writes_a_chinese_digest(tmp_path, no_network):
    papers = json.loads((BENCH_DATA / "papers" / "2023-09-22.json").read_text(encoding="utf-8"))[:2]
    feed = tmp_path / "two.json"
    feed.write_text(json.dumps([{"paper": {"id": p["arxiv_id"], "title": p["title"], "summary": p["abstract"],
                                           "authors": [{"name": a} for a in p["authors"]]}} for p in papers]))
    out = tmp_path / "digest.md"
    result = CliRunner().invoke(main, ["run", "--feed", str(feed), "--date", "2023-09-22", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "使用本地模型 gemma-3-270m" in text
    parts = text.split("\n## ")[1:]
    assert [p.splitlines()[0] for p in parts] == [p["title"] for p in papers]
    reviewed = [p for p in parts if "### 1. 介绍本文的主要工作" in p]
    assert reviewed, f"no paper was reviewed: {result.stderr}"
    for part in reviewed:
        main_work = part.split("### 1. 介绍本文的主要工作\n\n")[1].split("\n")[0]
        assert CJK.search(main_work), f"主要工作 has no Chinese: {main_work!r}"
        assert len(re.findall(r"^- `.+` \(`.+`\)$", part, re.M)) == 5
        assert len(re.findall(r"^- (实用性|创新性|推荐度)：\d(\.5)?/5。 .+$", part, re.M)) == 3
    rerun = CliRunner().invoke(main, ["run", "--feed", str(feed), "--date", "2023-09-22", "--out", str(out)])
    assert f"{len(reviewed)} from cache" in rerun.stderr  # a flagged paper is retried, a reviewed one never
    assert no_network == []  # assembling the packaged model and the whole run stayed offline

"""`localdigest site build/serve`: the saved digests as static pages and an Atom feed, checked with
feedparser, a real HTTP server and a real headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from conftest import HF_FEED, interruptible
from localdigest.cli import main
from localdigest.output.render import DigestInfo, render_json
from localdigest.review.pipeline import PaperResult
from localdigest.review.schema import Review
from localdigest.sources.papers import HF, Paper
from test_reviews import valid_dict

HOSTILE = "<script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror=\"document.title='pwned'\">"


def digest(date: str, *titles: str, failed: str | None = None) -> str:
    results = [PaperResult(Paper(f"2309.{10000 + i}", title, "An abstract.", upvotes=i, source=HF,
                                 code_url="https://github.com/o/r", stars=7),
                           Review.from_dict({**valid_dict(), "main_work": f"本文研究{title}的问题。"}))
               for i, title in enumerate(titles)]
    if failed:
        results.append(PaperResult(Paper("2309.19999", failed, "An abstract.", source=HF), None, error="the model failed"))
    return render_json(DigestInfo(date, "qwen", "default"), results)


def write_days(folder: Path, days: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for date, text in days.items():
        (folder / f"{date}.json").write_text(text, encoding="utf-8")
    return folder


def build(*args):
    return CliRunner().invoke(main, ["site", "build", *map(str, args)])


def test_index_day_pages_and_a_valid_atom_feed(tmp_path):
    newest = json.loads(digest("2023-09-22", "LongLoRA", "MetaMath", failed="Broken paper"))
    newest["overview"] = "今天先读 LongLoRA。"
    source = write_days(tmp_path / "digests", {"2023-09-21": digest("2023-09-21", "Older paper"),
                                               "2023-09-22": json.dumps(newest, ensure_ascii=False)})
    result = build(tmp_path / "site", "--from", source)
    assert result.exit_code == 0, result.stderr
    site = tmp_path / "site"
    assert sorted(p.name for p in site.iterdir()) == ["2023-09-21.html", "2023-09-22.html", "atom.xml", "index.html",
                                                       "style.css"]
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index.index('href="2023-09-22.html"') < index.index('href="2023-09-21.html"')  # newest first
    assert '<link rel="alternate" type="application/atom+xml"' in index
    day = (site / "2023-09-22.html").read_text(encoding="utf-8")
    for anchor, title in (("arxiv-2309.10000", "LongLoRA"), ("arxiv-2309.10001", "MetaMath"),
                          ("arxiv-2309.19999", "Broken paper")):
        assert f'<article id="{anchor}">' in day and title in day
    assert "本文研究LongLoRA的问题。" in day and "实用性" in day and 'style="width: 90%"' in day  # 4.5/5
    assert '<section class="overview"><h2>今日速览</h2><p>今天先读 LongLoRA。</p>' in day
    assert "⚠️ 本文速览生成失败：the model failed" in day and 'href="https://huggingface.co/papers/2309.19999"' in day
    assert 'href="https://github.com/o/r"' in day and "⭐ 7" in day and 'href="2023-09-21.html"' in day  # pager
    # Offline: nothing is loaded from another host.
    assert not re.search(r'(src|href)="(https?:)?//(?!arxiv\.org|huggingface\.co|github\.com)', index + day)

    feed = feedparser.parse((site / "atom.xml").read_bytes())
    assert feed.version == "atom10" and not feed.bozo
    assert [e.title for e in feed.entries] == ["【2023-09-22】Huggingface 每日论文速览", "【2023-09-21】Huggingface 每日论文速览"]
    assert len({e.id for e in feed.entries}) == 2 and all(e.updated_parsed for e in feed.entries)
    assert feed.entries[0].link == "2023-09-22.html" and "本文研究MetaMath的问题。" in feed.entries[0].content[0].value

    absolute = build(tmp_path / "abs", "--from", source, "--base-url", "https://intranet.example/digest")
    assert absolute.exit_code == 0
    feed = feedparser.parse((tmp_path / "abs" / "atom.xml").read_bytes())
    assert feed.entries[0].link == "https://intranet.example/digest/2023-09-22.html"
    assert build(tmp_path / "x", "--from", source, "--base-url", "javascript:alert(1)").exit_code == 1


def test_hostile_text_is_escaped_in_html_and_atom(tmp_path):
    text = digest("2023-09-22", HOSTILE)
    data = json.loads(text)
    data["papers"][0]["review"]["highlights"] = "亮点</p><script>alert(1)</script>。"
    data["papers"][0]["links"]["code"] = "javascript:alert(1)"
    source = write_days(tmp_path / "d", {"2023-09-22": json.dumps(data, ensure_ascii=False)})
    assert build(tmp_path / "site", "--from", source).exit_code == 0
    for name in ("index.html", "2023-09-22.html"):
        page = (tmp_path / "site" / name).read_text(encoding="utf-8")
        assert "<script" not in page and "<img" not in page and "javascript:" not in page
        assert "&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&lt;/script&gt;" in page
    feed = feedparser.parse((tmp_path / "site" / "atom.xml").read_bytes())
    assert not feed.bozo and HOSTILE in feed.entries[0].summary  # text in the feed, escaped in its XML


def test_rebuild_rewrites_only_what_changed_and_a_bad_file_changes_nothing(tmp_path):
    source = write_days(tmp_path / "d", {f"2023-09-{day}": digest(f"2023-09-{day}", f"Paper {day}")
                                         for day in (19, 20, 21)})
    site = tmp_path / "site"
    assert build(site, "--from", source).exit_code == 0
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in site.iterdir()}
    again = build(site, "--from", source)
    assert again.exit_code == 0 and "0 files written, 6 unchanged" in again.stderr
    write_days(source, {"2023-09-22": digest("2023-09-22", "Paper 22")})
    newer = build(site, "--from", source)
    assert newer.exit_code == 0 and "3 files written" not in newer.stderr
    changed = {p.name for p in site.iterdir() if before.get(p.name, (None,))[0] != p.stat().st_ino}
    # The new day, the day before it (its pager links forward now), the index and the feed.
    assert changed == {"2023-09-22.html", "2023-09-21.html", "index.html", "atom.xml"}
    assert not [p for p in site.iterdir() if p.name.startswith(".")]  # no temporary files left

    snapshot = {p.name: p.read_bytes() for p in site.iterdir()}
    broken = json.loads(digest("2023-09-23", "Bad"))
    broken["papers"][0]["review"]["scores"]["innovation"]["score"] = 7
    write_days(source, {"2023-09-23": json.dumps(broken)})
    bad = build(site, "--from", source)
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1
    assert "2023-09-23.json: papers[0].review: scores.innovation.score: 7 is not one of" in bad.stderr
    assert {p.name: p.read_bytes() for p in site.iterdir()} == snapshot  # nothing half-built

    (source / "2023-09-23.json").write_text("{not json", encoding="utf-8")
    assert "2023-09-23.json: not a localdigest JSON digest" in build(site, "--from", source).stderr
    (source / "2023-09-23.json").write_text(json.dumps({**broken, "date": "../../etc"}), encoding="utf-8")
    assert "date: '../../etc' is not YYYY-MM-DD" in build(site, "--from", source).stderr


def test_run_keeps_the_days_digest_and_site_build_publishes_it(tiny_registry, tmp_path):
    for date in ("2023-09-21", "2023-09-22"):
        result = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--limit", "2", "--date", date,
                                           "--out", str(tmp_path / f"{date}.md")])
        assert result.exit_code == 0, result.stderr
    trial = CliRunner().invoke(main, ["run", "--feed", str(HF_FEED), "--limit", "1", "--date", "2023-09-20",
                                      "--no-archive", "--out", str(tmp_path / "trial.md")])
    assert trial.exit_code == 0
    saved = Path(os.environ["LOCALDIGEST_DATA_DIR"]) / "digests"
    assert sorted(p.name for p in saved.iterdir()) == ["2023-09-21.json", "2023-09-22.json"]
    result = build(tmp_path / "site")  # from the saved digests
    assert result.exit_code == 0, result.stderr
    day = (tmp_path / "site" / "2023-09-22.html").read_text(encoding="utf-8")
    markdown = (tmp_path / "2023-09-22.md").read_text(encoding="utf-8")
    titles = re.findall(r"^## (.+)$", markdown, re.M)
    assert len(titles) == 2 and all(f'<article id="arxiv-' in day for _ in titles)
    assert day.count("<article ") == 2

    empty = CliRunner().invoke(main, ["site", "build", str(tmp_path / "s2"), "--from", str(tmp_path / "nothing")])
    assert empty.exit_code == 2  # --from must exist (click)
    (tmp_path / "none").mkdir()
    none = CliRunner().invoke(main, ["site", "build", str(tmp_path / "s2"), "--from", str(tmp_path / "none")])
    assert none.exit_code == 1 and "no digest files" in none.stderr


def browser() -> str | None:
    return next((found for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = browser()
    if binary is None:
        pytest.skip("no Chromium here: install Debian's chromium-headless-shell (.ci/run does)")
    # --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start.
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def served_site(tmp_path):
    source = write_days(tmp_path / "d", {"2023-09-21": digest("2023-09-21", "Older paper"),
                                         "2023-09-22": digest("2023-09-22", "LongLoRA", HOSTILE, "MetaMath")})
    assert build(tmp_path / "site", "--from", source).exit_code == 0
    process = subprocess.Popen([sys.executable, "-m", "localdigest", "site", "serve", str(tmp_path / "site"),
                                "--port", "0"], stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        line = process.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        yield url.group(0), tmp_path
    finally:
        process.send_signal(2)
        process.wait(timeout=10)


def test_pages_in_a_real_browser(served_site):
    url, tmp_path = served_site
    index = chromium("--dump-dom", url + "index.html").stdout
    assert index.index("【2023-09-22】") < index.index("【2023-09-21】")
    assert re.search(r'<link rel="alternate" type="application/atom\+xml"[^>]* href="atom.xml"', index)
    with urllib.request.urlopen(url + "atom.xml", timeout=10) as answer:  # the discovered link, served
        assert feedparser.parse(answer.read()).version == "atom10"

    day = chromium("--dump-dom", url + "2023-09-22.html").stdout
    assert day.count("<article ") == 3 and "LongLoRA" in day and "MetaMath" in day
    # The hostile title is text: its script did not run (the body has no data-pwned), no <img> was made.
    assert "data-pwned=\"1\"" not in day and "<img" not in day and "<title>【2023-09-22】" in day
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;" in day

    shot = tmp_path / "day.png"
    chromium(f"--screenshot={shot}", "--window-size=412,900", "--hide-scrollbars", url + "2023-09-22.html")
    from PIL import Image

    image = Image.open(shot).convert("L")
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert image.size == (412, 900) and len(colours) > 20  # text drawn, not a blank page


def test_a_day_page_tells_the_reader_in_chinese_and_leaves_out_a_repeated_highlights(tmp_path):
    """As the Markdown digest: the checks' notes, not the log's English, and no 亮点 that only says
    主要工作 again; a digest saved before the notes existed shows its flags as they were."""
    from localdigest.output.render import HIGHLIGHTS_OMITTED
    from localdigest.review.checks import problems
    from localdigest.review.pipeline import flagged

    work = "本文提出 LongLoRA，把 LLaMA2 7B 的上下文扩展到 100k，并在多个长文本任务上验证了它的效果和效率。"
    review = Review.from_dict({**valid_dict(), "main_work": work, "highlights": work})
    found = problems(review, [], "LongLoRA\nWe extend LLaMA2 7B to 100k context.")
    result = PaperResult(Paper("2309.12307", "LongLoRA", "An abstract.", source=HF), review, **flagged(found))
    assert result.notes and result.flags != result.notes
    saved = json.loads(render_json(DigestInfo("2023-09-22", "qwen", "default"), [result]))
    old = json.loads(json.dumps(saved))
    del old["papers"][0]["notes"]
    old["date"] = "2023-09-21"
    source = write_days(tmp_path / "digests", {"2023-09-22": json.dumps(saved, ensure_ascii=False),
                                               "2023-09-21": json.dumps(old, ensure_ascii=False)})
    assert build(tmp_path / "site", "--from", source).exit_code == 0
    day = (tmp_path / "site" / "2023-09-22.html").read_text(encoding="utf-8")
    assert f"<p>{HIGHLIGHTS_OMITTED}</p>" in day and day.count(work) == 1
    # Said once, in 亮点's place; the other notes on the ⚠️ line
    assert result.notes == ("主要工作偏短（60 字）", "亮点只是重复了主要工作，已从略")
    assert "⚠️ 自动检查提示：主要工作偏短（60 字）</p>" in day and "highlights repeat" not in day
    older = (tmp_path / "site" / "2023-09-21.html").read_text(encoding="utf-8")
    assert "⚠️ 自动检查提示：" + "；".join(result.flags) in older

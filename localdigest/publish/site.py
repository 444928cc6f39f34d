"""A static site of the saved digests: an index, one page per day, one CSS file and an Atom feed.

Every page is rendered in memory first, so a bad digest file or a template error writes nothing;
then only files whose bytes changed are replaced, each atomically, the day pages before the index
and the feed that link to them. A reader (or a web server) therefore never sees a half-written
page or a link to a page that is not there yet, and a rebuild after one new day rewrites that
day, its neighbour (the pager) and the index and feed, nothing else.

Text from feeds and models is escaped by Jinja2's autoescape (HTML) and ElementTree (Atom).
"""

import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from localdigest import __version__
from localdigest.atomic import replace_file
from localdigest.output.archive import SavedDigest, SavedPaper
from localdigest.output.render import reader_notes, shown_highlights
from localdigest.review.schema import SCORE_DIMENSIONS

TEMPLATES = Path(__file__).with_name("templates")
ATOM = "http://www.w3.org/2005/Atom"
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
DEFAULT_TITLE = "每日论文速览"
FEED_DAYS = 30  # entries in atom.xml: a reader subscribes for what is new
TOP_ON_INDEX = 3


@dataclass(frozen=True)
class BuildResult:
    written: list[str]  # files replaced (new or changed), relative to the site folder
    unchanged: int
    days: int


def render_site(digests: list[SavedDigest], title: str = DEFAULT_TITLE, base_url: str | None = None) -> dict[str, bytes]:
    """Every file of the site, by its name in the site folder; `digests` newest first."""
    env = _environment()
    days = [_day(d) for d in digests]
    common = {"site_title": title, "version": __version__}
    files: dict[str, bytes] = {"style.css": (TEMPLATES / "style.css").read_bytes()}
    for i, day in enumerate(days):
        newer = days[i - 1].date if i > 0 else None
        older = days[i + 1].date if i + 1 < len(days) else None
        files[f"{day.date}.html"] = env.get_template("day.html").render(
            day=day, newer=newer, older=older, **common).encode("utf-8")
    files["index.html"] = env.get_template("index.html").render(days=days, **common).encode("utf-8")
    files["atom.xml"] = _atom(days[:FEED_DAYS], title, base_url, env)
    return files


def write_site(files: dict[str, bytes], out_dir: Path) -> BuildResult:
    """Replace what changed; pages first, then the index and the feed that point at them."""
    order = sorted(files, key=lambda name: (name in ("index.html", "atom.xml"), name))
    written, unchanged = [], 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in order:
        path = out_dir / name
        if path.is_file() and path.read_bytes() == files[name]:
            unchanged += 1
            continue
        replace_file(path, files[name])
        written.append(name)
    return BuildResult(written=written, unchanged=unchanged, days=sum(n.endswith(".html") for n in files) - 1)


@dataclass(frozen=True)
class _Paper:
    """A saved paper as the templates show it."""

    anchor: str
    title: str
    review: object
    scores: list
    highlights: str  # as the Markdown digest shows it (output.render.shown_highlights)
    notes: str  # what the checks found, as the reader is told it ("" for none)
    error: str | None
    link_list: list[tuple[str, str]]
    stars: int | None
    upvotes: int | None
    comments: int | None
    first_seen: str | None
    relevance: float | None


@dataclass(frozen=True)
class _Day:
    date: str
    saved: str
    heading: str
    model: str
    prompt: str
    total: int
    arranged: str | None
    papers: list[_Paper]
    top: list[_Paper]
    overview: str | None


def _day(digest: SavedDigest) -> _Day:
    papers = [_paper(p) for p in digest.papers]
    hf = bool(digest.papers) and all(p.source == "hf" for p in digest.papers)
    heading = "Huggingface 每日论文速览" if hf else "每日论文速览"
    ranked = sorted((p for p in papers if p.review), key=lambda p: -p.review.recommendation.score)
    return _Day(date=digest.date, saved=digest.saved, heading=heading, model=digest.model, prompt=digest.prompt,
                total=digest.total, arranged=digest.arranged, papers=papers, top=ranked[:TOP_ON_INDEX],
                overview=digest.overview)


def _paper(paper: SavedPaper) -> _Paper:
    labels = {"huggingface": "Huggingface 论文主页", "arxiv": "arXiv", "pdf": "PDF", "code": "代码"}
    links = [(label, paper.links[key]) for key, label in labels.items() if key in paper.links]
    scores = [(label, getattr(paper.review, name)) for name, label in SCORE_DIMENSIONS.items()] if paper.review else []
    return _Paper(anchor=anchor(paper.arxiv_id), title=paper.title, review=paper.review, scores=scores,
                  highlights=shown_highlights(paper.review) if paper.review else "",
                  notes=reader_notes(paper.notes, paper.flags), error=paper.error, link_list=links,
                  stars=paper.stars, upvotes=paper.upvotes, comments=paper.comments, first_seen=paper.first_seen,
                  relevance=paper.relevance)


def anchor(arxiv_id: str) -> str:
    """The per-paper anchor on a day page: stable, and a valid HTML id for any arXiv id."""
    return "arxiv-" + arxiv_id.replace("/", "-")


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["score"] = lambda value: f"{value:g}"
    return env


def _atom(days: list[_Day], title: str, base_url: str | None, env) -> bytes:
    """Atom 1.0, one entry per day; links relative to the feed (xml:base) unless base_url is given."""
    ET.register_namespace("", ATOM)

    def add(parent, tag, text=None, **attributes):
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
        if text is not None:
            element.text = NOT_XML.sub("", text)  # ElementTree would write them, and no reader parses them
        return element

    feed = ET.Element(f"{{{ATOM}}}feed")
    if base_url:
        feed.set("{http://www.w3.org/XML/1998/namespace}base", base_url.rstrip("/") + "/")
    add(feed, "id", "tag:localdigest,2023:" + _tag_name(title))
    add(feed, "title", title)
    add(feed, "updated", max((d.saved for d in days), default="1970-01-01T00:00:00+00:00"))
    add(feed, "link", rel="self", href="atom.xml")
    add(feed, "link", rel="alternate", type="text/html", href="index.html")
    add(feed, "generator", "localdigest", version=__version__)
    add(add(feed, "author"), "name", "localdigest")
    summary = env.from_string(
        "{% if day.overview %}<p>{{ day.overview }}</p>{% endif %}<ol>{% for p in day.papers %}<li><a href=\"{{ day.date }}.html#{{ p.anchor }}\">{{ p.title }}</a>"
        "{% if p.review %}：{{ p.review.main_work }}{% endif %}</li>{% endfor %}</ol>")
    for day in days:
        entry = add(feed, "entry")
        add(entry, "id", f"tag:localdigest,2023:{_tag_name(title)}:{day.date}")
        add(entry, "title", f"【{day.date}】{day.heading}")
        add(entry, "updated", day.saved)
        add(entry, "link", rel="alternate", type="text/html", href=f"{day.date}.html")
        add(entry, "summary", f"共 {day.total} 篇论文：" + "；".join(p.title for p in day.papers[:5]))
        add(entry, "content", summary.render(day=day), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _tag_name(title: str) -> str:
    """The feed's id part from its title: a lab that builds two sites with two titles gets two feeds."""
    return hashlib.sha256(title.encode("utf-8")).hexdigest()[:12]


def serve(directory: Path, host: str, port: int, on_ready=None) -> None:
    """Serve the site folder over HTTP until interrupted (Python's http.server: for a quick look)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
    with ThreadingHTTPServer((host, port), handler) as server:
        if on_ready:
            on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{server.server_address[1]}/")
        server.serve_forever()

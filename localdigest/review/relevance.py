"""A reader's interests: the profile, and relevance ranking with a sentence-embedding model.

The profile is a few sentences of what the reader works on plus `include` / `exclude` keyword
lists (a TOML file written once, or options per run); the keyword filters run when the feeds are
read (sources.keywords), before any model work. `boost` words raise a paper's relevance.

Relevance is the cosine similarity between the embedding of the reader's interests and that of the
paper's title and abstract opening (all-MiniLM-L6-v2 through llama.cpp, llm.embedding), plus BOOST
for each boost word the paper has. On the labelled profiles (benchmarks/relevance.py) it ranks better
than asking the 1.5B reviewer "is this paper's main subject one of these topics?" (which said Yes
to nearly everything, 0.5-0.9) and costs ~1% of it per paper, not ~8% of a review. A paper's
embedding does not depend on the reader: it is cached per paper x embedding model, so new
interests re-rank a cached day at once.
"""

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from localdigest.errors import LocaldigestError, option
from localdigest.review.cache import ReviewCache
from localdigest.sources.keywords import matches
from localdigest.sources.papers import Paper

RELEVANCE_VERSION = 2  # in the cache key: bump when what is embedded changes
ABSTRACT_CHARS = 600  # the opening of an abstract says its topic (and ranked better than all of it)
# Each boost word found adds this to the similarity (0.1-0.7 for these papers). On the labelled profiles
# 0.05-0.15 all beat both baselines on every profile; 0.3 lets keywords override the embedding.
BOOST = 0.1


@dataclass(frozen=True)
class Profile:
    interests: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    boost: tuple[str, ...] = ()  # words that raise a paper's relevance, never drop it

    def with_overrides(self, interests: str | None, include: tuple[str, ...], exclude: tuple[str, ...]) -> "Profile":
        return Profile(interests if interests is not None else self.interests,
                       self.include + tuple(include), self.exclude + tuple(exclude), self.boost)


def load_profile(path: Path) -> Profile:
    """A profile file: `interests = "..."`, `include`, `exclude`, `boost` = [...], all optional."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocaldigestError(f"cannot read the profile {path}: {exc.strerror}", f"check {option('profile')}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LocaldigestError(f"{path}: not valid TOML: {exc}", "fix the syntax at the position shown") from None
    unknown = set(data) - {"interests", "include", "exclude", "boost"}
    if unknown:
        raise LocaldigestError(f"{path}: unknown key(s) {sorted(unknown)}", "use interests, include, exclude and boost")
    interests = data.get("interests", "")
    if not isinstance(interests, str):
        raise LocaldigestError(f"{path}: interests must be text", 'write it as interests = "what you work on"')
    lists = {}
    for key in ("include", "exclude", "boost"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise LocaldigestError(f"{path}: {key} must be a list of words", f'write it as {key} = ["speech", "audio"]')
        lists[key] = tuple(value)
    return Profile(interests, lists["include"], lists["exclude"], lists["boost"])


def relevance(embedder, papers: list[Paper], interests: str, cache: ReviewCache | None,
              on_paper=None, boost: tuple[str, ...] = ()) -> dict[str, float]:
    """arXiv id -> relevance to `interests`, 0-1: the cosine similarity of their embeddings (below 0
    counts as 0), raised by BOOST for each of the `boost` words the paper has."""
    wanted = embedder.embed(interests.strip())
    identity = embedder.identity()  # once: it reads the model file's head and tail
    scores = {}
    for paper in papers:
        similarity = sum(a * b for a, b in zip(wanted, _paper_vector(embedder, identity, paper, cache)))
        scores[paper.arxiv_id] = min(1.0, max(0.0, similarity + BOOST * len(matches(paper, boost))))
        if on_paper:
            on_paper(paper)
    return scores


def _paper_vector(embedder, identity: str, paper: Paper, cache: ReviewCache | None) -> list[float]:
    key = _key(identity, paper)
    cached = cache.get_text(key) if cache is not None else None
    vector = _vector(cached) if cached is not None else None
    if vector is None:
        # rounded as the cache keeps it, so a cached run ranks exactly as the first
        vector = [round(v, 6) for v in embedder.embed(f"{paper.title}. {paper.abstract[:ABSTRACT_CHARS]}")]
        if cache is not None:
            cache.put_text(key, json.dumps(vector), model=embedder.spec.name)
    return vector


def top(papers: list[Paper], scores: dict[str, float], count: int | None) -> list[Paper]:
    """The `count` most relevant papers, most relevant first (all of them without a count)."""
    ranked = sorted(papers, key=lambda p: -scores.get(p.arxiv_id, 0.0))  # stable: feed order breaks ties
    return ranked[:count] if count else ranked


def _key(identity: str, paper: Paper) -> str:
    material = {"relevance": RELEVANCE_VERSION, "paper": paper.content_key(), "model": identity,
                "abstract_chars": ABSTRACT_CHARS}
    return "relevance:" + hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _vector(text: str) -> list[float] | None:
    """A cached embedding, or None if the entry is not a list of finite numbers (a shared cache is data)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v) for v in value):
        return [float(v) for v in value]
    return None

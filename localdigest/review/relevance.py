"""A reader's interests: the profile, and relevance ranking with the local model.

The profile is a few sentences of what the reader works on plus `include` / `exclude` keyword
lists (a TOML file written once, or options per run); the keyword filters run when the feeds are
read (sources.keywords), before any model work.

Relevance is what the model says to one question, read without sampling: the probability of "Yes"
against "No" as its first answer token to "is this paper relevant to these interests?". The
profile comes first in the prompt, so llama.cpp evaluates it once for the whole list; a paper
costs the evaluation of its title and abstract (prompt speed), no generation: a small share of a
review (benchmarks/relevance.py measures both). Scores are cached per paper x profile x model.
"""

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from localdigest.errors import LocaldigestError, ModelError, option
from localdigest.review.cache import ReviewCache
from localdigest.sources.papers import Paper

RELEVANCE_VERSION = 1  # in the cache key: bump when the question below changes
ABSTRACT_CHARS = 1500  # enough to judge a topic; keeps a long abstract's cost bounded
SYSTEM = ("You help a researcher decide which of today's papers to read. Answer with one word: "
          "Yes or No.")
QUESTION = ("The researcher's interests:\n{interests}\n\nPaper title: {title}\nAbstract: {abstract}\n\n"
            "Is this paper relevant to the researcher's interests? Answer Yes or No.")


@dataclass(frozen=True)
class Profile:
    interests: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    source: str = ""  # where it came from, for messages

    def with_overrides(self, interests: str | None, include: tuple[str, ...], exclude: tuple[str, ...]) -> "Profile":
        return Profile(interests if interests is not None else self.interests,
                       self.include + tuple(include), self.exclude + tuple(exclude), self.source)

    @property
    def empty(self) -> bool:
        return not (self.interests.strip() or self.include or self.exclude)


def load_profile(path: Path) -> Profile:
    """A profile file: `interests = "..."`, `include = [...]`, `exclude = [...]`, all optional."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocaldigestError(f"cannot read the profile {path}: {exc.strerror}", f"check {option('profile')}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LocaldigestError(f"{path}: not valid TOML: {exc}", "fix the syntax at the position shown") from None
    unknown = set(data) - {"interests", "include", "exclude"}
    if unknown:
        raise LocaldigestError(f"{path}: unknown key(s) {sorted(unknown)}", "use interests, include and exclude")
    interests = data.get("interests", "")
    if not isinstance(interests, str):
        raise LocaldigestError(f"{path}: interests must be text", 'write it as interests = "what you work on"')
    lists = {}
    for key in ("include", "exclude"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise LocaldigestError(f"{path}: {key} must be a list of words", f'write it as {key} = ["speech", "audio"]')
        lists[key] = tuple(value)
    return Profile(interests, lists["include"], lists["exclude"], str(path))


def relevance(model, papers: list[Paper], interests: str, cache: ReviewCache | None,
              on_paper=None) -> dict[str, float]:
    """arXiv id -> probability (0-1) that the model calls the paper relevant to `interests`."""
    if not hasattr(model, "option_logprobs"):
        raise ModelError("relevance ranking needs the local model (it reads the model's probabilities)",
                         f"drop {option('server')}, or rank without interests")
    scores = {}
    for paper in papers:
        key = _key(model, paper, interests)
        cached = cache.get_text(key) if cache is not None else None
        if cached is not None and _is_probability(cached):
            scores[paper.arxiv_id] = float(cached)
        else:
            messages = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": QUESTION.format(interests=interests.strip(), title=paper.title,
                                                                    abstract=paper.abstract[:ABSTRACT_CHARS])}]
            logprobs = model.option_logprobs(messages, ("Yes", "No"))
            yes, no = math.exp(logprobs["Yes"]), math.exp(logprobs["No"])
            scores[paper.arxiv_id] = yes / (yes + no) if yes + no > 0 else 0.0
            if cache is not None:
                cache.put_text(key, repr(scores[paper.arxiv_id]), model=model.describe())
        if on_paper:
            on_paper(paper)
    return scores


def top(papers: list[Paper], scores: dict[str, float], count: int | None) -> list[Paper]:
    """The `count` most relevant papers, most relevant first (all of them without a count)."""
    ranked = sorted(papers, key=lambda p: -scores.get(p.arxiv_id, 0.0))  # stable: feed order breaks ties
    return ranked[:count] if count else ranked


def _key(model, paper: Paper, interests: str) -> str:
    material = {"relevance": RELEVANCE_VERSION, "paper": paper.content_key(), "interests": interests.strip(),
                "model": model.identity(), "abstract_chars": ABSTRACT_CHARS}
    return "relevance:" + hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _is_probability(text: str) -> bool:
    try:
        return 0.0 <= float(text) <= 1.0
    except ValueError:
        return False

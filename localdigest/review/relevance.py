"""A reader's interests: the profile, and relevance ranking with the local model.

The profile is a few sentences of what the reader works on plus `include` / `exclude` keyword
lists (a TOML file written once, or options per run); the keyword filters run when the feeds are
read (sources.keywords), before any model work. `boost` words raise a paper's relevance.

Relevance is what the model says to one question, read without sampling: the probability of "Yes"
against "No" as its first answer token to "is this paper's main subject one of these topics?"
(asked as "is it relevant?", the 1.5B model said Yes to nearly every paper, 0.87-0.94). The
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
from localdigest.sources.keywords import matches
from localdigest.sources.papers import Paper

RELEVANCE_VERSION = 1  # in the cache key: bump when the question below changes
ABSTRACT_CHARS = 600  # the opening of an abstract says its topic; a paper costs ~150 tokens, not ~350
SYSTEM = ("You filter today's papers for a researcher. Most papers are NOT about the researcher's topics. "
          "Answer Yes only if the paper's main subject is one of those topics; otherwise answer No. "
          "Answer with one word: Yes or No.")
QUESTION = ("The researcher's topics:\n{interests}\n\nPaper title: {title}\nAbstract: {abstract}\n\n"
            "Is this paper's main subject one of the researcher's topics? Answer Yes or No.")


BOOST = 0.5  # each boost word found halves the chance the paper is not relevant (see boosted())


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


def relevance(model, papers: list[Paper], interests: str, cache: ReviewCache | None,
              on_paper=None, boost: tuple[str, ...] = ()) -> dict[str, float]:
    """arXiv id -> probability (0-1) that the model calls the paper relevant to `interests`, raised
    for each of the `boost` words the paper has (boosted())."""
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
    return {p.arxiv_id: boosted(scores[p.arxiv_id], len(matches(p, boost))) for p in papers} if boost else scores


def boosted(probability: float, found: int) -> float:
    """Measured on the labelled profiles (benchmarks/relevance.py): the model alone ranks too many
    papers high, keywords alone miss papers that use other words; each boost word found halving the
    model's "not relevant" matched or beat both in precision@5 on all three profiles, and in NDCG@10
    on two (the factor was chosen on those same labels: 0.3-0.5 give the same rankings there)."""
    return 1 - (1 - probability) * BOOST ** found


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

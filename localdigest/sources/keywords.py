"""Keyword filters on papers (a reader's include / exclude lists), applied when the feeds are read.

Keywords are matched on title and abstract without case and hyphens: "fine-tuning" matches
"Fine tuning" and "finetuning"; "ASR" matches the word ASR, not "laser".
"""

import re

from localdigest.sources.papers import Paper


def normalise(text: str) -> str:
    """Lower case, hyphens and underscores as spaces, one space between words."""
    return " ".join(re.sub(r"[-_‐‑–]", " ", text.casefold()).split())


def matches(paper: Paper, words: tuple[str, ...]) -> list[str]:
    """The keywords found in the paper's title or abstract."""
    text = normalise(f"{paper.title} {paper.abstract}")
    joined = text.replace(" ", "")
    found = []
    for word in words:
        key = normalise(word)
        if key and (re.search(rf"(?<!\w){re.escape(key)}(?!\w)", text) or (" " in key and key.replace(" ", "") in joined)
                    or (" " not in key and len(key) > 5 and key in joined)):
            found.append(word)
    return found


def keep(papers: list[Paper], include: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[list[Paper], int, int]:
    """(papers kept, dropped by exclude, dropped for matching no include keyword)."""
    kept, excluded, not_included = [], 0, 0
    for paper in papers:
        if exclude and matches(paper, exclude):
            excluded += 1
        elif include and not matches(paper, include):
            not_included += 1
        else:
            kept.append(paper)
    return kept, excluded, not_included

"""Text measures shared by the review checks and the local model's sampler.

Both must read a copied run the same way: the sampler turns a token away where the check would
flag the finished answer, and nowhere else, so an answer without such a run is the one it would
have been without the rule, token for token (the check reads the answer after its repairs, which
seldom touch ten characters in a row).
"""

import re
import unicodedata

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def compact(text: str) -> str:
    """The text as it is compared: without case, width or spaces ("Large  Language" and "large
    language" are one text)."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def compact_origins(text: str) -> list[int] | None:
    """For each character of compact(text), the index in `text` it comes from, so a piece found in
    the compared text can be quoted as written; None where compacting one character at a time does
    not give compact(text) (a composition across characters)."""
    origins = [i for i, char in enumerate(text)
               for folded in unicodedata.normalize("NFKC", char).casefold() if not folded.isspace()]
    return origins if len(origins) == len(compact(text)) else None


def weights(text: str) -> list[float]:
    """Each character's weight in a run (copied_run): a CJK character 1, any other ½."""
    return [1.0 if CJK.match(char) else 0.5 for char in text]


def weight(text: str) -> float:
    """A text's weight as copied_run weighs a run."""
    return sum(weights(text))


def copied_run(text: str, pool: str, allowed: str, run: float, past: int = 0) -> str | None:
    """The first run of `text` (compacted) with `run` weight that `pool` has and `allowed` has not,
    among those that end after its first `past` characters; a CJK character weighs 1 and any other
    ½ (ten Chinese characters, or twenty letters: a name or a term is longer in Latin letters than
    in Chinese). A run is the shortest that reaches the weight from its first character, so a run's
    text depends only on where it begins: the runs of a text that has grown are its old runs and
    those that end in what it grew by (`past`: the old length)."""
    start = max(0, past - int(2 * run))  # a run is at most 2 * run characters: earlier ones end in the old text
    each = weights(text[start:])  # weighed from there only: the sampler's hot path
    end, total = start, 0.0
    for begin in range(start, len(text)):
        while end < len(text) and total < run:
            total += each[end - start]
            end += 1
        if total < run:
            return None
        found = text[begin:end]
        if end > past and found in pool and found not in allowed:
            return found
        total -= each[begin - start]
    return None

"""Semantic checks on a schema-valid review: answers a small model produces that say nothing.

Each check returns a reason; the reviewer retries with another seed and then flags the paper
rather than printing such a review as if it were one.
"""

from localdigest.review.schema import Review

MIN_DISTINCT_NGRAMS = 0.5  # below this share of distinct 4-character sequences, a text is a loop


def problems(review: Review, example_texts: set[str]) -> list[str]:
    found = []
    for name in ("main_work", "highlights"):
        text = getattr(review, name)
        if text in example_texts:
            found.append(f"{name} copies the prompt's worked example")
        elif is_loop(text):
            found.append(f"{name} repeats itself")
    if len({k.en.casefold() for k in review.keywords}) == 1:
        found.append("all five keywords are the same")
    if all(score.score == 0 for score in review.scores().values()):
        found.append("every score is 0")
    if any(is_loop(score.reason) for score in review.scores().values()):
        found.append("a score reason repeats itself")
    return found


def is_loop(text: str, n: int = 4) -> bool:
    compact = "".join(text.split())
    if len(compact) < 40:
        return False
    grams = [compact[i:i + n] for i in range(len(compact) - n + 1)]
    return len(set(grams)) / len(grams) < MIN_DISTINCT_NGRAMS

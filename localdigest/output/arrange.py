"""Which reviewed papers a digest shows, and in what order: --sort and --min-score, applied
after the reviews (so a cached review is never regenerated because the cut changed)."""

from dataclasses import dataclass

from localdigest.review.pipeline import PaperResult

ORDERS = ("feed", "upvotes", "relevance", "score")


@dataclass(frozen=True)
class Arranged:
    results: list[PaperResult]
    dropped: int  # papers below min_score
    note: str | None  # for the digest's count line, in its language: what was sorted or cut


def arrange(results: list[PaperResult], sort: str = "feed", min_score: float | None = None,
            relevance: dict[str, float] | None = None) -> Arranged:
    """Papers reviewed below `min_score` (推荐度) are dropped; a paper without a review is kept (its
    score is unknown, and the reader should see it failed). `sort`: feed order (already by upvotes
    for Hugging Face), upvotes, relevance to the reader's interests (review.relevance), or 推荐度 then
    实用性+创新性; unknown values sort last, ties keep feed order."""
    if sort not in ORDERS:
        raise ValueError(f"unknown order {sort!r}")
    kept = [r for r in results if min_score is None or r.review is None or r.review.recommendation.score >= min_score]
    if sort == "upvotes":
        kept.sort(key=lambda r: -(r.paper.upvotes if r.paper.upvotes is not None else -1))
    elif sort == "relevance":
        kept.sort(key=lambda r: -(relevance or {}).get(r.paper.arxiv_id, -1.0))
    elif sort == "score":
        kept.sort(key=_score_key)
    parts = []
    if sort != "feed":
        parts.append({"upvotes": "按点赞数排序", "relevance": "按与读者兴趣的相关度排序", "score": "按推荐度排序"}[sort])
    dropped = len(results) - len(kept)
    if min_score is not None:
        parts.append(f"只保留推荐度 ≥ {min_score:g} 的论文，略去 {dropped} 篇")
    return Arranged(kept, dropped, "，".join(parts) or None)


def _score_key(result: PaperResult) -> tuple[float, float]:
    if result.review is None:
        return (1.0, 0.0)
    review = result.review
    return (-review.recommendation.score, -(review.practicality.score + review.innovation.score))

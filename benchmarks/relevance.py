"""Relevance ranking against the labelled reader profiles in benchmarks/data/relevance.toml.

    python benchmarks/relevance.py                 # the default model
    python benchmarks/relevance.py --model qwen2.5-coder-0.5b

For each profile it ranks the 26 papers of 2023-09-20..22 three ways and prints precision@5 (a
paper of grade 1 or 2 counts) and NDCG@10 (gains 2^grade - 1):
  keywords   how many of the profile's keywords the title and abstract have (ties: HF order)
  hf-order   Hugging Face's own order of each day (by upvotes on the day page; the saved feeds
             carry no counts), rank 1 of every day first, then rank 2, …
  model      the local model alone: P(Yes) / (P(Yes) + P(No)), no sampling
  model+boost  localdigest's relevance with the profile's keywords as `boost` words
and the model's cost per paper against the review cost per paper that `localdigest bench`
measured on the same machine (benchmarks/results/results.json), in the same units. Writes
benchmarks/results/relevance.json.
"""

import argparse
import json
import math
import statistics
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.relevance import boosted, relevance  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402
from localdigest.sources.keywords import matches  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
DAYS = ("2023-09-20", "2023-09-21", "2023-09-22")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--labels", type=Path, default=DATA / "relevance.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "relevance.json")
    parser.add_argument("--review-seconds", type=float, default=None,
                        help="review cost per paper to compare with (default: from results/results.json)")
    args = parser.parse_args()

    profiles = tomllib.loads(args.labels.read_text(encoding="utf-8"))["profiles"]
    by_day = [load_feeds([str(DATA / "papers" / f"{day}.json")]).papers for day in DAYS]
    papers = [p for day in by_day for p in day]
    hf_rank = {p.arxiv_id: (rank, d) for d, day in enumerate(by_day) for rank, p in enumerate(day)}
    model = open_model(load_registry().get(args.model))
    model.option_logprobs([{"role": "user", "content": "Hi"}], ("Yes", "No"))  # load outside the timing

    report = {"model": model.describe(), "papers": len(papers), "profiles": {}}
    seconds = []
    for name, profile in profiles.items():
        grades = {arxiv_id: label["grade"] for arxiv_id, label in profile.get("labels", {}).items()}
        started = time.perf_counter()
        scores = relevance(model, papers, profile["interests"], cache=None)
        seconds.append((time.perf_counter() - started) / len(papers))
        rankings = {
            "keywords": sorted(papers, key=lambda p: (-len(matches(p, tuple(profile["keywords"]))), hf_rank[p.arxiv_id])),
            "hf-order": sorted(papers, key=lambda p: hf_rank[p.arxiv_id]),
            "model": sorted(papers, key=lambda p: -scores[p.arxiv_id]),
            "model+boost": sorted(papers, key=lambda p: -boosted(scores[p.arxiv_id],
                                                                 len(matches(p, tuple(profile["keywords"]))))),
        }
        report["profiles"][name] = {
            method: {"precision_at_5": precision_at(ranked, grades, 5), "ndcg_at_10": ndcg_at(ranked, grades, 10),
                     "top_5": [p.arxiv_id for p in ranked[:5]]}
            for method, ranked in rankings.items()}
        report["profiles"][name]["model"]["scores"] = {p.arxiv_id: round(scores[p.arxiv_id], 4) for p in papers}
    review_seconds = args.review_seconds or _review_seconds()
    report["seconds_per_paper"] = statistics.mean(seconds)
    report["review_seconds_per_paper"] = review_seconds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"model {report['model']}, {len(papers)} papers, {len(profiles)} profiles")
    print(f"{'profile':15} {'method':11} {'P@5':>5} {'NDCG@10':>8}")
    for name, methods in report["profiles"].items():
        for method, result in methods.items():
            print(f"{name:15} {method:11} {result['precision_at_5']:5.2f} {result['ndcg_at_10']:8.3f}")
    cost = f"relevance {report['seconds_per_paper']:.2f} s per paper"
    if review_seconds:
        cost += f", a review {review_seconds:.1f} s: {report['seconds_per_paper'] / review_seconds:.1%} of it"
    print(cost)


def precision_at(ranked, grades, k: int) -> float:
    return sum(grades.get(p.arxiv_id, 0) > 0 for p in ranked[:k]) / k


def ndcg_at(ranked, grades, k: int) -> float:
    def dcg(values):
        return sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(values[:k]))

    ideal = dcg(sorted(grades.values(), reverse=True))
    return dcg([grades.get(p.arxiv_id, 0) for p in ranked]) / ideal if ideal else 0.0


def _review_seconds() -> float | None:
    results = ROOT / "benchmarks" / "results" / "results.json"
    try:
        rows = json.loads(results.read_text(encoding="utf-8"))["results"]
        return float(rows[0]["seconds_per_paper"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


if __name__ == "__main__":
    main()

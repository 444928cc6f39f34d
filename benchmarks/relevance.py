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
and the model's cost per paper against the cost of a review, measured in the same run on the same
model: the first --review-papers papers of 2023-09-22 reviewed from scratch with the default
prompt at the model's default batch size, as `localdigest run` would (wall seconds per paper). Writes
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

from localdigest.bench.runner import timed_reviews  # noqa: E402
from localdigest.llm.choose import open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
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
    parser.add_argument("--review-papers", type=int, default=4,
                        help="papers reviewed in this run to measure a review's cost (default 4)")
    parser.add_argument("--review-seconds", type=float, default=None,
                        help="a review's cost per paper, instead of measuring it (--review-papers is then unused)")
    args = parser.parse_args()

    profiles = tomllib.loads(args.labels.read_text(encoding="utf-8"))["profiles"]
    by_day = [load_feeds([str(DATA / "papers" / f"{day}.json")]).papers for day in DAYS]
    papers = [p for day in by_day for p in day]
    hf_rank = {p.arxiv_id: (rank, d) for d, day in enumerate(by_day) for rank, p in enumerate(day)}
    model = open_model(load_registry().get(args.model))  # the entry's batch size, as `localdigest run`
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
    review_seconds = args.review_seconds
    if review_seconds is None and args.review_papers > 0:
        print(f"reviewing {args.review_papers} papers to measure a review's cost", file=sys.stderr)
        timed = timed_reviews(model, load_prompt(), by_day[-1][:args.review_papers])
        review_seconds = timed["seconds"] / timed["papers"]
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


if __name__ == "__main__":
    main()

"""Relevance ranking against the labelled reader profiles in benchmarks/data/relevance.toml.

    python benchmarks/relevance.py                 # the default models
    python benchmarks/relevance.py --model qwen2.5-coder-0.5b --embedding-model minilm-l6

For each profile it ranks the 26 papers of 2023-09-20..22 six ways and prints precision@5 (a
paper of grade 1 or 2 counts) and NDCG@10 (gains 2^grade - 1):
  keywords         how many of the profile's keywords the title and abstract have (ties: HF order)
  hf-order         Hugging Face's own order of each day (by upvotes on the day page; the saved feeds
                   carry no counts), rank 1 of every day first, then rank 2, …
  llm              the reviewing model asked whether the paper's main subject is one of the reader's
                   topics: P(Yes) / (P(Yes) + P(No)), no sampling (what localdigest shipped before)
  llm+boost        the same, each profile keyword found halving its "not relevant"
  embedding        cosine similarity of the interests and the paper (the embedding model alone:
                   what `--interests` without boost words gets)
  embedding+boost  localdigest's relevance: the same plus BOOST per profile keyword found
then embedding+boost at other boost weights (how much the choice of BOOST matters), and the cost
per paper of both model methods against the cost of a review, measured in the same run on the
same model: the first --review-papers papers of 2023-09-22 reviewed from scratch with the default
prompt at the model's default batch size, as `localdigest run` would (wall seconds per paper).
Writes benchmarks/results/relevance.json.
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
from localdigest.llm.choose import open_embedding, open_model  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.review.relevance import ABSTRACT_CHARS, BOOST, relevance  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402
from localdigest.sources.keywords import matches  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
DAYS = ("2023-09-20", "2023-09-21", "2023-09-22")
SWEEP = (0.05, 0.15, 0.2, 0.3)  # other boost weights than BOOST
# The question localdigest asked the reviewing model before it ranked with embeddings.
SYSTEM = ("You filter today's papers for a researcher. Most papers are NOT about the researcher's topics. "
          "Answer Yes only if the paper's main subject is one of those topics; otherwise answer No. "
          "Answer with one word: Yes or No.")
QUESTION = ("The researcher's topics:\n{interests}\n\nPaper title: {title}\nAbstract: {abstract}\n\n"
            "Is this paper's main subject one of the researcher's topics? Answer Yes or No.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="the reviewing model (the llm methods, a review's cost)")
    parser.add_argument("--embedding-model", default=None, help="default: the registry's embedding model")
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
    registry = load_registry()
    model = open_model(registry.get(args.model))  # the entry's batch size, as `localdigest run`
    model.option_logprobs([{"role": "user", "content": "Hi"}], ("Yes", "No"))  # load outside the timing
    embedder = open_embedding(registry.get(args.embedding_model) if args.embedding_model
                              else registry.embedding_model())
    embedder.embed("warm-up")

    report = {"model": model.describe(), "embedding_model": embedder.spec.name, "papers": len(papers), "boost": BOOST,
              "profiles": {}}
    llm_seconds, embedding_seconds = [], []
    for name, profile in profiles.items():
        grades = {arxiv_id: label["grade"] for arxiv_id, label in profile.get("labels", {}).items()}
        words = tuple(profile["keywords"])
        found = {p.arxiv_id: len(matches(p, words)) for p in papers}
        started = time.perf_counter()
        asked = llm_relevance(model, papers, profile["interests"])
        llm_seconds.append((time.perf_counter() - started) / len(papers))
        started = time.perf_counter()
        similar = relevance(embedder, papers, profile["interests"], cache=None)  # nothing cached: the full cost
        embedding_seconds.append((time.perf_counter() - started) / len(papers))
        rankings = {
            "keywords": sorted(papers, key=lambda p: (-found[p.arxiv_id], hf_rank[p.arxiv_id])),
            "hf-order": sorted(papers, key=lambda p: hf_rank[p.arxiv_id]),
            "llm": sorted(papers, key=lambda p: -asked[p.arxiv_id]),
            "llm+boost": sorted(papers, key=lambda p: -(1 - (1 - asked[p.arxiv_id]) * 0.5 ** found[p.arxiv_id])),
            "embedding": sorted(papers, key=lambda p: -similar[p.arxiv_id]),
            "embedding+boost": sorted(papers, key=lambda p: -(similar[p.arxiv_id] + BOOST * found[p.arxiv_id])),
        }
        for weight in SWEEP:
            rankings[f"boost {weight}"] = sorted(papers, key=lambda p: -(similar[p.arxiv_id] + weight * found[p.arxiv_id]))
        report["profiles"][name] = {
            method: {"precision_at_5": precision_at(ranked, grades, 5), "ndcg_at_10": ndcg_at(ranked, grades, 10),
                     "top_5": [p.arxiv_id for p in ranked[:5]]}
            for method, ranked in rankings.items()}
        report["profiles"][name]["llm"]["scores"] = {p.arxiv_id: round(asked[p.arxiv_id], 4) for p in papers}
        report["profiles"][name]["embedding"]["scores"] = {p.arxiv_id: round(similar[p.arxiv_id], 4) for p in papers}
    review_seconds = args.review_seconds
    if review_seconds is None and args.review_papers > 0:
        print(f"reviewing {args.review_papers} papers to measure a review's cost", file=sys.stderr)
        timed = timed_reviews(model, load_prompt(), by_day[-1][:args.review_papers])
        review_seconds = timed["seconds"] / timed["papers"]
    report["llm_seconds_per_paper"] = statistics.mean(llm_seconds)
    report["embedding_seconds_per_paper"] = statistics.mean(embedding_seconds)
    report["review_seconds_per_paper"] = review_seconds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"models {report['model']}, {report['embedding_model']}; {len(papers)} papers, {len(profiles)} profiles")
    print(f"{'profile':15} {'method':15} {'P@5':>5} {'NDCG@10':>8}")
    for name, methods in report["profiles"].items():
        for method, result in methods.items():
            print(f"{name:15} {method:15} {result['precision_at_5']:5.2f} {result['ndcg_at_10']:8.3f}")
    for label in ("embedding", "llm"):
        cost = f"{label}: {report[f'{label}_seconds_per_paper']:.3f} s per paper"
        if review_seconds:
            cost += f", a review {review_seconds:.1f} s: {report[f'{label}_seconds_per_paper'] / review_seconds:.1%} of it"
        print(cost)


def llm_relevance(model, papers, interests: str) -> dict[str, float]:
    """The reviewing model's P(Yes) against P(No) for each paper (the profile first, so llama.cpp
    evaluates it once for the list)."""
    scores = {}
    for paper in papers:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": QUESTION.format(interests=interests.strip(), title=paper.title,
                                                                abstract=paper.abstract[:ABSTRACT_CHARS])}]
        logprobs = model.option_logprobs(messages, ("Yes", "No"))
        yes, no = math.exp(logprobs["Yes"]), math.exp(logprobs["No"])
        scores[paper.arxiv_id] = yes / (yes + no) if yes + no > 0 else 0.0
    return scores


def precision_at(ranked, grades, k: int) -> float:
    return sum(grades.get(p.arxiv_id, 0) > 0 for p in ranked[:k]) / k


def ndcg_at(ranked, grades, k: int) -> float:
    def dcg(values):
        return sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(values[:k]))

    ideal = dcg(sorted(grades.values(), reverse=True))
    return dcg([grades.get(p.arxiv_id, 0) for p in ranked]) / ideal if ideal else 0.0


if __name__ == "__main__":
    main()

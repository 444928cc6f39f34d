"""Comparing prompt variants and models on the same papers, in numbers.

Every prompt x model combination reviews every paper through the cache (reruns are cheap),
then each combination is scored against the GPT-4 reference digests, without them, and
on cost. Results: a rich table, JSON and CSV files, and a PNG chart of quality vs time.
"""

import csv
import json
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from localdigest import metrics
from localdigest.cache import ReviewCache
from localdigest.digest import Reviewer
from localdigest.engine import LocalModel
from localdigest.models import ModelSpec
from localdigest.papers import Paper
from localdigest.prompts import PromptTemplate
from localdigest.references import ReferenceReview
from localdigest.reviews import SCORE_DIMENSIONS

# The columns of the table, in order; each is the mean over the papers of one combination.
COLUMNS = {
    "valid": "schema-valid share of papers",
    "keyword_f1_en": "English keyword F1 vs reference",
    "keyword_f1_zh": "Chinese keyword F1 vs reference",
    **{f"abs_error_{n}": f"score MAE, {label}" for n, label in SCORE_DIMENSIONS.items()},
    "main_work_chrf": "chrF of 主要工作 vs reference (0-100)",
    "length_ratio": "length of 主要工作 / reference",
    "cjk_share": "CJK share of the Chinese fields",
    "copy_rate_examples": "8-gram copy rate from the prompt's examples",
    "copy_rate_abstract": "8-gram copy rate from the abstract",
    "score_spread": "std. dev. of scores across papers",
    "duplicate_keywords": "duplicate keywords within a review",
    "prompt_tokens": "prompt tokens per paper",
    "evaluated_prompt_tokens": "prompt tokens evaluated (after prefix reuse)",
    "completion_tokens": "generated tokens per paper",
    "prompt_eval_tok_s": "prompt evaluation tokens/s",
    "generation_tok_s": "generation tokens/s",
    "seconds_per_paper": "wall seconds per paper (generation)",
}


@dataclass
class Combination:
    prompt: str
    model: str
    papers: int = 0
    values: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_bench(papers: list[Paper], prompts: list[PromptTemplate], models: list[ModelSpec],
              references: dict[str, ReferenceReview], cache: ReviewCache | None,
              progress=lambda message: None) -> list[Combination]:
    combinations = []
    for spec in models:
        model = LocalModel(spec, spec.resolve())
        for prompt in prompts:
            combination = Combination(prompt=prompt.name, model=spec.name, papers=len(papers))
            reviewer = Reviewer(model, prompt, cache)
            results = []
            for index, paper in enumerate(papers, 1):
                progress(f"{spec.name} / {prompt.name}: paper {index}/{len(papers)} {paper.arxiv_id}")
                results.append(reviewer.review(paper))
            combination.values = _score(results, prompt, references)
            combination.warnings = [f"{r.paper.arxiv_id}: {r.error}" for r in results if r.error]
            combinations.append(combination)
    return combinations


def timed_reviews(model, prompt: PromptTemplate, papers: list[Paper], parallel: int = 1) -> dict:
    """The papers reviewed from scratch (no cache) as `localdigest run` would: wall seconds, generated
    tokens and their rate, and how many reviews passed validation."""
    reviewer = Reviewer(model, prompt, None)
    started = time.perf_counter()
    results = [result for _index, result in reviewer.review_many(papers, parallel)]
    seconds = time.perf_counter() - started
    tokens = reviewer.stats.completion_tokens
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "papers": len(papers),
            "valid": sum(result.review is not None for result in results)}


def _score(results, prompt: PromptTemplate, references: dict[str, ReferenceReview]) -> dict[str, float]:
    reviewed = [r for r in results if r.review is not None]
    values: dict[str, float] = {"valid": len(reviewed) / len(results) if results else 0.0}
    per_paper = [metrics.against_reference(r.review, references[r.paper.arxiv_id])
                 for r in reviewed if r.paper.arxiv_id in references]
    for key in sorted({k for row in per_paper for k in row}):
        values[key] = statistics.mean(row[key] for row in per_paper if key in row)
    examples = [text for pair in prompt.examples for text in pair]
    values.update(metrics.reference_free([r.review for r in reviewed], [r.paper.abstract for r in reviewed], examples))
    costs = [r.cost for r in reviewed if r.cost]
    if costs:
        for key in ("prompt_tokens", "evaluated_prompt_tokens", "completion_tokens"):
            values[key] = statistics.mean(c.get(key, 0) for c in costs)
        prompt_seconds = sum(c.get("prompt_seconds", 0) for c in costs)
        generation_seconds = sum(c["seconds"] - c.get("prompt_seconds", 0) for c in costs)
        values["prompt_eval_tok_s"] = sum(c.get("evaluated_prompt_tokens", 0) for c in costs) / prompt_seconds \
            if prompt_seconds else 0.0
        values["generation_tok_s"] = sum(c["completion_tokens"] for c in costs) / generation_seconds \
            if generation_seconds else 0.0
        values["seconds_per_paper"] = statistics.mean(c["seconds"] for c in costs)
    return values


def peak_memory_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_outputs(combinations: list[Combination], directory: Path, meta: dict) -> list[Path]:
    """results.json, results.csv and quality_vs_time.png in the directory; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = [{"prompt": c.prompt, "model": c.model, "papers": c.papers, **c.values} for c in combinations]
    json_path = directory / "results.json"
    json_path.write_text(json.dumps({"created": stamp, **meta, "columns": COLUMNS, "results": rows,
                                     "warnings": {f"{c.model}/{c.prompt}": c.warnings for c in combinations}},
                                    ensure_ascii=False, indent=2), encoding="utf-8")
    csv_path = directory / "results.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["prompt", "model", "papers", *COLUMNS], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [json_path, csv_path, _chart(combinations, directory / "quality_vs_time.png")]


def _chart(combinations: list[Combination], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for combination in combinations:
        label = f"{combination.prompt} / {combination.model}"
        seconds = combination.values.get("seconds_per_paper", 0.0)
        axes[0].scatter(seconds, combination.values.get("main_work_chrf", 0.0), s=60)
        axes[0].annotate(label, (seconds, combination.values.get("main_work_chrf", 0.0)), fontsize=8,
                         xytext=(4, 4), textcoords="offset points")
        axes[1].scatter(seconds, combination.values.get("keyword_f1_en", 0.0), s=60)
        axes[1].annotate(label, (seconds, combination.values.get("keyword_f1_en", 0.0)), fontsize=8,
                         xytext=(4, 4), textcoords="offset points")
    axes[0].set(xlabel="seconds per paper", ylabel="chrF of main work vs GPT-4 (0-100)", title="quality vs time")
    axes[1].set(xlabel="seconds per paper", ylabel="English keyword F1 vs GPT-4", title="keywords vs time")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

"""Comparing prompt variants and models on the same papers, in numbers.

Every prompt x model combination reviews every paper through the cache (reruns are cheap),
then each combination is scored against the GPT-4 reference digests, without them, and
on cost. Results: a rich table, JSON and CSV files, and a PNG chart of quality vs time.
"""

import csv
import io
import json
import resource
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from localdigest.bench import metrics
from localdigest.bench.references import ReferenceReview
from localdigest.llm.base import ReviewModel
from localdigest.output.files import write_atomic
from localdigest.review.cache import ReviewCache
from localdigest.review.pipeline import BASE_SEED, check_review, make_digest, paper_text, worked_examples
from localdigest.review.prompts import PromptTemplate
from localdigest.review.schema import SCORE_DIMENSIONS
from localdigest.sources.papers import Paper

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
    "example_text_share": "reviews with text of a worked example",
    "first_person_share": "reviews in the first person (主要工作/亮点)",
    "truncated_share": "reviews with a cut-off field",
    "english_share": "reviews with an untranslated English word in the Chinese",
    "flagged_share": "reviews shown with a flag",
    "retried_share": "answers sent back at least once",
    "duplicate_keywords": "duplicate keywords within a review",
    "prompt_tokens": "prompt tokens per paper",
    "evaluated_prompt_tokens": "prompt tokens evaluated (after prefix reuse)",
    "completion_tokens": "tokens per paper, kept answer",
    "sampled_tokens": "of them sampled (the rest forced by the schema or kept from an earlier answer)",
    "all_completion_tokens": "generated tokens per paper, answers asked again included",
    "all_sampled_tokens": "of them sampled: decoding steps per paper, answers asked again included",
    "prompt_eval_tok_s": "prompt evaluation tokens/s",
    "generation_tok_s": "generation tokens/s",
    "seconds_per_paper": "wall seconds per paper (prompts and generation, answers asked again included)",
}


@dataclass
class Combination:
    prompt: str
    model: str
    papers: int = 0
    values: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seed: int | str = BASE_SEED  # "mean": the mean over the seeds of one prompt x model
    # Why answers were asked again (the checks' problem kinds), how many times, most first: which
    # checks cost decoding steps (answers asked again were ~25% of them in the README's runs).
    sent_back_for: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        seed = {BASE_SEED: "", "mean": " / mean of the seeds"}.get(self.seed, f" / seed {self.seed}")
        return f"{self.prompt} / {self.model}{seed}"


def run_bench(papers: list[Paper], prompts: list[PromptTemplate], models: list[ReviewModel],
              references: dict[str, ReferenceReview], cache: ReviewCache | None, parallel: int = 1,
              progress=lambda message: None, seeds: tuple[int, ...] = (BASE_SEED,)) -> list[Combination]:
    """Each model x prompt x seed reviews the papers through make_digest, exactly as `localdigest run`
    does (the same batches, the same server requests), then is scored. With several seeds each
    model x prompt also gets their mean: on 26 papers one draw moves chrF and keyword F1 by about as
    much as a prompt change does (README, Benchmarks)."""
    combinations = []
    for model in models:
        for prompt in prompts:
            draws = []
            for seed in seeds:
                combination = Combination(prompt=prompt.name, model=model.spec.name, papers=len(papers), seed=seed)

                def report(_index, _result, results, combination=combination):
                    done = sum(r is not None for r in results)
                    progress(f"{combination.label}: {done}/{len(papers)} papers")

                digest = make_digest(papers, model=model, prompt=prompt, cache=cache, parallel=parallel,
                                     on_result=report, seed=seed)
                combination.values = _score(digest.results, prompt, references)
                combination.warnings = [f"{r.paper.arxiv_id}: {r.error}" for r in digest.results if r.error]
                combination.sent_back_for = sent_back_for(digest.results)
                draws.append(combination)
            combinations.extend(draws)
            if len(draws) > 1:
                combinations.append(_mean(draws))
    return combinations


def sent_back_for(results) -> dict[str, int]:
    """How many answers each kind of problem sent back, over the results' costs (as cached: a
    list of strings, anything else ignored), most first."""
    counts = Counter()
    for result in results:
        reasons = (result.cost or {}).get("sent_back_for")
        if isinstance(reasons, list):
            counts.update(reason for reason in reasons if isinstance(reason, str))
    return dict(counts.most_common())


def _mean(draws: list[Combination]) -> Combination:
    keys = [key for key in COLUMNS if all(key in draw.values for draw in draws)]
    return Combination(prompt=draws[0].prompt, model=draws[0].model, papers=draws[0].papers, seed="mean",
                       values={key: statistics.fmean(draw.values[key] for draw in draws) for key in keys})


def not_in_examples(papers: list[Paper], prompts: list[PromptTemplate]) -> tuple[list[Paper], list[str]]:
    """The papers that no prompt uses as a worked example (a model shown the answer would score
    too well on them), and the arXiv ids of those left out."""
    shown = [user for prompt in prompts for user, _answer in prompt.examples]
    kept = [p for p in papers if not any(p.title in text for text in shown)]
    return kept, [p.arxiv_id for p in papers if p not in kept]


def timed_reviews(model: ReviewModel, prompt: PromptTemplate, papers: list[Paper], parallel: int = 1) -> dict:
    """The papers reviewed from scratch (no cache) as `localdigest run` would: wall seconds, generated
    tokens and their rate, and how many reviews passed validation."""
    started = time.perf_counter()
    digest = make_digest(papers, model=model, prompt=prompt, cache=None, parallel=parallel)
    seconds = time.perf_counter() - started
    stats = digest.stats
    tokens = stats.completion_tokens
    # Decoding alone, the prompts' evaluation left out: llama.cpp's generation rate (tg) is read the
    # same way. One answer at a time only: parallel requests' durations overlap.
    decoding = stats.seconds - stats.prompt_seconds if parallel == 1 else 0.0
    return {"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds, "papers": len(papers),
            "valid": sum(result.review is not None for result in digest.results),
            "decoding_seconds": decoding, "decoding_tok_s": tokens / decoding if decoding > 0 else 0.0}


def _score(results, prompt: PromptTemplate, references: dict[str, ReferenceReview]) -> dict[str, float]:
    reviewed = [r for r in results if r.review is not None]
    values: dict[str, float] = {"valid": len(reviewed) / len(results) if results else 0.0}
    per_paper = [metrics.against_reference(r.review, references[r.paper.arxiv_id])
                 for r in reviewed if r.paper.arxiv_id in references]
    for key in sorted({k for row in per_paper for k in row}):
        values[key] = statistics.mean(row[key] for row in per_paper if key in row)
    examples = [text for pair in prompt.examples for text in pair]
    values.update(metrics.reference_free([r.review for r in reviewed], [r.paper.abstract for r in reviewed], examples))
    values.update(_reader_checks(reviewed, prompt))
    costs = [r.cost for r in reviewed if r.cost]
    if costs:
        for key in ("prompt_tokens", "evaluated_prompt_tokens"):
            values[key] = statistics.mean(c.get(key, 0) for c in costs)
        # A kept answer that went on from an earlier one (asked again, its first fields kept) is as
        # long as both parts; only what it wrote itself was sampled.
        values["completion_tokens"] = statistics.mean(c["completion_tokens"] + c.get("given_tokens", 0) for c in costs)
        values["sampled_tokens"] = statistics.mean(c["completion_tokens"] - c.get("forced_tokens", 0) for c in costs)
        values["all_sampled_tokens"] = statistics.mean(
            c.get("all_completion_tokens", c["completion_tokens"]) - c.get("all_forced_tokens", c.get("forced_tokens", 0))
            for c in costs)
        prompt_seconds = sum(c.get("prompt_seconds", 0) for c in costs)
        # Before stop 42 a local model's Completion.seconds left its prompt out already, so this
        # took it off twice (19.3 generation tok/s at stop 41 for 16.3): such entries, cached with
        # no all_prompt_seconds, are read as they were written.
        generation_seconds = sum(c["seconds"] - (c.get("prompt_seconds", 0) if "all_prompt_seconds" in c else 0)
                                 for c in costs)
        values["prompt_eval_tok_s"] = sum(c.get("evaluated_prompt_tokens", 0) for c in costs) / prompt_seconds \
            if prompt_seconds else 0.0
        values["generation_tok_s"] = sum(c["completion_tokens"] for c in costs) / generation_seconds \
            if generation_seconds else 0.0
        # Entries cached before all_* existed count their kept answer only.
        values["all_completion_tokens"] = statistics.mean(c.get("all_completion_tokens", c["completion_tokens"])
                                                          for c in costs)
        values["seconds_per_paper"] = statistics.mean(c.get("all_seconds", c["seconds"]) for c in costs)
    return values


def _reader_checks(reviewed, prompt: PromptTemplate) -> dict[str, float]:
    """What a reader would catch, over the reviews as shown: today's checks run on each again."""
    if not reviewed:
        return {}
    examples = worked_examples(prompt)
    found = [[p.text for p in check_review(r.paper, r.review, examples)] for r in reviewed]

    def share(words: str) -> float:
        return sum(any(words in text for text in texts) for texts in found) / len(reviewed)

    # Every review with its generation's figures, cached or not (like the cost rows): a run that found
    # most answers cached and generated one gave that one's 0 or 1 here.
    costed = [r for r in reviewed if r.cost]
    return {"example_text_share": share("copies the worked example"), "first_person_share": share("first person"),
            "truncated_share": share("cut off"),
            "english_share": sum(bool(metrics.untranslated_words(r.review, paper_text(r.paper)))
                                 for r in reviewed) / len(reviewed),
            "flagged_share": sum(bool(r.flags) for r in reviewed) / len(reviewed),
            "retried_share": sum(r.cost.get("attempts", 1) > 1 for r in costed) / len(costed) if costed else 0.0}


def peak_memory_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def chart_available() -> bool:
    """Whether the PNG chart can be drawn (matplotlib is the optional `bench` extra)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_outputs(combinations: list[Combination], directory: Path, meta: dict, chart: bool = True) -> list[Path]:
    """results.json, results.csv and (with chart) quality_vs_time.png in the directory; the paths written."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = [{"prompt": c.prompt, "model": c.model, "seed": c.seed, "papers": c.papers, **c.values,
             **({"sent_back_for": c.sent_back_for} if c.sent_back_for else {})} for c in combinations]
    json_path = directory / "results.json"
    write_atomic(json_path, json.dumps({"created": stamp, **meta, "columns": COLUMNS, "results": rows,
                                        "warnings": {c.label: c.warnings for c in combinations if c.warnings}},
                                       ensure_ascii=False, indent=2))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=["prompt", "model", "seed", "papers", *COLUMNS], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = directory / "results.csv"
    write_atomic(csv_path, table.getvalue())
    written = [json_path, csv_path]
    if chart:
        written.append(_chart(combinations, directory / "quality_vs_time.png"))
    return written


def _chart(combinations: list[Combination], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for combination in combinations:
        label = combination.label
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

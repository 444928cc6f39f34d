"""Decoding performance of localdigest, as ratios against baselines run in the same process.

    python benchmarks/perf.py                      # embedded default model, 2 papers
    python benchmarks/perf.py --model smollm2-135m --papers 4 --repeats 3

For each paper and repeat it generates with the same model, prompt, seed and settings in
three modes, rotating their order:
  raw-llama       a plain Llama.create_completion call on the same tokens and settings
  unconstrained   localdigest's pipeline without grammar (its overhead against raw-llama)
  stock-grammar   llama-cpp-python's grammar sampling (the whole vocabulary every token)
  fast-grammar    localdigest's GrammarFirstSampler (the grammar checks the sampled token)
Generation tokens/s excludes prompt evaluation (llama.cpp's perf counters). It also reports
how many prompt tokens llama.cpp evaluated per paper against the paper-specific tokens,
which shows the shared prefix being reused; total throughput of the review pipeline with
--batch-size papers decoded together against one at a time; the time of a fully cached
`localdigest run` against `localdigest --version` and the peak memory of a `localdigest run`
against the model file (child processes); and the physical ceiling (memory bandwidth /
bytes read per generated token).
"""

import argparse
import dataclasses
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localdigest.llm.chat_formats import format_messages  # noqa: E402
from localdigest.llm.base import GenerationSettings  # noqa: E402
from localdigest.llm.local import LocalModel  # noqa: E402
from localdigest.errors import ReviewInvalid  # noqa: E402
from localdigest.sources.feeds import load_feeds  # noqa: E402
from localdigest.review.grammar import schema_to_gbnf  # noqa: E402
from localdigest.llm.registry import load_registry  # noqa: E402
from localdigest.review.prompts import load_prompt  # noqa: E402
from localdigest.review.schema import Review  # noqa: E402

FEED = ROOT / "benchmarks" / "data" / "papers" / "2023-09-22.json"
REPORT_PEAK = """
import atexit, runpy, sys
atexit.register(lambda: sys.stderr.write(next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
                                         .replace("VmHWM", "PEAK VmHWM")))
sys.argv[0] = "localdigest"
runpy.run_module("localdigest", run_name="__main__")
"""
MODES = ("raw-llama", "unconstrained", "stock-grammar", "fast-grammar")


def prompt_eval(llama) -> tuple[int, float]:
    import llama_cpp

    perf = llama_cpp.llama_perf_context(llama.ctx)
    return perf.n_p_eval, perf.t_p_eval_ms / 1000


def run_once(model: LocalModel, messages, grammar, mode: str, seed: int) -> dict:
    import llama_cpp

    llama = model._load(context=True)  # create_completion decodes in the Llama's own context
    llama_cpp.llama_perf_context_reset(llama.ctx)
    if mode == "raw-llama":
        completion = raw_completion(model, messages, seed)
    else:
        completion = model.complete(messages, None if mode == "unconstrained" else grammar, seed=seed,
                                    fast_grammar=mode == "fast-grammar")
    evaluated, eval_seconds = prompt_eval(llama)
    generation_seconds = max(completion.seconds - eval_seconds, 1e-9)
    valid = None
    if "grammar" in mode:
        try:
            Review.from_json(completion.text)
            valid = True
        except ReviewInvalid:
            valid = False
    return {"tokens": completion.completion_tokens, "tok_s": completion.completion_tokens / generation_seconds,
            "prompt_evaluated": evaluated, "valid": valid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model name or .gguf path (default: the registry default)")
    parser.add_argument("--prompt", default="default")
    parser.add_argument("--papers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=200, help="cap per answer, so modes compare equal work")
    parser.add_argument("--ctx", type=int, help="context size (default: the model's n_ctx)")
    parser.add_argument("--batch-size", type=int, default=4, help="papers decoded together, against one at a time")
    parser.add_argument("--batch-papers", type=int, default=8, help="papers for the batched-decoding figure")
    parser.add_argument("--batch-max-tokens", type=int,
                        help="answer cap for that figure (default: the model's; answers must be complete to pass)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()

    spec = load_registry().get(args.model)
    model = LocalModel(spec, spec.resolve(), n_ctx=args.ctx)
    model.generation = dataclasses.replace(model.generation, max_tokens=args.max_tokens)
    template = load_prompt(args.prompt)
    grammar = schema_to_gbnf(template.schema())
    papers = load_feeds([str(FEED)]).papers[: args.papers]

    started = time.perf_counter()
    model._load(context=True)
    print(f"model {spec.name} ({model.path.name}), {model.threads} threads, loaded in "
          f"{time.perf_counter() - started:.2f}s; {len(papers)} papers x {args.repeats} repeats, "
          f"max {args.max_tokens} tokens", file=sys.stderr)

    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    prefix_rows = []
    for repeat in range(args.repeats):
        for index, paper in enumerate(papers):
            messages = template.messages(paper)
            order = MODES[index % len(MODES):] + MODES[: index % len(MODES)]
            for position, mode in enumerate(order):
                row = run_once(model, messages, grammar, mode, seed=42 + repeat)
                results[mode].append(row)
                if repeat == 0 and position == 0:
                    prefix_rows.append((paper.arxiv_id, row["prompt_evaluated"], paper_specific_tokens(model, messages)))
                print(f"  {paper.arxiv_id} {mode:14s} {row['tokens']:4d} tokens {row['tok_s']:7.1f} tok/s"
                      + ("" if row["valid"] is None else f" valid={row['valid']}"), file=sys.stderr)

    speed = {mode: statistics.median(r["tok_s"] for r in rows) for mode, rows in results.items()}
    print(f"\nGeneration tokens/s (median), {spec.name}:")
    for mode in MODES:
        rows = results[mode]
        validity = "" if "grammar" not in mode else f"  schema-valid {sum(r['valid'] for r in rows)}/{len(rows)}"
        print(f"  {mode:14s} {speed[mode]:7.1f} tok/s  {speed[mode] / speed['unconstrained']:5.2f}x unconstrained{validity}")
    print(f"  fast-grammar vs stock-grammar: {speed['fast-grammar'] / speed['stock-grammar']:.2f}x")
    print(f"  pipeline overhead: unconstrained vs raw-llama {speed['unconstrained'] / speed['raw-llama']:.2f}x")
    print("\nPrompt tokens evaluated per paper (first mode of each paper, repeat 1):")
    for arxiv_id, evaluated, specific in prefix_rows:
        print(f"  {arxiv_id}  evaluated {evaluated:5d}  paper-specific {specific:5d}  ratio {evaluated / specific:5.2f}")
    batched = batched_vs_one_at_a_time(model, template, load_feeds([str(FEED)]).papers[: args.batch_papers],
                                       args.batch_size, args.batch_max_tokens)
    one, many = batched[1], batched[args.batch_size]
    print(f"\nBatched decoding, {one['papers']} papers through the review pipeline (validation included), "
          f"max {model.generation.max_tokens} tokens:")
    for size, row in batched.items():
        print(f"  batch size {size}: {row['tok_s']:6.1f} tok/s total, {row['seconds']:6.1f} s, "
              f"valid {row['valid']}/{row['papers']}")
    print(f"  batch size {args.batch_size} vs 1: {many['tok_s'] / one['tok_s']:.2f}x")
    model_bytes = model.path.stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nPeak RSS of this benchmark process {peak / 1e6:.0f} MB = model file {model_bytes / 1e6:.0f} MB "
          f"+ {(peak - model_bytes) / 1e6:.0f} MB (n_ctx {model.n_ctx}; it also holds the baselines' state)")
    bandwidth = memory_bandwidth()
    print(f"Memory bandwidth {bandwidth / 1e9:.1f} GB/s / {model_bytes / 1e6:.0f} MB read per token = ceiling "
          f"{bandwidth / model_bytes:.0f} tok/s; unconstrained reaches {speed['unconstrained'] / (bandwidth / model_bytes):.0%}")
    product = product_run_figures(spec.name if spec.name in load_registry().models else str(model.path),
                                  len(papers), args.ctx)
    print(f"Peak RSS of `localdigest run` reviewing {len(papers)} papers: {product['peak_rss'] / 1e6:.0f} MB = model "
          f"file {model_bytes / 1e6:.0f} MB + {(product['peak_rss'] - model_bytes) / 1e6:.0f} MB")
    print(f"Fully cached run of {len(papers)} papers: {product['cached_s']:.3f}s vs --version "
          f"{product['version_s']:.3f}s = {product['cached_s'] / product['version_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"speed": speed, "runs": results, "prefix": prefix_rows, "peak_rss": peak,
                                         "bandwidth": bandwidth, "batched": batched, **product}, indent=2))


def batched_vs_one_at_a_time(model: LocalModel, template, papers, batch_size: int,
                             max_tokens: int | None) -> dict[int, dict]:
    """The same papers reviewed one at a time, then batch_size at a time, on the same loaded model; no cache."""
    from localdigest.bench.runner import timed_reviews

    model.generation = dataclasses.replace(
        model.generation, max_tokens=max_tokens or GenerationSettings.with_overrides(model.spec.generation).max_tokens)
    rows = {}
    for size in (1, batch_size):
        model.batch_size = size
        rows[size] = timed_reviews(model, template, papers)
    model.batch_size = 1
    return rows


def raw_completion(model: LocalModel, messages, seed: int):
    """What a plain llama-cpp-python script does: one create_completion with the same tokens and settings."""
    from localdigest.llm.base import Completion

    llama = model._load(context=True)
    prompt, tokens = model.tokenize_prompt(messages)
    params = model.generation
    started = time.perf_counter()
    result = llama.create_completion(prompt=tokens, max_tokens=params.max_tokens, temperature=params.temperature,
                                     top_p=params.top_p, repeat_penalty=params.repeat_penalty, seed=seed,
                                     stop=list(prompt.stop))
    usage = result["usage"]
    return Completion(result["choices"][0]["text"], usage["prompt_tokens"], usage["completion_tokens"],
                      time.perf_counter() - started)


def memory_bandwidth() -> float:
    """Bytes per second for copying a 256 MB buffer (best of 5), a proxy for reading weights."""
    import numpy as np

    source = np.ones(256 * 2**20, dtype=np.uint8)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best  # a copy reads and writes every byte


def product_run_figures(model: str, papers: int, ctx: int | None) -> dict:
    """`localdigest run` as a user runs it, in child processes: the peak RSS of a run that reviews the
    papers, then the median seconds of the fully cached rerun and of `localdigest --version`."""
    with tempfile.TemporaryDirectory() as cache:
        run = [sys.executable, "-m", "localdigest", "run", "--feed", str(FEED), "--limit", str(papers),
               "--model", model, "--cache-dir", cache, "--out", os.devnull, *(["--ctx", str(ctx)] if ctx else [])]
        # As a user runs it: Python caches compiled modules (some sandboxes turn that off).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        # Fills the cache. Its peak is the VmHWM of its own address space: ru_maxrss of a child would
        # also count this (big) benchmark process, which Linux carries into the child across fork+exec.
        filled = subprocess.run([sys.executable, "-c", REPORT_PEAK, *run[3:]], check=True, capture_output=True,
                                text=True, env=env)
        peak_rss = int(re.search(r"PEAK VmHWM:\s*(\d+) kB", filled.stderr).group(1)) * 1024

        def median_seconds(command) -> float:
            times = []
            for _ in range(9):
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                times.append(time.perf_counter() - started)
            return statistics.median(times)

        return {"peak_rss": peak_rss, "cached_s": median_seconds(run),
                "version_s": median_seconds([sys.executable, "-m", "localdigest", "--version"])}


def paper_specific_tokens(model: LocalModel, messages) -> int:
    """Tokens after the prefix shared with every other paper (the paper's own user turn)."""
    llama = model._load()
    full = format_messages(messages, model.spec.chat_format, **model._template_tokens).text
    shared = format_messages(messages[:-1], model.spec.chat_format, **model._template_tokens).text
    shared = os.path.commonprefix([full, shared])
    return len(llama.tokenize(full.encode(), add_bos=False, special=True)) - \
        len(llama.tokenize(shared.encode(), add_bos=False, special=True))


if __name__ == "__main__":
    main()

"""`localdigest bench`: prompt variants x models, scored against the GPT-4 reference digests."""

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from localdigest import paths
from localdigest.cli import main
from localdigest.cli.common import (cache_dir_option, debug_option, engine_options, load_papers, open_cache,
                                    open_engine, say, stderr, warn)
from localdigest.errors import LocaldigestError

BENCH_DATA = paths.shipped("benchmarks/data")


@main.command()
@click.option("--feed", "feeds", multiple=True, metavar="SRC",
              help="Papers to review (any --feed source); default: the three days in benchmarks/data/papers/.")
@click.option("--references", type=click.Path(file_okay=False, path_type=Path),
              default=BENCH_DATA / "references", show_default="benchmarks/data/references",
              help="Folder of GPT-4 reference digests (Markdown).")
@click.option("--prompt", "prompts", multiple=True, help="Prompt name or path; repeatable. Default: all shipped.")
@click.option("--model", "models", multiple=True, help="Model name or path; repeatable. Default: the default model.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N papers.")
@click.option("--seed", "seeds", multiple=True, type=int, metavar="N",
              help="Sampling seed of the first answer (default 42); repeatable: each seed is a column, "
                   "and a 'mean' column follows.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("benchmarks/results"),
              show_default=True, help="Where results.json, results.csv and quality_vs_time.png go.")
@cache_dir_option
@click.option("--no-cache", is_flag=True, help="Regenerate every review.")
@engine_options
@debug_option
def bench(feeds, references, prompts, models, limit, seeds, out_dir, cache_dir, no_cache, threads, gpu_layers, ctx,
          batch_size, server, api_key, parallel, timeout, debug):
    """Compare prompt variants and models against the GPT-4 reference digests.

    Every combination reviews the papers exactly as `localdigest run` would with the same options
    (batches, --server), through the cache."""
    from rich.table import Table

    from localdigest.bench.references import load_references
    from localdigest.output.files import check_writable
    from localdigest.bench.runner import (COLUMNS, chart_available, not_in_examples, peak_memory_bytes, run_bench,
                                          write_outputs)
    from localdigest.review.pipeline import BASE_SEED
    from localdigest.review.prompts import load_prompt, shipped_prompt_names

    # Everything that can fail is checked before the first paper is reviewed.
    if not references.is_dir():
        raise LocaldigestError(f"reference folder {references} not found", "pass --references DIR")
    check_writable(out_dir / "results.json")
    chart = chart_available()
    if not chart:
        say("Note: matplotlib is not installed, so no quality_vs_time.png (pip install 'localdigest[bench]')")
    reference_reviews = load_references(references)
    templates = [load_prompt(p) for p in (prompts or shipped_prompt_names())]
    papers = load_papers(feeds or [str(BENCH_DATA / "papers")], None, None, None, False)
    papers, left_out = not_in_examples(papers, templates)
    papers = papers[:limit] if limit else papers
    engines = [open_engine(m, server=server, api_key=api_key, threads=threads, ctx=ctx, gpu_layers=gpu_layers,
                           batch_size=batch_size, parallel=parallel, timeout=timeout, papers=len(papers))
               for m in (models or [None])]
    store = None if no_cache else open_cache(cache_dir)
    seeds = tuple(dict.fromkeys(seeds)) or (BASE_SEED,)
    matched = sum(p.arxiv_id in reference_reviews for p in papers)
    say(f"{len(papers)} papers ({matched} with a reference; {len(left_out)} left out as the prompts' worked "
        f"examples) x {len(templates)} prompts x {len(engines)} models"
        + (f" x {len(seeds)} seeds" if len(seeds) > 1 else ""))
    with stderr.status("benchmarking") as status:
        combinations = run_bench(papers, templates, engines, reference_reviews, store, parallel=parallel,
                                 progress=lambda message: status.update(escape(message)),
                                 seeds=seeds)

    table = Table(title=f"localdigest bench: {len(papers)} papers, {matched} with a GPT-4 reference")
    table.add_column("metric")
    for combination in combinations:
        table.add_column(escape(combination.label.replace(" / ", "\n")), justify="right")
    for key, label in COLUMNS.items():
        table.add_row(label, *(f"{c.values[key]:.2f}" if key in c.values else "-" for c in combinations))
    console = Console()
    console.print(table)
    for combination in combinations:
        if combination.sent_back_for:
            counts = ", ".join(f"{kind} {count}" for kind, count in combination.sent_back_for.items())
            console.print(escape(f"{combination.label}: answers asked again for: {counts}"), highlight=False,
                            soft_wrap=True)
    for combination in combinations:
        for warning in combination.warnings:
            stderr.print(warn(f"{combination.label}: {warning}"), highlight=False, soft_wrap=True)
    written = write_outputs(combinations, out_dir, {"papers": [p.arxiv_id for p in papers],
                                                    "left_out": left_out,
                                                    "peak_rss_bytes": peak_memory_bytes()}, chart=chart)
    say(f"Peak memory {peak_memory_bytes() / 1e6:.0f} MB. Wrote " + ", ".join(map(str, written)))


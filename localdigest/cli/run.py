"""`localdigest run`: review the papers of the feeds and write the digest."""

import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from localdigest.cli import main
from localdigest.cli.common import (cache_dir_option, debug_option, engine_options, feed_options, load_papers,
                                    open_cache, open_engine, reader_profile, say, stderr, warn)
from localdigest.errors import LocaldigestError


@main.command()
@feed_options
@click.option("--out", default="-", help="Output file; '-' prints to the terminal.", show_default=True)
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--model", help="Model name from models.toml, or a path to a .gguf file.")
@click.option("--prompt", help="Prompt name in prompts/, or a path to a .toml template.")
@cache_dir_option
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached reviews.")
@engine_options
@click.option("--sort", "order", type=click.Choice(["feed", "upvotes", "relevance", "score"]), default=None,
              help="Order of the papers in the digest: the feed's (Hugging Face: by upvotes), upvotes, relevance to "
                   "your interests, or score (推荐度, then 实用性 + 创新性). Default: relevance with interests, else feed.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Your reader profile (TOML: interests, include, exclude). Default: profile.toml in the config "
                   "folder, when there is one.")
@click.option("--interests", metavar="TEXT",
              help="What you work on, a sentence or two (replaces the profile's): papers are ranked by relevance to it.")
@click.option("--include", multiple=True, metavar="WORD",
              help="Keep only papers whose title or abstract has one of these words; repeatable (adds to the profile's).")
@click.option("--exclude", multiple=True, metavar="WORD",
              help="Leave out papers whose title or abstract has one of these words; repeatable.")
@click.option("--top", type=click.IntRange(min=1), metavar="N",
              help="Review only the N papers most relevant to your interests (needs interests).")
@click.option("--min-score", type=click.FloatRange(0, 5), metavar="X",
              help="Leave out papers whose 推荐度 is below X (0-5); papers that could not be reviewed stay.")
@click.option("--overview", is_flag=True,
              help="Open the digest with 今日速览: a few sentences on the day's themes and the papers to read first, "
                   "written by the model from the reviews (cached; left out, with a warning, if it fails the checks).")
@click.option("--new-only", is_flag=True,
              help="Leave out papers that were in the saved digest of an earlier day (by arXiv id, any version); "
                   "without it they are marked with the day they first appeared.")
@click.option("--no-archive", is_flag=True,
              help="Do not keep this digest as the day's digest for `localdigest site build` (a trial run).")
@click.option("--partial", is_flag=True,
              help="Rewrite --out after every paper, so an interrupted or failing run leaves the digest so far.")
@debug_option
def run(feeds, date, limit, min_upvotes, include_replaced, offline, out, output_format, model, prompt, cache_dir,
        no_cache, threads, gpu_layers, ctx, batch_size, server, api_key, parallel, timeout, order, profile_path,
        interests, include, exclude, top, min_score, overview, new_only, no_archive, partial, debug):
    """Review the papers in the feeds and write the digest."""
    from localdigest.cli.progress import DigestProgress
    from localdigest.output.archive import first_seen
    from localdigest.output.arrange import arrange
    from localdigest.output.files import check_writable, write_atomic
    from localdigest.output.render import PENDING, DigestInfo, render_json, render_markdown
    from localdigest.review.pipeline import PaperResult, make_digest
    from localdigest.review.prompts import load_prompt

    if partial and out == "-":
        raise LocaldigestError("--partial needs --out FILE", "name the digest file to keep up to date")
    if out != "-":
        check_writable(Path(out))  # now, not after every review was generated
    seen, unreadable = first_seen(date)  # history: papers in an earlier day's saved digest
    for problem in unreadable:
        stderr.print(warn(problem), highlight=False, soft_wrap=True)
    profile = reader_profile(profile_path).with_overrides(interests, include, exclude)
    ranked = bool(profile.interests.strip())
    if top and not ranked:
        raise LocaldigestError("--top needs your interests to rank by",
                               "add --interests \"what you work on\" or write them in your profile")
    if order == "relevance" and not ranked:
        raise LocaldigestError("--sort relevance needs your interests", "add --interests or write them in your profile")
    order = order or ("relevance" if ranked else "feed")
    papers = load_papers(feeds, date, limit, min_upvotes, include_replaced, offline,
                         skip_ids=frozenset(seen) if new_only else frozenset(), include=profile.include,
                         exclude=profile.exclude)
    template = load_prompt(prompt)
    engine = open_engine(model, server=server, api_key=api_key, threads=threads, ctx=ctx, gpu_layers=gpu_layers,
                         batch_size=batch_size, parallel=parallel, timeout=timeout, offline=offline,
                         papers=len(papers))
    cache = None if no_cache else open_cache(cache_dir)
    scores = {}
    if ranked:
        scores, papers = _rank(papers, profile, cache, top, threads)

    info = DigestInfo(date=date, model=engine.describe(), prompt=template.name, server=engine.url,
                      first_seen={p.arxiv_id: seen[p.arxiv_id] for p in papers if p.arxiv_id in seen},
                      relevance={p.arxiv_id: scores[p.arxiv_id] for p in papers if p.arxiv_id in scores})
    render = render_json if output_format == "json" else render_markdown
    started = time.perf_counter()
    with DigestProgress(len(papers), stderr) as progress:
        def on_result(_index, result, results):
            for problem in filter(None, (result.warning, result.error)):
                progress.log(warn(f"{result.paper.arxiv_id} ({result.paper.title[:50]}): {problem}"))
            progress.finish_paper(0 if result.cached or not result.cost else result.cost["completion_tokens"])
            if partial and any(r is not None and r.review is not None for r in results):
                # only once a paper succeeded: a run that fails throughout leaves the old digest
                so_far = [r or PaperResult(p, None, error=PENDING) for p, r in zip(papers, results)]
                write_atomic(Path(out), render(info, so_far))

        if parallel > 1:
            progress.waiting_on(f"{parallel} at a time, {engine.url}")
        digest = make_digest(papers, model=engine, prompt=template, cache=cache, parallel=parallel,
                             on_start=progress.start_paper if parallel == 1 else None, on_token=progress.token,
                             on_result=on_result)

    stats = digest.stats
    # Parallel requests overlap, so their summed durations say nothing about throughput: use the clock.
    seconds = time.perf_counter() - started if parallel > 1 else stats.seconds
    speed = stats.completion_tokens / seconds if seconds else 0
    say(f"{len(papers)} papers: {stats.generated} generated, {stats.cached} from cache, {stats.failed} failed"
        + (f"; {stats.completion_tokens} tokens at {speed:.1f} tok/s" if stats.completion_tokens else ""))
    if stats.failed == len(papers):  # before writing: a digest of nothing but ⚠️ must not replace a good one
        raise LocaldigestError("no paper could be reviewed" + ("; the existing digest was left as it was" if out != "-" else ""),
                               "see the warnings above; try another --model or --prompt")
    if overview:
        info = replace(info, overview=_overview(engine, digest.results, cache))
    arranged = arrange(digest.results, order, min_score, scores)
    if arranged.note:
        info = replace(info, arranged=arranged.note, total=len(digest.results))
    text = render(info, arranged.results)
    if not no_archive:
        _archive(text if output_format == "json" else render_json(info, arranged.results), info.date)
    if out == "-":
        if output_format == "markdown" and sys.stdout.isatty():
            from rich.console import Console
            from rich.markdown import Markdown

            Console().print(Markdown(text))
        else:
            click.echo(text, nl=False)
    else:
        write_atomic(Path(out), text)
        say(f"Wrote {out}")


def _rank(papers, profile, cache, top, threads):
    """Relevance of every paper to the reader's interests; with `top`, only the most relevant stay.
    The embedding model runs here whichever model reviews (a server's too)."""
    from localdigest.llm.choose import open_embedding
    from localdigest.llm.registry import load_registry
    from localdigest.review.relevance import relevance, top as most_relevant

    embedder = open_embedding(load_registry().embedding_model(), threads=threads)
    if re.search("[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", profile.interests):
        # all-MiniLM-L6-v2 reads English: Chinese interests ranked the labelled papers at NDCG@10
        # 0.17-0.51 against 0.90-0.99 in English (README, Ranking by interests)
        say("Warning: your interests are not in English; the embedding model that ranks papers reads English "
            "(the papers' language): write them in English for a useful ranking", "yellow")
    say(f"Ranking {len(papers)} papers by relevance to your interests ({embedder.spec.name}) …")
    started = time.perf_counter()
    scores = relevance(embedder, papers, profile.interests, cache, boost=profile.boost)
    kept = most_relevant(papers, scores, top) if top else papers
    say(f"Ranked in {time.perf_counter() - started:.1f} s" +
        (f"; reviewing the {len(kept)} most relevant of {len(papers)}" if top else ""))
    return scores, kept


def _overview(engine, results, cache) -> str | None:
    from localdigest.review.overview import write_overview

    say("Writing 今日速览 …")
    written = write_overview(engine, results, cache)
    if written is None:
        say("Warning: no 今日速览: fewer than two papers were reviewed", "yellow")
        return None
    if written.text is None:
        say(f"Warning: no 今日速览: the model's answers failed the checks ({written.problem})", "yellow")
    return written.text


def _archive(digest_json: str, date: str) -> None:
    """Keep the digest as the day's digest for `site build`; the digest itself does not depend on it."""
    from localdigest.output.archive import save

    try:
        save(digest_json, date)
    except OSError as exc:
        say(f"Warning: could not keep the digest for `localdigest site build`: {exc.strerror} ({exc.filename})",
            "yellow")

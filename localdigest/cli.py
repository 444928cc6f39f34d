"""The localdigest command line. Results go to stdout, progress and messages to stderr."""

import datetime
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markdown import Markdown

from localdigest import __version__
from localdigest.errors import LocaldigestError

stderr = Console(stderr=True)


class LocaldigestGroup(click.Group):
    """The one place that turns errors into a one-line message and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LocaldigestError as exc:
            if ctx.params.get("debug") or "--debug" in sys.argv:
                raise
            stderr.print(f"[red]Error:[/red] {exc.one_line()}", highlight=False, markup=True, soft_wrap=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            stderr.print("Interrupted; reviews finished so far are cached and will be reused.")
            ctx.exit(130)


@click.group(cls=LocaldigestGroup)
@click.version_option(__version__, prog_name="localdigest")
def main():
    """Daily paper digests in Chinese, written by a local LLM (llama.cpp), fully offline."""


@main.command()
@click.option("--feed", "feeds", multiple=True, required=True, metavar="FILE",
              help="Feed file: Hugging Face daily_papers JSON or RSS/Atom; '-' for stdin. Repeatable.")
@click.option("--date", default=lambda: datetime.datetime.now(datetime.UTC).date().isoformat(),
              help="Digest date (YYYY-MM-DD), default today (UTC).", show_default="today")
@click.option("--out", default="-", help="Output file; '-' prints to the terminal.", show_default=True)
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--model", help="Model name from models.toml, or a path to a .gguf file.")
@click.option("--prompt", help="Prompt name in prompts/, or a path to a .toml template.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Review cache folder [env: LOCALDIGEST_CACHE_DIR].")
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached reviews.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for llama.cpp (default: all cores).")
@click.option("--limit", type=click.IntRange(min=1), help="Review at most N papers.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def run(feeds, date, out, output_format, model, prompt, cache_dir, no_cache, threads, limit, debug):
    """Review the papers in FEEDs and write the digest."""
    from localdigest import paths
    from localdigest.cache import ReviewCache
    from localdigest.digest import Reviewer
    from localdigest.engine import LocalModel
    from localdigest.feeds import load_feeds
    from localdigest.models import load_registry
    from localdigest.progress import DigestProgress
    from localdigest.prompts import load_prompt
    from localdigest.render import DigestInfo, render_json, render_markdown, write_atomic

    _check_date(date)
    loaded = load_feeds(list(feeds))
    for warning in loaded.warnings:
        stderr.print(f"[yellow]Warning:[/yellow] {warning}", highlight=False)
    papers = loaded.papers[:limit] if limit else loaded.papers
    if not papers:
        raise LocaldigestError("no papers with a title and abstract in the given feeds", "check the --feed files")

    template = load_prompt(prompt)
    spec = load_registry().get(model)
    local_model = LocalModel(spec, spec.resolve(), threads=threads)
    cache = None if no_cache else ReviewCache(cache_dir or paths.cache_dir())
    reviewer = Reviewer(local_model, template, cache)

    results = []
    with DigestProgress(len(papers), stderr) as progress:
        for paper in papers:
            progress.start_paper(paper.title)
            result = reviewer.review(paper, on_token=progress.token)
            if result.error:
                progress.log(f"[yellow]Warning:[/yellow] {paper.arxiv_id} ({paper.title[:50]}): {result.error}")
            results.append(result)
            progress.finish_paper()

    stats = reviewer.stats
    speed = stats.completion_tokens / stats.generation_seconds if stats.generation_seconds else 0
    stderr.print(
        f"{len(papers)} papers: {stats.generated} generated, {stats.cached} from cache, {stats.failed} failed"
        + (f"; {stats.completion_tokens} tokens at {speed:.1f} tok/s" if stats.completion_tokens else ""),
        highlight=False,
    )
    info = DigestInfo(date=date, model=f"{spec.name} ({local_model.path.name})", prompt=template.name)
    text = render_json(info, results) if output_format == "json" else render_markdown(info, results)
    if out == "-":
        if output_format == "markdown" and sys.stdout.isatty():
            Console().print(Markdown(text))
        else:
            click.echo(text, nl=False)
    else:
        write_atomic(Path(out), text)
        stderr.print(f"Wrote {out}", highlight=False)
    if stats.failed == len(papers):
        raise LocaldigestError("no paper could be reviewed", "see the warnings above; try another --model or --prompt")


def _check_date(date: str) -> None:
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        raise LocaldigestError(f"--date '{date}' is not a date", "write it as YYYY-MM-DD") from None

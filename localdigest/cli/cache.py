"""`localdigest cache …`: inspect and clean the review cache."""

import datetime

import click

from localdigest.cli import main
from localdigest.cli.common import cache_dir_option, megabytes, open_cache, say
from localdigest.errors import LocaldigestError
from localdigest.llm import prefix_states


@main.group("cache")
def cache_group():
    """Inspect and clean the review cache."""


@cache_group.command("stats")
@cache_dir_option
def cache_stats(cache_dir):
    """How many reviews are cached, how big, how old, and from which models; and the prompt
    prefixes local models keep in the data folder."""
    store = open_cache(cache_dir)
    stats = store.stats()

    def when(stamp):
        return datetime.datetime.fromtimestamp(stamp).isoformat(sep=" ", timespec="seconds") if stamp else "-"

    click.echo(f"folder   {store.directory}\nreviews  {stats.entries}\nsize     {megabytes(stats.bytes_on_disk)}\n"
               f"oldest   {when(stats.oldest)}\nnewest   {when(stats.newest)}")
    for model, count in sorted(stats.by_model.items()):
        click.echo(f"model    {model}: {count}")
    folder = prefix_states.default_folder()
    files, size = prefix_states.on_disk(folder)
    click.echo(f"prefixes {files} files, {megabytes(size)} in {folder} (the prompt's shared beginning, "
               "evaluated by local models)")


@cache_group.command("clear")
@cache_dir_option
def cache_clear(cache_dir):
    """Delete every cached review, and the prompt prefixes kept in the data folder."""
    removed = open_cache(cache_dir).clear()
    files, size = prefix_states.remove_all(prefix_states.default_folder())
    say(f"Removed {removed} cached reviews and {files} prompt-prefix files ({megabytes(size)})")


@cache_group.command("prune")
@cache_dir_option
@click.option("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 2w, 90m.")
def cache_prune(cache_dir, older_than):
    """Delete cached reviews older than AGE."""
    seconds = _parse_age(older_than)
    say(f"Removed {open_cache(cache_dir).prune(seconds)} cached reviews older than {older_than}")


def _parse_age(text: str) -> float:
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mhdw])", text.strip())
    if not match:
        raise LocaldigestError(f"--older-than '{text}' is not an age", "write e.g. 90m, 12h, 30d or 2w")
    return float(match.group(1)) * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]

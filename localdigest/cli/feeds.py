"""`localdigest feeds show`: the papers a run would review, without a model."""

import click
from rich.console import Console
from rich.markup import escape

from localdigest.cli import main
from localdigest.cli.common import feed_options, load_papers


@main.group("feeds")
def feeds_group():
    """Inspect feeds without running a model."""


@feeds_group.command("show")
@feed_options
@click.option("--json", "as_json", is_flag=True, help="Print the papers as JSON.")
def feeds_show(feeds, date, limit, min_upvotes, include_replaced, offline, as_json):
    """List the papers the feeds yield, as `run` would review them."""
    import dataclasses
    import json

    from rich.table import Table

    papers = load_papers(feeds, date, limit, min_upvotes, include_replaced, offline)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(p) for p in papers], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(papers)} papers")
    for column in ("arXiv id", "upvotes", "date", "title", "authors", "abstract"):
        table.add_column(column, overflow="fold")
    for p in papers:
        table.add_row(escape(p.arxiv_id), "" if p.upvotes is None else str(p.upvotes), escape(p.published or ""),
                      escape(p.title),
                      str(len(p.authors)), f"{len(p.abstract)} chars")
    Console().print(table)



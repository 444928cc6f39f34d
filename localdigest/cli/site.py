"""`localdigest site …`: the saved digests as a static site with an Atom feed, and a quick local look."""

from pathlib import Path

import click

from localdigest.cli import main
from localdigest.cli.common import debug_option, say
from localdigest.errors import LocaldigestError


@main.group("site")
def site_group():
    """Publish the saved digests as static web pages and an Atom feed."""


@site_group.command("build")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "sources", multiple=True, type=click.Path(exists=True, path_type=Path), metavar="PATH",
              help="Digest JSON files (`run --format json`) or folders of them; repeatable. Default: the digests "
                   "`localdigest run` saved (in the data folder, digests/).")
@click.option("--title", default=None, help="The site's and the feed's title.  [default: 每日论文速览]")
@click.option("--base-url", metavar="URL",
              help="Where the site will be served (https://intranet.example/digest/): makes the feed's links "
                   "absolute. Without it they are relative to atom.xml, which feed readers resolve.")
@debug_option
def site_build(out_dir, sources, title, base_url, debug):
    """Write (or update) the site in OUT_DIR: index.html, one page per day, style.css, atom.xml."""
    from localdigest.output.archive import archive_dir, load_all
    from localdigest.publish.site import DEFAULT_TITLE, render_site, write_site

    if base_url and not base_url.lower().startswith(("http://", "https://")):
        raise LocaldigestError(f"--base-url '{base_url}' is not a web address", "write it as https://host/path/")
    folders = list(sources) or [archive_dir()]
    if not sources and not folders[0].is_dir():
        raise LocaldigestError(f"no saved digests in {folders[0]}",
                               "run `localdigest run` first, or name digest JSON files with --from")
    digests = load_all(folders)
    if not digests:
        raise LocaldigestError(f"no digest files (*.json) in {', '.join(map(str, folders))}",
                               "run `localdigest run` first, or name digest JSON files with --from")
    files = render_site(digests, title=title or DEFAULT_TITLE, base_url=base_url)
    try:
        result = write_site(files, out_dir)
    except OSError as exc:
        raise LocaldigestError(f"cannot write the site to {out_dir}: {exc.strerror}",
                               "choose another OUT_DIR or free some disk space; pages already there were kept") from None
    say(f"{result.days} days: {len(result.written)} files written, {result.unchanged} unchanged in {out_dir}")
    click.echo(out_dir / "index.html")


@site_group.command("serve")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 shares the site with the network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
def site_serve(out_dir, host, port):
    """Serve OUT_DIR over HTTP for a quick look (Ctrl-C stops). For an intranet, any web server will do."""
    from localdigest.publish.site import serve

    if not (out_dir / "index.html").is_file():
        raise LocaldigestError(f"{out_dir} has no index.html", f"build it first: localdigest site build {out_dir}")
    try:
        serve(out_dir, host, port, on_ready=lambda url: say(f"Serving {out_dir} at {url} (Ctrl-C stops)"))
    except OSError as exc:
        raise LocaldigestError(f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --port") from None
    except KeyboardInterrupt:
        say("Stopped.")
